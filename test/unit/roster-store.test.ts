/**
 * RosterStore conformance: the same cases against the SQLite store (a real
 * database file opened through SqliteStorage, so the migration runs) and the
 * in-memory reference store.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { SqliteRosterStore } from '../../src/storage/sqlite/roster.js';
import { MemoryRosterStore, type RosterItemData, type RosterStore } from '../../src/storage/roster.js';

const juliet: RosterItemData = { jid: 'juliet@localhost', name: 'Juliet', subscription: 'both', ask: false, approved: false, groups: ['Capulets', 'Friends'] };
const nurse: RosterItemData = { jid: 'nurse@localhost', subscription: 'none', ask: true, approved: false, groups: [] };

function conformance(name: string, make: () => { store: RosterStore; small: RosterStore; close(): void; deleteUser(u: string): Promise<void> }): void {
  describe(name, () => {
    let h: ReturnType<typeof make>;
    before(() => {
      h = make();
    });
    after(() => h.close());

    test('an empty roster has version 0 and a stable epoch', async () => {
      const a = await h.store.getAll('empty');
      assert.deepEqual(a.items, []);
      assert.equal(a.version.counter, 0);
      assert.ok(a.version.epoch.length > 0);
      assert.equal((await h.store.version('empty')).epoch, a.version.epoch);
    });

    test('put, get, replace; every change bumps the version', async () => {
      const v1 = await h.store.put('romeo', juliet);
      const v2 = await h.store.put('romeo', nurse);
      assert.equal(v2, v1 + 1);
      assert.deepEqual(await h.store.get('romeo', 'juliet@localhost'), { ...juliet, ver: v1 });
      const got = await h.store.get('romeo', 'nurse@localhost');
      assert.deepEqual(got, { ...nurse, ver: v2 });
      assert.equal('name' in (got as object), false, 'no name stays absent');
      const v3 = await h.store.put('romeo', { ...juliet, name: 'J', groups: [] });
      assert.deepEqual(await h.store.get('romeo', 'juliet@localhost'), { ...juliet, name: 'J', groups: [], ver: v3 });
      assert.equal(await h.store.count('romeo'), 2);
      const all = await h.store.getAll('romeo');
      assert.deepEqual(all.items.map((i) => i.jid), ['juliet@localhost', 'nurse@localhost']);
      assert.equal(all.version.counter, v3);
      assert.deepEqual(await h.store.items('romeo'), all.items, 'items() is getAll() without the version');
      assert.deepEqual(await h.store.items('someone-else'), []);
      assert.equal(await h.store.count('someone-else'), 0);
    });

    test('remove leaves a tombstone that changesSince reports; re-adding clears it', async () => {
      const start = (await h.store.version('benvolio')).counter;
      await h.store.put('benvolio', juliet);
      const vPut = await h.store.put('benvolio', nurse);
      const vDel = await h.store.remove('benvolio', 'juliet@localhost');
      assert.equal(vDel, vPut + 1);
      assert.equal(await h.store.remove('benvolio', 'juliet@localhost'), undefined, 'already gone');
      assert.equal(await h.store.get('benvolio', 'juliet@localhost'), undefined);
      const ch = await h.store.changesSince('benvolio', start);
      assert.deepEqual(ch?.items.map((i) => [i.jid, i.ver]), [['nurse@localhost', vPut]]);
      assert.deepEqual(ch?.removed, [{ jid: 'juliet@localhost', ver: vDel }]);
      assert.deepEqual(await h.store.changesSince('benvolio', vDel as number), { items: [], removed: [] });
      assert.equal(await h.store.changesSince('benvolio', (vDel as number) + 5), undefined, 'a version from the future');
      const vBack = await h.store.put('benvolio', juliet);
      const ch2 = await h.store.changesSince('benvolio', start);
      assert.deepEqual(ch2?.removed, []);
      assert.deepEqual(ch2?.items.map((i) => [i.jid, i.ver]), [['nurse@localhost', vPut], ['juliet@localhost', vBack]]);
    });

    test('pruned tombstones raise the floor: older versions cannot be diffed', async () => {
      // `small` keeps 2 tombstones.
      for (const j of ['a', 'b', 'c', 'd']) await h.small.put('mercutio', { ...nurse, jid: `${j}@localhost` });
      const before = (await h.small.version('mercutio')).counter;
      for (const j of ['a', 'b', 'c']) await h.small.remove('mercutio', `${j}@localhost`);
      const v = await h.small.version('mercutio');
      assert.ok(v.floor > before, `floor ${v.floor} > ${before}`);
      assert.equal(await h.small.changesSince('mercutio', before), undefined);
      const ch = await h.small.changesSince('mercutio', v.floor);
      assert.deepEqual(ch?.removed.map((r) => r.jid), ['b@localhost', 'c@localhost']);
    });

    test('pending requests: add, replace with the newer stanza, list, remove', async () => {
      await h.store.addPending('juliet', 'romeo@localhost', "<presence type='subscribe'/>");
      await h.store.addPending('juliet', 'paris@localhost', "<presence type='subscribe'><status>1</status></presence>");
      await h.store.addPending('juliet', 'romeo@localhost', "<presence type='subscribe'><status>again</status></presence>");
      assert.equal(await h.store.countPending('juliet'), 2);
      const p = await h.store.getPending('juliet', 'romeo@localhost');
      assert.equal(p?.stanza, "<presence type='subscribe'><status>again</status></presence>");
      assert.deepEqual((await h.store.pending('juliet')).map((r) => r.jid).sort(), ['paris@localhost', 'romeo@localhost']);
      await h.store.removePending('juliet', 'romeo@localhost');
      assert.equal(await h.store.getPending('juliet', 'romeo@localhost'), undefined);
      assert.equal(await h.store.countPending('juliet'), 1);
    });

    test('deleting the account removes its roster; a new roster gets a new epoch', async () => {
      await h.store.put('tybalt', juliet);
      await h.store.addPending('tybalt', 'romeo@localhost', '<presence/>');
      const old = await h.store.version('tybalt');
      await h.deleteUser('tybalt');
      assert.equal(await h.store.count('tybalt'), 0);
      assert.equal(await h.store.countPending('tybalt'), 0);
      const fresh = await h.store.version('tybalt');
      assert.notEqual(fresh.epoch, old.epoch);
      assert.equal(fresh.counter, 0);
    });
  });
}

conformance('SqliteRosterStore', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-roster-'));
  const storage = SqliteStorage.open(path.join(dir, 'verona.db'), { synchronous: 'NORMAL' });
  return {
    store: storage.roster,
    small: new SqliteRosterStore(storage.db, 2),
    deleteUser: (u) => storage.deleteUserData(u),
    close: () => {
      void storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

conformance('MemoryRosterStore', () => {
  const store = new MemoryRosterStore();
  const small = new MemoryRosterStore(2);
  return { store, small, deleteUser: async (u) => store.deleteUser(u), close: () => undefined };
});

test('the roster tables are per-account tables (cleaned by deleteUserData)', () => {
  const storage = SqliteStorage.open(':memory:', { synchronous: 'NORMAL' });
  try {
    const t = storage.userTables();
    for (const name of ['roster_items', 'roster_pending', 'roster_tombstones', 'roster_versions']) assert.ok(t.includes(name), name);
  } finally {
    void storage.close();
  }
});
