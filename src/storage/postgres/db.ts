/**
 * The connection pool and the small helpers every PostgreSQL store uses.
 *
 * Numbers: BIGINT columns (archive seq in microseconds, times in ms) come back
 * as strings from node-postgres by default, because a 64-bit integer may not
 * fit a JS number. Every BIGINT this schema stores is below 2^53 (seq reaches
 * 2^53 in the year 2255), so this pool parses them as numbers; the parser is
 * set on this pool's own type table, not globally, so other users of `pg` in
 * the same process are not affected.
 */
import pg from 'pg';

const INT8_OID = 20;

/** Type parsers for this backend's pools: int8 as a JS number (see the header). */
export const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary'): (value: string) => unknown {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format ?? 'text') as (value: string) => unknown;
  },
};

export interface PgPoolOptions {
  url: string;
  /** Connections at most (default 10). */
  poolSize?: number;
  /** Milliseconds to wait for a connection before a query fails (default 5000): with the database down, callers fail instead of hanging. */
  connectTimeoutMs?: number;
  /** Called when an idle connection breaks (the database restarted); the pool replaces it. */
  onError?(err: Error): void;
}

export function createPool(opts: PgPoolOptions): pg.Pool {
  const pool = new pg.Pool({
    connectionString: opts.url,
    max: opts.poolSize ?? 10,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 5000,
    idleTimeoutMillis: 30000,
    types: pgTypes,
    application_name: 'verona',
  });
  // Without a listener an idle client's error (server restart) would be an uncaught 'error' event.
  pool.on('error', (err) => opts.onError?.(err));
  return pool;
}

/** What both a pool and a checked-out client offer: one query. */
export type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

/**
 * Run `fn` in one transaction on one connection: COMMIT when it returns,
 * ROLLBACK when it throws. A connection that failed mid-transaction is
 * destroyed rather than returned to the pool.
 */
export async function transaction<T>(pool: pg.Pool, fn: (c: pg.PoolClient) => Promise<T>, isolation?: 'REPEATABLE READ' | 'SERIALIZABLE'): Promise<T> {
  const c = await pool.connect();
  let broken: Error | undefined;
  try {
    await c.query(isolation ? `BEGIN ISOLATION LEVEL ${isolation}` : 'BEGIN');
    const r = await fn(c);
    await c.query('COMMIT');
    return r;
  } catch (err) {
    try {
      await c.query('ROLLBACK');
    } catch (e) {
      broken = e instanceof Error ? e : new Error(String(e));
    }
    throw err;
  } finally {
    c.release(broken);
  }
}

/** SQLSTATE of a database error, when it is one. */
export function sqlState(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.length === 5 ? code : undefined;
}

/** Quote an identifier (table names discovered from the catalog). */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/**
 * Runs the calls made for one key one after another, in call order. SQLite's
 * calls are synchronous, so two writes for one account commit in the order
 * they were made; over a pool they would race on two connections (two
 * offline messages stored in the wrong order). Writes whose order is
 * observable go through one of these, keyed by what they must not reorder.
 */
export class KeyedSerializer {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.then(
      () => undefined,
      () => undefined,
    );
    this.tails.set(key, tail);
    // Forget the key once its last call is done, so the map holds only keys in use.
    void tail.then(() => {
      if (this.tails.get(key) === tail) this.tails.delete(key);
    });
    return next;
  }
}
