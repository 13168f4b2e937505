/**
 * PubsubStore conformance: the same cases against the SQLite store (a real
 * database file opened through SqliteStorage, so the migration runs) and the
 * in-memory reference store; plus account deletion and a reopen for SQLite.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { MemoryPubsubStore, type NodeConfig, type PubsubItem, type PubsubStore } from '../../src/storage/pubsub.js';
import { defaultConfig } from '../../src/modules/pep/config.js';

const config: NodeConfig = defaultConfig(1);
const item = (id: string, payload = `<p xmlns='urn:test'>${id}</p>`): PubsubItem => ({ id, publisher: 'juliet@localhost', publishedAt: 1700000000000, payload });

function conformance(name: string, make: () => { store: PubsubStore; close(): Promise<void> }): void {
  describe(name, () => {
    let h: ReturnType<typeof make>;
    before(() => {
      h = make();
    });
    after(() => h.close());

    test('create, get, list, conflict on create, update', async () => {
      assert.equal(await h.store.createNode('juliet', 'urn:b', config), true);
      assert.equal(await h.store.createNode('juliet', 'urn:a', { ...config, accessModel: 'open' }, { 'romeo@localhost': 'member' }), true);
      assert.equal(await h.store.createNode('juliet', 'urn:a', config), false);
      const a = await h.store.getNode('juliet', 'urn:a');
      assert.equal(a?.config.accessModel, 'open');
      assert.deepEqual(a?.affiliations, { 'romeo@localhost': 'member' });
      assert.deepEqual((await h.store.nodes('juliet')).map((n) => n.node), ['urn:a', 'urn:b']);
      assert.deepEqual(await h.store.nodes('romeo'), []);
      assert.equal(await h.store.updateNode('juliet', 'urn:a', { ...config, maxItems: 'max' }, {}), true);
      assert.equal((await h.store.getNode('juliet', 'urn:a'))?.config.maxItems, 'max');
      assert.deepEqual((await h.store.getNode('juliet', 'urn:a'))?.affiliations, {});
      assert.equal(await h.store.updateNode('juliet', 'urn:none', config, {}), false);
    });

    test('items: publish order, replace moves to newest, trim to keep, max and ids', async () => {
      await h.store.createNode('juliet', 'urn:items', config);
      assert.deepEqual(await h.store.putItem('juliet', 'urn:items', item('1'), 3), []);
      assert.deepEqual(await h.store.putItem('juliet', 'urn:items', item('2'), 3), []);
      assert.deepEqual(await h.store.putItem('juliet', 'urn:items', item('3'), 3), []);
      // Republishing 1 replaces it and makes it the newest.
      assert.deepEqual(await h.store.putItem('juliet', 'urn:items', item('1', `<p xmlns='urn:test'>new</p>`), 3), []);
      assert.deepEqual((await h.store.items('juliet', 'urn:items')).map((i) => i.id), ['2', '3', '1']);
      assert.equal((await h.store.items('juliet', 'urn:items', { ids: ['1'] }))[0]?.payload, `<p xmlns='urn:test'>new</p>`);
      // A fourth item pushes out the oldest.
      assert.deepEqual(await h.store.putItem('juliet', 'urn:items', item('4'), 3), ['2']);
      assert.deepEqual((await h.store.items('juliet', 'urn:items')).map((i) => i.id), ['3', '1', '4']);
      assert.deepEqual((await h.store.items('juliet', 'urn:items', { max: 2 })).map((i) => i.id), ['1', '4']);
      assert.deepEqual(await h.store.items('juliet', 'urn:items', { max: 0 }), []);
      assert.deepEqual((await h.store.items('juliet', 'urn:items', { ids: ['4', 'nope', '3'] })).map((i) => i.id), ['3', '4']);
      assert.deepEqual((await h.store.items('juliet', 'urn:items', { ids: ['4', '3'], max: 1 })).map((i) => i.id), ['4']);
      const [one] = await h.store.items('juliet', 'urn:items', { ids: ['3'] });
      assert.deepEqual(one, item('3'));
    });

    test('retract, trim, delete node removes its items', async () => {
      await h.store.createNode('juliet', 'urn:r', config);
      for (const id of ['a', 'b', 'c']) await h.store.putItem('juliet', 'urn:r', item(id), 10);
      assert.equal(await h.store.retract('juliet', 'urn:r', 'b'), true);
      assert.equal(await h.store.retract('juliet', 'urn:r', 'b'), false);
      assert.deepEqual(await h.store.trim('juliet', 'urn:r', 1), ['a']);
      assert.deepEqual((await h.store.items('juliet', 'urn:r')).map((i) => i.id), ['c']);
      assert.deepEqual(await h.store.trim('juliet', 'urn:r', 0), ['c']);
      await h.store.putItem('juliet', 'urn:r', item('d'), 10);
      assert.equal(await h.store.deleteNode('juliet', 'urn:r'), true);
      assert.equal(await h.store.deleteNode('juliet', 'urn:r'), false);
      assert.equal(await h.store.getNode('juliet', 'urn:r'), undefined);
      // A node created again under the same name starts empty.
      await h.store.createNode('juliet', 'urn:r', config);
      assert.deepEqual(await h.store.items('juliet', 'urn:r'), []);
    });

    test('nodes and items of two accounts are apart', async () => {
      await h.store.createNode('romeo', 'urn:items', config);
      await h.store.putItem('romeo', 'urn:items', item('r'), 5);
      assert.deepEqual((await h.store.items('romeo', 'urn:items')).map((i) => i.id), ['r']);
      assert.ok(!(await h.store.items('juliet', 'urn:items')).some((i) => i.id === 'r'));
    });

    test('caps cache', async () => {
      assert.equal(await h.store.capsGet('sha-1', 'v='), undefined);
      await h.store.capsPut('sha-1', 'v=', { features: ['a', 'b+notify'], identities: ['client/pc'] });
      assert.deepEqual(await h.store.capsGet('sha-1', 'v='), { features: ['a', 'b+notify'], identities: ['client/pc'] });
      assert.equal(await h.store.capsGet('sha-256', 'v='), undefined);
    });
  });
}

const dir = mkdtempSync(path.join(tmpdir(), 'verona-pubsub-'));
after(() => rmSync(dir, { recursive: true, force: true }));

conformance('SqlitePubsubStore', () => {
  const db = SqliteStorage.open(path.join(dir, 'conf.db'), { synchronous: 'NORMAL' });
  return { store: db.pubsub, close: () => db.close() };
});
conformance('MemoryPubsubStore', () => ({ store: new MemoryPubsubStore(), close: async () => undefined }));

test('SQLite: deleting an account removes its nodes and items; data survives a reopen', async () => {
  const file = path.join(dir, 'del.db');
  let db = SqliteStorage.open(file, { synchronous: 'NORMAL' });
  assert.ok(db.appliedMigrations.includes('0008-pubsub'));
  for (const u of ['juliet', 'romeo']) {
    await db.pubsub.createNode(u, 'urn:n', config);
    await db.pubsub.putItem(u, 'urn:n', item('x'), 5);
  }
  await db.pubsub.capsPut('sha-1', 'keep=', { features: ['f'], identities: [] });
  await db.close();
  db = SqliteStorage.open(file, { synchronous: 'NORMAL' });
  try {
    assert.deepEqual((await db.pubsub.items('juliet', 'urn:n')).map((i) => i.id), ['x']);
    await db.deleteUserData('juliet');
    assert.deepEqual(await db.pubsub.nodes('juliet'), []);
    assert.deepEqual(await db.pubsub.items('juliet', 'urn:n'), []);
    assert.deepEqual((await db.pubsub.items('romeo', 'urn:n')).map((i) => i.id), ['x']);
    assert.ok(await db.pubsub.capsGet('sha-1', 'keep='), 'the caps cache belongs to no account');
  } finally {
    await db.close();
  }
});
