/**
 * The message archive in SQLite (schema: migration '0003-archive' in
 * migrations.ts).
 *
 * `seq` is the table's INTEGER PRIMARY KEY (the rowid): the archive clock
 * makes it unique across all archives, and since it only grows, inserts
 * append at the right edge of the table b-tree. The index on (username)
 * holds (username, rowid) and the index on (username, with_jid) holds
 * (username, with_jid, rowid), so every page is one index range seek plus a
 * rowid lookup per row returned: the cost of a page does not depend on the
 * size of the archive. EXPLAIN QUERY PLAN for each shape is checked in
 * test/unit/archive-store.test.ts.
 *
 * Writes go through a GroupCommit: one transaction per event-loop turn (or
 * per `maxBatch` rows). A row that fails alone (a duplicate id, a trigger
 * that refuses it) fails only its own promise; a failed commit fails the
 * whole batch.
 */
import type { Database, Statement } from 'better-sqlite3';
import { GroupCommit } from '../group-commit.js';
import type { WalSync } from './wal-sync.js';
import type { ArchivePage, ArchivePrefs, ArchiveRange, ArchiveRecord, ArchiveStore } from '../archive.js';

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

export interface SqliteArchiveOptions {
  /** Rows per commit at most (default 500). */
  maxBatch?: number;
  /** Commit window in ms; 0 = next event-loop turn (default). */
  windowMs?: number;
  /**
   * Sync the WAL on the thread pool after each batch instead of inside the commit (see
   * wal-sync.ts); given by SqliteStorage when the connection is `synchronous = FULL`.
   */
  walSync?: WalSync;
}

export interface BatchStats {
  batches: number;
  rows: number;
  failedRows: number;
  failedBatches: number;
  largestBatch: number;
}

const COLS = 'username, seq, id, with_jid, with_resource, outgoing, stanza';

function toRecord(r: Row): ArchiveRecord {
  return {
    username: r.username,
    seq: r.seq,
    id: r.id,
    with: r.with_jid,
    withResource: r.with_resource,
    outgoing: r.outgoing === 1,
    stanza: r.stanza,
  };
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

export class SqliteArchiveStore implements ArchiveStore {
  private readonly insert: Statement<[string, number, string, string, string, number, string]>;
  private readonly seqStmt: Statement<[string, string], { seq: number }>;
  private readonly firstStmt: Statement<[string], Row>;
  private readonly lastStmt: Statement<[string], Row>;
  private readonly maxSeqStmt: Statement<[], { m: number | null }>;
  private readonly getPrefsStmt: Statement<[string], PrefsRow>;
  private readonly setPrefsStmt: Statement<[string, string, string, string]>;
  private readonly allPrefsStmt: Statement<[], PrefsRow>;
  private readonly statements = new Map<string, Statement<unknown[], Row | { n: number }>>();
  private readonly group: GroupCommit<ArchiveRecord>;
  readonly stats: BatchStats = { batches: 0, rows: 0, failedRows: 0, failedBatches: 0, largestBatch: 0 };

  private readonly walSync: WalSync | undefined;

  constructor(private readonly db: Database, opts: SqliteArchiveOptions = {}) {
    this.walSync = opts.walSync;
    this.insert = db.prepare(`INSERT INTO archive (${COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)`);
    this.seqStmt = db.prepare('SELECT seq FROM archive WHERE username = ? AND id = ?');
    this.firstStmt = db.prepare(`SELECT ${COLS} FROM archive WHERE username = ? ORDER BY seq ASC LIMIT 1`);
    this.lastStmt = db.prepare(`SELECT ${COLS} FROM archive WHERE username = ? ORDER BY seq DESC LIMIT 1`);
    // max(rowid) is one b-tree descent.
    this.maxSeqStmt = db.prepare('SELECT max(seq) AS m FROM archive');
    this.getPrefsStmt = db.prepare('SELECT username, default_mode, always_jids, never_jids FROM archive_prefs WHERE username = ?');
    this.setPrefsStmt = db.prepare(
      `INSERT INTO archive_prefs (username, default_mode, always_jids, never_jids) VALUES (?, ?, ?, ?)
       ON CONFLICT (username) DO UPDATE SET default_mode = excluded.default_mode, always_jids = excluded.always_jids, never_jids = excluded.never_jids`,
    );
    this.allPrefsStmt = db.prepare('SELECT username, default_mode, always_jids, never_jids FROM archive_prefs');
    this.group = new GroupCommit<ArchiveRecord>({
      maxBatch: opts.maxBatch,
      windowMs: opts.windowMs,
      write: (rows) => this.writeBatch(rows),
      sync: this.walSync === undefined ? undefined : () => (this.walSync as WalSync).sync(),
      onBatch: (b) => {
        this.stats.batches++;
        this.stats.rows += b.size;
        this.stats.failedRows += b.failed;
        if (b.error !== undefined) this.stats.failedBatches++;
        if (b.size > this.stats.largestBatch) this.stats.largestBatch = b.size;
      },
    });
  }

  private writeBatch(rows: readonly ArchiveRecord[]): Array<Error | undefined> {
    const results: Array<Error | undefined> = [];
    const tx = this.db.transaction(() => {
      for (const r of rows) {
        try {
          this.insert.run(r.username, r.seq, r.id, r.with, r.withResource, r.outgoing ? 1 : 0, r.stanza);
          results.push(undefined);
        } catch (err) {
          // A constraint or a trigger's RAISE(ABORT) undoes only this statement;
          // anything that ended the transaction fails the whole batch.
          if (!this.db.inTransaction) throw err;
          results.push(err instanceof Error ? err : new Error(String(err)));
        }
      }
    });
    if (this.walSync === undefined) {
      tx();
      return results;
    }
    // This commit writes its WAL frames without syncing them; the group commit holds the
    // batch's promises until the syncer's fdatasync (thread pool) has them on disk.
    this.db.pragma('synchronous = NORMAL');
    try {
      tx();
    } finally {
      this.db.pragma('synchronous = FULL');
    }
    return results;
  }

  /** fdatasyncs of the WAL done for archive batches (undefined: commits sync themselves). */
  get walSyncs(): number | undefined {
    return this.walSync?.syncs;
  }

  append(rec: ArchiveRecord): Promise<void> {
    return this.group.add(rec);
  }

  flush(): Promise<void> {
    return this.group.drain();
  }

  /** Hold and release archive commits (the checkpoint worker's WAL reset, see checkpointer.ts). */
  pauseWrites(): void {
    this.group.pause();
  }

  resumeWrites(): void {
    this.group.resume();
  }

  /** Commit what is queued and refuse further rows (storage shutdown). */
  close(): void {
    this.group.close();
    this.walSync?.close();
  }

  async seqOf(username: string, id: string): Promise<number | undefined> {
    return this.seqStmt.get(username, id)?.seq;
  }

  private where(q: ArchiveRange, params: unknown[]): string {
    const conds = ['username = ?'];
    params.push(q.username);
    if (q.with !== undefined) {
      conds.push('with_jid = ?');
      params.push(q.with);
      if (q.withResource !== undefined) {
        conds.push('with_resource = ?');
        params.push(q.withResource);
      }
    }
    // Every bound is on seq, the rowid: a range on the last column of the index.
    if (q.minSeq !== undefined) {
      conds.push('seq >= ?');
      params.push(q.minSeq);
    }
    if (q.maxSeq !== undefined) {
      conds.push('seq <= ?');
      params.push(q.maxSeq);
    }
    if (q.afterSeq !== undefined) {
      conds.push('seq > ?');
      params.push(q.afterSeq);
    }
    if (q.beforeSeq !== undefined) {
      conds.push('seq < ?');
      params.push(q.beforeSeq);
    }
    return conds.join(' AND ');
  }

  private stmt(sql: string): Statement<unknown[], Row | { n: number }> {
    let s = this.statements.get(sql);
    if (!s) {
      s = this.db.prepare(sql);
      // The set of shapes is small (filters present or not): bounded by construction.
      this.statements.set(sql, s);
    }
    return s;
  }

  /** The SQL of a page query, for EXPLAIN QUERY PLAN in tests. */
  pageSql(q: ArchivePage): { sql: string; params: unknown[] } {
    const params: unknown[] = [];
    const where = this.where(q, params);
    const dir = q.order === 'desc' ? 'DESC' : 'ASC';
    params.push(Math.max(0, Math.trunc(q.limit)), Math.max(0, Math.trunc(q.offset ?? 0)));
    return { sql: `SELECT ${COLS} FROM archive WHERE ${where} ORDER BY seq ${dir} LIMIT ? OFFSET ?`, params };
  }

  async page(q: ArchivePage): Promise<ArchiveRecord[]> {
    const { sql, params } = this.pageSql(q);
    return (this.stmt(sql).all(...params) as Row[]).map(toRecord);
  }

  async count(q: ArchiveRange, cap: number): Promise<number | undefined> {
    const params: unknown[] = [];
    const where = this.where(q, params);
    params.push(cap + 1);
    const r = this.stmt(`SELECT count(*) AS n FROM (SELECT 1 FROM archive WHERE ${where} LIMIT ?)`).get(...params) as { n: number };
    return r.n > cap ? undefined : r.n;
  }

  async byIds(username: string, ids: readonly string[]): Promise<ArchiveRecord[]> {
    const out: Row[] = [];
    const unique = [...new Set(ids)];
    for (let i = 0; i < unique.length; i += 200) {
      const chunk = unique.slice(i, i + 200);
      const sql = `SELECT ${COLS} FROM archive WHERE username = ? AND id IN (${chunk.map(() => '?').join(',')})`;
      // Prepared once per chunk size; not cached (the shape varies with the number of ids).
      out.push(...(this.db.prepare(sql).all(username, ...chunk) as Row[]));
    }
    out.sort((a, b) => a.seq - b.seq);
    return out.map(toRecord);
  }

  async bounds(username: string): Promise<{ first: ArchiveRecord; last: ArchiveRecord } | undefined> {
    const first = this.firstStmt.get(username);
    const last = this.lastStmt.get(username);
    if (!first || !last) return undefined;
    return { first: toRecord(first), last: toRecord(last) };
  }

  async highWater(): Promise<number> {
    return this.maxSeqStmt.get()?.m ?? 0;
  }

  async getPrefs(username: string): Promise<ArchivePrefs | undefined> {
    const r = this.getPrefsStmt.get(username);
    return r ? parsePrefs(r) : undefined;
  }

  async setPrefs(username: string, prefs: ArchivePrefs): Promise<void> {
    this.setPrefsStmt.run(username, prefs.default, JSON.stringify(prefs.always), JSON.stringify(prefs.never));
  }

  async allPrefs(): Promise<Map<string, ArchivePrefs>> {
    const m = new Map<string, ArchivePrefs>();
    for (const r of this.allPrefsStmt.all()) m.set(r.username, parsePrefs(r));
    return m;
  }
}
