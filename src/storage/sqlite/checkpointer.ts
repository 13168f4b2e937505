/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs
 * inside whichever commit crosses the threshold, so one group commit in a few
 * hundred stalls the event loop while pages are copied and fsynced (it was
 * the p99 of delivery latency under steady load). The server turns the
 * automatic checkpoint off on its connection and this worker thread, with a
 * connection of its own, runs PASSIVE checkpoints (which never block
 * writers) on a timer.
 *
 * PASSIVE alone is not enough under sustained load: SQLite starts the WAL
 * over from its beginning only when a writer finds every frame already
 * copied back, and with a commit every few milliseconds a checkpoint never
 * catches up. The WAL then grows by everything written (1.5 GB after a
 * 20-minute benchmark), costs that disk, and slows every read, which must
 * search the WAL's index before the database. So when a checkpoint leaves
 * more than `resetFrames` frames in the WAL, the worker asks the main thread
 * to hold archive commits (the group-commit queue keeps filling; the event
 * loop keeps running), runs a RESTART checkpoint, which copies the frames
 * written since the last pass and makes the next commit write from the
 * start of the WAL file again, and tells the main thread to go on.
 *
 * RESTART, not TRUNCATE: truncating the file and growing it again made each
 * hold 33-80 ms and the p99 at 2,000 msg/s 40-43 ms; with RESTART the file
 * is reused, holds took 10-26 ms and that p99 was 6-9 ms (bench/compare.ts
 * and the driver's rate 2000 scenario after a saturated run). The file stays
 * near 64 MiB plus what one pass interval adds; shutdown truncates it. Protocol, all messages { type }:
 *   worker -> main: 'pause' (hold writes, answer 'paused'), 'resume' (with ms
 *   and frames of the reset), 'stopped';  main -> worker: 'paused', 'stop'.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

export interface CheckpointerOptions {
  path: string;
  intervalMs: number;
  resetFrames: number;
}

export type WorkerMessage = { type: 'pause' } | { type: 'resume'; ms: number; frames: number; ok: boolean } | { type: 'stopped' };
export type MainMessage = { type: 'paused' } | { type: 'stop' };

interface CheckpointRow {
  busy: number;
  log: number;
  checkpointed: number;
}

const { path, intervalMs, resetFrames } = workerData as CheckpointerOptions;
const db = new Database(path, { timeout: 1000 });
let waitingForPause = false;
let frames = 0;

const post = (m: WorkerMessage): void => parentPort?.postMessage(m);

const timer = setInterval(() => {
  if (waitingForPause) return;
  try {
    const r = db.pragma('wal_checkpoint(PASSIVE)') as CheckpointRow[];
    frames = r[0]?.log ?? 0;
    if (frames > resetFrames) {
      waitingForPause = true;
      post({ type: 'pause' });
    }
  } catch {
    // SQLITE_BUSY and friends: try again at the next tick.
  }
}, intervalMs);

function reset(): void {
  const t0 = performance.now();
  let ok = false;
  try {
    const r = db.pragma('wal_checkpoint(RESTART)') as CheckpointRow[];
    ok = r[0]?.busy === 0;
  } catch {
    // Busy past the timeout (a long reader): the next pass tries again.
  } finally {
    waitingForPause = false;
    post({ type: 'resume', ms: Math.round((performance.now() - t0) * 10) / 10, frames, ok });
  }
}

parentPort?.on('message', (m: MainMessage) => {
  if (m.type === 'paused') {
    reset();
  } else if (m.type === 'stop') {
    clearInterval(timer);
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } finally {
      db.close();
      post({ type: 'stopped' });
    }
  }
});
