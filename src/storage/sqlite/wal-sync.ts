/**
 * The archive's fsync on the thread pool instead of the event loop (opt-in:
 * `storage.sqlite.archiveSync: threadpool`; the default syncs inside the commit).
 *
 * With `synchronous = FULL` SQLite fsyncs the WAL inside every commit, on the
 * calling thread: for better-sqlite3 that is the event loop. A CPU profile of a
 * login storm (docs/benchmarks.md) had a fifth of the server's busy time inside
 * the archive's group commit, waiting for that fsync, while every TLS handshake
 * and every delivery waited behind it.
 *
 * With this syncer an archive batch commits with `synchronous = NORMAL` (in WAL mode: the
 * frames are written to the WAL file with write(2), nothing is synced) and then
 * asks this syncer for an `fdatasync` of the WAL file, which libuv runs on its
 * thread pool. The batch's promises (and with them the SM acks and the routing
 * of its messages) settle only after a sync that *started after* the commit
 * returned has completed, so an ack still means "on disk": the same guarantee
 * as FULL, without blocking the loop. Other writes keep FULL (they are rare).
 *
 * Why it is not the default (A/B in docs/benchmarks.md): saturated chat gained about 10%, but
 * every message now waits for one more turn of the event loop (the sync's completion is an I/O
 * event like any other), and when the loop is busy, e.g. with a login storm's handshakes, a turn
 * is long: the concurrent stream's p99 got worse, not better.
 *
 * Syncs coalesce: while one runs, every commit that finishes waits for the
 * next one, which starts as soon as the running one completes; at load this is
 * one fdatasync per few batches. Waiters are released in the order they asked,
 * so commit order is release order.
 *
 * The descriptor is our own on the WAL file. SQLite keeps the WAL file (same
 * inode) while any connection is open (the server's and the checkpoint
 * worker's): a checkpoint RESTART or TRUNCATE reuses it. Should the file ever
 * be unlinked and recreated (every connection closed), fstat reports no link
 * and the syncer opens the new file and syncs again before releasing anyone.
 */
import { closeSync, fdatasync, fdatasyncSync, fstat, openSync } from 'node:fs';

export class WalSync {
  private fd: number | undefined;
  private running = false;
  /** Waiters for the sync that starts next (they asked after the running one started). */
  private next: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  private closed = false;
  /** Completed fdatasyncs, for tests and metrics. */
  syncs = 0;

  constructor(private readonly walPath: string) {}

  /** Resolves once every byte written to the WAL before this call is on disk. */
  sync(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('WAL syncer closed'));
    return new Promise<void>((resolve, reject) => {
      this.next.push({ resolve, reject });
      if (!this.running) this.start();
    });
  }

  private start(): void {
    const batch = this.next;
    this.next = [];
    if (batch.length === 0) return;
    this.running = true;
    const done = (err: Error | null): void => {
      this.running = false;
      if (err) {
        // fdatasync failed (EIO): the data may not be on disk. Fail these waiters (the archive
        // reports archive-failed) and reopen for the next attempt.
        this.dropFd();
        for (const w of batch) w.reject(err);
      } else {
        this.syncs++;
        for (const w of batch) w.resolve();
      }
      if (this.closed) this.dropFd();
      else if (this.next.length > 0) this.start();
    };
    this.syncOnce(done, true);
  }

  private syncOnce(done: (err: Error | null) => void, retry: boolean): void {
    let fd: number;
    try {
      fd = this.fd ??= openSync(this.walPath, 'r');
    } catch (err) {
      done(err instanceof Error ? err : new Error(String(err)));
      return;
    }
    fdatasync(fd, (err) => {
      if (err) return done(err);
      fstat(fd, (e2, st) => {
        if (e2) return done(e2);
        // Closed: close() synced this descriptor itself, before the database was closed (which
        // folds the WAL into the database and may unlink it).
        if (st.nlink > 0 || this.closed) return done(null);
        // The WAL we synced was unlinked: what SQLite writes now is in a new file.
        this.dropFd();
        if (retry) this.syncOnce(done, false);
        else done(new Error(`${this.walPath} was replaced twice during one sync`));
      });
    });
  }

  private dropFd(): void {
    if (this.fd === undefined) return;
    try {
      closeSync(this.fd);
    } catch {
      // already closed
    }
    this.fd = undefined;
  }

  /**
   * Storage close: whoever waits for a sync is synced now, blocking (the database is about to
   * close, and closing may unlink the WAL); a sync in flight is covered by the same call.
   * Later sync() calls reject.
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const waiting = this.next;
    this.next = [];
    let err: Error | undefined;
    if (waiting.length > 0 || this.running) {
      try {
        fdatasyncSync((this.fd ??= openSync(this.walPath, 'r')));
      } catch (e) {
        err = e instanceof Error ? e : new Error(String(e));
      }
    }
    for (const w of waiting) {
      if (err) w.reject(err);
      else w.resolve();
    }
    if (!this.running) this.dropFd();
  }
}
