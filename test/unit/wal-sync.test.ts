/**
 * The archive's fsync on the thread pool (src/storage/sqlite/wal-sync.ts, GroupCommit's
 * `sync`): an item's promise (and with it an SM ack) settles only after a sync that started
 * after its commit; batches settle in commit order whatever order their syncs end in; a failed
 * sync fails its batch; syncs coalesce; a WAL file replaced under the syncer is noticed.
 * Real files and real fdatasync for WalSync; GroupCommit is driven through its `sync` option.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readlinkSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GroupCommit } from '../../src/storage/group-commit.js';
import { WalSync } from '../../src/storage/sqlite/wal-sync.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';

const tick = () => new Promise((r) => setImmediate(r));

/** A sync whose completions the test releases one by one, in any order. */
function controlledSync(): { sync: () => Promise<void>; pending: Array<{ resolve: () => void; reject: (e: Error) => void }> } {
  const pending: Array<{ resolve: () => void; reject: (e: Error) => void }> = [];
  return { pending, sync: () => new Promise<void>((resolve, reject) => pending.push({ resolve, reject })) };
}

test('group commit with sync: nothing settles before its sync; later syncs do not overtake', async () => {
  const c = controlledSync();
  const order: string[] = [];
  const gc = new GroupCommit<string>({ write: (items) => items.map(() => undefined), sync: c.sync });
  const a = gc.add('a').then(() => order.push('a'));
  gc.flush();
  const b = gc.add('b').then(() => order.push('b'));
  gc.flush();
  await tick();
  assert.equal(c.pending.length, 2, 'one sync asked per committed batch');
  assert.deepEqual(order, [], 'committed, not yet synced: nothing settled');
  c.pending[1]?.resolve(); // the later batch's sync ends first
  await tick();
  assert.deepEqual(order, [], 'b waits for a');
  let drained = false;
  const d = gc.drain().then(() => (drained = true));
  await tick();
  assert.equal(drained, false, 'drain() waits for the sync too');
  c.pending[0]?.resolve();
  await Promise.all([a, b, d]);
  assert.deepEqual(order, ['a', 'b']);
});

test('group commit with sync: a failed sync fails its batch only; a failed write waits its turn', async () => {
  const c = controlledSync();
  const gc = new GroupCommit<string>({
    write: (items) => {
      if (items.includes('boom')) throw new Error('disk full');
      return items.map(() => undefined);
    },
    sync: c.sync,
  });
  const settled: string[] = [];
  const track = (k: string, p: Promise<void>) =>
    p.then(
      () => settled.push(`${k} ok`),
      (e: Error) => settled.push(`${k} ${e.message}`),
    );
  const ps = [track('x', gc.add('x'))];
  gc.flush();
  ps.push(track('boom', gc.add('boom')));
  gc.flush();
  ps.push(track('y', gc.add('y')));
  gc.flush();
  await tick();
  assert.deepEqual(settled, [], 'the failed write waits behind the batch still syncing');
  c.pending[0]?.reject(new Error('EIO'));
  c.pending[1]?.resolve();
  await Promise.all(ps);
  assert.deepEqual(settled, ['x EIO', 'boom disk full', 'y ok']);
});

test('WalSync: a real fdatasync; concurrent callers share syncs; waiters released in order', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-walsync-'));
  const f = path.join(dir, 'x-wal');
  writeFileSync(f, 'frames');
  const s = new WalSync(f);
  try {
    await s.sync();
    assert.equal(s.syncs, 1);
    const order: number[] = [];
    await Promise.all(Array.from({ length: 20 }, (_, i) => s.sync().then(() => order.push(i))));
    assert.deepEqual(order, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(s.syncs, 3, 'the first of the 20 starts a sync, the other 19 share the next one');
  } finally {
    s.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('WalSync: a WAL unlinked and recreated is noticed, the new file is synced; a missing file fails the sync', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-walsync-'));
  const f = path.join(dir, 'x-wal');
  writeFileSync(f, 'old');
  const s = new WalSync(f);
  const openOnDeleted = (): boolean =>
    readdirSync('/proc/self/fd').some((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`) === `${f} (deleted)`;
      } catch {
        return false;
      }
    });
  try {
    await s.sync();
    unlinkSync(f);
    writeFileSync(f, 'new');
    await s.sync();
    assert.equal(openOnDeleted(), false, 'the syncer let go of the unlinked file');
    assert.equal(s.syncs, 2);
    unlinkSync(f);
    await assert.rejects(s.sync(), /ENOENT/);
    writeFileSync(f, 'again');
    await s.sync();
    assert.equal(s.syncs, 3, 'it recovers once the file is back');
  } finally {
    s.close();
    rmSync(dir, { recursive: true, force: true });
  }
  await assert.rejects(s.sync(), /closed/);
});

test('SQLite FULL + archiveSync threadpool: archive rows are synced by the syncer, other writes keep FULL; close syncs what waits', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-walsync-'));
  const file = path.join(dir, 'a.sqlite');
  const plain = SqliteStorage.open(path.join(dir, 'b.sqlite'), { synchronous: 'FULL' });
  assert.equal(plain.archive.walSyncs, undefined, "the default ('commit') syncs inside the commit");
  await plain.close();
  const storage = SqliteStorage.open(file, { synchronous: 'FULL', archiveSync: 'threadpool' });
  try {
    const rec = (seq: number) => ({ username: 'romeo', seq, id: `id${seq}`, with: 'juliet@localhost', withResource: '', outgoing: true, stanza: '<message/>' });
    await Promise.all([1, 2, 3].map((i) => storage.archive.append(rec(i))));
    assert.ok((storage.archive.walSyncs ?? 0) >= 1);
    assert.equal(storage.db.pragma('synchronous', { simple: true }), 2, 'the connection is FULL again after the batch');
    const last = storage.archive.append(rec(4));
    await storage.close(); // commits the queued row and syncs it before the connection goes
    await last;
    const again = SqliteStorage.open(file, { synchronous: 'NORMAL' });
    try {
      assert.equal(again.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM archive').get()?.n, 4);
    } finally {
      await again.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
