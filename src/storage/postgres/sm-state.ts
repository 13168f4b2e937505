/**
 * Final `h` of ended resumable stream-management sessions (see
 * src/storage/sm-state.ts), one small row per session end.
 */
import type pg from 'pg';
import type { SmStateRecord, SmStateStore } from '../sm-state.js';

interface Row {
  username: string;
  id: string;
  h: number;
  reason: string;
  ended_at: number;
}

export class PgSmStateStore implements SmStateStore {
  constructor(private readonly pool: pg.Pool) {}

  async put(rec: SmStateRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO sm_state (username, id, h, reason, ended_at) VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (username, id) DO UPDATE SET h = excluded.h, reason = excluded.reason, ended_at = excluded.ended_at`,
      [rec.username, rec.id, rec.h, rec.reason, rec.endedAt],
    );
  }

  async get(username: string, id: string): Promise<SmStateRecord | undefined> {
    const r = (await this.pool.query<Row>('SELECT username, id, h, reason, ended_at FROM sm_state WHERE username = $1 AND id = $2', [username, id])).rows[0];
    return r && { username: r.username, id: r.id, h: r.h, reason: r.reason, endedAt: r.ended_at };
  }

  async prune(before: number): Promise<number> {
    return (await this.pool.query('DELETE FROM sm_state WHERE ended_at < $1', [before])).rowCount ?? 0;
  }
}
