/**
 * Live checkpoints of running resumable sessions (docs/stream-management.md, "After a crash"):
 * a batched writer in the manner of the archive's group commit. Sessions are marked dirty; one
 * storage transaction writes every dirty session's row, then runs what waited for it (archived
 * stanzas held back from the wire until the row that records them is committed). One write is in
 * flight at a time; whatever becomes dirty meanwhile goes into the next one.
 *
 * Urgent marks (an archived stanza waits to be written to a client) start a write on the next
 * turn of the event loop; the rest (counters, acks) within `lagMs`.
 */

export interface CheckpointEntry<R> {
  /** The row to write. */
  rec: R;
  /** Runs after the commit that holds `rec` (or after it failed: delivery never stalls). */
  after(): void;
}

export interface CheckpointWriterOptions<K, R> {
  /** The row of `key` as it is now; undefined when it no longer needs one. */
  capture(key: K): CheckpointEntry<R> | undefined;
  /** Write one batch in one transaction. */
  write(recs: readonly R[]): Promise<void>;
  lagMs: number;
  /** Rows per transaction at most (PostgreSQL's bind-parameter limit). */
  maxBatch?: number;
  onBatch(info: { size: number; ms: number; error?: unknown }): void;
}

export class CheckpointWriter<K> {
  private readonly dirty = new Set<K>();
  private urgentPending = false;
  private running: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private closed = false;

  constructor(private readonly o: CheckpointWriterOptions<K, unknown>) {}

  /** `key`'s row changed; `urgent` when something waits for its commit. */
  mark(key: K, urgent: boolean): void {
    if (this.closed) return;
    this.dirty.add(key);
    if (this.running) {
      // The running batch schedules the next one, at once when something waits for it.
      if (urgent) this.urgentPending = true;
      return;
    }
    if (urgent) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.immediate ??= setImmediate(() => this.start());
    } else if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => this.start(), this.o.lagMs);
      this.timer.unref();
    }
  }

  /** A key that needs no row any more (ended, written down) leaves the next batch. */
  forget(key: K): void {
    this.dirty.delete(key);
  }

  private start(): void {
    this.timer = undefined;
    this.immediate = undefined;
    if (this.running || this.dirty.size === 0) return;
    this.running = this.run().finally(() => {
      this.running = undefined;
      if (this.dirty.size === 0 || this.closed) return;
      const urgent = this.urgentPending;
      this.urgentPending = false;
      if (urgent) this.immediate = setImmediate(() => this.start());
      else {
        this.timer = setTimeout(() => this.start(), this.o.lagMs);
        this.timer.unref();
      }
    });
  }

  private async run(): Promise<void> {
    const max = this.o.maxBatch ?? 500;
    const keys = [...this.dirty].slice(0, max);
    for (const k of keys) this.dirty.delete(k);
    const entries: Array<CheckpointEntry<unknown>> = [];
    for (const k of keys) {
      const e = this.o.capture(k);
      if (e) entries.push(e);
    }
    if (entries.length === 0) return;
    const t0 = performance.now();
    let error: unknown;
    try {
      await this.o.write(entries.map((e) => e.rec));
    } catch (err) {
      error = err;
    }
    this.o.onBatch({ size: entries.length, ms: performance.now() - t0, error });
    for (const e of entries) e.after();
    // A batch cut at maxBatch: the rest goes at once.
    if (this.dirty.size > 0 && keys.length === max) this.urgentPending = true;
  }

  /** Settles when no batch is being written (a row removed after this stays removed). */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Write what is dirty now and wait for it (shutdown). */
  async flush(): Promise<void> {
    while (this.running || this.dirty.size > 0) {
      if (this.running) await this.running;
      else this.start();
    }
  }

  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.dirty.clear();
  }
}
