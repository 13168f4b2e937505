/**
 * SQLite BlocklistStore (XEP-0191). One row per (account, blocked JID); the
 * `username` column makes deleteUserData remove an account's list.
 */
import type { Database, Statement, Transaction } from 'better-sqlite3';
import type { BlocklistStore } from '../blocklist.js';

/** The migration that creates the table (appended as { id: '00NN-blocklist', sql: BLOCKLIST_MIGRATION_SQL }). */
export const BLOCKLIST_MIGRATION_SQL = `
  CREATE TABLE blocklist (
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    PRIMARY KEY (username, jid)
  ) WITHOUT ROWID;
`;

export class SqliteBlocklistStore implements BlocklistStore {
  private readonly listStmt: Statement<[string], { jid: string }>;
  private readonly insertStmt: Statement<[string, string]>;
  private readonly deleteStmt: Statement<[string, string]>;
  private readonly clearStmt: Statement<[string]>;
  private readonly allStmt: Statement<[], { username: string; jid: string }>;
  private readonly addTx: Transaction<(u: string, jids: readonly string[]) => string[]>;
  private readonly removeTx: Transaction<(u: string, jids: readonly string[]) => string[]>;
  private readonly clearTx: Transaction<(u: string) => string[]>;

  constructor(db: Database) {
    this.listStmt = db.prepare('SELECT jid FROM blocklist WHERE username = ? ORDER BY jid');
    this.insertStmt = db.prepare('INSERT INTO blocklist (username, jid) VALUES (?, ?) ON CONFLICT DO NOTHING');
    this.deleteStmt = db.prepare('DELETE FROM blocklist WHERE username = ? AND jid = ?');
    this.clearStmt = db.prepare('DELETE FROM blocklist WHERE username = ?');
    this.allStmt = db.prepare('SELECT username, jid FROM blocklist ORDER BY username, jid');
    // One transaction per request: a block of several JIDs is stored whole or not at all.
    this.addTx = db.transaction((u: string, jids: readonly string[]) => jids.filter((j) => this.insertStmt.run(u, j).changes > 0));
    this.removeTx = db.transaction((u: string, jids: readonly string[]) => jids.filter((j) => this.deleteStmt.run(u, j).changes > 0));
    this.clearTx = db.transaction((u: string) => {
      const was = this.listStmt.all(u).map((r) => r.jid);
      this.clearStmt.run(u);
      return was;
    });
  }

  async list(username: string): Promise<string[]> {
    return this.listStmt.all(username).map((r) => r.jid);
  }

  async add(username: string, jids: readonly string[]): Promise<string[]> {
    return this.addTx.immediate(username, [...new Set(jids)]);
  }

  async remove(username: string, jids: readonly string[]): Promise<string[]> {
    return this.removeTx.immediate(username, [...new Set(jids)]);
  }

  async clear(username: string): Promise<string[]> {
    return this.clearTx.immediate(username);
  }

  async all(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const r of this.allStmt.all()) {
      const l = out.get(r.username);
      if (l) l.push(r.jid);
      else out.set(r.username, [r.jid]);
    }
    return out;
  }
}
