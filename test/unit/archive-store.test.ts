/**
 * The SQLite archive store and its group commit, on a real database file:
 * batching, per-row failures (a real trigger), ordering, and the query plans
 * (every page an index seek). What every backend must do is in the storage
 * conformance suite.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { SqliteArchiveStore } from '../../src/storage/sqlite/archive.js';
import type { ArchivePage, ArchiveRecord } from '../../src/storage/archive.js';
import { GroupCommit } from '../../src/storage/group-commit.js';
import { ArchiveClock, archiveIdFor } from '../../src/modules/mam/ids.js';

let dir: string;
let storage: SqliteStorage;
let store: SqliteArchiveStore;
const clock = new ArchiveClock();

function rec(username: string, withJid: string, body: string, id?: string): ArchiveRecord {
  const seq = clock.next();
  return {
    username,
    seq,
    id: id ?? archiveIdFor(seq),
    with: withJid,
    withResource: '',
    outgoing: false,
    stanza: `<message xmlns="jabber:client" type="chat"><body>${body}</body></message>`,
  };
}

before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'verona-archive-'));
  storage = SqliteStorage.open(path.join(dir, 'a.sqlite'), { synchronous: 'NORMAL' });
  store = storage.archive;
});
after(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

test('group commit: rows queued in one turn are committed in one transaction, each promise after its commit', async () => {
  const before = { ...store.stats };
  const rows = Array.from({ length: 20 }, (_, i) => rec('gc', 'a@x', `m${i}`));
  const ps = rows.map((r) => store.append(r));
  // Nothing is committed until the window closes.
  assert.equal(await store.seqOf('gc', rows[0]!.id), undefined);
  await Promise.all(ps);
  assert.equal(store.stats.batches - before.batches, 1);
  assert.equal(store.stats.rows - before.rows, 20);
  for (const r of rows) assert.equal(await store.seqOf('gc', r.id), r.seq);
});

test('group commit: maxBatch splits a burst; a lone row waits one turn at most', async () => {
  const writes: number[] = [];
  const gc = new GroupCommit<number>({ maxBatch: 100, write: (items) => (writes.push(items.length), items.map(() => undefined)) });
  const ps: Promise<void>[] = [];
  for (let i = 0; i < 250; i++) ps.push(gc.add(i));
  await Promise.all(ps);
  assert.deepEqual(writes, [100, 100, 50]);
  const t0 = performance.now();
  await gc.add(1);
  assert.ok(performance.now() - t0 < 50, 'a single item is committed on the next turn');
});

test('group commit: a row refused by the database fails alone; the rest of its batch commits', async () => {
  // A real SQLite failure: a trigger that refuses one body, and a duplicate id (unique index).
  storage.db.exec(`CREATE TRIGGER refuse_poison BEFORE INSERT ON archive WHEN NEW.stanza LIKE '%POISON%' BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END;`);
  try {
    const good1 = rec('fail', 'a@x', 'ok-1');
    const bad = rec('fail', 'a@x', 'POISON');
    const dup = rec('fail', 'a@x', 'dup', good1.id);
    const good2 = rec('fail', 'a@x', 'ok-2');
    const results = await Promise.allSettled([good1, bad, dup, good2].map((r) => store.append(r)));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    assert.match(String((results[1] as PromiseRejectedResult).reason), /refused by test trigger/);
    assert.match(String((results[2] as PromiseRejectedResult).reason), /UNIQUE/);
    const page = await store.page({ username: 'fail', order: 'asc', limit: 10 });
    assert.deepEqual(page.map((r) => r.stanza.match(/<body>(.*)<\/body>/)?.[1]), ['ok-1', 'ok-2']);
  } finally {
    storage.db.exec('DROP TRIGGER refuse_poison');
  }
});

test('group commit: a batch whose transaction fails rejects every row of it', async () => {
  const gc = new GroupCommit<number>({
    write: () => {
      throw new Error('disk full');
    },
  });
  const r = await Promise.allSettled([gc.add(1), gc.add(2)]);
  assert.deepEqual(r.map((x) => x.status), ['rejected', 'rejected']);
});

// Paging 10,000 rows both ways, bounds, byIds, prefs and account deletion: the storage
// conformance suite (test/helpers/storage-conformance.ts), on every backend.

test('ids are time-ordered strings; seq order is id order for server-made ids', () => {
  const c = new ArchiveClock(0, () => 1_700_000_000_000);
  const seqs = Array.from({ length: 3000 }, () => c.next());
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i]! > seqs[i - 1]!, 'strictly increasing within one millisecond');
  const strs = seqs.map(archiveIdFor);
  assert.deepEqual([...strs].sort(), strs);
  // The clock never goes below the stored high-water mark, whatever the system clock says.
  const c2 = new ArchiveClock(5_000_000_000_000_000, () => 1);
  assert.equal(c2.next(), 5_000_000_000_000_001);
});

test('every page shape is an index range read (EXPLAIN QUERY PLAN), never a table scan', () => {
  const shapes: ArchivePage[] = [
    { username: 'u', order: 'asc', limit: 50 },
    { username: 'u', order: 'desc', limit: 50 },
    { username: 'u', afterSeq: 5, order: 'asc', limit: 50 },
    { username: 'u', beforeSeq: 5, order: 'desc', limit: 50 },
    { username: 'u', with: 'j@x', afterSeq: 5, order: 'asc', limit: 50 },
    { username: 'u', with: 'j@x', beforeSeq: 9, order: 'desc', limit: 50 },
    { username: 'u', with: 'j@x', withResource: 'r', minSeq: 1, maxSeq: 9, order: 'asc', limit: 50 },
    { username: 'u', minSeq: 1, maxSeq: 9, order: 'desc', limit: 50 },
  ];
  for (const q of shapes) {
    const { sql, params } = store.pageSql(q);
    const plan = storage.db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...params) as Array<{ detail: string }>;
    const text = plan.map((p) => p.detail).join(' | ');
    assert.match(text, /SEARCH archive USING INDEX archive_by_(user|with)/, `${JSON.stringify(q)}: ${text}`);
    assert.doesNotMatch(text, /SCAN|TEMP B-TREE/, `${JSON.stringify(q)}: ${text}`);
    if (q.afterSeq !== undefined || q.beforeSeq !== undefined || q.minSeq !== undefined) assert.match(text, /rowid[<>]/, `seq bound used in the seek: ${text}`);
  }
  const idPlan = storage.db.prepare('EXPLAIN QUERY PLAN SELECT seq FROM archive WHERE username = ? AND id = ?').all('u', 'x') as Array<{ detail: string }>;
  assert.match(idPlan.map((p) => p.detail).join(' '), /archive_by_id/);
});
