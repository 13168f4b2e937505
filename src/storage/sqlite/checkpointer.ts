/**
 * WAL checkpoints off the event loop. SQLite's automatic checkpoint runs
 * inside whichever commit crosses the threshold, so one group commit in a few
 * hundred stalls the event loop while pages are copied and fsynced (it was
 * the p99 of delivery latency under steady load). The server turns the
 * automatic checkpoint off on its connection and this worker thread, with a
 * connection of its own, runs PASSIVE checkpoints (which never block
 * writers) on a timer.
 */
import { parentPort, workerData } from 'node:worker_threads';
import Database from 'better-sqlite3';

interface Options {
  path: string;
  intervalMs: number;
}

const { path, intervalMs } = workerData as Options;
const db = new Database(path, { timeout: 5000 });
db.pragma('busy_timeout = 5000');

const timer = setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // SQLITE_BUSY and friends: try again at the next tick.
  }
}, intervalMs);

parentPort?.on('message', (m: unknown) => {
  if (m === 'stop') {
    clearInterval(timer);
    try {
      db.pragma('wal_checkpoint(PASSIVE)');
    } finally {
      db.close();
      parentPort?.postMessage('stopped');
    }
  }
});
