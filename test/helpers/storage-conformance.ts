/**
 * The storage conformance suite: one set of cases every backend must pass,
 * run by test/unit/storage-memory.test.ts (the in-memory reference stores),
 * test/unit/storage-sqlite-conformance.test.ts and
 * test/integration/storage-postgres.test.ts. A backend registers the stores
 * it has; a store it lacks has no cases (the in-memory reference set has no
 * accounts, kv, archive or offline store: the server always runs on a
 * database for those).
 *
 * Backend-specific checks (query plans, a database trigger refusing one
 * row, migrations, a second process) stay in each backend's own test file.
 */
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { AccountStore, KeyValueStore, AccountRecord } from '../../src/storage/types.js';
import { AccountExistsError } from '../../src/storage/types.js';
import type { RosterItemData, RosterStore } from '../../src/storage/roster.js';
import type { SmStateStore } from '../../src/storage/sm-state.js';
import type { SmSessionRecord, SmSessionStore } from '../../src/storage/sm-sessions.js';
import type { ArchiveRecord, ArchiveStore } from '../../src/storage/archive.js';
import type { OfflineStore } from '../../src/storage/offline.js';
import type { BlocklistStore } from '../../src/storage/blocklist.js';
import type { NodeConfig, PubsubItem, PubsubStore } from '../../src/storage/pubsub.js';
import type { MucStore, RoomRecord } from '../../src/storage/muc.js';
import type { PushStore } from '../../src/storage/push.js';
import type { FastToken, FastTokenStore } from '../../src/storage/fast.js';
import { defaultConfig } from '../../src/modules/pep/config.js';
import { ArchiveClock, archiveIdFor } from '../../src/modules/mam/ids.js';
import { deriveAllScram, verifyPassword } from '../../src/sasl/credentials.js';
import { accountKey } from '../../src/core/vhosts.js';

export interface BackendUnderTest {
  roster: RosterStore;
  /** A roster store of the same backend that keeps only 2 tombstones per account. */
  rosterSmall: RosterStore;
  smState: SmStateStore;
  smSessions: SmSessionStore;
  blocklist: BlocklistStore;
  pubsub: PubsubStore;
  muc: MucStore;
  push: PushStore;
  fastTokens: FastTokenStore;
  accounts?: AccountStore;
  kv?: KeyValueStore;
  archive?: ArchiveStore;
  offline?: OfflineStore;
  /** Remove every piece of data of an account (Storage.deleteUserData, or the memory stores' deleteUser). */
  deleteUser(username: string): Promise<void>;
  close(): Promise<void>;
}

export type OptionalStore = 'accounts' | 'kv' | 'archive' | 'offline';

export interface ConformanceOptions {
  /** Messages in the paging case (default 10,000). */
  pagingRows?: number;
  /** Which optional stores the backend has (default all): the cases of the others are not registered. */
  stores?: readonly OptionalStore[];
}

const juliet: RosterItemData = { jid: 'juliet@localhost', name: 'Juliet', subscription: 'both', ask: false, approved: false, groups: ['Capulets', 'Friends'] };
const nurse: RosterItemData = { jid: 'nurse@localhost', subscription: 'none', ask: true, approved: false, groups: [] };
const pepConfig: NodeConfig = defaultConfig(1);
const item = (id: string, payload = `<p xmlns='urn:test'>${id}</p>`): PubsubItem => ({ id, publisher: 'juliet@localhost', publishedAt: 1700000000000, payload });

async function account(username: string, password: string): Promise<AccountRecord> {
  return { username, createdAt: 1_700_000_000_000, scram: await deriveAllScram(password, 4096) };
}

export function storageConformance(name: string, open: () => Promise<BackendUnderTest>, opts: ConformanceOptions = {}): void {
  describe(`storage conformance: ${name}`, () => {
    let b: BackendUnderTest;
    before(async () => {
      b = await open();
    });
    after(async () => {
      await b?.close();
    });
    // Stores are known only after open(); each group checks for its store when it runs.
    const need = <K extends keyof BackendUnderTest>(k: K): NonNullable<BackendUnderTest[K]> => {
      const s = b[k];
      assert.ok(s, `backend ${name} has no ${String(k)} store`);
      return s as NonNullable<BackendUnderTest[K]>;
    };

    describe('roster', () => {
      test('an empty roster has version 0 and a stable epoch', async () => {
        const a = await b.roster.getAll('empty');
        assert.deepEqual(a.items, []);
        assert.equal(a.version.counter, 0);
        assert.ok(a.version.epoch.length > 0);
        assert.equal((await b.roster.version('empty')).epoch, a.version.epoch);
      });

      test('put, get, replace; every change bumps the version', async () => {
        const s = b.roster;
        const v1 = await s.put('romeo', juliet);
        const v2 = await s.put('romeo', nurse);
        assert.equal(v2, v1 + 1);
        assert.deepEqual(await s.get('romeo', 'juliet@localhost'), { ...juliet, ver: v1 });
        const got = await s.get('romeo', 'nurse@localhost');
        assert.deepEqual(got, { ...nurse, ver: v2 });
        assert.equal('name' in (got as object), false, 'no name stays absent');
        const v3 = await s.put('romeo', { ...juliet, name: 'J', groups: [] });
        assert.deepEqual(await s.get('romeo', 'juliet@localhost'), { ...juliet, name: 'J', groups: [], ver: v3 });
        assert.equal(await s.count('romeo'), 2);
        const all = await s.getAll('romeo');
        assert.deepEqual(all.items.map((i) => i.jid), ['juliet@localhost', 'nurse@localhost']);
        assert.equal(all.version.counter, v3);
        assert.deepEqual(await s.items('romeo'), all.items, 'items() is getAll() without the version');
        assert.deepEqual(await s.items('someone-else'), []);
        assert.equal(await s.count('someone-else'), 0);
      });

      test('concurrent puts to one roster each get their own version', async () => {
        const vers = await Promise.all(Array.from({ length: 20 }, (_, i) => b.roster.put('crowd', { ...nurse, jid: `c${i}@localhost` })));
        assert.deepEqual([...vers].sort((x, y) => x - y), Array.from({ length: 20 }, (_, i) => i + 1));
        assert.equal((await b.roster.version('crowd')).counter, 20);
      });

      test('remove leaves a tombstone that changesSince reports; re-adding clears it', async () => {
        const s = b.roster;
        const start = (await s.version('benvolio')).counter;
        await s.put('benvolio', juliet);
        const vPut = await s.put('benvolio', nurse);
        const vDel = await s.remove('benvolio', 'juliet@localhost');
        assert.equal(vDel, vPut + 1);
        assert.equal(await s.remove('benvolio', 'juliet@localhost'), undefined, 'already gone');
        assert.equal(await s.get('benvolio', 'juliet@localhost'), undefined);
        const ch = await s.changesSince('benvolio', start);
        assert.deepEqual(ch?.items.map((i) => [i.jid, i.ver]), [['nurse@localhost', vPut]]);
        assert.deepEqual(ch?.removed, [{ jid: 'juliet@localhost', ver: vDel }]);
        assert.deepEqual(await s.changesSince('benvolio', vDel as number), { items: [], removed: [] });
        assert.equal(await s.changesSince('benvolio', (vDel as number) + 5), undefined, 'a version from the future');
        const vBack = await s.put('benvolio', juliet);
        const ch2 = await s.changesSince('benvolio', start);
        assert.deepEqual(ch2?.removed, []);
        assert.deepEqual(ch2?.items.map((i) => [i.jid, i.ver]), [['nurse@localhost', vPut], ['juliet@localhost', vBack]]);
      });

      test('pruned tombstones raise the floor: older versions cannot be diffed', async () => {
        const s = b.rosterSmall;
        for (const j of ['a', 'b', 'c', 'd']) await s.put('mercutio', { ...nurse, jid: `${j}@localhost` });
        const before = (await s.version('mercutio')).counter;
        for (const j of ['a', 'b', 'c']) await s.remove('mercutio', `${j}@localhost`);
        const v = await s.version('mercutio');
        assert.ok(v.floor > before, `floor ${v.floor} > ${before}`);
        assert.equal(await s.changesSince('mercutio', before), undefined);
        const ch = await s.changesSince('mercutio', v.floor);
        assert.deepEqual(ch?.removed.map((r) => r.jid), ['b@localhost', 'c@localhost']);
      });

      test('pending requests: add, replace with the newer stanza, list, remove', async () => {
        const s = b.roster;
        await s.addPending('juliet', 'romeo@localhost', "<presence type='subscribe'/>");
        await s.addPending('juliet', 'paris@localhost', "<presence type='subscribe'><status>1</status></presence>");
        await s.addPending('juliet', 'romeo@localhost', "<presence type='subscribe'><status>again</status></presence>");
        assert.equal(await s.countPending('juliet'), 2);
        const p = await s.getPending('juliet', 'romeo@localhost');
        assert.equal(p?.stanza, "<presence type='subscribe'><status>again</status></presence>");
        assert.deepEqual((await s.pending('juliet')).map((r) => r.jid).sort(), ['paris@localhost', 'romeo@localhost']);
        await s.removePending('juliet', 'romeo@localhost');
        assert.equal(await s.getPending('juliet', 'romeo@localhost'), undefined);
        assert.equal(await s.countPending('juliet'), 1);
      });

      test('deleting the account removes its roster; a new roster gets a new epoch', async () => {
        const s = b.roster;
        await s.put('tybalt', juliet);
        await s.addPending('tybalt', 'romeo@localhost', '<presence/>');
        const old = await s.version('tybalt');
        await b.deleteUser('tybalt');
        assert.equal(await s.count('tybalt'), 0);
        assert.equal(await s.countPending('tybalt'), 0);
        const fresh = await s.version('tybalt');
        assert.notEqual(fresh.epoch, old.epoch);
        assert.equal(fresh.counter, 0);
      });
    });

    describe('sm state', () => {
      test('put, replace, get, prune by end time', async () => {
        const s = b.smState;
        assert.equal(await s.get('romeo', 'r1'), undefined);
        await s.put({ username: 'romeo', id: 'r1', h: 5, reason: 'resume-expired', endedAt: 1000 });
        await s.put({ username: 'romeo', id: 'r2', h: 4294967295, reason: 'shutdown', endedAt: 3000 });
        await s.put({ username: 'romeo', id: 'r1', h: 7, reason: 'shutdown', endedAt: 2000 });
        assert.deepEqual(await s.get('romeo', 'r1'), { username: 'romeo', id: 'r1', h: 7, reason: 'shutdown', endedAt: 2000 });
        assert.equal((await s.get('romeo', 'r2'))?.h, 4294967295, 'h up to 2^32-1 round-trips');
        assert.equal(await s.get('juliet', 'r1'), undefined, 'ids are per account');
        assert.equal(await s.prune(2500), 1);
        assert.equal(await s.get('romeo', 'r1'), undefined);
        assert.equal((await s.get('romeo', 'r2'))?.h, 4294967295);
      });
    });

    describe('sm sessions (hibernated)', () => {
      const rec = (username: string, id: string, node: string, deadline: number): SmSessionRecord => ({
        username, id, resource: 'phone', node, deadline, savedAt: 10, state: JSON.stringify({ v: 1, q: ['<message xmlns="jabber:client">é</message>'] }),
      });
      test('put, replace, get; listed by node and by deadline; take hands a record out once', async () => {
        const s = b.smSessions;
        assert.equal(await s.get('romeo', 'a'), undefined);
        await s.put(rec('romeo', 'a', 'n1', 5000));
        await s.put(rec('romeo', 'b', 'n2', 1000));
        await s.put(rec('juliet', 'a', 'n1', 3000));
        await s.put({ ...rec('romeo', 'a', 'n1', 9000), resource: 'laptop' });
        assert.deepEqual(await s.get('romeo', 'a'), { ...rec('romeo', 'a', 'n1', 9000), resource: 'laptop' });
        assert.deepEqual((await s.byNode('n1')).map((r) => `${r.username}/${r.id}`).sort(), ['juliet/a', 'romeo/a']);
        assert.deepEqual(await s.byNode('n3'), []);
        assert.deepEqual((await s.expired(4000, 10)).map((r) => `${r.username}/${r.id}`), ['romeo/b', 'juliet/a'], 'oldest deadline first');
        assert.deepEqual((await s.expired(4000, 1)).map((r) => r.id), ['b']);
        const taken = await Promise.all([s.take('romeo', 'a'), s.take('romeo', 'a')]);
        assert.equal(taken.filter((t) => t !== undefined).length, 1, 'exactly one taker');
        assert.equal(taken.find((t) => t)?.state, rec('romeo', 'a', 'n1', 0).state, 'state round-trips (non-ASCII too)');
        assert.equal(await s.get('romeo', 'a'), undefined);
        assert.equal(await s.take('romeo', 'a'), undefined);
        await b.deleteUser('juliet');
        assert.equal(await s.get('juliet', 'a'), undefined, 'account deletion removes them');
        assert.equal((await s.get('romeo', 'b'))?.deadline, 1000);
      });
      test('putMany writes a batch (a key twice: the last wins), replaces rows; remove forgets one row, twice is fine', async () => {
        const s = b.smSessions;
        await s.putMany([]);
        await s.putMany([rec('mercutio', 'x', 'n1', 100), rec('mercutio', 'y', 'n1', 200), { ...rec('mercutio', 'x', 'n1', 300), resource: 'pad' }]);
        assert.equal((await s.get('mercutio', 'x'))?.deadline, 300);
        assert.equal((await s.get('mercutio', 'x'))?.resource, 'pad');
        await s.putMany([{ ...rec('mercutio', 'y', 'n2', Number.MAX_SAFE_INTEGER), savedAt: 20 }]);
        assert.deepEqual(await s.get('mercutio', 'y'), { ...rec('mercutio', 'y', 'n2', Number.MAX_SAFE_INTEGER), savedAt: 20 }, 'a live row: the largest deadline round-trips');
        assert.deepEqual((await s.expired(10 ** 15, 100)).filter((r) => r.username === 'mercutio').map((r) => r.id), ['x']);
        await s.remove('mercutio', 'x');
        await s.remove('mercutio', 'x');
        assert.equal(await s.get('mercutio', 'x'), undefined);
        assert.equal((await s.byNode('n2')).some((r) => r.username === 'mercutio' && r.id === 'y'), true);
        await b.deleteUser('mercutio');
      });
    });

    describe('blocklist', () => {
      test('add reports what is new, remove what was there, clear everything; all() lists non-empty lists', async () => {
        const s = b.blocklist;
        assert.deepEqual(await s.list('romeo'), []);
        assert.deepEqual(await s.add('romeo', ['b@x', 'a@x', 'b@x']), ['b@x', 'a@x']);
        assert.deepEqual(await s.add('romeo', ['a@x', 'c@x']), ['c@x']);
        assert.deepEqual(await s.list('romeo'), ['a@x', 'b@x', 'c@x']);
        assert.deepEqual(await s.remove('romeo', ['c@x', 'zzz@x']), ['c@x']);
        await s.add('juliet', ['x.example']);
        const all = await s.all();
        assert.deepEqual(all.get('romeo'), ['a@x', 'b@x']);
        assert.deepEqual(all.get('juliet'), ['x.example']);
        assert.deepEqual(await s.clear('romeo'), ['a@x', 'b@x']);
        assert.equal((await s.all()).has('romeo'), false, 'an emptied list is not listed');
        assert.deepEqual(await s.remove('nobody', ['a@x']), []);
        await s.add('tybalt', ['a@x']);
        await b.deleteUser('tybalt');
        assert.deepEqual(await s.list('tybalt'), []);
      });
    });

    describe('pubsub', () => {
      test('create, get, list, conflict on create, update', async () => {
        const s = b.pubsub;
        assert.equal(await s.createNode('juliet', 'urn:b', pepConfig), true);
        assert.equal(await s.createNode('juliet', 'urn:a', { ...pepConfig, accessModel: 'open' }, { 'romeo@localhost': 'member' }), true);
        assert.equal(await s.createNode('juliet', 'urn:a', pepConfig), false);
        const a = await s.getNode('juliet', 'urn:a');
        assert.equal(a?.config.accessModel, 'open');
        assert.deepEqual(a?.affiliations, { 'romeo@localhost': 'member' });
        assert.deepEqual((await s.nodes('juliet')).map((n) => n.node), ['urn:a', 'urn:b']);
        assert.deepEqual(await s.nodes('romeo'), []);
        assert.equal(await s.updateNode('juliet', 'urn:a', { ...pepConfig, maxItems: 'max' }, {}), true);
        assert.equal((await s.getNode('juliet', 'urn:a'))?.config.maxItems, 'max');
        assert.deepEqual((await s.getNode('juliet', 'urn:a'))?.affiliations, {});
        assert.equal(await s.updateNode('juliet', 'urn:none', pepConfig, {}), false);
      });

      test('items: publish order, replace moves to newest, trim to keep, max and ids', async () => {
        const s = b.pubsub;
        await s.createNode('juliet', 'urn:items', pepConfig);
        assert.deepEqual(await s.putItem('juliet', 'urn:items', item('1'), 3), []);
        assert.deepEqual(await s.putItem('juliet', 'urn:items', item('2'), 3), []);
        assert.deepEqual(await s.putItem('juliet', 'urn:items', item('3'), 3), []);
        assert.deepEqual(await s.putItem('juliet', 'urn:items', item('1', `<p xmlns='urn:test'>new</p>`), 3), []);
        assert.deepEqual((await s.items('juliet', 'urn:items')).map((i) => i.id), ['2', '3', '1']);
        assert.equal((await s.items('juliet', 'urn:items', { ids: ['1'] }))[0]?.payload, `<p xmlns='urn:test'>new</p>`);
        assert.deepEqual(await s.putItem('juliet', 'urn:items', item('4'), 3), ['2']);
        assert.deepEqual((await s.items('juliet', 'urn:items')).map((i) => i.id), ['3', '1', '4']);
        assert.deepEqual((await s.items('juliet', 'urn:items', { max: 2 })).map((i) => i.id), ['1', '4']);
        assert.deepEqual(await s.items('juliet', 'urn:items', { max: 0 }), []);
        assert.deepEqual((await s.items('juliet', 'urn:items', { ids: ['4', 'nope', '3'] })).map((i) => i.id), ['3', '4']);
        assert.deepEqual((await s.items('juliet', 'urn:items', { ids: ['4', '3'], max: 1 })).map((i) => i.id), ['4']);
        const [one] = await s.items('juliet', 'urn:items', { ids: ['3'] });
        assert.deepEqual(one, item('3'));
      });

      test('items published without waiting for each other keep publish order', async () => {
        const s = b.pubsub;
        await s.createNode('juliet', 'urn:burst', pepConfig);
        await Promise.all(['a', 'b', 'c', 'd', 'e'].map((id) => s.putItem('juliet', 'urn:burst', item(id), 3)));
        assert.deepEqual((await s.items('juliet', 'urn:burst')).map((i) => i.id), ['c', 'd', 'e']);
      });

      test('retract, trim (oldest first), delete node removes its items', async () => {
        const s = b.pubsub;
        await s.createNode('juliet', 'urn:r', pepConfig);
        for (const id of ['a', 'b', 'c', 'e', 'f']) await s.putItem('juliet', 'urn:r', item(id), 10);
        assert.equal(await s.retract('juliet', 'urn:r', 'b'), true);
        assert.equal(await s.retract('juliet', 'urn:r', 'b'), false);
        assert.deepEqual(await s.trim('juliet', 'urn:r', 3), ['a']);
        assert.deepEqual(await s.trim('juliet', 'urn:r', 1), ['c', 'e']);
        assert.deepEqual((await s.items('juliet', 'urn:r')).map((i) => i.id), ['f']);
        assert.deepEqual(await s.trim('juliet', 'urn:r', 0), ['f']);
        await s.putItem('juliet', 'urn:r', item('d'), 10);
        assert.equal(await s.deleteNode('juliet', 'urn:r'), true);
        assert.equal(await s.deleteNode('juliet', 'urn:r'), false);
        assert.equal(await s.getNode('juliet', 'urn:r'), undefined);
        await s.createNode('juliet', 'urn:r', pepConfig);
        assert.deepEqual(await s.items('juliet', 'urn:r'), [], 'a node created again starts empty');
      });

      test('nodes and items of two accounts are apart; deleting an account removes its nodes, not the caps cache', async () => {
        const s = b.pubsub;
        await s.createNode('romeo', 'urn:items', pepConfig);
        await s.putItem('romeo', 'urn:items', item('r'), 5);
        assert.deepEqual((await s.items('romeo', 'urn:items')).map((i) => i.id), ['r']);
        assert.ok(!(await s.items('juliet', 'urn:items')).some((i) => i.id === 'r'));
        await s.capsPut('sha-1', 'keep=', { features: ['f'], identities: [] });
        await b.deleteUser('romeo');
        assert.deepEqual(await s.nodes('romeo'), []);
        assert.deepEqual(await s.items('romeo', 'urn:items'), []);
        assert.ok(await s.capsGet('sha-1', 'keep='), 'the caps cache belongs to no account');
      });

      test('caps cache', async () => {
        const s = b.pubsub;
        assert.equal(await s.capsGet('sha-1', 'v='), undefined);
        await s.capsPut('sha-1', 'v=', { features: ['a', 'b+notify'], identities: ['client/pc'] });
        assert.deepEqual(await s.capsGet('sha-1', 'v='), { features: ['a', 'b+notify'], identities: ['client/pc'] });
        assert.equal(await s.capsGet('sha-256', 'v='), undefined);
      });
    });

    describe('muc rooms', () => {
      const room = (name: string, subject?: string): RoomRecord => ({
        room: name,
        config: {
          name: `Room ${name}`, description: '', persistent: true, public: true, membersOnly: false, moderated: false, password: '',
          maxUsers: 100, whois: 'moderators', changeSubject: false, allowInvites: false, allowPm: 'anyone', archive: true, historyLength: 20,
        },
        affiliations: [{ jid: 'romeo@localhost', affiliation: 'owner' }, { jid: 'tybalt@localhost', affiliation: 'outcast', reason: 'brawling' }],
        subject: subject === undefined ? undefined : { text: subject, nick: 'romeo', stamp: 1700000000000 },
        salt: `salt-${name}`,
        createdAt: 1700000000000,
      });

      test('save, list in name order, replace, remove; the stored copy is not the caller\'s object', async () => {
        const s = b.muc;
        assert.deepEqual(await s.rooms(), []);
        const balcony = room('balcony');
        await s.save(room('verona', 'Two households'));
        await s.save(balcony);
        balcony.config.name = 'changed after save';
        const got = await s.rooms();
        assert.deepEqual(got.map((r) => r.room), ['balcony', 'verona']);
        // Stored as JSON on every backend: an absent subject comes back absent.
        assert.deepEqual(got[0], JSON.parse(JSON.stringify(room('balcony'))));
        assert.deepEqual(got[1]?.subject, { text: 'Two households', nick: 'romeo', stamp: 1700000000000 });
        assert.equal(got[0]?.subject, undefined);
        await s.save({ ...room('balcony'), affiliations: [] });
        assert.deepEqual((await s.rooms()).find((r) => r.room === 'balcony')?.affiliations, []);
        await s.remove('balcony');
        await s.remove('never-there');
        assert.deepEqual((await s.rooms()).map((r) => r.room), ['verona']);
        await s.remove('verona');
      });
    });

    describe('push registrations', () => {
      test('put, list, replace, remove one node and all nodes of an app server', async () => {
        const s = b.push;
        const base = { username: 'romeo', jid: 'push.example', resource: 'phone', options: '', createdAt: 1 };
        await s.put({ ...base, node: 'a' });
        await s.put({ ...base, node: 'b', resource: 'tablet' });
        await s.put({ ...base, node: 'a', options: '<x/>', createdAt: 2 });
        await s.put({ ...base, username: 'juliet', node: 'j' });
        const list = await s.list('romeo');
        assert.deepEqual(list.map((r) => [r.node, r.resource, r.options, r.createdAt]).sort(), [['a', 'phone', '<x/>', 2], ['b', 'tablet', '', 1]]);
        assert.deepEqual((await s.usernames()).sort(), ['juliet', 'romeo']);
        assert.equal(await s.remove('romeo', 'push.example', 'a'), 1);
        assert.equal(await s.remove('romeo', 'push.example', 'a'), 0);
        assert.equal(await s.remove('romeo', 'push.example'), 1);
        assert.deepEqual(await s.list('romeo'), []);
        assert.deepEqual(await s.usernames(), ['juliet']);
        await s.remove('juliet', 'push.example');
      });
    });

    describe('FAST tokens', () => {
      const tok = (user: string, k: number, agent: string, expiresAt: number): FastToken => ({
        username: user, agent, mechanism: 'HT-SHA-256-NONE', keyHash: Buffer.alloc(32, k), credStamp: 'c', createdAt: 1700000000000, expiresAt, count: 0,
      });

      test('add, list (expired ones left out), count, remove by agent keeping one, remove', async () => {
        const s = b.fastTokens;
        const later = Date.now() + 3_600_000;
        await s.add(tok('romeo', 1, 'ua1', later));
        await s.add(tok('romeo', 2, 'ua1', later));
        await s.add(tok('romeo', 3, 'ua2', later));
        await s.add(tok('romeo', 4, 'ua2', Date.now() - 1));
        await s.add(tok('juliet', 1, 'ua1', later));
        const keys = async (u = 'romeo'): Promise<number[]> => (await s.list(u)).map((x) => x.keyHash[0] as number).sort();
        assert.deepEqual(await keys(), [1, 2, 3]);
        const one = (await s.list('romeo')).find((x) => x.keyHash[0] === 1);
        assert.deepEqual(one, tok('romeo', 1, 'ua1', later), 'every field comes back');
        await s.setCount('romeo', Buffer.alloc(32, 1), 7);
        assert.equal((await s.list('romeo')).find((x) => x.keyHash[0] === 1)?.count, 7);
        await s.removeForAgent('romeo', 'ua1', Buffer.alloc(32, 2));
        assert.deepEqual(await keys(), [2, 3]);
        await s.removeForAgent('romeo', 'ua2');
        assert.deepEqual(await keys(), [2]);
        await s.remove('romeo', Buffer.alloc(32, 2));
        assert.deepEqual(await keys(), []);
        assert.deepEqual(await keys('juliet'), [1], "another account's tokens are untouched");
      });

      test('deleting an account removes its push registrations and FAST tokens', async () => {
        await b.push.put({ username: 'gone', jid: 'push.example', node: 'a', resource: 'phone', options: '', createdAt: 1 });
        await b.fastTokens.add(tok('gone', 9, 'ua', Date.now() + 60000));
        await b.push.put({ username: 'stays', jid: 'push.example', node: 'a', resource: 'phone', options: '', createdAt: 1 });
        await b.deleteUser('gone');
        assert.deepEqual(await b.push.list('gone'), []);
        assert.deepEqual(await b.fastTokens.list('gone'), []);
        assert.equal((await b.push.list('stays')).length, 1);
      });
    });

    const has = (k: OptionalStore): boolean => (opts.stores ?? ['accounts', 'kv', 'archive', 'offline']).includes(k);

    if (has('accounts') && has('kv')) describe('accounts and kv', () => {
      test('accounts: create, read, change credentials, list, delete', async () => {
        const s = need('accounts');
        const romeo = await account('romeo', 'wherefore');
        assert.equal(await s.exists('romeo'), false);
        assert.equal(await s.get('romeo'), undefined);
        await s.create(romeo);
        await s.create(await account('juliet', 'balcony'));
        assert.equal(await s.exists('romeo'), true);
        assert.deepEqual(await s.get('romeo'), romeo, 'every credential field round-trips');
        await assert.rejects(s.create(await account('romeo', 'again')), AccountExistsError);
        assert.deepEqual(await s.list(), ['juliet', 'romeo']);
        const fresh = await deriveAllScram('new password', 5000);
        assert.equal(await s.setCredentials('romeo', fresh), true);
        assert.equal(await s.setCredentials('nobody', fresh), false);
        const stored = await s.get('romeo');
        assert.equal(stored?.scram['SHA-256'].iterations, 5000);
        assert.equal(await verifyPassword('new password', stored!.scram['SHA-256'], 'SHA-256'), true);
        assert.equal(await verifyPassword('wherefore', stored!.scram['SHA-1'], 'SHA-1'), false);
        assert.equal(await s.delete('romeo'), true);
        assert.equal(await s.delete('romeo'), false);
        assert.deepEqual(await s.list(), ['juliet']);
        await s.delete('juliet');
      });

      test('kv: set, overwrite, list keys per store, remove with undefined', async () => {
        const s = need('kv');
        assert.equal(await s.get('romeo', 'vcard', 'main'), undefined);
        await s.set('romeo', 'vcard', 'main', '<vCard/>');
        await s.set('romeo', 'private', 'storage:bookmarks', '<storage/>');
        await s.set('romeo', 'private', 'a:b', '<b/>');
        await s.set('juliet', 'vcard', 'main', '<vCard>J</vCard>');
        await s.set('romeo', 'vcard', 'main', '<vCard>R</vCard>');
        assert.equal(await s.get('romeo', 'vcard', 'main'), '<vCard>R</vCard>');
        assert.equal(await s.get('juliet', 'vcard', 'main'), '<vCard>J</vCard>');
        assert.deepEqual(await s.keys('romeo', 'private'), ['a:b', 'storage:bookmarks']);
        await s.set('romeo', 'private', 'a:b', undefined);
        assert.deepEqual(await s.keys('romeo', 'private'), ['storage:bookmarks']);
        assert.deepEqual(await s.keys('romeo', 'nothing'), []);
        await b.deleteUser('romeo');
        assert.deepEqual(await s.keys('romeo', 'private'), []);
        assert.equal(await s.get('juliet', 'vcard', 'main'), '<vCard>J</vCard>', 'other accounts are untouched');
      });
    });

    if (has('offline')) describe('offline', () => {
      test('store up to the limit, then refuse; take returns oldest first and empties', async () => {
        const o = need('offline');
        for (let i = 0; i < 3; i++) {
          const ok = await o.store('juliet', { stamp: 1000 + i, stanza: `<message xmlns="jabber:client"><body>${i}</body></message>`, archiveId: i === 1 ? undefined : `A${i}` }, 3);
          assert.equal(ok, true);
        }
        assert.equal(await o.store('juliet', { stamp: 2000, stanza: '<message xmlns="jabber:client"/>', archiveId: undefined }, 3), false);
        assert.equal(await o.count('juliet'), 3);
        const got = await o.take('juliet');
        assert.deepEqual(got.map((m) => [m.stamp, m.archiveId]), [[1000, 'A0'], [1001, undefined], [1002, 'A2']]);
        assert.ok(got[0]!.seq < got[1]!.seq && got[1]!.seq < got[2]!.seq);
        assert.equal(await o.count('juliet'), 0);
        assert.deepEqual(await o.take('juliet'), []);
      });

      test('messages stored without waiting for each other come back in the order they were stored', async () => {
        const o = need('offline');
        await Promise.all(Array.from({ length: 10 }, (_, i) => o.store('order', { stamp: i, stanza: `<message xmlns="jabber:client"><body>${i}</body></message>`, archiveId: undefined }, 100)));
        assert.deepEqual((await o.take('order')).map((m) => m.stamp), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      });

      test('the limit holds when many stores run at once', async () => {
        const o = need('offline');
        const r = await Promise.all(Array.from({ length: 12 }, (_, i) => o.store('crowd', { stamp: i, stanza: '<message xmlns="jabber:client"/>', archiveId: undefined }, 5)));
        assert.equal(r.filter(Boolean).length, 5);
        assert.equal(await o.count('crowd'), 5);
      });

      test('dropArchived removes only the messages that are in the archive', async () => {
        const o = need('offline');
        await o.store('romeo', { stamp: 1, stanza: '<message xmlns="jabber:client"><body>a</body></message>', archiveId: 'X' }, 10);
        await o.store('romeo', { stamp: 2, stanza: '<message xmlns="jabber:client"><body>b</body></message>', archiveId: undefined }, 10);
        assert.equal(await o.dropArchived('romeo'), 1);
        assert.deepEqual((await o.take('romeo')).map((m) => m.stamp), [2]);
        await o.store('tybalt', { stamp: 1, stanza: '<message xmlns="jabber:client"/>', archiveId: undefined }, 10);
        await b.deleteUser('tybalt');
        assert.equal(await o.count('tybalt'), 0);
      });
    });

    if (has('archive')) describe('archive', () => {
      const clock = new ArchiveClock();
      const rec = (username: string, withJid: string, body: string, extra: Partial<ArchiveRecord> = {}): ArchiveRecord => {
        const seq = clock.next();
        return {
          username,
          seq,
          id: archiveIdFor(seq),
          with: withJid,
          withResource: '',
          outgoing: false,
          stanza: `<message xmlns="jabber:client" type="chat"><body>${body}</body></message>`,
          ...extra,
        };
      };
      const bodies = (rows: ArchiveRecord[]): string[] => rows.map((r) => r.stanza.match(/<body>(.*)<\/body>/)?.[1] ?? '');

      test('rows queued together are all committed, each promise after its commit; fields round-trip', async () => {
        const a = need('archive');
        const rows = Array.from({ length: 20 }, (_, i) => rec('gc', 'a@x', `m${i}`, { outgoing: i % 2 === 0, withResource: i === 3 ? 'phone' : '' }));
        await Promise.all(rows.map((r) => a.append(r)));
        for (const r of rows) assert.equal(await a.seqOf('gc', r.id), r.seq);
        assert.deepEqual(await a.page({ username: 'gc', order: 'asc', limit: 100 }), rows);
        assert.equal(await a.seqOf('gc', 'no-such-id'), undefined);
        assert.equal(await a.seqOf('other', rows[0]!.id), undefined, 'ids are per archive');
      });

      test('a duplicate id fails alone; the rest of its batch commits', async () => {
        const a = need('archive');
        const good1 = rec('dup', 'a@x', 'ok-1');
        const dup = rec('dup', 'a@x', 'dup', { id: good1.id });
        const good2 = rec('dup', 'a@x', 'ok-2');
        // Computable sender ids (stream id + message id) are not time-ordered strings.
        const own = rec('dup', 'a@x', 'own', { id: 'stream1-msg1', outgoing: true });
        const results = await Promise.allSettled([good1, dup, good2, own].map((r) => a.append(r)));
        assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
        assert.deepEqual(bodies(await a.page({ username: 'dup', order: 'asc', limit: 10 })), ['ok-1', 'ok-2', 'own']);
        assert.equal(await a.seqOf('dup', 'stream1-msg1'), own.seq);
      });

      test('paging forward and backward yields each message exactly once, in order; filters and counts', async () => {
        const a = need('archive');
        const N = opts.pagingRows ?? 10000;
        const all: ArchiveRecord[] = [];
        const ps: Promise<void>[] = [];
        for (let i = 0; i < N; i++) {
          const r = rec('pager', i % 3 === 0 ? 'nurse@x' : 'juliet@x', `n${i}`, { withResource: i % 5 === 0 ? 'balcony' : '' });
          all.push(r);
          ps.push(a.append(r));
          if (i % 7 === 0) ps.push(a.append(rec('other', 'juliet@x', `o${i}`)));
        }
        await Promise.all(ps);
        const ids = all.filter((r) => r.with === 'juliet@x').map((r) => r.id);
        assert.equal(await a.count({ username: 'pager', with: 'juliet@x' }, N * 2), ids.length);
        assert.equal(await a.count({ username: 'pager' }, N - 1), undefined, 'more than the cap');
        assert.equal(await a.count({ username: 'pager' }, N), N);

        const fwd: string[] = [];
        let after: number | undefined;
        for (;;) {
          const page = await a.page({ username: 'pager', with: 'juliet@x', afterSeq: after, order: 'asc', limit: 97 });
          fwd.push(...page.map((r) => r.id));
          if (page.length < 97) break;
          after = page[page.length - 1]!.seq;
        }
        assert.deepEqual(fwd, ids);

        const back: string[][] = [];
        let beforeSeq: number | undefined;
        for (;;) {
          const page = await a.page({ username: 'pager', with: 'juliet@x', beforeSeq, order: 'desc', limit: 89 });
          back.push(page.map((r) => r.id).reverse());
          if (page.length < 89) break;
          beforeSeq = page[page.length - 1]!.seq;
        }
        assert.deepEqual(back.reverse().flat(), ids);

        // Full-JID filter, time range (inclusive), offset.
        const res = all.filter((r) => r.with === 'juliet@x' && r.withResource === 'balcony');
        const got = await a.page({ username: 'pager', with: 'juliet@x', withResource: 'balcony', order: 'asc', limit: 5 });
        assert.deepEqual(got.map((r) => r.id), res.slice(0, 5).map((r) => r.id));
        const mid = all.slice(100, 110);
        const range = await a.page({ username: 'pager', minSeq: mid[0]!.seq, maxSeq: mid[9]!.seq, order: 'desc', limit: 50 });
        assert.deepEqual(range.map((r) => r.id), mid.map((r) => r.id).reverse());
        const off = await a.page({ username: 'pager', order: 'asc', limit: 3, offset: 10 });
        assert.deepEqual(off.map((r) => r.id), all.slice(10, 13).map((r) => r.id));
        assert.equal(await a.count({ username: 'pager', minSeq: mid[0]!.seq, maxSeq: mid[9]!.seq }, 100), 10);
      });

      test('bounds, byIds, prefs, the high-water mark; deleting the account removes archive and prefs', async () => {
        const a = need('archive');
        const r1 = rec('meta', 'j@x', '1');
        const r2 = rec('meta', 'j@x', '2');
        await Promise.all([a.append(r1), a.append(r2)]);
        const bounds = await a.bounds('meta');
        assert.equal(bounds?.first.id, r1.id);
        assert.equal(bounds?.last.id, r2.id);
        assert.equal(await a.bounds('nobody'), undefined);
        assert.deepEqual((await a.byIds('meta', [r2.id, 'nope', r1.id, r2.id])).map((r) => r.id), [r1.id, r2.id]);
        assert.deepEqual(await a.byIds('meta', []), []);
        assert.ok((await a.highWater()) >= r2.seq);
        assert.equal(await a.getPrefs('meta'), undefined);
        await a.setPrefs('meta', { default: 'roster', always: ['a@x'], never: ['b@x'] });
        await a.setPrefs('meta', { default: 'never', always: ['a@x'], never: [] });
        assert.deepEqual(await a.getPrefs('meta'), { default: 'never', always: ['a@x'], never: [] });
        assert.equal((await a.allPrefs()).get('meta')?.default, 'never');
        await a.flush();
        await b.deleteUser('meta');
        assert.equal(await a.bounds('meta'), undefined);
        assert.equal(await a.getPrefs('meta'), undefined);
      });
    });

    // Virtual hosts (src/core/vhosts.ts): romeo on the primary domain is stored as 'romeo', romeo
    // on b.localhost as 'romeo@b.localhost'. Two people: nothing of one is visible to the other,
    // and deleting one leaves the other whole.
    describe('virtual hosts: the same username on two domains', () => {
      const A = accountKey('a.localhost', 'vromeo', 'a.localhost');
      const B = accountKey('a.localhost', 'vromeo', 'b.localhost');
      test('the two account keys differ and every store keeps them apart', async () => {
        assert.equal(A, 'vromeo');
        assert.equal(B, 'vromeo@b.localhost');
        if (has('accounts') && has('kv')) {
          const s = need('accounts');
          await s.create(await account(A, 'pw-a'));
          await s.create(await account(B, 'pw-b'));
          assert.equal(await verifyPassword('pw-a', (await s.get(A))!.scram['SHA-256'], 'SHA-256'), true);
          assert.equal(await verifyPassword('pw-a', (await s.get(B))!.scram['SHA-256'], 'SHA-256'), false);
          assert.equal(await verifyPassword('pw-b', (await s.get(B))!.scram['SHA-256'], 'SHA-256'), true);
          assert.ok((await s.list()).includes(A) && (await s.list()).includes(B));
          const kv = need('kv');
          await kv.set(A, 'vcard', '', '<vCard>A</vCard>');
          await kv.set(B, 'vcard', '', '<vCard>B</vCard>');
          assert.equal(await kv.get(A, 'vcard', ''), '<vCard>A</vCard>');
          assert.equal(await kv.get(B, 'vcard', ''), '<vCard>B</vCard>');
        }
        await b.roster.put(A, juliet);
        await b.roster.put(B, nurse);
        assert.deepEqual((await b.roster.items(A)).map((i) => i.jid), [juliet.jid]);
        assert.deepEqual((await b.roster.items(B)).map((i) => i.jid), [nurse.jid]);
        await b.blocklist.add(B, ['tybalt@x']);
        assert.deepEqual(await b.blocklist.list(A), []);
        assert.deepEqual(await b.blocklist.list(B), ['tybalt@x']);
        await b.smState.put({ username: B, id: 'vs', h: 3, reason: 'shutdown', endedAt: 1 });
        assert.equal(await b.smState.get(A, 'vs'), undefined);
        assert.equal((await b.smState.get(B, 'vs'))?.h, 3);
        assert.equal(await b.pubsub.createNode(B, 'urn:v', pepConfig), true);
        assert.equal(await b.pubsub.createNode(A, 'urn:v', pepConfig), true, 'the same node name is free for the other account');
        await b.pubsub.putItem(B, 'urn:v', item('ib'), 10);
        assert.deepEqual((await b.pubsub.items(A, 'urn:v')).map((i) => i.id), []);
        assert.deepEqual((await b.pubsub.items(B, 'urn:v')).map((i) => i.id), ['ib']);
        if (has('offline')) {
          const o = need('offline');
          await o.store(B, { stamp: 1, stanza: '<message xmlns="jabber:client"><body>b</body></message>', archiveId: undefined }, 10);
          assert.equal(await o.count(A), 0);
          assert.equal(await o.count(B), 1);
        }
        if (has('archive')) {
          const a = need('archive');
          const clock = new ArchiveClock();
          const row = (username: string, body: string): ArchiveRecord => {
            const seq = clock.next();
            return { username, seq, id: archiveIdFor(seq), with: 'juliet@b.localhost', withResource: '', outgoing: true, stanza: `<message xmlns="jabber:client"><body>${body}</body></message>` };
          };
          const ra = row(A, 'from a');
          const rb = row(B, 'from b');
          await Promise.all([a.append(ra), a.append(rb)]);
          assert.deepEqual((await a.page({ username: A, order: 'asc', limit: 10 })).map((r) => r.id), [ra.id]);
          assert.deepEqual((await a.page({ username: B, order: 'asc', limit: 10 })).map((r) => r.id), [rb.id]);
          await a.flush();
        }
        // Deleting b's romeo leaves a's romeo whole.
        if (has('accounts')) await need('accounts').delete(B);
        await b.deleteUser(B);
        assert.deepEqual(await b.roster.items(B), []);
        assert.deepEqual((await b.roster.items(A)).map((i) => i.jid), [juliet.jid]);
        assert.equal(await b.pubsub.getNode(B, 'urn:v'), undefined);
        assert.ok(await b.pubsub.getNode(A, 'urn:v'));
        if (has('accounts') && has('kv')) {
          assert.equal(await need('accounts').exists(B), false);
          assert.equal(await need('accounts').exists(A), true);
          assert.equal(await need('kv').get(A, 'vcard', ''), '<vCard>A</vCard>');
          assert.equal(await need('kv').get(B, 'vcard', ''), undefined);
        }
        if (has('archive')) assert.equal((await need('archive').page({ username: A, order: 'asc', limit: 10 })).length, 1);
        if (has('offline')) assert.equal(await need('offline').count(B), 0);
      });
    });
  });
}
