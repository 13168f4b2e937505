/**
 * Blocked JIDs per account (XEP-0191): one row per (account, JID).
 */
import type pg from 'pg';
import type { BlocklistStore } from '../blocklist.js';
import { transaction } from './db.js';

export class PgBlocklistStore implements BlocklistStore {
  constructor(private readonly pool: pg.Pool) {}

  async list(username: string): Promise<string[]> {
    const r = await this.pool.query<{ jid: string }>('SELECT jid FROM blocklist WHERE username = $1 ORDER BY jid', [username]);
    return r.rows.map((x) => x.jid);
  }

  async add(username: string, jids: readonly string[]): Promise<string[]> {
    const want = [...new Set(jids)];
    if (want.length === 0) return [];
    // One statement: the whole request is stored or nothing is; RETURNING tells which rows are new.
    const r = await this.pool.query<{ jid: string }>(
      'INSERT INTO blocklist (username, jid) SELECT $1, j FROM unnest($2::text[]) AS j ON CONFLICT DO NOTHING RETURNING jid',
      [username, want],
    );
    const added = new Set(r.rows.map((x) => x.jid));
    return want.filter((j) => added.has(j));
  }

  async remove(username: string, jids: readonly string[]): Promise<string[]> {
    const want = [...new Set(jids)];
    if (want.length === 0) return [];
    const r = await this.pool.query<{ jid: string }>('DELETE FROM blocklist WHERE username = $1 AND jid = ANY($2::text[]) RETURNING jid', [username, want]);
    const removed = new Set(r.rows.map((x) => x.jid));
    return want.filter((j) => removed.has(j));
  }

  async clear(username: string): Promise<string[]> {
    return transaction(this.pool, async (c) => {
      const r = await c.query<{ jid: string }>('DELETE FROM blocklist WHERE username = $1 RETURNING jid', [username]);
      return r.rows.map((x) => x.jid).sort();
    });
  }

  async all(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    const r = await this.pool.query<{ username: string; jid: string }>('SELECT username, jid FROM blocklist ORDER BY username, jid');
    for (const row of r.rows) {
      const l = out.get(row.username);
      if (l) l.push(row.jid);
      else out.set(row.username, [row.jid]);
    }
    return out;
  }
}
