/**
 * SQLite table `sm_state`: the final inbound `h` of ended resumable sessions
 * (see src/storage/sm-state.ts). One small row per session end; keyed by
 * username so account deletion removes them with everything else.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { SmStateRecord, SmStateStore } from '../sm-state.js';

interface Row {
  username: string;
  id: string;
  h: number;
  reason: string;
  ended_at: number;
}

export class SqliteSmStateStore implements SmStateStore {
  private readonly putStmt: Statement<[string, string, number, string, number]>;
  private readonly getStmt: Statement<[string, string], Row>;
  private readonly pruneStmt: Statement<[number]>;

  constructor(db: Database) {
    this.putStmt = db.prepare(
      `INSERT INTO sm_state (username, id, h, reason, ended_at) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (username, id) DO UPDATE SET h = excluded.h, reason = excluded.reason, ended_at = excluded.ended_at`,
    );
    this.getStmt = db.prepare('SELECT username, id, h, reason, ended_at FROM sm_state WHERE username = ? AND id = ?');
    this.pruneStmt = db.prepare('DELETE FROM sm_state WHERE ended_at < ?');
  }

  async put(rec: SmStateRecord): Promise<void> {
    this.putStmt.run(rec.username, rec.id, rec.h, rec.reason, rec.endedAt);
  }

  async get(username: string, id: string): Promise<SmStateRecord | undefined> {
    const r = this.getStmt.get(username, id);
    return r && { username: r.username, id: r.id, h: r.h, reason: r.reason, endedAt: r.ended_at };
  }

  async prune(before: number): Promise<number> {
    return this.pruneStmt.run(before).changes;
  }
}
