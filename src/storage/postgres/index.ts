/**
 * The PostgreSQL backend (node-postgres with a pool): the same stores and
 * tables as the SQLite backend, for installations that outgrow one machine
 * or want several Verona nodes on one database (docs/storage.md).
 *
 * Durability: a commit returns once PostgreSQL has flushed its WAL
 * (synchronous_commit = on, the server's default), so "an SM ack means
 * archived" holds across a crash of Verona or of the database server.
 */
import type pg from 'pg';
import type { AccountStore, KeyValueStore, Storage } from '../types.js';
import { createPool, ident, transaction } from './db.js';
import { runPgMigrations } from './migrations.js';
import { PgAccountStore } from './accounts.js';
import { PgKeyValueStore } from './kv.js';
import { PgRosterStore } from './roster.js';
import { PgSmStateStore } from './sm-state.js';
import { PgSmSessionStore } from './sm-sessions.js';
import { PgArchiveStore } from './archive.js';
import { PgOfflineStore } from './offline.js';
import { PgBlocklistStore } from './blocklist.js';
import { PgPubsubStore } from './pubsub.js';
import { PgMucStore } from './muc.js';
import { PgPushStore } from './push.js';
import { PgFastTokenStore } from './fast.js';

export interface PostgresOpenOptions {
  /** postgres://user:password@host:port/database */
  url: string;
  /** Pool size (default 10). */
  poolSize?: number;
  /** Archive rows per commit at most (default 500). */
  archiveMaxBatch?: number;
  /** An idle connection broke (the database restarted); the pool opens a new one on the next query. */
  onPoolError?(err: Error): void;
}

export class PostgresStorage implements Storage {
  readonly pool: pg.Pool;
  readonly accounts: AccountStore;
  readonly kv: KeyValueStore;
  readonly roster: PgRosterStore;
  readonly smState: PgSmStateStore;
  readonly smSessions: PgSmSessionStore;
  readonly archive: PgArchiveStore;
  readonly offline: PgOfflineStore;
  readonly blocklist: PgBlocklistStore;
  readonly pubsub: PgPubsubStore;
  readonly muc: PgMucStore;
  readonly push: PgPushStore;
  readonly fastTokens: PgFastTokenStore;
  /** Migration ids applied by this open (empty when the schema was current). */
  readonly appliedMigrations: readonly string[];
  private closed = false;
  private userTableCache: string[] | undefined;

  private constructor(pool: pg.Pool, applied: string[], opts: PostgresOpenOptions) {
    this.pool = pool;
    this.appliedMigrations = applied;
    this.accounts = new PgAccountStore(pool, (u) => this.deleteAll(u));
    this.kv = new PgKeyValueStore(pool);
    this.roster = new PgRosterStore(pool);
    this.smState = new PgSmStateStore(pool);
    this.smSessions = new PgSmSessionStore(pool);
    this.archive = new PgArchiveStore(pool, { maxBatch: opts.archiveMaxBatch });
    this.offline = new PgOfflineStore(pool);
    this.blocklist = new PgBlocklistStore(pool);
    this.pubsub = new PgPubsubStore(pool);
    this.muc = new PgMucStore(pool);
    this.push = new PgPushStore(pool);
    this.fastTokens = new PgFastTokenStore(pool);
  }

  /** Connect, apply missing migrations, and return the storage. */
  static async open(opts: PostgresOpenOptions): Promise<PostgresStorage> {
    const pool = createPool({ url: opts.url, poolSize: opts.poolSize, onError: (e) => opts.onPoolError?.(e) });
    try {
      const applied = await runPgMigrations(pool);
      return new PostgresStorage(pool, applied, opts);
    } catch (err) {
      await pool.end().catch(() => undefined);
      throw err;
    }
  }

  /** Tables with a `username` column, i.e. holding per-account data (the convention of migrations.ts). */
  async userTables(): Promise<string[]> {
    const r = await this.pool.query<{ table_name: string }>(
      `SELECT c.table_name FROM information_schema.columns c
       JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
       WHERE c.table_schema = current_schema() AND c.column_name = 'username' AND t.table_type = 'BASE TABLE'
       ORDER BY c.table_name`,
    );
    return r.rows.map((x) => x.table_name);
  }

  /** Every row of the account in every table, in one transaction; returns whether the account row existed. */
  private async deleteAll(username: string): Promise<boolean> {
    // Discovered from the catalog so that tables added by later migrations are included;
    // looked up once per process (the schema changes only when a newer Verona starts).
    this.userTableCache ??= await this.userTables();
    const tables = this.userTableCache;
    const ordered = [...tables.filter((t) => t !== 'accounts'), ...tables.filter((t) => t === 'accounts')];
    return transaction(this.pool, async (c) => {
      let existed = false;
      for (const t of ordered) {
        const n = (await c.query(`DELETE FROM ${ident(t)} WHERE username = $1`, [username])).rowCount ?? 0;
        if (t === 'accounts' && n > 0) existed = true;
      }
      return existed;
    });
  }

  async deleteUserData(username: string): Promise<void> {
    await this.deleteAll(username);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Archive rows still queued are committed before the pool goes.
    await this.archive.close().catch(() => undefined);
    await this.pool.end();
  }
}
