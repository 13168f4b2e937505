/**
 * Copy a whole installation between storage backends (SQLite <-> PostgreSQL):
 * `verona storage migrate SOURCE TARGET` (src/cli/storage-migrate.ts).
 *
 * Both backends have the same tables with the same columns (see the two
 * migrations.ts files), so the copy is table by table, row by row, values
 * unchanged: archive rows keep their `seq` and `id`, so every client's "last
 * known archive id" stays valid on the new backend.
 *
 * - Resumable: each table is read in its key order in chunks; each chunk is
 *   inserted in one target transaction together with the chunk's last key in
 *   `storage_migration_progress` (a table of the target, created here). A
 *   second run after an interruption starts after the last committed key.
 *   Inserts are ON CONFLICT DO NOTHING, so a chunk is never copied twice.
 * - Verified: at the end every table's row count and an order-independent
 *   checksum (the sum of a SHA-256 prefix per row, over a canonical form of
 *   its values) are computed on both sides and must be equal.
 * - Refuses a target that holds data this migration did not write, and a
 *   source table it does not know (a newer Verona's schema).
 *
 * The source must not be written to meanwhile (stop the server first; see
 * docs/storage.md).
 */
import { createHash } from 'node:crypto';
import { SqliteStorage } from './sqlite/index.js';
import { PostgresStorage } from './postgres/index.js';
import { ident, transaction } from './postgres/db.js';

/** Every table that holds data, with the columns of its key (the copy order). */
export const COPY_TABLES: ReadonlyArray<{ table: string; key: readonly string[] }> = [
  { table: 'accounts', key: ['username'] },
  { table: 'kv', key: ['username', 'store', 'key'] },
  { table: 'roster_items', key: ['username', 'jid'] },
  { table: 'roster_tombstones', key: ['username', 'jid'] },
  { table: 'roster_versions', key: ['username'] },
  { table: 'roster_pending', key: ['username', 'jid'] },
  { table: 'sm_state', key: ['username', 'id'] },
  { table: 'sm_sessions', key: ['username', 'id'] },
  // (username, seq): an index on both backends (in SQLite the username index ends with the rowid).
  { table: 'archive', key: ['username', 'seq'] },
  { table: 'archive_prefs', key: ['username'] },
  { table: 'offline', key: ['seq'] },
  { table: 'blocklist', key: ['username', 'jid'] },
  { table: 'pubsub_nodes', key: ['username', 'node'] },
  { table: 'pubsub_items', key: ['seq'] },
  { table: 'caps_cache', key: ['hash', 'ver'] },
  { table: 'muc_rooms', key: ['room'] },
  { table: 'push_registrations', key: ['username', 'jid', 'node'] },
  { table: 'fast_tokens', key: ['username', 'key_hash'] },
];

/** Tables that belong to one backend's bookkeeping, never copied. */
const NOT_DATA = new Set(['schema_migrations', 'storage_migration_progress', 'archive_high_water']);

type Value = string | number | bigint | Buffer | null;
type Row = Record<string, Value>;

const PROGRESS_DDL = `CREATE TABLE IF NOT EXISTS storage_migration_progress (
  source TEXT NOT NULL, tbl TEXT NOT NULL, last_key TEXT, copied BIGINT NOT NULL, done INTEGER NOT NULL,
  PRIMARY KEY (source, tbl))`;

interface Progress {
  lastKey: Value[] | undefined;
  copied: number;
  done: boolean;
}

/** One side of a migration: the operations the copy needs, per backend. */
export interface MigrationSide {
  readonly label: string;
  tables(): Promise<string[]>;
  columns(table: string): Promise<string[]>;
  /** Rows after `after` (a key tuple) in key order. */
  page(table: string, key: readonly string[], after: Value[] | undefined, limit: number): Promise<Row[]>;
  /** Insert rows (skipping any already there) and record progress, in one transaction. */
  insert(table: string, cols: readonly string[], rows: Row[], progress: { source: string; lastKey: Value[]; copied: number; done: boolean }): Promise<void>;
  markDone(source: string, table: string, copied: number): Promise<void>;
  progress(source: string): Promise<Map<string, Progress>>;
  count(table: string): Promise<number>;
  /** After the copy: identity sequences and the archive high-water mark catch up with the copied rows. */
  finish(): Promise<void>;
  close(): Promise<void>;
}

function canonical(v: Value): string {
  if (v === null || v === undefined) return 'n';
  if (Buffer.isBuffer(v)) return `b${v.toString('hex')}`;
  if (typeof v === 'number' || typeof v === 'bigint') return `i${v.toString()}`;
  return `s${v}`;
}

/** Order-independent checksum of a table: the sum (mod 2^128) of a 128-bit hash prefix of each row. */
export async function tableChecksum(side: MigrationSide, table: string, key: readonly string[], cols: readonly string[]): Promise<{ rows: number; sum: string }> {
  let sum = 0n;
  let rows = 0;
  let after: Value[] | undefined;
  const mod = 1n << 128n;
  for (;;) {
    const page = await side.page(table, key, after, 2000);
    for (const r of page) {
      const h = createHash('sha256');
      for (const c of cols) h.update(`${c}=${canonical(r[c] ?? null)}\u0000`);
      sum = (sum + BigInt(`0x${h.digest('hex').slice(0, 32)}`)) % mod;
      rows++;
    }
    if (page.length < 2000) break;
    const last = page[page.length - 1] as Row;
    after = key.map((k) => last[k] ?? null);
  }
  return { rows, sum: sum.toString(16) };
}

// ---- SQLite ------------------------------------------------------------------

class SqliteSide implements MigrationSide {
  constructor(
    private readonly s: SqliteStorage,
    readonly label: string,
  ) {
    s.db.exec(PROGRESS_DDL);
    // The copy reads integers as JS numbers; seq and times stay below 2^53 (see postgres/db.ts).
  }

  async tables(): Promise<string[]> {
    return this.s.db
      .prepare<[], { name: string }>("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")
      .all()
      .map((r) => r.name);
  }

  async columns(table: string): Promise<string[]> {
    return this.s.db
      .prepare<[string], { name: string }>('SELECT name FROM pragma_table_info(?) ORDER BY cid')
      .all(table)
      .map((r) => r.name);
  }

  async page(table: string, key: readonly string[], after: Value[] | undefined, limit: number): Promise<Row[]> {
    const k = key.map(ident).join(', ');
    const where = after ? `WHERE (${k}) > (${key.map(() => '?').join(', ')})` : '';
    return this.s.db.prepare(`SELECT * FROM ${ident(table)} ${where} ORDER BY ${k} LIMIT ?`).all(...(after ?? []), limit) as Row[];
  }

  async insert(table: string, cols: readonly string[], rows: Row[], p: { source: string; lastKey: Value[]; copied: number; done: boolean }): Promise<void> {
    const stmt = this.s.db.prepare(`INSERT INTO ${ident(table)} (${cols.map(ident).join(', ')}) VALUES (${cols.map(() => '?').join(', ')}) ON CONFLICT DO NOTHING`);
    const prog = this.s.db.prepare(
      `INSERT INTO storage_migration_progress (source, tbl, last_key, copied, done) VALUES (?, ?, ?, ?, ?)
       ON CONFLICT (source, tbl) DO UPDATE SET last_key = excluded.last_key, copied = excluded.copied, done = excluded.done`,
    );
    this.s.db.transaction(() => {
      for (const r of rows) stmt.run(...cols.map((c) => r[c] ?? null));
      prog.run(p.source, table, JSON.stringify(p.lastKey.map(encodeKey)), p.copied, p.done ? 1 : 0);
    })();
  }

  async markDone(source: string, table: string, copied: number): Promise<void> {
    this.s.db
      .prepare(
        `INSERT INTO storage_migration_progress (source, tbl, last_key, copied, done) VALUES (?, ?, NULL, ?, 1)
         ON CONFLICT (source, tbl) DO UPDATE SET done = 1, copied = excluded.copied`,
      )
      .run(source, table, copied);
  }

  async progress(source: string): Promise<Map<string, Progress>> {
    const rows = this.s.db
      .prepare<[string], { tbl: string; last_key: string | null; copied: number; done: number }>('SELECT tbl, last_key, copied, done FROM storage_migration_progress WHERE source = ?')
      .all(source);
    return new Map(rows.map((r) => [r.tbl, { lastKey: decodeKeys(r.last_key), copied: r.copied, done: r.done === 1 }]));
  }

  async count(table: string): Promise<number> {
    return (this.s.db.prepare(`SELECT count(*) AS n FROM ${ident(table)}`).get() as { n: number }).n;
  }

  async finish(): Promise<void> {
    // INTEGER PRIMARY KEY columns continue after the largest copied value by themselves.
  }

  async close(): Promise<void> {
    await this.s.close();
  }
}

// ---- PostgreSQL --------------------------------------------------------------

class PostgresSide implements MigrationSide {
  private constructor(
    private readonly s: PostgresStorage,
    readonly label: string,
  ) {}

  static async open(s: PostgresStorage, label: string): Promise<PostgresSide> {
    await s.pool.query(PROGRESS_DDL);
    return new PostgresSide(s, label);
  }

  async tables(): Promise<string[]> {
    const r = await this.s.pool.query<{ t: string }>(
      "SELECT table_name AS t FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
    );
    return r.rows.map((x) => x.t);
  }

  async columns(table: string): Promise<string[]> {
    const r = await this.s.pool.query<{ c: string }>(
      'SELECT column_name AS c FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 ORDER BY ordinal_position',
      [table],
    );
    return r.rows.map((x) => x.c);
  }

  async page(table: string, key: readonly string[], after: Value[] | undefined, limit: number): Promise<Row[]> {
    const k = key.map(ident).join(', ');
    const where = after ? `WHERE (${k}) > (${key.map((_, i) => `$${i + 1}`).join(', ')})` : '';
    const values = [...(after ?? []), limit];
    return (await this.s.pool.query<Row>(`SELECT * FROM ${ident(table)} ${where} ORDER BY ${k} LIMIT $${values.length}`, values)).rows;
  }

  async insert(table: string, cols: readonly string[], rows: Row[], p: { source: string; lastKey: Value[]; copied: number; done: boolean }): Promise<void> {
    await transaction(this.s.pool, async (c) => {
      // One multi-row INSERT per up to 500 rows (PostgreSQL allows 65535 parameters a statement).
      for (let i = 0; i < rows.length; i += 500) {
        const part = rows.slice(i, i + 500);
        const values: Value[] = [];
        const tuples = part.map((r) => `(${cols.map((col) => (values.push(r[col] ?? null), `$${values.length}`)).join(', ')})`);
        await c.query(`INSERT INTO ${ident(table)} (${cols.map(ident).join(', ')}) VALUES ${tuples.join(', ')} ON CONFLICT DO NOTHING`, values);
      }
      await c.query(
        `INSERT INTO storage_migration_progress (source, tbl, last_key, copied, done) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (source, tbl) DO UPDATE SET last_key = excluded.last_key, copied = excluded.copied, done = excluded.done`,
        [p.source, table, JSON.stringify(p.lastKey.map(encodeKey)), p.copied, p.done ? 1 : 0],
      );
    });
  }

  async markDone(source: string, table: string, copied: number): Promise<void> {
    await this.s.pool.query(
      `INSERT INTO storage_migration_progress (source, tbl, last_key, copied, done) VALUES ($1, $2, NULL, $3, 1)
       ON CONFLICT (source, tbl) DO UPDATE SET done = 1, copied = excluded.copied`,
      [source, table, copied],
    );
  }

  async progress(source: string): Promise<Map<string, Progress>> {
    const r = await this.s.pool.query<{ tbl: string; last_key: string | null; copied: number; done: number }>(
      'SELECT tbl, last_key, copied, done FROM storage_migration_progress WHERE source = $1',
      [source],
    );
    return new Map(r.rows.map((x) => [x.tbl, { lastKey: decodeKeys(x.last_key), copied: x.copied, done: x.done === 1 }]));
  }

  async count(table: string): Promise<number> {
    return (await this.s.pool.query<{ n: number }>(`SELECT count(*)::bigint AS n FROM ${ident(table)}`)).rows[0]?.n ?? 0;
  }

  async finish(): Promise<void> {
    // Identity columns: the next generated value must come after the copied ones.
    for (const t of ['offline', 'pubsub_items']) {
      await this.s.pool.query(`SELECT setval(pg_get_serial_sequence($1, 'seq'), GREATEST((SELECT max(seq) FROM ${ident(t)}), 1))`, [t]);
    }
    // The archive clock starts from the high-water mark (see postgres/archive.ts).
    await this.s.pool.query('UPDATE archive_high_water SET seq = GREATEST(seq, COALESCE((SELECT max(seq) FROM archive), 0))');
  }

  async close(): Promise<void> {
    await this.s.close();
  }
}

/** Key values as JSON (Buffers as hex), for the progress table. */
function encodeKey(v: Value): unknown {
  if (Buffer.isBuffer(v)) return { hex: v.toString('hex') };
  if (typeof v === 'bigint') return v.toString();
  return v;
}

function decodeKeys(text: string | null): Value[] | undefined {
  if (text === null) return undefined;
  const arr = JSON.parse(text) as unknown[];
  return arr.map((v) => (v && typeof v === 'object' && 'hex' in v ? Buffer.from(String((v as { hex: string }).hex), 'hex') : (v as Value)));
}

// ---- the copy ------------------------------------------------------------------

export type Endpoint = { kind: 'sqlite'; path: string } | { kind: 'postgres'; url: string };

/** `sqlite:PATH`, a path, or a postgres:// / postgresql:// URL. */
export function parseEndpoint(text: string): Endpoint {
  if (/^postgres(ql)?:\/\//.test(text)) return { kind: 'postgres', url: text };
  if (text.startsWith('sqlite:')) return { kind: 'sqlite', path: text.slice('sqlite:'.length) };
  return { kind: 'sqlite', path: text };
}

/** What names an endpoint in the progress table and in reports (never a password). */
export function describeEndpoint(e: Endpoint): string {
  if (e.kind === 'sqlite') return `sqlite:${e.path}`;
  const u = new URL(e.url);
  u.password = '';
  return u.toString();
}

export async function openSide(e: Endpoint): Promise<MigrationSide> {
  if (e.kind === 'sqlite') return new SqliteSide(SqliteStorage.open(e.path, { synchronous: 'NORMAL' }), describeEndpoint(e));
  return PostgresSide.open(await PostgresStorage.open({ url: e.url, poolSize: 2 }), describeEndpoint(e));
}

export interface MigrateReport {
  tables: Array<{ table: string; rows: number; copiedNow: number; checksum: string }>;
  resumed: boolean;
}

export interface MigrateOptions {
  /** Rows per chunk (one target transaction each; default 2000). */
  chunk?: number;
  /** Progress lines. */
  log?(line: string): void;
  /** Stop after this many chunks in total (tests: an interrupted run). */
  maxChunks?: number;
}

export class MigrateError extends Error {
  override readonly name = 'MigrateError';
}

export async function migrateStorage(source: MigrationSide, target: MigrationSide, opts: MigrateOptions = {}): Promise<MigrateReport> {
  const chunk = Math.max(1, opts.chunk ?? 2000);
  const log = opts.log ?? (() => undefined);
  const known = new Set(COPY_TABLES.map((t) => t.table));

  // A table we do not know might hold data a newer Verona stores: refuse rather than lose it.
  const srcTables = new Set(await source.tables());
  for (const t of srcTables) {
    if (NOT_DATA.has(t) || known.has(t)) continue;
    if ((await source.count(t)) > 0) throw new MigrateError(`source table ${t} is unknown to this version of Verona; upgrade Verona before migrating`);
  }
  const dstTables = new Set(await target.tables());
  for (const { table } of COPY_TABLES) {
    if (!dstTables.has(table)) throw new MigrateError(`target has no table ${table}`);
  }

  const progress = await target.progress(source.label);
  const resumed = progress.size > 0;
  if (!resumed) {
    for (const { table } of COPY_TABLES) {
      if ((await target.count(table)) > 0) throw new MigrateError(`target is not empty (table ${table} has rows) and holds no earlier run of this migration from ${source.label}`);
    }
  }

  let chunks = 0;
  const copiedNow = new Map<string, number>();
  for (const { table, key } of COPY_TABLES) {
    if (!srcTables.has(table)) continue;
    const p = progress.get(table);
    if (p?.done) continue;
    const cols = await source.columns(table);
    const dstCols = new Set(await target.columns(table));
    const missing = cols.filter((c) => !dstCols.has(c));
    if (missing.length > 0) throw new MigrateError(`target table ${table} lacks columns ${missing.join(', ')}`);
    let after = p?.lastKey;
    let copied = p?.copied ?? 0;
    let now = 0;
    for (;;) {
      if (opts.maxChunks !== undefined && chunks >= opts.maxChunks) throw new MigrateError(`stopped after ${chunks} chunks (run again to resume)`);
      const rows = await source.page(table, key, after, chunk);
      if (rows.length === 0) break;
      const last = rows[rows.length - 1] as Row;
      after = key.map((k) => last[k] ?? null);
      copied += rows.length;
      now += rows.length;
      await target.insert(table, cols, rows, { source: source.label, lastKey: after, copied, done: false });
      chunks++;
      if (rows.length < chunk) break;
    }
    await target.markDone(source.label, table, copied);
    copiedNow.set(table, now);
    log(`${table}: ${copied} rows${now !== copied ? ` (${now} in this run)` : ''}`);
  }
  await target.finish();

  // Verification: counts and checksums of every table, on both sides.
  const report: MigrateReport = { tables: [], resumed };
  for (const { table, key } of COPY_TABLES) {
    if (!srcTables.has(table)) continue;
    const cols = await source.columns(table);
    const a = await tableChecksum(source, table, key, cols);
    const b = await tableChecksum(target, table, key, cols);
    if (a.rows !== b.rows) throw new MigrateError(`verification failed: ${table} has ${a.rows} rows in the source and ${b.rows} in the target`);
    if (a.sum !== b.sum) throw new MigrateError(`verification failed: ${table} checksums differ (${a.sum} / ${b.sum})`);
    report.tables.push({ table, rows: a.rows, copiedNow: copiedNow.get(table) ?? 0, checksum: a.sum });
  }
  return report;
}
