/**
 * PostgreSQL table `push_registrations` (see src/storage/push.ts), the same
 * columns as SQLite's. Keyed by username, so account deletion (which finds
 * every table with a `username` column) removes the registrations too.
 */
import type pg from 'pg';
import type { PushRegistration, PushStore } from '../push.js';

export const PG_PUSH_MIGRATION_SQL = `
  CREATE TABLE push_registrations (
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    node TEXT NOT NULL,
    resource TEXT NOT NULL,
    options TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (username, jid, node)
  );`;

interface Row {
  username: string;
  jid: string;
  node: string;
  resource: string;
  options: string;
  created_at: number;
}

export class PgPushStore implements PushStore {
  constructor(private readonly pool: pg.Pool) {}

  async list(username: string): Promise<PushRegistration[]> {
    const r = await this.pool.query<Row>(
      'SELECT username, jid, node, resource, options, created_at FROM push_registrations WHERE username = $1 ORDER BY created_at, jid, node',
      [username],
    );
    return r.rows.map((x) => ({ username: x.username, jid: x.jid, node: x.node, resource: x.resource, options: x.options, createdAt: x.created_at }));
  }

  async usernames(): Promise<string[]> {
    return (await this.pool.query<{ username: string }>('SELECT DISTINCT username FROM push_registrations')).rows.map((x) => x.username);
  }

  async put(reg: PushRegistration): Promise<void> {
    await this.pool.query(
      `INSERT INTO push_registrations (username, jid, node, resource, options, created_at) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT (username, jid, node) DO UPDATE SET resource = excluded.resource, options = excluded.options, created_at = excluded.created_at`,
      [reg.username, reg.jid, reg.node, reg.resource, reg.options, reg.createdAt],
    );
  }

  async remove(username: string, jid: string, node?: string): Promise<number> {
    const r =
      node === undefined
        ? await this.pool.query('DELETE FROM push_registrations WHERE username = $1 AND jid = $2', [username, jid])
        : await this.pool.query('DELETE FROM push_registrations WHERE username = $1 AND jid = $2 AND node = $3', [username, jid, node]);
    return r.rowCount ?? 0;
  }
}
