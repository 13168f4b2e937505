/**
 * The embedded default backend: one SQLite file (better-sqlite3) in WAL
 * mode. better-sqlite3 is synchronous; the Storage interface is async at the
 * edge so that networked backends fit the same callers.
 *
 * Durability (see docs/configuration.md, storage.sqlite.synchronous): in WAL
 * mode NORMAL keeps every committed transaction across a process crash but
 * may lose the last ones on power loss; FULL (the default: an ack means
 * archived, even across a power cut) syncs the WAL on every commit, and group
 * commit makes that one fsync per batch, not per message.
 *
 * Several processes may open the file at once (the server and `verona
 * adduser`): WAL lets readers run beside the one writer, and busy_timeout
 * makes a writer wait for the lock instead of failing with SQLITE_BUSY.
 */
import { chmodSync, existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { Worker } from 'node:worker_threads';
import Database from 'better-sqlite3';
import type { AccountStore, KeyValueStore, MaintenanceEvents, Storage } from '../types.js';
import { SqliteAccountStore } from './accounts.js';
import { SqliteKeyValueStore } from './kv.js';
import { SqliteRosterStore } from './roster.js';
import { SqliteSmStateStore } from './sm-state.js';
import { SqliteSmSessionStore } from './sm-sessions.js';
import { SqliteArchiveStore } from './archive.js';
import { WalSync } from './wal-sync.js';
import { SqliteOfflineStore } from './offline.js';
import { SqliteBlocklistStore } from './blocklist.js';
import { SqlitePubsubStore } from './pubsub.js';
import { SqliteMucStore } from './muc.js';
import { SqlitePushStore } from './push.js';
import { SqliteFastTokenStore } from './fast.js';
import { runMigrations } from './migrations.js';
import type { CheckpointerOptions, MainMessage, WorkerMessage } from './checkpointer.js';

/**
 * WAL size (frames of one page, 4 KiB by default: 64 MiB) past which the checkpoint worker
 * resets the WAL instead of letting it grow (see checkpointer.ts).
 */
export const WAL_RESET_FRAMES = 16384;

export type Synchronous = 'OFF' | 'NORMAL' | 'FULL';

export interface SqliteOpenOptions {
  synchronous: Synchronous;
  /** Milliseconds a statement waits for another connection's lock (default 5000). */
  busyTimeout?: number;
  /**
   * With FULL: 'commit' (default) syncs archive batches inside their commit, on the event loop;
   * 'threadpool' commits them unsynced and waits for an fdatasync on the thread pool before
   * their promises settle (wal-sync.ts). Same durability; measured trade-off in
   * docs/benchmarks.md ("Archive sync on the thread pool").
   */
  archiveSync?: 'commit' | 'threadpool';
}

export class SqliteStorage implements Storage {
  /** The connection, for stores that later issues add under src/storage/sqlite/. */
  readonly db: Database.Database;
  readonly path: string;
  readonly accounts: AccountStore;
  readonly kv: KeyValueStore;
  readonly roster: SqliteRosterStore;
  readonly smState: SqliteSmStateStore;
  readonly smSessions: SqliteSmSessionStore;
  readonly archive: SqliteArchiveStore;
  readonly offline: SqliteOfflineStore;
  readonly blocklist: SqliteBlocklistStore;
  readonly pubsub: SqlitePubsubStore;
  readonly muc: SqliteMucStore;
  readonly push: SqlitePushStore;
  readonly fastTokens: SqliteFastTokenStore;
  /** Migration ids applied by this open (empty when the schema was current). */
  readonly appliedMigrations: readonly string[];
  private closed = false;
  private checkpointer: Worker | undefined;

  private constructor(db: Database.Database, path: string, applied: string[], archiveSync: 'commit' | 'threadpool') {
    this.db = db;
    this.path = path;
    this.appliedMigrations = applied;
    this.accounts = new SqliteAccountStore(db, (u) => this.deleteAllSync(u));
    this.kv = new SqliteKeyValueStore(db);
    this.roster = new SqliteRosterStore(db);
    this.smState = new SqliteSmStateStore(db);
    this.smSessions = new SqliteSmSessionStore(db);
    // FULL + 'threadpool': archive batches are synced on the thread pool (wal-sync.ts), everything else in its commit.
    const offLoop = archiveSync === 'threadpool' && path !== ':memory:' && (db.pragma('synchronous', { simple: true }) as number) === 2;
    this.archive = new SqliteArchiveStore(db, { walSync: offLoop ? new WalSync(`${path}-wal`) : undefined });
    this.offline = new SqliteOfflineStore(db);
    this.blocklist = new SqliteBlocklistStore(db);
    this.pubsub = new SqlitePubsubStore(db);
    this.muc = new SqliteMucStore(db);
    this.push = new SqlitePushStore(db);
    this.fastTokens = new SqliteFastTokenStore(db);
  }

  static open(path: string, opts: SqliteOpenOptions): SqliteStorage {
    if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const busy = opts.busyTimeout ?? 5000;
    const isNew = path !== ':memory:' && !existsSync(path);
    const db = new Database(path, { timeout: busy });
    try {
      // The file holds credentials: readable by the server's user only
      // (SQLite gives the -wal and -shm files the same mode).
      if (isNew) chmodSync(path, 0o600);
      db.pragma(`busy_timeout = ${Math.trunc(busy)}`);
      // journal_mode is persistent in the file; setting it again is a no-op.
      const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
      if (path !== ':memory:' && mode.toLowerCase() !== 'wal') {
        throw new Error(`could not switch ${path} to WAL mode (got ${mode})`);
      }
      if (!['OFF', 'NORMAL', 'FULL'].includes(opts.synchronous)) throw new Error(`bad synchronous mode ${opts.synchronous}`);
      db.pragma(`synchronous = ${opts.synchronous}`);
      db.pragma('foreign_keys = ON');
      // The automatic checkpoint runs inside a commit and was most of the
      // group-commit time (bench/mam-archive.ts); the server moves it to a worker.
      db.pragma('wal_autocheckpoint = 1000'); // the server moves checkpoints to a worker (startMaintenance)
      db.pragma('cache_size = -65536'); // 64 MiB page cache: MAM pages stay in memory
      const applied = runMigrations(db);
      return new SqliteStorage(db, path, applied, opts.archiveSync ?? 'commit');
    } catch (err) {
      db.close();
      throw err;
    }
  }

  durableCommits(): boolean {
    // 0 OFF, 1 NORMAL, 2 FULL, 3 EXTRA: in WAL mode FULL and EXTRA sync the WAL on every commit.
    return (this.db.pragma('synchronous', { simple: true }) as number) >= 2;
  }

  /** Tables with a `username` column, i.e. holding per-account data (see migrations.ts). */
  userTables(): string[] {
    const rows = this.db
      .prepare<[], { name: string }>(
        `SELECT m.name AS name FROM sqlite_schema AS m, pragma_table_info(m.name) AS c
         WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' AND c.name = 'username'
         ORDER BY m.name`,
      )
      .all();
    return rows.map((r) => r.name);
  }

  /** Returns whether the account row existed. */
  private deleteAllSync(username: string): boolean {
    // Discovered on every call: deletion is rare and this way tables added
    // by later migrations are always included.
    const tables = this.userTables();
    // accounts last, so that tables referencing it by foreign key go first.
    const ordered = [...tables.filter((t) => t !== 'accounts'), ...tables.filter((t) => t === 'accounts')];
    const run = this.db.transaction(() => {
      let existed = false;
      for (const t of ordered) {
        const n = this.db.prepare(`DELETE FROM "${t.replace(/"/g, '""')}" WHERE username = ?`).run(username).changes;
        if (t === 'accounts' && n > 0) existed = true;
      }
      return existed;
    });
    return run.immediate();
  }

  /** Removes the account and every row of it in every table. */
  async deleteUserData(username: string): Promise<void> {
    this.deleteAllSync(username);
  }

  /**
   * Long-running server only: move WAL checkpoints to a worker thread (see
   * checkpointer.ts). CLI commands keep SQLite's automatic checkpoint.
   */
  startMaintenance(events: MaintenanceEvents = {}, intervalMs = 250, resetFrames = WAL_RESET_FRAMES): void {
    if (this.checkpointer || this.path === ':memory:') return;
    this.db.pragma('wal_autocheckpoint = 0');
    const data: CheckpointerOptions = { path: this.path, intervalMs, resetFrames };
    const w = new Worker(new URL('./checkpointer.js', import.meta.url), { workerData: data });
    let guard: NodeJS.Timeout | undefined;
    const resume = (): void => {
      clearTimeout(guard);
      guard = undefined;
      w.unref();
      this.archive.resumeWrites();
    };
    w.on('message', (m: WorkerMessage) => {
      if (m.type === 'pause') {
        if (this.closed) return; // 'stop' is on its way to the worker; nothing is written any more
        this.archive.pauseWrites();
        // Held commits are promises someone awaits: keep the process alive until the worker
        // answers, and never hold them for long, whatever happens to the worker.
        w.ref();
        guard = setTimeout(resume, 2000);
        w.postMessage({ type: 'paused' } satisfies MainMessage);
      } else if (m.type === 'resume') {
        resume();
        events.onWalReset?.({ ms: m.ms, frames: m.frames, ok: m.ok });
      }
    });
    w.on('error', () => {
      resume();
      // Without the worker, fall back to SQLite's own checkpoints so the WAL cannot grow without bound.
      if (!this.closed) this.db.pragma('wal_autocheckpoint = 1000');
    });
    w.unref();
    this.checkpointer = w;
  }

  private async stopMaintenance(): Promise<void> {
    const w = this.checkpointer;
    if (!w) return;
    this.checkpointer = undefined;
    // The worker is unref'd while it runs; its 'stopped' message and its exit are what this
    // waits for, so it must keep the process alive now, or close() never gets to the final
    // checkpoint when nothing else is left in the event loop.
    w.ref();
    await new Promise<void>((resolve) => {
      const t = setTimeout(() => void w.terminate().then(() => resolve()), 2000);
      w.on('message', (m: WorkerMessage) => {
        if (m.type !== 'stopped') return;
        clearTimeout(t);
        void w.terminate().then(() => resolve());
      });
      w.once('exit', () => {
        clearTimeout(t);
        resolve();
      });
      w.postMessage({ type: 'stop' } satisfies MainMessage);
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Archive rows still in the group-commit queue are committed before the connection goes.
    this.archive.close();
    await this.stopMaintenance();
    try {
      // Leave a small WAL behind: fold it into the database now that nothing writes.
      this.db.pragma('wal_checkpoint(TRUNCATE)');
    } catch {
      // best effort only
    }
    try {
      // Cheap; keeps the query planner's statistics fresh (SQLite's advice for long-lived connections).
      this.db.pragma('optimize');
    } catch {
      // best effort only
    }
    this.db.close();
  }
}
