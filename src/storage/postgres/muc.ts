/**
 * PostgreSQL store for MUC rooms (src/storage/muc.ts): the same table as
 * SQLite's (src/storage/sqlite/muc.ts), one row per persistent room with its
 * state as JSON text (copied verbatim by `verona storage migrate`).
 */
import type pg from 'pg';
import type { MucStore, RoomRecord } from '../muc.js';

export const PG_MUC_MIGRATION_SQL = `
  CREATE TABLE muc_rooms (
    room TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
  );`;

export class PgMucStore implements MucStore {
  constructor(private readonly pool: pg.Pool) {}

  async rooms(): Promise<RoomRecord[]> {
    const r = await this.pool.query<{ state: string }>('SELECT state FROM muc_rooms ORDER BY room');
    return r.rows.map((x) => JSON.parse(x.state) as RoomRecord);
  }

  async save(room: RoomRecord): Promise<void> {
    await this.pool.query(
      'INSERT INTO muc_rooms (room, state, updated_at) VALUES ($1, $2, $3) ON CONFLICT (room) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at',
      [room.room, JSON.stringify(room), Date.now()],
    );
  }

  async remove(room: string): Promise<void> {
    await this.pool.query('DELETE FROM muc_rooms WHERE room = $1', [room]);
  }
}
