/**
 * Offline messages (XEP-0160). Few rows per account (bounded by the module's
 * limit), read once and deleted.
 */
import type pg from 'pg';
import type { OfflineMessage, OfflineStore } from '../offline.js';
import { KeyedSerializer, transaction } from './db.js';

interface Row {
  seq: number;
  stamp: number;
  stanza: string;
  archive_id: string | null;
}

export class PgOfflineStore implements OfflineStore {
  /** Messages for one account are stored in the order they came (see KeyedSerializer). */
  private readonly order = new KeyedSerializer();

  constructor(private readonly pool: pg.Pool) {}

  store(username: string, msg: Omit<OfflineMessage, 'seq'>, limit: number): Promise<boolean> {
    return this.order.run(username, () => this.storeNow(username, msg, limit));
  }

  private async storeNow(username: string, msg: Omit<OfflineMessage, 'seq'>, limit: number): Promise<boolean> {
    // Count and insert under a per-account transaction lock, so that two nodes storing at
    // once cannot both pass the limit (READ COMMITTED alone would let them).
    return transaction(this.pool, async (c) => {
      await c.query("SELECT pg_advisory_xact_lock(hashtext('offline:' || $1))", [username]);
      const n = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM offline WHERE username = $1', [username])).rows[0]?.n ?? 0;
      if (n >= limit) return false;
      await c.query('INSERT INTO offline (username, stamp, stanza, archive_id) VALUES ($1, $2, $3, $4)', [username, msg.stamp, msg.stanza, msg.archiveId ?? null]);
      return true;
    });
  }

  async count(username: string): Promise<number> {
    return (await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM offline WHERE username = $1', [username])).rows[0]?.n ?? 0;
  }

  async peek(username: string): Promise<OfflineMessage[]> {
    const r = await this.pool.query<Row>('SELECT seq, stamp, stanza, archive_id FROM offline WHERE username = $1 ORDER BY seq', [username]);
    return r.rows.map((x) => ({ seq: Number(x.seq), stamp: Number(x.stamp), stanza: x.stanza, archiveId: x.archive_id ?? undefined }));
  }

  async take(username: string): Promise<OfflineMessage[]> {
    // One statement reads and deletes: two logins at once cannot both get the same message.
    const r = await this.pool.query<Row>({
      name: 'offline-take',
      text: 'DELETE FROM offline WHERE username = $1 RETURNING seq, stamp, stanza, archive_id',
      values: [username],
    });
    return r.rows
      .sort((a, b) => a.seq - b.seq)
      .map((x) => ({ seq: x.seq, stamp: x.stamp, stanza: x.stanza, archiveId: x.archive_id ?? undefined }));
  }

  async dropArchived(username: string): Promise<number> {
    return (await this.pool.query('DELETE FROM offline WHERE username = $1 AND archive_id IS NOT NULL', [username])).rowCount ?? 0;
  }
}
