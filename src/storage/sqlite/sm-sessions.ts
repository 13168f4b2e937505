/**
 * SQLite table `sm_sessions`: hibernated resumable sessions (see
 * src/storage/sm-sessions.ts). Keyed by username so that account deletion
 * removes them with everything else.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { SmSessionRecord, SmSessionStore } from '../sm-sessions.js';

export const SM_SESSIONS_MIGRATION_SQL = `
  CREATE TABLE sm_sessions (
    username TEXT NOT NULL,
    id TEXT NOT NULL,
    resource TEXT NOT NULL,
    node TEXT NOT NULL,
    deadline INTEGER NOT NULL,
    saved_at INTEGER NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (username, id)
  ) WITHOUT ROWID;
  CREATE INDEX sm_sessions_by_node ON sm_sessions (node);
  CREATE INDEX sm_sessions_by_deadline ON sm_sessions (deadline);
`;

interface Row {
  username: string;
  id: string;
  resource: string;
  node: string;
  deadline: number;
  saved_at: number;
  state: string;
}

const COLS = 'username, id, resource, node, deadline, saved_at, state';

function toRecord(r: Row): SmSessionRecord {
  return { username: r.username, id: r.id, resource: r.resource, node: r.node, deadline: r.deadline, savedAt: r.saved_at, state: r.state };
}

export class SqliteSmSessionStore implements SmSessionStore {
  private readonly putStmt: Statement<[string, string, string, string, number, number, string]>;
  private readonly getStmt: Statement<[string, string], Row>;
  private readonly takeStmt: Statement<[string, string], Row>;
  private readonly byNodeStmt: Statement<[string], Row>;
  private readonly expiredStmt: Statement<[number, number], Row>;
  private readonly removeStmt: Statement<[string, string]>;
  private readonly putAll: (recs: readonly SmSessionRecord[]) => void;

  constructor(db: Database) {
    this.putStmt = db.prepare(
      `INSERT INTO sm_sessions (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (username, id) DO UPDATE SET resource = excluded.resource, node = excluded.node,
         deadline = excluded.deadline, saved_at = excluded.saved_at, state = excluded.state`,
    );
    this.getStmt = db.prepare(`SELECT ${COLS} FROM sm_sessions WHERE username = ? AND id = ?`);
    // DELETE ... RETURNING: read and remove in one statement (one taker wins).
    this.takeStmt = db.prepare(`DELETE FROM sm_sessions WHERE username = ? AND id = ? RETURNING ${COLS}`);
    this.byNodeStmt = db.prepare(`SELECT ${COLS} FROM sm_sessions WHERE node = ?`);
    this.expiredStmt = db.prepare(`SELECT ${COLS} FROM sm_sessions WHERE deadline < ? ORDER BY deadline LIMIT ?`);
    this.removeStmt = db.prepare('DELETE FROM sm_sessions WHERE username = ? AND id = ?');
    // One transaction (one commit, one fsync under synchronous=FULL) for a whole checkpoint batch.
    this.putAll = db.transaction((recs: readonly SmSessionRecord[]) => {
      for (const r of recs) this.putStmt.run(r.username, r.id, r.resource, r.node, r.deadline, r.savedAt, r.state);
    });
  }

  async putMany(recs: readonly SmSessionRecord[]): Promise<void> {
    if (recs.length > 0) this.putAll(recs);
  }

  async remove(username: string, id: string): Promise<void> {
    this.removeStmt.run(username, id);
  }

  async put(r: SmSessionRecord): Promise<void> {
    this.putStmt.run(r.username, r.id, r.resource, r.node, r.deadline, r.savedAt, r.state);
  }

  async get(username: string, id: string): Promise<SmSessionRecord | undefined> {
    const r = this.getStmt.get(username, id);
    return r && toRecord(r);
  }

  async take(username: string, id: string): Promise<SmSessionRecord | undefined> {
    const r = this.takeStmt.get(username, id);
    return r && toRecord(r);
  }

  async byNode(node: string): Promise<SmSessionRecord[]> {
    return this.byNodeStmt.all(node).map(toRecord);
  }

  async expired(before: number, limit: number): Promise<SmSessionRecord[]> {
    return this.expiredStmt.all(before, limit).map(toRecord);
  }
}
