/**
 * Group commit: writes from every session are queued and committed together
 * in one transaction when a short window closes (the next turn of the event
 * loop by default, or `windowMs`), or at once when `maxBatch` items wait.
 * Each item's promise settles after the commit that holds it, so a caller
 * that awaits it knows the item is durable (as durable as the database's
 * synchronous mode makes a commit; see docs/operations.md).
 *
 * Why: a commit costs a WAL append (and an fsync with synchronous=FULL) no
 * matter how many rows it carries. One commit per message caps throughput at
 * the commit rate; one commit per window makes the cost per message small at
 * load, while a lone message still waits less than a millisecond or two.
 *
 * Failures are per item where the backend can tell (a constraint or trigger
 * aborts one INSERT, the others commit), and per batch when the commit itself
 * fails (disk full, I/O error): then every item of the batch is rejected.
 */

export interface GroupCommitOptions<T> {
  /**
   * Write one batch inside one transaction. Return one entry per item:
   * undefined when it was written, an Error when only that item failed.
   * Throw when the whole batch failed (nothing was committed).
   * Runs synchronously: better-sqlite3 is synchronous, and a batch is small.
   */
  write(items: readonly T[]): Array<Error | undefined>;
  /** Commit at once when this many items wait (default 500). */
  maxBatch?: number;
  /** Window in milliseconds; 0 (default) = the next turn of the event loop (setImmediate). */
  windowMs?: number;
  /**
   * Make a committed batch durable (the SQLite archive: an fdatasync of the WAL on the thread
   * pool, see sqlite/wal-sync.ts). When given, `write` commits without syncing and the items'
   * promises settle only after this resolves; batches settle in commit order all the same.
   * A rejection fails every item of the batch.
   */
  sync?(): Promise<void>;
  /** Called after every batch, for metrics. */
  onBatch?(info: { size: number; failed: number; ms: number; error?: unknown }): void;
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class GroupCommit<T> {
  private queue: Pending<T>[] = [];
  private timer: NodeJS.Immediate | NodeJS.Timeout | undefined;
  private readonly maxBatch: number;
  private readonly windowMs: number;
  private closed = false;
  private paused = false;
  private resumed: Array<() => void> = [];
  /** The last batch still waiting for its sync (settlements are chained in commit order). */
  private tail: Promise<void> | undefined;

  constructor(private readonly opts: GroupCommitOptions<T>) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 500);
    this.windowMs = Math.max(0, opts.windowMs ?? 0);
  }

  /** Items waiting for the next commit. */
  get pending(): number {
    return this.queue.length;
  }

  /** Queue one item; resolves after the commit that contains it. */
  add(item: T): Promise<void> {
    if (this.closed) return Promise.reject(new Error('group commit closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      if (this.paused) return;
      if (this.queue.length >= this.maxBatch) this.flush();
      else this.schedule();
    });
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    if (this.windowMs === 0) this.timer = setImmediate(() => this.flush());
    else this.timer = setTimeout(() => this.flush(), this.windowMs);
  }

  private clearTimer(): void {
    if (this.timer === undefined) return;
    if (this.windowMs === 0) clearImmediate(this.timer as NodeJS.Immediate);
    else clearTimeout(this.timer as NodeJS.Timeout);
    this.timer = undefined;
  }

  /**
   * Hold commits: items queue up (their promises wait) until resume(). Used while the WAL is
   * being reset by the checkpoint worker, which needs a moment with no writer; holding the
   * queue keeps the event loop running instead of waiting in SQLite's busy handler.
   */
  pause(): void {
    this.paused = true;
    this.clearTimer();
  }

  resume(): void {
    if (!this.paused) return;
    this.paused = false;
    this.flush();
    const waiting = this.resumed;
    this.resumed = [];
    for (const w of waiting) w();
  }

  /** Commit what is queued now, or, while paused, as soon as commits resume. */
  drain(): Promise<void> {
    if (!this.paused) {
      this.flush();
      return this.tail ?? Promise.resolve();
    }
    return new Promise((resolve) => this.resumed.push(resolve));
  }

  /** Commit everything queued now (synchronously); nothing while paused. */
  flush(): void {
    this.clearTimer();
    if (this.paused) return;
    while (this.queue.length > 0) {
      const batch = this.queue.length <= this.maxBatch ? this.queue : this.queue.slice(0, this.maxBatch);
      this.queue = batch === this.queue ? [] : this.queue.slice(this.maxBatch);
      this.commit(batch);
    }
  }

  private commit(batch: Pending<T>[]): void {
    const t0 = performance.now();
    let results: Array<Error | undefined> | undefined;
    let failure: Error | undefined;
    try {
      results = this.opts.write(batch.map((p) => p.item));
    } catch (err) {
      failure = err instanceof Error ? err : new Error(String(err));
    }
    const settle = (err: Error | undefined): void => {
      if (err !== undefined) {
        this.opts.onBatch?.({ size: batch.length, failed: batch.length, ms: performance.now() - t0, error: err });
        for (const p of batch) p.reject(err);
        return;
      }
      let failed = 0;
      for (let i = 0; i < batch.length; i++) {
        const r = results?.[i];
        const p = batch[i] as Pending<T>;
        if (r) {
          failed++;
          p.reject(r);
        } else p.resolve();
      }
      this.opts.onBatch?.({ size: batch.length, failed, ms: performance.now() - t0 });
    };
    if (this.opts.sync === undefined || (this.tail === undefined && failure !== undefined)) {
      settle(failure);
      return;
    }
    // Ask for the sync now: it must start after this commit returned (it did).
    const synced: Promise<Error | undefined> =
      failure !== undefined
        ? Promise.resolve(failure)
        : this.opts.sync().then(
            () => undefined,
            (e: unknown) => (e instanceof Error ? e : new Error(String(e))),
          );
    const prev = this.tail;
    const p: Promise<void> = (prev === undefined ? synced : prev.then(() => synced)).then(settle);
    this.tail = p;
    void p.then(() => {
      if (this.tail === p) this.tail = undefined;
    });
  }

  /** Commit what is queued and refuse new items (shutdown). */
  close(): void {
    this.resume();
    this.flush();
    this.closed = true;
  }
}
