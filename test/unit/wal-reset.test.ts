/**
 * The WAL must not grow without bound under sustained writes (checkpointer.ts): the
 * checkpoint worker asks the main thread to hold archive commits, empties the WAL, and
 * commits go on, with every row kept. Real SQLite file, real worker thread.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { GroupCommit } from '../../src/storage/group-commit.js';
import { ArchiveClock, archiveIdFor } from '../../src/modules/mam/ids.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('group commit: paused, items wait and drain() waits; resume commits them in order', async () => {
  const writes: number[][] = [];
  const gc = new GroupCommit<number>({ write: (items) => (writes.push([...items]), items.map(() => undefined)) });
  gc.pause();
  let done = 0;
  const ps = [1, 2, 3].map((i) => gc.add(i).then(() => done++));
  gc.flush(); // a no-op while paused
  let drained = false;
  const d = gc.drain().then(() => (drained = true));
  await sleep(20);
  assert.equal(done, 0, 'nothing committed while paused');
  assert.equal(drained, false);
  assert.deepEqual(writes, []);
  gc.resume();
  await Promise.all([...ps, d]);
  assert.deepEqual(writes, [[1, 2, 3]]);
  assert.equal(drained, true);
});

// FULL with archiveSync 'threadpool': archive batches are synced by the thread-pool syncer
// (wal-sync.ts) on a WAL the worker keeps restarting from its beginning.
for (const synchronous of ['NORMAL', 'FULL'] as const)
test(`sustained archive writes (${synchronous}): the WAL is reset by the worker and stays small; no row is lost`, async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-wal-'));
  const file = path.join(dir, 'w.sqlite');
  const storage = SqliteStorage.open(file, { synchronous, archiveSync: 'threadpool' });
  try {
    // Tiny thresholds so that a test-sized load crosses them many times.
    const walResets: Array<{ ms: number; frames: number; ok: boolean }> = [];
    storage.startMaintenance({ onWalReset: (r) => walResets.push(r) }, 20, 200);
    const clock = new ArchiveClock();
    const body = 'x'.repeat(400);
    let written = 0;
    let maxWal = 0;
    const until = Date.now() + 3000;
    while (Date.now() < until || walResets.length < 3) {
      if (Date.now() > until + 10_000) break;
      const ps = [];
      for (let i = 0; i < 200; i++) {
        const seq = clock.next();
        ps.push(
          storage.archive.append({
            username: 'romeo', seq, id: archiveIdFor(seq), with: 'juliet@localhost', withResource: '', outgoing: i % 2 === 0,
            stanza: `<message xmlns="jabber:client"><body>${body}${written + i}</body></message>`,
          }),
        );
      }
      // Every batch must commit within 5 s, holds included (a lost resume would hang here).
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`a batch was not committed within 5 s (after ${written} rows)`)), 5000);
      });
      try {
        await Promise.race([Promise.all(ps), late]);
      } finally {
        clearTimeout(timer);
      }
      written += ps.length;
      maxWal = Math.max(maxWal, statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0);
      await sleep(1);
    }
    assert.ok(walResets.length >= 3, `the worker reset the WAL (${walResets.length} resets)`);
    assert.ok(walResets.some((r) => r.ok), 'at least one reset emptied the WAL');
    // 200 frames of 4 KiB is 800 KiB; between checks the writer adds a few hundred more.
    assert.ok(maxWal < 16 * 1024 * 1024, `WAL stayed small (largest ${maxWal} bytes after ${written} rows)`);
    const n = storage.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM archive').get()?.n;
    assert.equal(n, written, 'every appended row is in the archive');
    if (synchronous === 'FULL') assert.ok((storage.archive.walSyncs ?? 0) > 0, 'batches were synced by the WAL syncer');
    else assert.equal(storage.archive.walSyncs, undefined, 'NORMAL: nothing to sync');
    assert.equal(storage.db.pragma('synchronous', { simple: true }), synchronous === 'FULL' ? 2 : 1, 'the connection keeps its mode');
  } finally {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
