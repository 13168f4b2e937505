/** SQLite table `fast_tokens` (see src/storage/fast.ts); keyed by username, so account deletion revokes. */
import type { Database, Statement } from 'better-sqlite3';
import type { FastToken, FastTokenStore } from '../fast.js';

interface Row {
  username: string;
  agent: string;
  mechanism: string;
  key_hash: Buffer;
  cred_stamp: string;
  created_at: number;
  expires_at: number;
  count: number;
}

export const FAST_MIGRATION_SQL = `
  CREATE TABLE fast_tokens (
    username TEXT NOT NULL,
    key_hash BLOB NOT NULL,
    agent TEXT NOT NULL,
    mechanism TEXT NOT NULL,
    cred_stamp TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    count INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (username, key_hash)
  ) WITHOUT ROWID;
`;

export class SqliteFastTokenStore implements FastTokenStore {
  private readonly listStmt: Statement<[string, number], Row>;
  private readonly addStmt: Statement<[string, Buffer, string, string, string, number, number, number]>;
  private readonly removeStmt: Statement<[string, Buffer]>;
  private readonly removeAgent: Statement<[string, string, Buffer]>;
  private readonly countStmt: Statement<[number, string, Buffer]>;
  private readonly pruneStmt: Statement<[string, number]>;

  constructor(db: Database) {
    this.listStmt = db.prepare('SELECT * FROM fast_tokens WHERE username = ? AND expires_at > ?');
    this.addStmt = db.prepare('INSERT OR REPLACE INTO fast_tokens (username, key_hash, agent, mechanism, cred_stamp, created_at, expires_at, count) VALUES (?, ?, ?, ?, ?, ?, ?, ?)');
    this.removeStmt = db.prepare('DELETE FROM fast_tokens WHERE username = ? AND key_hash = ?');
    this.removeAgent = db.prepare('DELETE FROM fast_tokens WHERE username = ? AND agent = ? AND key_hash != ?');
    this.countStmt = db.prepare('UPDATE fast_tokens SET count = ? WHERE username = ? AND key_hash = ?');
    this.pruneStmt = db.prepare('DELETE FROM fast_tokens WHERE username = ? AND expires_at <= ?');
  }

  async list(username: string): Promise<FastToken[]> {
    const now = Date.now();
    this.pruneStmt.run(username, now);
    return this.listStmt.all(username, now).map((r) => ({
      username: r.username, agent: r.agent, mechanism: r.mechanism, keyHash: r.key_hash, credStamp: r.cred_stamp,
      createdAt: r.created_at, expiresAt: r.expires_at, count: r.count,
    }));
  }
  async add(t: FastToken): Promise<void> {
    this.addStmt.run(t.username, t.keyHash, t.agent, t.mechanism, t.credStamp, t.createdAt, t.expiresAt, t.count);
  }
  async remove(username: string, keyHash: Buffer): Promise<void> {
    this.removeStmt.run(username, keyHash);
  }
  async removeForAgent(username: string, agent: string, keep?: Buffer): Promise<void> {
    this.removeAgent.run(username, agent, keep ?? Buffer.alloc(0));
  }
  async setCount(username: string, keyHash: Buffer, count: number): Promise<void> {
    this.countStmt.run(count, username, keyHash);
  }
}
