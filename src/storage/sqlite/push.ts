/**
 * SQLite table `push_registrations` (see src/storage/push.ts). Keyed by
 * username, so account deletion removes the registrations with everything else.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { PushRegistration, PushStore } from '../push.js';

interface Row {
  username: string;
  jid: string;
  node: string;
  resource: string;
  options: string;
  created_at: number;
}

export const PUSH_MIGRATION_SQL = `
  CREATE TABLE push_registrations (
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    node TEXT NOT NULL,
    resource TEXT NOT NULL,
    options TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (username, jid, node)
  ) WITHOUT ROWID;
`;

export class SqlitePushStore implements PushStore {
  private readonly listStmt: Statement<[string], Row>;
  private readonly usersStmt: Statement<[], { username: string }>;
  private readonly putStmt: Statement<[string, string, string, string, string, number]>;
  private readonly removeOne: Statement<[string, string, string]>;
  private readonly removeAll: Statement<[string, string]>;

  constructor(db: Database) {
    this.listStmt = db.prepare('SELECT username, jid, node, resource, options, created_at FROM push_registrations WHERE username = ? ORDER BY created_at');
    this.usersStmt = db.prepare('SELECT DISTINCT username FROM push_registrations');
    this.putStmt = db.prepare(
      `INSERT INTO push_registrations (username, jid, node, resource, options, created_at) VALUES (?, ?, ?, ?, ?, ?)
       ON CONFLICT (username, jid, node) DO UPDATE SET resource = excluded.resource, options = excluded.options, created_at = excluded.created_at`,
    );
    this.removeOne = db.prepare('DELETE FROM push_registrations WHERE username = ? AND jid = ? AND node = ?');
    this.removeAll = db.prepare('DELETE FROM push_registrations WHERE username = ? AND jid = ?');
  }

  async list(username: string): Promise<PushRegistration[]> {
    return this.listStmt.all(username).map((r) => ({
      username: r.username, jid: r.jid, node: r.node, resource: r.resource, options: r.options, createdAt: r.created_at,
    }));
  }

  async usernames(): Promise<string[]> {
    return this.usersStmt.all().map((r) => r.username);
  }

  async put(reg: PushRegistration): Promise<void> {
    this.putStmt.run(reg.username, reg.jid, reg.node, reg.resource, reg.options, reg.createdAt);
  }

  async remove(username: string, jid: string, node?: string): Promise<number> {
    return node === undefined ? this.removeAll.run(username, jid).changes : this.removeOne.run(username, jid, node).changes;
  }
}
