/**
 * The SQLite backend on real files: migrations, accounts, key/value,
 * deleting all of an account's data, and a second process writing to the
 * same file while this one holds the write lock.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { MigrationError, migrations, runMigrations, type Migration } from '../../src/storage/sqlite/migrations.js';
import type { AccountRecord } from '../../src/storage/types.js';
import { deriveAllScram } from '../../src/sasl/credentials.js';
import { openStorage } from '../../src/storage/index.js';
import { loadConfig } from '../../src/config/load.js';

function dbPath(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'verona-sqlite-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return join(dir, 'sub', 'verona.sqlite');
}

async function account(username: string, password: string): Promise<AccountRecord> {
  return { username, createdAt: 1_700_000_000_000, scram: await deriveAllScram(password, 4096) };
}

test('open creates the file in WAL mode and applies every migration exactly once', async (t) => {
  const path = dbPath(t);
  const s1 = SqliteStorage.open(path, { synchronous: 'NORMAL' });
  assert.deepEqual(s1.appliedMigrations, migrations.map((m) => m.id));
  assert.equal(s1.db.pragma('journal_mode', { simple: true }), 'wal');
  assert.equal(s1.db.pragma('synchronous', { simple: true }), 1, 'NORMAL');
  assert.ok((s1.db.pragma('busy_timeout', { simple: true }) as number) >= 1000);
  await s1.close();
  await s1.close(); // idempotent

  const s2 = SqliteStorage.open(path, { synchronous: 'FULL' });
  assert.deepEqual(s2.appliedMigrations, [], 'reopening applies nothing');
  assert.equal(s2.db.pragma('synchronous', { simple: true }), 2, 'FULL');
  const rows = s2.db.prepare('SELECT id FROM schema_migrations ORDER BY id').all() as Array<{ id: string }>;
  assert.deepEqual(rows.map((r) => r.id), migrations.map((m) => m.id));
  assert.deepEqual(runMigrations(s2.db), [], 'running again by hand applies nothing either');
  await s2.close();
});

test('a later migration is applied on top; a failing one leaves nothing behind', async (t) => {
  const path = dbPath(t);
  const s = SqliteStorage.open(path, { synchronous: 'NORMAL' });
  t.after(() => s.close());
  const extra: Migration = { id: 'test-0001-notes', sql: 'CREATE TABLE test_notes (username TEXT NOT NULL, body TEXT NOT NULL)' };
  assert.deepEqual(runMigrations(s.db, [...migrations, extra]), ['test-0001-notes']);
  assert.deepEqual(runMigrations(s.db, [...migrations, extra]), []);

  const broken: Migration = { id: 'test-0002-broken', sql: 'CREATE TABLE test_half (x INTEGER); INSERT INTO nowhere VALUES (1);' };
  assert.throws(() => runMigrations(s.db, [...migrations, extra, broken]), /migration test-0002-broken failed: no such table: nowhere/);
  const half = s.db.prepare("SELECT name FROM sqlite_schema WHERE name = 'test_half'").get();
  assert.equal(half, undefined, 'the failed migration was rolled back as a whole');
  const recorded = s.db.prepare("SELECT id FROM schema_migrations WHERE id = 'test-0002-broken'").get();
  assert.equal(recorded, undefined);

  assert.throws(() => runMigrations(s.db, [...migrations, extra, extra]), /duplicate migration id test-0001-notes/);
});

test('a database migrated by a newer version is refused', async (t) => {
  const path = dbPath(t);
  const s = SqliteStorage.open(path, { synchronous: 'NORMAL' });
  runMigrations(s.db, [...migrations, { id: 'test-9999-future', sql: 'CREATE TABLE test_future (x)' }]);
  await s.close();
  assert.throws(() => SqliteStorage.open(path, { synchronous: 'NORMAL' }), (err: unknown) => {
    assert.ok(err instanceof MigrationError);
    assert.match(err.message, /migrated by a newer Verona \(unknown migrations: test-9999-future\)/);
    return true;
  });
});

// accounts and kv: the storage conformance suite (test/helpers/storage-conformance.ts) runs them on every backend.

test('deleteUserData removes the account from every table with a username column, including later ones', async (t) => {
  const s = SqliteStorage.open(dbPath(t), { synchronous: 'NORMAL' });
  t.after(() => s.close());
  // A table a later issue might add through a migration.
  runMigrations(s.db, [...migrations, { id: 'test-0001-archive', sql: 'CREATE TABLE test_archive (id INTEGER PRIMARY KEY, username TEXT NOT NULL, body TEXT)' }]);
  for (const u of ['romeo', 'juliet']) {
    await s.accounts.create(await account(u, 'pw'));
    await s.kv.set(u, 'vcard', 'main', `<vCard>${u}</vCard>`);
    s.db.prepare('INSERT INTO test_archive (username, body) VALUES (?, ?)').run(u, 'hello');
  }
  const tables = s.userTables();
  for (const name of ['accounts', 'kv', 'test_archive']) assert.ok(tables.includes(name), name);
  assert.ok(!tables.includes('schema_migrations'));
  await s.deleteUserData('romeo');
  assert.equal(await s.accounts.exists('romeo'), false);
  assert.equal(await s.kv.get('romeo', 'vcard', 'main'), undefined);
  assert.deepEqual(s.db.prepare('SELECT username FROM test_archive').all(), [{ username: 'juliet' }]);
  assert.equal(await s.accounts.exists('juliet'), true, 'other accounts are untouched');
  assert.equal(await s.kv.get('juliet', 'vcard', 'main'), '<vCard>juliet</vCard>');

  // accounts.delete goes through the same path.
  assert.equal(await s.accounts.delete('juliet'), true);
  assert.deepEqual(s.db.prepare('SELECT username FROM test_archive').all(), []);
});

test('openStorage picks the SQLite backend from the config (PostgreSQL: storage-postgres.test.ts)', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'verona-open-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = loadConfig({ cwd: dir, overrides: { dataDir: 'd' }, checkFiles: false });
  const s = await openStorage(config);
  assert.ok(s instanceof SqliteStorage);
  assert.equal(s.path, join(dir, 'd', 'verona.sqlite'));
  await s.close();
});

test('a second process writes to the same file while this one holds the write lock', async (t) => {
  const path = dbPath(t);
  const s = SqliteStorage.open(path, { synchronous: 'NORMAL' });
  t.after(() => s.close());
  await s.accounts.create(await account('romeo', 'pw'));

  const moduleUrl = new URL('../../src/storage/sqlite/index.js', import.meta.url).href;
  const script = `
    import { SqliteStorage } from ${JSON.stringify(moduleUrl)};
    const s = SqliteStorage.open(process.argv[1], { synchronous: 'NORMAL' });
    process.stdout.write('opened\\n');
    const before = await s.accounts.exists('romeo');
    const t0 = Date.now();
    await s.kv.set('juliet', 'vcard', 'main', 'from the other process');
    process.stdout.write(JSON.stringify({ before, waited: Date.now() - t0 }) + '\\n');
    await s.close();
  `;
  // Hold the write lock, start the other process, and release the lock only
  // after it has opened the file and is (very likely) waiting on the lock.
  s.db.exec('BEGIN IMMEDIATE');
  s.db.prepare("INSERT INTO kv (username, store, key, value) VALUES ('romeo', 'x', 'y', 'z')").run();
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const opened = new Promise<void>((resolve) =>
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('opened')) resolve();
    }),
  );
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  await Promise.race([opened, exited]);
  await new Promise((r) => setTimeout(r, 300));
  s.db.exec('COMMIT');
  const code = await exited;
  assert.equal(code, 0, `child failed: ${err}`);
  const report = JSON.parse(out.trim().split('\n').pop()!) as { before: boolean; waited: number };
  assert.equal(report.before, true, 'the other process reads committed data');
  assert.ok(report.waited >= 100, `the write waited for the lock instead of failing (waited ${report.waited} ms)`);
  assert.equal(await s.kv.get('juliet', 'vcard', 'main'), 'from the other process');

  // And plain better-sqlite3 on the file sees the same rows (no private caching).
  const raw = new Database(path, { readonly: true });
  t.after(() => raw.close());
  assert.deepEqual(raw.prepare("SELECT value FROM kv WHERE username = 'juliet'").get(), { value: 'from the other process' });
});

test('several processes opening a new file at the same time all succeed, migrating it once', async (t) => {
  const path = dbPath(t);
  const moduleUrl = new URL('../../src/storage/sqlite/index.js', import.meta.url).href;
  const script = `
    import { SqliteStorage } from ${JSON.stringify(moduleUrl)};
    const s = SqliteStorage.open(process.argv[1], { synchronous: 'NORMAL' });
    process.stdout.write(JSON.stringify(s.appliedMigrations));
    await s.close();
  `;
  const runs = [0, 1, 2].map(
    () =>
      new Promise<{ code: number | null; out: string; err: string }>((resolve) => {
        const c = spawn(process.execPath, ['--input-type=module', '-e', script, path], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        c.stdout.on('data', (d: Buffer) => (out += d.toString()));
        c.stderr.on('data', (d: Buffer) => (err += d.toString()));
        c.on('exit', (code) => resolve({ code, out, err }));
      }),
  );
  const results = await Promise.all(runs);
  for (const r of results) assert.equal(r.code, 0, r.err);
  const applied = results.flatMap((r) => JSON.parse(r.out) as string[]).sort();
  assert.deepEqual(applied, migrations.map((m) => m.id).sort(), 'each migration applied by exactly one process');
});
