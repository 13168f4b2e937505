/**
 * Group commit for a networked database: the asynchronous sibling of
 * src/storage/group-commit.ts (whose `write` is synchronous, as
 * better-sqlite3 is).
 *
 * Rows queue up while one batch is being committed; when that commit
 * returns, everything that queued meanwhile (up to `maxBatch`) goes in the
 * next one. So a lone row waits one round trip, and under load the batch
 * grows with the commit latency instead of the commit rate capping the
 * message rate.
 *
 * Exactly one batch is in flight at a time: batches commit in the order
 * their rows were queued. Archive rows are queued in seq order (the archive
 * clock), so a row never becomes visible before a row with a lower seq of
 * the same node: a client paging "after the last id it saw" cannot skip a
 * row that was still being committed.
 */

export interface AsyncGroupCommitOptions<T> {
  /**
   * Write one batch in one transaction. Resolve with one entry per item:
   * undefined when it was written, an Error when only that item failed.
   * Reject when the whole batch failed (nothing was committed).
   */
  write(items: readonly T[]): Promise<Array<Error | undefined>>;
  /** Items per commit at most (default 500). */
  maxBatch?: number;
  /** Called after every batch, for metrics. */
  onBatch?(info: { size: number; failed: number; ms: number; error?: unknown }): void;
}

interface Pending<T> {
  item: T;
  resolve: () => void;
  reject: (err: Error) => void;
}

export class AsyncGroupCommit<T> {
  private queue: Pending<T>[] = [];
  private inFlight: Promise<void> | undefined;
  private scheduled = false;
  private closed = false;
  private readonly maxBatch: number;
  private idle: Array<() => void> = [];

  constructor(private readonly opts: AsyncGroupCommitOptions<T>) {
    this.maxBatch = Math.max(1, opts.maxBatch ?? 500);
  }

  get pending(): number {
    return this.queue.length;
  }

  add(item: T): Promise<void> {
    if (this.closed) return Promise.reject(new Error('group commit closed'));
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.kick();
    });
  }

  /** Start a commit on the next turn unless one is running (it picks the queue up when it ends). */
  private kick(): void {
    if (this.inFlight || this.scheduled || this.queue.length === 0) return;
    this.scheduled = true;
    // One turn of the event loop: rows queued by the same burst of socket reads join this batch.
    setImmediate(() => {
      this.scheduled = false;
      this.next();
    });
  }

  private next(): void {
    if (this.inFlight) return;
    if (this.queue.length === 0) {
      const waiting = this.idle;
      this.idle = [];
      for (const w of waiting) w();
      return;
    }
    const batch = this.queue.splice(0, this.maxBatch);
    this.inFlight = this.commit(batch).finally(() => {
      this.inFlight = undefined;
      this.next();
    });
  }

  private async commit(batch: Pending<T>[]): Promise<void> {
    const t0 = performance.now();
    let results: Array<Error | undefined>;
    try {
      results = await this.opts.write(batch.map((p) => p.item));
    } catch (err) {
      const e = err instanceof Error ? err : new Error(String(err));
      this.opts.onBatch?.({ size: batch.length, failed: batch.length, ms: performance.now() - t0, error: e });
      for (const p of batch) p.reject(e);
      return;
    }
    let failed = 0;
    batch.forEach((p, i) => {
      const r = results[i];
      if (r) {
        failed++;
        p.reject(r);
      } else p.resolve();
    });
    this.opts.onBatch?.({ size: batch.length, failed, ms: performance.now() - t0 });
  }

  /** Resolves once everything queued before the call is committed (or failed). */
  drain(): Promise<void> {
    if (!this.inFlight && this.queue.length === 0 && !this.scheduled) return Promise.resolve();
    return new Promise((resolve) => {
      this.idle.push(resolve);
      if (!this.inFlight && !this.scheduled) this.next();
    });
  }

  /** Commit what is queued, then refuse new items. */
  async close(): Promise<void> {
    await this.drain();
    this.closed = true;
  }
}
