/**
 * Per-account key/value pairs (vCard, private XML, settings) in one table.
 */
import type pg from 'pg';
import type { KeyValueStore } from '../types.js';

export class PgKeyValueStore implements KeyValueStore {
  constructor(private readonly pool: pg.Pool) {}

  async get(username: string, store: string, key: string): Promise<string | undefined> {
    const r = await this.pool.query<{ value: string }>({
      name: 'kv-get',
      text: 'SELECT value FROM kv WHERE username = $1 AND store = $2 AND key = $3',
      values: [username, store, key],
    });
    return r.rows[0]?.value;
  }

  /** `undefined` removes the key. */
  async set(username: string, store: string, key: string, value: string | undefined): Promise<void> {
    if (value === undefined) {
      await this.pool.query('DELETE FROM kv WHERE username = $1 AND store = $2 AND key = $3', [username, store, key]);
      return;
    }
    await this.pool.query(
      'INSERT INTO kv (username, store, key, value) VALUES ($1, $2, $3, $4) ON CONFLICT (username, store, key) DO UPDATE SET value = excluded.value',
      [username, store, key, value],
    );
  }

  async keys(username: string, store: string): Promise<string[]> {
    const r = await this.pool.query<{ key: string }>('SELECT key FROM kv WHERE username = $1 AND store = $2 ORDER BY key', [username, store]);
    return r.rows.map((x) => x.key);
  }
}
