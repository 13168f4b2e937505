/**
 * The storage conformance suite on the SQLite backend (a real database file
 * opened through SqliteStorage, so every migration runs), plus what only
 * SQLite has: its per-account table list and a reopen of the file.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { SqliteRosterStore } from '../../src/storage/sqlite/roster.js';
import { defaultConfig } from '../../src/modules/pep/config.js';
import { storageConformance } from '../helpers/storage-conformance.js';

const dir = mkdtempSync(path.join(tmpdir(), 'verona-conformance-'));
after(() => rmSync(dir, { recursive: true, force: true }));

storageConformance('SQLite', async () => {
  const s = SqliteStorage.open(path.join(dir, 'conformance.sqlite'), { synchronous: 'NORMAL' });
  return {
    roster: s.roster,
    rosterSmall: new SqliteRosterStore(s.db, 2),
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

test('the roster and pubsub tables are per-account tables (cleaned by deleteUserData)', async () => {
  const s = SqliteStorage.open(':memory:', { synchronous: 'NORMAL' });
  try {
    const t = s.userTables();
    for (const name of ['roster_items', 'roster_pending', 'roster_tombstones', 'roster_versions', 'pubsub_nodes', 'pubsub_items', 'archive', 'offline', 'blocklist', 'sm_state', 'kv', 'push_registrations', 'fast_tokens']) {
      assert.ok(t.includes(name), name);
    }
  } finally {
    await s.close();
  }
});

test('SQLite: PEP data survives a reopen', async () => {
  const file = path.join(dir, 'reopen.sqlite');
  let db = SqliteStorage.open(file, { synchronous: 'NORMAL' });
  assert.ok(db.appliedMigrations.includes('0008-pubsub'));
  await db.pubsub.createNode('juliet', 'urn:n', defaultConfig(1));
  await db.pubsub.putItem('juliet', 'urn:n', { id: 'x', publisher: 'juliet@localhost', publishedAt: 1, payload: '<p/>' }, 5);
  await db.close();
  db = SqliteStorage.open(file, { synchronous: 'NORMAL' });
  try {
    assert.deepEqual((await db.pubsub.items('juliet', 'urn:n')).map((i) => i.id), ['x']);
  } finally {
    await db.close();
  }
});
