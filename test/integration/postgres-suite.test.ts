/**
 * The server's own integration tests, run once more with every server on
 * PostgreSQL: MAM (10,000-message archive, paging, catch-up), MR2 forks and
 * archive ids, roster, offline, carbons, account removal, MUC rooms (kept
 * across a restart), push registrations and FAST tokens. The
 * same test files as on SQLite, in a
 * child test runner whose servers get a database each on the PostgreSQL
 * server started here (test/helpers/server.ts reads VERONA_TEST_PG_URL).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';

const HERE = path.dirname(fileURLToPath(import.meta.url));
// muc (persistent rooms across a restart), push (registrations) and sasl2 (FAST tokens) use the
// stores PostgreSQL gained in issue 16. VERONA_PG_SUITE_FILES=a,b runs a subset (local runs).
const ALL_FILES = ['mam', 'mr2', 'roster', 'offline', 'carbons', 'register', 'muc', 'push', 'sasl2'];
const FILES = process.env.VERONA_PG_SUITE_FILES ? process.env.VERONA_PG_SUITE_FILES.split(',').filter((f) => ALL_FILES.includes(f)) : ALL_FILES;

let pgServer: TestPostgres;
before(async () => {
  pgServer = await startPostgres();
});
after(async () => {
  await pgServer?.stop();
});

test(`the integration tests ${FILES.join(', ')} pass with the server on PostgreSQL`, { timeout: 1_200_000 }, async (t) => {
  const files = FILES.map((f) => path.join(HERE, `${f}.test.js`));
  // A runner of its own: without NODE_TEST_CONTEXT, which would make it refuse to run files inside a test.
  const env: NodeJS.ProcessEnv = { ...process.env, VERONA_TEST_PG_URL: pgServer.adminUrl };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, ['--test', '--test-concurrency=1', '--test-timeout=300000', '--test-reporter=tap', ...files], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const code = await new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const summary = out.split('\n').filter((l) => /^# (tests|pass|fail|cancelled|skipped) /.test(l));
  t.diagnostic(summary.join('; '));
  const failed = out.split('\n').filter((l) => /^\s*not ok /.test(l));
  assert.equal(code, 0, `failing on PostgreSQL:\n${failed.join('\n')}\n\n${out.slice(-6000)}`);
  assert.match(out, /^# pass [1-9]/m, 'the child run ran tests');
  assert.match(out, /^# fail 0$/m);
});
