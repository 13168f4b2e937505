/**
 * SQLite store for MUC rooms (src/storage/muc.ts): one row per persistent
 * room, its state as JSON. A room is read once at start and written on every
 * change of configuration, affiliation or subject: rare events next to
 * messages, so one small row rewrite each is cheaper than a table per list.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { MucStore, RoomRecord } from '../muc.js';

export const MUC_MIGRATION_SQL = `
  CREATE TABLE muc_rooms (
    room TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at INTEGER NOT NULL
  ) WITHOUT ROWID;
`;

export class SqliteMucStore implements MucStore {
  private readonly all: Statement<[], { state: string }>;
  private readonly upsert: Statement<[string, string, number]>;
  private readonly del: Statement<[string]>;

  constructor(db: Database) {
    this.all = db.prepare('SELECT state FROM muc_rooms ORDER BY room');
    this.upsert = db.prepare(
      'INSERT INTO muc_rooms (room, state, updated_at) VALUES (?, ?, ?) ON CONFLICT (room) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at',
    );
    this.del = db.prepare('DELETE FROM muc_rooms WHERE room = ?');
  }

  async rooms(): Promise<RoomRecord[]> {
    return this.all.all().map((r) => JSON.parse(r.state) as RoomRecord);
  }

  async save(room: RoomRecord): Promise<void> {
    this.upsert.run(room.room, JSON.stringify(room), Date.now());
  }

  async remove(room: string): Promise<void> {
    this.del.run(room);
  }
}
