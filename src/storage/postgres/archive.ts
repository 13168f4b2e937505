/**
 * The message archive in PostgreSQL (migration '0005-archive').
 *
 * `seq` (the archive clock's microseconds) is the order key; the primary key
 * (username, seq) and the index (username, with_jid, seq) make every page
 * one index range scan in `seq` order, with no sort: the cost of a page does not depend on the size of
 * the archive. test/integration/storage-postgres.test.ts checks the plan of
 * every page shape with EXPLAIN on a table large enough for the planner to
 * have a choice.
 *
 * Writes go through an AsyncGroupCommit: one INSERT per batch, which is one
 * transaction (a single statement commits as a whole), built from arrays
 * with unnest() so a batch of 500 is one round trip and one plan. Per-row
 * failure isolation:
 * - a duplicate (username, id) or seq is skipped by ON CONFLICT DO NOTHING;
 *   the rows RETURNING leaves out are failed alone, the others commit;
 * - any other error of a row (a trigger, a check) aborts the statement: the
 *   batch is then written again row by row inside one transaction with a
 *   savepoint per row, so only the bad rows fail;
 * - an error of the connection or the server fails the whole batch (nothing
 *   was committed) and the caller reports archive-failed.
 */
import type pg from 'pg';
import type { ArchivePage, ArchivePrefs, ArchiveRange, ArchiveRecord, ArchiveStore } from '../archive.js';
import { AsyncGroupCommit } from './group-commit.js';
import { sqlState, transaction } from './db.js';

interface Row {
  username: string;
  seq: number;
  id: string;
  with_jid: string;
  with_resource: string;
  outgoing: number;
  stanza: string;
}

interface PrefsRow {
  username: string;
  default_mode: string;
  always_jids: string;
  never_jids: string;
}

export interface PgArchiveOptions {
  /** Rows per commit at most (default 500). */
  maxBatch?: number;
}

export interface PgBatchStats {
  batches: number;
  rows: number;
  failedRows: number;
  failedBatches: number;
  largestBatch: number;
  /** Batches that had to be written row by row (a row's error aborted the one-statement insert). */
  rowByRow: number;
}

const COLS = 'username, seq, id, with_jid, with_resource, outgoing, stanza';

const INSERT_BATCH = `WITH ins AS (
    INSERT INTO archive (${COLS})
    SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[])
    ON CONFLICT DO NOTHING
    RETURNING seq, username, id),
  hw AS (UPDATE archive_high_water SET seq = GREATEST(seq, (SELECT max(s) FROM unnest($2::bigint[]) AS s)))
  SELECT seq, username, id FROM ins`;

const RAISE_HIGH_WATER = 'UPDATE archive_high_water SET seq = GREATEST(seq, $1)';

const INSERT_ONE = `INSERT INTO archive (${COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`;

/**
 * SQLSTATE classes that belong to a row rather than to the connection or the server:
 * 22 data exception, 23 integrity constraint, P0 raised by a PL/pgSQL function (a trigger).
 */
function isRowError(err: unknown): boolean {
  const s = sqlState(err);
  return s !== undefined && (s.startsWith('22') || s.startsWith('23') || s.startsWith('P0'));
}

function toRecord(r: Row): ArchiveRecord {
  return { username: r.username, seq: r.seq, id: r.id, with: r.with_jid, withResource: r.with_resource, outgoing: r.outgoing === 1, stanza: r.stanza };
}

function parsePrefs(r: PrefsRow): ArchivePrefs {
  const d = r.default_mode === 'never' || r.default_mode === 'roster' ? r.default_mode : 'always';
  const list = (s: string): string[] => {
    try {
      const v: unknown = JSON.parse(s);
      return Array.isArray(v) ? v.filter((j): j is string => typeof j === 'string') : [];
    } catch {
      return [];
    }
  };
  return { default: d, always: list(r.always_jids), never: list(r.never_jids) };
}

const key = (seq: number, username: string, id: string): string => `${seq}\0${username}\0${id}`;

export class PgArchiveStore implements ArchiveStore {
  private readonly group: AsyncGroupCommit<ArchiveRecord>;
  private readonly names = new Map<string, string>();
  readonly stats: PgBatchStats = { batches: 0, rows: 0, failedRows: 0, failedBatches: 0, largestBatch: 0, rowByRow: 0 };

  constructor(
    private readonly pool: pg.Pool,
    opts: PgArchiveOptions = {},
  ) {
    this.group = new AsyncGroupCommit<ArchiveRecord>({
      maxBatch: opts.maxBatch,
      write: (rows) => this.writeBatch(rows),
      onBatch: (b) => {
        this.stats.batches++;
        this.stats.rows += b.size;
        this.stats.failedRows += b.failed;
        if (b.error !== undefined) this.stats.failedBatches++;
        if (b.size > this.stats.largestBatch) this.stats.largestBatch = b.size;
      },
    });
  }

  private async writeBatch(rows: readonly ArchiveRecord[]): Promise<Array<Error | undefined>> {
    let inserted: Array<{ seq: number; username: string; id: string }>;
    try {
      const r = await this.pool.query<{ seq: number; username: string; id: string }>({
        name: 'archive-insert-batch',
        text: INSERT_BATCH,
        values: [
          rows.map((r) => r.username),
          rows.map((r) => r.seq),
          rows.map((r) => r.id),
          rows.map((r) => r.with),
          rows.map((r) => r.withResource),
          rows.map((r) => (r.outgoing ? 1 : 0)),
          rows.map((r) => r.stanza),
        ],
      });
      inserted = r.rows;
    } catch (err) {
      if (!isRowError(err)) throw err;
      this.stats.rowByRow++;
      return this.writeRowByRow(rows);
    }
    const ok = new Set(inserted.map((r) => key(r.seq, r.username, r.id)));
    return rows.map((r) => {
      const k = key(r.seq, r.username, r.id);
      // Each inserted row answers for one record only: an identical second record is a duplicate.
      if (ok.delete(k)) return undefined;
      return new Error(`archive row not stored: duplicate id ${r.id} or seq ${r.seq} in the archive of ${r.username}`);
    });
  }

  /** One transaction, a savepoint per row: a row's error undoes that row alone. */
  private async writeRowByRow(rows: readonly ArchiveRecord[]): Promise<Array<Error | undefined>> {
    return transaction(this.pool, async (c) => {
      const results: Array<Error | undefined> = [];
      for (const r of rows) {
        await c.query('SAVEPOINT row');
        try {
          await c.query({ name: 'archive-insert-one', text: INSERT_ONE, values: [r.username, r.seq, r.id, r.with, r.withResource, r.outgoing ? 1 : 0, r.stanza] });
          await c.query('RELEASE SAVEPOINT row');
          results.push(undefined);
        } catch (err) {
          if (!isRowError(err)) throw err;
          await c.query('ROLLBACK TO SAVEPOINT row');
          results.push(err instanceof Error ? err : new Error(String(err)));
        }
      }
      await c.query(RAISE_HIGH_WATER, [Math.max(...rows.map((r) => r.seq))]);
      return results;
    });
  }

  append(rec: ArchiveRecord): Promise<void> {
    return this.group.add(rec);
  }

  flush(): Promise<void> {
    return this.group.drain();
  }

  /** Commit what is queued and refuse further rows (storage shutdown). */
  close(): Promise<void> {
    return this.group.close();
  }

  /** A short statement name per SQL text: each shape is parsed and planned once per connection. */
  private named(sql: string): string {
    let n = this.names.get(sql);
    if (n === undefined) {
      n = `archive-q${this.names.size}`;
      // Bounded by construction: the shapes are the combinations of optional filters.
      this.names.set(sql, n);
    }
    return n;
  }

  private where(q: ArchiveRange, params: unknown[]): string {
    const p = (v: unknown): string => {
      params.push(v);
      return `$${params.length}`;
    };
    const conds = [`username = ${p(q.username)}`];
    if (q.with !== undefined) {
      conds.push(`with_jid = ${p(q.with)}`);
      if (q.withResource !== undefined) conds.push(`with_resource = ${p(q.withResource)}`);
    }
    // Every bound is on seq, the last column of both indexes: one range within the index.
    if (q.minSeq !== undefined) conds.push(`seq >= ${p(q.minSeq)}`);
    if (q.maxSeq !== undefined) conds.push(`seq <= ${p(q.maxSeq)}`);
    if (q.afterSeq !== undefined) conds.push(`seq > ${p(q.afterSeq)}`);
    if (q.beforeSeq !== undefined) conds.push(`seq < ${p(q.beforeSeq)}`);
    return conds.join(' AND ');
  }

  /** The SQL of a page query, for EXPLAIN in tests. */
  pageSql(q: ArchivePage): { sql: string; params: unknown[] } {
    const params: unknown[] = [];
    const where = this.where(q, params);
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    params.push(Math.max(0, Math.trunc(q.limit)), Math.max(0, Math.trunc(q.offset ?? 0)));
    return { sql: `SELECT ${COLS} FROM archive WHERE ${where} ORDER BY seq ${dir} LIMIT $${params.length - 1} OFFSET $${params.length}`, params };
  }

  async page(q: ArchivePage): Promise<ArchiveRecord[]> {
    const { sql, params } = this.pageSql(q);
    return (await this.pool.query<Row>({ name: this.named(sql), text: sql, values: params })).rows.map(toRecord);
  }

  /** The SQL of a (capped) RSM count, for EXPLAIN in tests: the same index range as a page, stopped at cap + 1 rows. */
  countSql(q: ArchiveRange, cap: number): { sql: string; params: unknown[] } {
    const params: unknown[] = [];
    const where = this.where(q, params);
    params.push(cap + 1);
    return { sql: `SELECT count(*)::int AS n FROM (SELECT 1 FROM archive WHERE ${where} LIMIT $${params.length}) AS t`, params };
  }

  async count(q: ArchiveRange, cap: number): Promise<number | undefined> {
    const { sql, params } = this.countSql(q, cap);
    const n = (await this.pool.query<{ n: number }>({ name: this.named(sql), text: sql, values: params })).rows[0]?.n ?? 0;
    return n > cap ? undefined : n;
  }

  async seqOf(username: string, id: string): Promise<number | undefined> {
    const r = await this.pool.query<{ seq: number }>({ name: 'archive-seq-of', text: 'SELECT seq FROM archive WHERE username = $1 AND id = $2', values: [username, id] });
    return r.rows[0]?.seq;
  }

  async byIds(username: string, ids: readonly string[]): Promise<ArchiveRecord[]> {
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const r = await this.pool.query<Row>({
      name: 'archive-by-ids',
      text: `SELECT ${COLS} FROM archive WHERE username = $1 AND id = ANY($2::text[]) ORDER BY seq`,
      values: [username, unique],
    });
    return r.rows.map(toRecord);
  }

  /** The SQL of bounds() (first and last row of an archive), for EXPLAIN in tests. */
  static readonly BOUNDS_SQL = `(SELECT ${COLS} FROM archive WHERE username = $1 ORDER BY seq ASC LIMIT 1)
             UNION ALL (SELECT ${COLS} FROM archive WHERE username = $1 ORDER BY seq DESC LIMIT 1)`;

  async bounds(username: string): Promise<{ first: ArchiveRecord; last: ArchiveRecord } | undefined> {
    const r = await this.pool.query<Row>({ name: 'archive-bounds', text: PgArchiveStore.BOUNDS_SQL, values: [username] });
    const [first, last] = r.rows;
    if (!first || !last) return undefined;
    return { first: toRecord(first), last: toRecord(last) };
  }

  async highWater(): Promise<number> {
    // Kept by every insert (see migration 0005): no index on seq alone exists to find max(seq).
    return (await this.pool.query<{ seq: number }>('SELECT seq FROM archive_high_water')).rows[0]?.seq ?? 0;
  }

  async getPrefs(username: string): Promise<ArchivePrefs | undefined> {
    const r = await this.pool.query<PrefsRow>('SELECT username, default_mode, always_jids, never_jids FROM archive_prefs WHERE username = $1', [username]);
    return r.rows[0] && parsePrefs(r.rows[0]);
  }

  async setPrefs(username: string, prefs: ArchivePrefs): Promise<void> {
    await this.pool.query(
      `INSERT INTO archive_prefs (username, default_mode, always_jids, never_jids) VALUES ($1, $2, $3, $4)
       ON CONFLICT (username) DO UPDATE SET default_mode = excluded.default_mode, always_jids = excluded.always_jids, never_jids = excluded.never_jids`,
      [username, prefs.default, JSON.stringify(prefs.always), JSON.stringify(prefs.never)],
    );
  }

  async allPrefs(): Promise<Map<string, ArchivePrefs>> {
    const m = new Map<string, ArchivePrefs>();
    for (const r of (await this.pool.query<PrefsRow>('SELECT username, default_mode, always_jids, never_jids FROM archive_prefs')).rows) m.set(r.username, parsePrefs(r));
    return m;
  }
}
