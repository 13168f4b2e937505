/**
 * One conformance suite for the push registration and FAST token stores:
 * the in-memory reference and SQLite; account deletion removes both.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { MemoryPushStore, type PushStore } from '../../src/storage/push.js';
import { MemoryFastTokenStore, type FastTokenStore } from '../../src/storage/fast.js';

function pushSuite(name: string, make: () => PushStore): void {
  describe(`PushStore: ${name}`, () => {
    test('put, list, replace, remove one node and all nodes of an app server', async () => {
      const s = make();
      const base = { username: 'romeo', jid: 'push.example', resource: 'phone', options: '', createdAt: 1 };
      await s.put({ ...base, node: 'a' });
      await s.put({ ...base, node: 'b', resource: 'tablet' });
      await s.put({ ...base, node: 'a', options: '<x/>', createdAt: 2 });
      await s.put({ ...base, username: 'juliet', node: 'j' });
      const list = await s.list('romeo');
      assert.deepEqual(list.map((r) => [r.node, r.resource, r.options]).sort(), [['a', 'phone', '<x/>'], ['b', 'tablet', '']]);
      assert.deepEqual((await s.usernames()).sort(), ['juliet', 'romeo']);
      assert.equal(await s.remove('romeo', 'push.example', 'a'), 1);
      assert.equal(await s.remove('romeo', 'push.example'), 1);
      assert.deepEqual(await s.list('romeo'), []);
      assert.deepEqual(await s.usernames(), ['juliet']);
    });
  });
}

function fastSuite(name: string, make: () => FastTokenStore): void {
  describe(`FastTokenStore: ${name}`, () => {
    test('add, list (expired ones left out), count, remove by agent keeping one, remove', async () => {
      const s = make();
      const now = Date.now();
      const t = (k: number, agent: string, expiresAt = now + 60000) => ({
        username: 'romeo', agent, mechanism: 'HT-SHA-256-NONE', keyHash: Buffer.alloc(32, k), credStamp: 'c', createdAt: now, expiresAt, count: 0,
      });
      await s.add(t(1, 'ua1'));
      await s.add(t(2, 'ua1'));
      await s.add(t(3, 'ua2'));
      await s.add(t(4, 'ua2', now - 1));
      const keys = async (): Promise<number[]> => (await s.list('romeo')).filter((x) => x.expiresAt > Date.now()).map((x) => x.keyHash[0] as number).sort();
      assert.deepEqual(await keys(), [1, 2, 3]);
      await s.setCount('romeo', Buffer.alloc(32, 1), 7);
      assert.equal((await s.list('romeo')).find((x) => x.keyHash[0] === 1)?.count, 7);
      await s.removeForAgent('romeo', 'ua1', Buffer.alloc(32, 2));
      assert.deepEqual(await keys(), [2, 3]);
      await s.remove('romeo', Buffer.alloc(32, 3));
      assert.deepEqual(await keys(), [2]);
    });
  });
}

pushSuite('memory', () => new MemoryPushStore());
fastSuite('memory', () => new MemoryFastTokenStore());
pushSuite('sqlite', () => SqliteStorage.open(':memory:', { synchronous: 'NORMAL' }).push);
fastSuite('sqlite', () => SqliteStorage.open(':memory:', { synchronous: 'NORMAL' }).fastTokens);

test('deleting an account removes its push registrations and FAST tokens', async () => {
  const st = SqliteStorage.open(':memory:', { synchronous: 'NORMAL' });
  await st.push.put({ username: 'romeo', jid: 'push.example', node: 'a', resource: 'phone', options: '', createdAt: 1 });
  await st.fastTokens.add({ username: 'romeo', agent: 'ua', mechanism: 'HT-SHA-256-NONE', keyHash: Buffer.alloc(32, 1), credStamp: 'c', createdAt: 1, expiresAt: Date.now() + 60000, count: 0 });
  await st.deleteUserData('romeo');
  assert.deepEqual(await st.push.list('romeo'), []);
  assert.deepEqual(await st.fastTokens.list('romeo'), []);
  await st.close();
});
