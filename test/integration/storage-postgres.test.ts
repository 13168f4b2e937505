/**
 * The PostgreSQL backend on a real PostgreSQL server (Debian's, started by
 * the test on 127.0.0.80): the storage conformance suite, migrations, the
 * query plan of every MAM page shape (EXPLAIN), per-row failure isolation in
 * the group commit (a real trigger), account deletion across every table,
 * and the database going away and coming back under a running store.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { PostgresStorage } from '../../src/storage/postgres/index.js';
import { PgRosterStore } from '../../src/storage/postgres/roster.js';
import { PgArchiveStore } from '../../src/storage/postgres/archive.js';
import { pgMigrations, runPgMigrations, PgMigrationError } from '../../src/storage/postgres/migrations.js';
import { createPool } from '../../src/storage/postgres/db.js';
import type { ArchivePage, ArchiveRecord } from '../../src/storage/archive.js';
import { ArchiveClock, archiveIdFor } from '../../src/modules/mam/ids.js';
import { openStorage } from '../../src/storage/index.js';
import { loadConfig } from '../../src/config/load.js';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { storageConformance } from '../helpers/storage-conformance.js';

let server: TestPostgres;
before(async () => {
  server = await startPostgres();
});
after(async () => {
  await server?.stop();
});

storageConformance('PostgreSQL', async () => {
  const s = await PostgresStorage.open({ url: await server.createDatabase() });
  return {
    roster: s.roster,
    rosterSmall: new PgRosterStore(s.pool, 2),
    smState: s.smState,
    smSessions: s.smSessions,
    blocklist: s.blocklist,
    pubsub: s.pubsub,
    muc: s.muc,
    push: s.push,
    fastTokens: s.fastTokens,
    accounts: s.accounts,
    kv: s.kv,
    archive: s.archive,
    offline: s.offline,
    deleteUser: (u) => s.deleteUserData(u),
    close: () => s.close(),
  };
});

const clock = new ArchiveClock();
function rec(username: string, withJid: string, body: string, id?: string): ArchiveRecord {
  const seq = clock.next();
  return { username, seq, id: id ?? archiveIdFor(seq), with: withJid, withResource: '', outgoing: false, stanza: `<message xmlns="jabber:client"><body>${body}</body></message>` };
}

test('migrations: applied once, in order; several nodes opening at once migrate once; a newer schema is refused', async () => {
  const url = await server.createDatabase();
  const opened = await Promise.all([1, 2, 3].map(() => PostgresStorage.open({ url, poolSize: 2 })));
  try {
    const applied = opened.map((s) => s.appliedMigrations);
    assert.deepEqual(applied.flat().sort(), pgMigrations.map((m) => m.id).sort(), 'each migration applied by exactly one opener');
    const pool = opened[0]!.pool;
    assert.deepEqual(await runPgMigrations(pool), [], 'nothing left to apply');
    const failing = [...pgMigrations, { id: 'test-0001-broken', sql: 'CREATE TABLE test_half (x int); INSERT INTO nowhere VALUES (1);' }];
    await assert.rejects(runPgMigrations(pool, failing), /migration test-0001-broken failed/);
    const half = await pool.query("SELECT 1 FROM information_schema.tables WHERE table_name = 'test_half'");
    assert.equal(half.rowCount, 0, 'a failed migration is rolled back whole');
    await pool.query("INSERT INTO schema_migrations (id, applied_at) VALUES ('9999-from-the-future', 0)");
    await assert.rejects(PostgresStorage.open({ url }), (e: unknown) => e instanceof PgMigrationError && /newer Verona/.test(e.message));
  } finally {
    await Promise.all(opened.map((s) => s.close()));
  }
});

test('every MAM page shape is an index range scan in seq order (EXPLAIN), never a sequential scan or a sort', async () => {
  const s = await PostgresStorage.open({ url: await server.createDatabase() });
  try {
    // Enough rows over enough accounts and contacts that the planner has a real choice.
    const rows: ArchiveRecord[] = [];
    // 20 accounts, 3 contacts each, interleaved in time: every (account, contact) pair has 500 rows.
    for (let i = 0; i < 30000; i++) rows.push(rec(`u${i % 20}`, `c${Math.floor(i / 20) % 3}@x`, `b${i}`));
    for (let i = 0; i < rows.length; i += 1000) await Promise.all(rows.slice(i, i + 1000).map((r) => s.archive.append(r)));
    await s.pool.query('ANALYZE archive');
    const shapes: ArchivePage[] = [
      { username: 'u1', order: 'asc', limit: 50 },
      { username: 'u1', order: 'desc', limit: 50 },
      { username: 'u1', afterSeq: 5, order: 'asc', limit: 50 },
      { username: 'u1', beforeSeq: Number.MAX_SAFE_INTEGER, order: 'desc', limit: 50 },
      { username: 'u1', with: 'c1@x', afterSeq: 5, order: 'asc', limit: 50 },
      { username: 'u1', with: 'c1@x', beforeSeq: Number.MAX_SAFE_INTEGER, order: 'desc', limit: 50 },
      { username: 'u1', with: 'c1@x', withResource: 'r', minSeq: 1, maxSeq: Number.MAX_SAFE_INTEGER, order: 'asc', limit: 50 },
      { username: 'u1', minSeq: 1, maxSeq: Number.MAX_SAFE_INTEGER, order: 'desc', limit: 50 },
      { username: 'u1', order: 'asc', limit: 50, offset: 100 },
    ];
    for (const q of shapes) {
      const { sql, params } = s.archive.pageSql(q);
      const plan = (await s.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
      assert.doesNotMatch(plan, /Seq Scan/, `${JSON.stringify(q)}:\n${plan}`);
      assert.match(plan, /Index Cond: \(+username = /, `the account is the start of the seek:\n${plan}`);
      // The seq bound is part of the index condition (a seek), not a filter applied after it.
      if (q.afterSeq !== undefined || q.beforeSeq !== undefined || q.minSeq !== undefined) assert.match(plan, /(Index|Recheck) Cond: .*seq [<>]/, plan);
      if (q.withResource !== undefined) {
        // A full-JID filter is the contact's index range filtered by resource (as in SQLite): the
        // planner may collect that range by bitmap and sort it; bounded by one conversation.
        assert.match(plan, /(Index Scan( Backward)? using|Bitmap Index Scan on) archive_by_with/, `${JSON.stringify(q)}:\n${plan}`);
        continue;
      }
      assert.match(plan, /Index Scan( Backward)? using archive_(pkey|by_with) on archive/, `${JSON.stringify(q)}:\n${plan}`);
      assert.doesNotMatch(plan, /Sort|Bitmap/, `rows come in index order, the LIMIT stops the scan:\n${JSON.stringify(q)}:\n${plan}`);
    }
    // The rest of a MAM answer: the RSM count (capped) and the archive's first and last row.
    const explain = async (sql: string, params: unknown[]): Promise<string> =>
      (await s.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
    for (const q of [{ username: 'u1' }, { username: 'u1', with: 'c1@x', minSeq: 1 }, { username: 'u1', afterSeq: 5 }]) {
      const { sql, params } = s.archive.countSql(q, 10000);
      const plan = await explain(sql, params);
      // Counting needs no order: the planner may collect the account's range by bitmap when it
      // expects fewer rows than the cap; either way it is the account's range of one index.
      assert.doesNotMatch(plan, /Seq Scan|Sort/, `count ${JSON.stringify(q)}:\n${plan}`);
      assert.match(plan, /(Index (Only )?Scan( Backward)? using|Bitmap Index Scan on) archive_(pkey|by_with)/, `count ${JSON.stringify(q)}:\n${plan}`);
      assert.match(plan, /Index Cond: \(+username = /, `count ${JSON.stringify(q)}:\n${plan}`);
    }
    const boundsPlan = await explain(PgArchiveStore.BOUNDS_SQL, ['u1']);
    assert.doesNotMatch(boundsPlan, /Seq Scan|Sort/, boundsPlan);
    assert.equal(boundsPlan.match(/Index Scan( Backward)? using archive_pkey/g)?.length, 2, boundsPlan);
    const idPlan = (await s.pool.query<{ 'QUERY PLAN': string }>('EXPLAIN SELECT seq FROM archive WHERE username = $1 AND id = $2', ['u1', 'x'])).rows
      .map((r) => r['QUERY PLAN'])
      .join('\n');
    assert.match(idPlan, /archive_by_id/);
  } finally {
    await s.close();
  }
});

test('group commit: one statement per batch; a row refused by a trigger fails alone, the rest of its batch commits', async () => {
  const s = await PostgresStorage.open({ url: await server.createDatabase() });
  try {
    const before = { ...s.archive.stats };
    const burst = Array.from({ length: 50 }, (_, i) => rec('gc', 'a@x', `m${i}`));
    await Promise.all(burst.map((r) => s.archive.append(r)));
    const batches = s.archive.stats.batches - before.batches;
    assert.ok(batches <= 2, `50 rows queued in one turn take at most 2 commits (took ${batches})`);
    // One transaction per batch: every row carries the id of the transaction that wrote it (xmin).
    const xids = async (u: string): Promise<number> => Number((await s.pool.query<{ n: number }>('SELECT count(DISTINCT xmin::text)::int AS n FROM archive WHERE username = $1', [u])).rows[0]?.n);
    assert.equal(await xids('gc'), batches, 'each batch is exactly one transaction');

    await s.pool.query(`CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN IF NEW.stanza LIKE '%POISON%' THEN RAISE EXCEPTION 'refused by test trigger'; END IF; RETURN NEW; END $$`);
    await s.pool.query('CREATE TRIGGER refuse_poison BEFORE INSERT ON archive FOR EACH ROW EXECUTE FUNCTION refuse_poison()');
    const good1 = rec('fail', 'a@x', 'ok-1');
    const bad = rec('fail', 'a@x', 'POISON');
    const dup = rec('fail', 'a@x', 'dup', good1.id);
    const good2 = rec('fail', 'a@x', 'ok-2');
    const results = await Promise.allSettled([good1, bad, dup, good2].map((r) => s.archive.append(r)));
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'rejected', 'fulfilled']);
    assert.match(String((results[1] as PromiseRejectedResult).reason), /refused by test trigger/);
    assert.match(String((results[2] as PromiseRejectedResult).reason), /duplicate key|duplicate id/);
    assert.ok(s.archive.stats.rowByRow >= 1, 'the trigger made the batch go row by row');
    const page = await s.archive.page({ username: 'fail', order: 'asc', limit: 10 });
    assert.deepEqual(page.map((r) => r.stanza.match(/<body>(.*)<\/body>/)?.[1]), ['ok-1', 'ok-2']);
  } finally {
    await s.close();
  }
});

test('deleteUserData removes the account from every table with a username column, including later ones', async () => {
  const s = await PostgresStorage.open({ url: await server.createDatabase() });
  try {
    await s.pool.query('CREATE TABLE test_later (id serial PRIMARY KEY, username TEXT NOT NULL, body TEXT)');
    for (const u of ['romeo', 'juliet']) {
      await s.kv.set(u, 'vcard', 'main', `<vCard>${u}</vCard>`);
      await s.archive.append(rec(u, 'x@y', 'hi'));
      await s.pool.query('INSERT INTO test_later (username, body) VALUES ($1, $2)', [u, 'hello']);
    }
    const tables = await s.userTables();
    for (const name of ['accounts', 'kv', 'archive', 'roster_items', 'pubsub_items', 'offline', 'blocklist', 'sm_state', 'push_registrations', 'fast_tokens', 'test_later']) assert.ok(tables.includes(name), name);
    await s.deleteUserData('romeo');
    assert.deepEqual((await s.pool.query('SELECT username FROM test_later')).rows, [{ username: 'juliet' }]);
    assert.equal(await s.archive.bounds('romeo'), undefined);
    assert.ok(await s.archive.bounds('juliet'));
  } finally {
    await s.close();
  }
});

test('openStorage picks PostgreSQL from the config (storage.driver: postgres, storage.postgres.url)', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-open-pg-'));
  try {
    const url = await server.createDatabase();
    writeFileSync(path.join(dir, 'verona.yml'), JSON.stringify({ dataDir: 'd', storage: { driver: 'postgres', postgres: { url, poolSize: 3 } } }));
    const config = loadConfig({ cwd: dir, file: 'verona.yml', checkFiles: false });
    const s = await openStorage(config);
    try {
      assert.ok(s instanceof PostgresStorage);
      assert.equal(s.pool.options.max, 3);
      await s.kv.set('romeo', 'x', 'y', 'z');
      assert.equal(await s.kv.get('romeo', 'x', 'y'), 'z');
    } finally {
      await s.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the database goes away: archive writes fail (archive-failed), then succeed again without reopening the store', async () => {
  // A server of its own: this test stops it.
  const own = await startPostgres();
  const s = await PostgresStorage.open({ url: await own.createDatabase(), onPoolError: () => undefined });
  try {
    await s.archive.append(rec('down', 'a@x', 'before'));
    await own.pause();
    const during = await Promise.allSettled([s.archive.append(rec('down', 'a@x', 'during-1')), s.archive.append(rec('down', 'a@x', 'during-2'))]);
    assert.deepEqual(during.map((r) => r.status), ['rejected', 'rejected'], 'nothing is acknowledged while the database is down');
    await own.restart();
    // The pool replaces the broken connections on its own.
    let ok = false;
    for (let i = 0; i < 50 && !ok; i++) {
      ok = await s.archive.append(rec('down', 'a@x', 'after')).then(
        () => true,
        () => new Promise<boolean>((r) => setTimeout(() => r(false), 200)),
      );
    }
    assert.ok(ok, 'archive writes work again');
    const bodies = (await s.archive.page({ username: 'down', order: 'asc', limit: 10 })).map((r) => r.stanza.match(/<body>(.*)<\/body>/)?.[1]);
    assert.equal(bodies[0], 'before');
    assert.ok(bodies.includes('after'));
    assert.ok(!bodies.includes('during-1') && !bodies.includes('during-2'), 'failed rows are not there');
  } finally {
    await s.close();
    await own.stop();
  }
});

test('a pool of the backend parses BIGINT as numbers without touching the global pg type table', async () => {
  const pool = createPool({ url: server.adminUrl, poolSize: 1 });
  try {
    const r = await pool.query<{ n: number }>('SELECT 1700000000000123::bigint AS n');
    assert.equal(r.rows[0]?.n, 1700000000000123);
  } finally {
    await pool.end();
  }
  const c = new pg.Client({ connectionString: server.adminUrl });
  await c.connect();
  try {
    assert.equal((await c.query<{ n: string }>('SELECT 5::bigint AS n')).rows[0]?.n, '5');
  } finally {
    await c.end();
  }
});
