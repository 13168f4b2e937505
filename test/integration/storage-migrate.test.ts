/**
 * `verona storage migrate`: a real server's SQLite installation copied to a
 * real PostgreSQL, interrupted and resumed, verified by counts and
 * checksums; the server started again on PostgreSQL answers MAM with the
 * same archive ids (a client's "last known id" still works), and the copy
 * goes back to a new SQLite file identical to the first.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startVerona, runCli } from '../helpers/server.js';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { device, mamQuery, copyWithBody } from './mr2-helpers.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { PostgresStorage } from '../../src/storage/postgres/index.js';
import { migrateStorage, openSide, MigrateError, COPY_TABLES } from '../../src/storage/migrate.js';
import { ArchiveClock, archiveIdFor } from '../../src/modules/mam/ids.js';
import { defaultConfig } from '../../src/modules/pep/config.js';
import type { RoomRecord } from '../../src/storage/muc.js';

let pgServer: TestPostgres;
let dir: string;
before(async () => {
  pgServer = await startPostgres();
  dir = mkdtempSync(path.join(tmpdir(), 'verona-migrate-'));
});
after(async () => {
  await pgServer?.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Far enough ahead that the FAST token is never pruned as expired while the test runs. */
const FAR = Date.now() + 365 * 86_400_000;
const ROOM: RoomRecord = {
  room: 'balcony',
  config: {
    name: 'Balcony ☾', description: 'd', persistent: true, public: true, membersOnly: false, moderated: false, password: '', maxUsers: 50,
    whois: 'moderators', changeSubject: false, allowInvites: false, allowPm: 'anyone', archive: true, historyLength: 20,
  },
  affiliations: [{ jid: 'romeo@localhost', affiliation: 'owner' }],
  subject: { text: 'Wherefore', nick: 'romeo', stamp: 1_700_000_000_000 },
  salt: 'salt',
  createdAt: 1_700_000_000_000,
};

/** A SQLite installation with rows in every table. */
async function fill(file: string, archiveRows: number): Promise<void> {
  const s = SqliteStorage.open(file, { synchronous: 'NORMAL' });
  try {
    const salt = Buffer.from([0, 1, 2, 255]);
    const cred = { salt, iterations: 4096, storedKey: Buffer.alloc(20, 7), serverKey: Buffer.alloc(20, 9) };
    for (const u of ['romeo', 'juliet', 'nurse']) await s.accounts.create({ username: u, createdAt: 1_700_000_000_000, scram: { 'SHA-1': cred, 'SHA-256': { ...cred, storedKey: Buffer.alloc(32, 3), serverKey: Buffer.alloc(32, 4) } } });
    await s.kv.set('romeo', 'vcard', 'main', '<vCard xmlns="vcard-temp"><FN>Romeo ☀</FN></vCard>');
    await s.roster.put('romeo', { jid: 'juliet@localhost', name: 'J', subscription: 'both', ask: false, approved: false, groups: ['Capulets'] });
    await s.roster.put('romeo', { jid: 'tybalt@localhost', subscription: 'none', ask: true, approved: false, groups: [] });
    await s.roster.remove('romeo', 'tybalt@localhost');
    await s.roster.addPending('juliet', 'paris@localhost', "<presence type='subscribe'/>");
    await s.smState.put({ username: 'romeo', id: 'sm1', h: 42, reason: 'shutdown', endedAt: 1_700_000_000_500 });
    await s.smSessions.put({ username: 'romeo', id: 'sm2', resource: 'phone', node: '', deadline: 1_700_000_300_000, savedAt: 1_700_000_000_000, state: '{"v":1}' });
    const clock = new ArchiveClock(0, () => 1_700_000_000_000);
    const ps: Promise<void>[] = [];
    for (let i = 0; i < archiveRows; i++) {
      const seq = clock.next();
      const owner = i % 2 === 0 ? 'romeo' : 'juliet';
      ps.push(s.archive.append({ username: owner, seq, id: i % 10 === 0 ? `stream-${i}` : archiveIdFor(seq), with: owner === 'romeo' ? 'juliet@localhost' : 'romeo@localhost', withResource: i % 3 === 0 ? 'phone' : '', outgoing: i % 4 === 0, stanza: `<message xmlns="jabber:client"><body>m${i}</body></message>` }));
    }
    await Promise.all(ps);
    await s.archive.setPrefs('juliet', { default: 'roster', always: ['romeo@localhost'], never: [] });
    await s.offline.store('nurse', { stamp: 5, stanza: '<message xmlns="jabber:client"><body>later</body></message>', archiveId: 'A1' }, 100);
    await s.blocklist.add('juliet', ['tybalt@localhost']);
    await s.pubsub.createNode('juliet', 'urn:xmpp:avatar:metadata', defaultConfig(1), { 'romeo@localhost': 'member' });
    await s.pubsub.putItem('juliet', 'urn:xmpp:avatar:metadata', { id: 'a1', publisher: 'juliet@localhost', publishedAt: 1, payload: '<metadata xmlns="urn:xmpp:avatar:metadata"/>' }, 5);
    await s.pubsub.capsPut('sha-1', 'v=', { features: ['a'], identities: ['client/pc'] });
    await s.muc.save(ROOM);
    await s.push.put({ username: 'romeo', jid: 'push.example', node: 'n1', resource: 'phone', options: '<x xmlns="jabber:x:data" type="submit"/>', createdAt: 1_700_000_000_001 });
    await s.fastTokens.add({ username: 'juliet', agent: 'ua-1', mechanism: 'HT-SHA-256-NONE', keyHash: Buffer.from([0, 255, 1, 254]), credStamp: 'cs', createdAt: 1_700_000_000_000, expiresAt: FAR, count: 3 });
  } finally {
    await s.close();
  }
}

test('SQLite -> PostgreSQL: interrupted, resumed by the CLI, verified; ids, seqs and every store read back; and back to SQLite', async () => {
  const file = path.join(dir, 'src.sqlite');
  await fill(file, 5000);
  const url = await pgServer.createDatabase();

  // An interrupted run: the 8 small tables and 2 chunks of the archive committed, then it stops.
  const src = await openSide({ kind: 'sqlite', path: file });
  const dst = await openSide({ kind: 'postgres', url });
  await assert.rejects(migrateStorage(src, dst, { chunk: 700, maxChunks: 9 }), (e: unknown) => e instanceof MigrateError && /stopped after 9 chunks/.test(e.message));
  await src.close();
  await dst.close();

  // The CLI picks it up where it stopped.
  const { stdout } = await runCli(['storage', 'migrate', `sqlite:${file}`, url]);
  assert.match(stdout, /verified: 18 tables, \d+ rows, counts and checksums equal \(resumed an earlier run\)/);
  assert.match(stdout, /archive: 5000 rows \(\d+ in this run\)/);

  const a = SqliteStorage.open(file, { synchronous: 'NORMAL' });
  const b = await PostgresStorage.open({ url });
  try {
    for (const u of ['romeo', 'juliet']) {
      const pa = await a.archive.page({ username: u, order: 'asc', limit: 10000 });
      const pb = await b.archive.page({ username: u, order: 'asc', limit: 10000 });
      assert.equal(pb.length, 2500);
      assert.deepEqual(pb, pa, `${u}: every archive row with its id and seq`);
      const mid = pa[1234]!;
      assert.equal(await b.archive.seqOf(u, mid.id), mid.seq, 'a client-known id finds its place');
    }
    assert.equal(await b.archive.highWater(), await a.archive.highWater(), 'the archive clock continues after the copied rows');
    assert.deepEqual(await b.accounts.get('romeo'), await a.accounts.get('romeo'));
    assert.deepEqual(await b.roster.getAll('romeo'), await a.roster.getAll('romeo'));
    assert.deepEqual(await b.roster.changesSince('romeo', 0), await a.roster.changesSince('romeo', 0));
    assert.deepEqual(await b.roster.pending('juliet'), await a.roster.pending('juliet'));
    assert.deepEqual(await b.smState.get('romeo', 'sm1'), await a.smState.get('romeo', 'sm1'));
    assert.deepEqual(await b.smSessions.get('romeo', 'sm2'), await a.smSessions.get('romeo', 'sm2'));
    assert.deepEqual(await b.archive.getPrefs('juliet'), await a.archive.getPrefs('juliet'));
    assert.deepEqual(await b.blocklist.all(), await a.blocklist.all());
    assert.deepEqual(await b.pubsub.nodes('juliet'), await a.pubsub.nodes('juliet'));
    assert.deepEqual(await b.pubsub.items('juliet', 'urn:xmpp:avatar:metadata'), await a.pubsub.items('juliet', 'urn:xmpp:avatar:metadata'));
    assert.deepEqual(await b.pubsub.capsGet('sha-1', 'v='), await a.pubsub.capsGet('sha-1', 'v='));
    assert.equal(await b.kv.get('romeo', 'vcard', 'main'), await a.kv.get('romeo', 'vcard', 'main'));
    assert.deepEqual(await b.muc.rooms(), [ROOM]);
    assert.deepEqual(await b.muc.rooms(), await a.muc.rooms());
    assert.deepEqual(await b.push.list('romeo'), await a.push.list('romeo'));
    assert.equal((await b.push.list('romeo')).length, 1);
    assert.deepEqual(await b.fastTokens.list('juliet'), await a.fastTokens.list('juliet'));
    assert.equal((await b.fastTokens.list('juliet'))[0]?.count, 3);
  } finally {
    await a.close();
    await b.close();
  }

  // Running it again copies nothing and verifies again.
  const again = await runCli(['storage', 'migrate', `sqlite:${file}`, url]);
  assert.match(again.stdout, /verified: .*\(resumed an earlier run\)/);

  // And back: PostgreSQL -> a new SQLite file, the same rows.
  const back = path.join(dir, 'back.sqlite');
  const { stdout: out2 } = await runCli(['storage', 'migrate', url, `sqlite:${back}`]);
  assert.match(out2, /verified: 18 tables/);
  const c = SqliteStorage.open(back, { synchronous: 'NORMAL' });
  const a2 = SqliteStorage.open(file, { synchronous: 'NORMAL' });
  try {
    for (const u of ['romeo', 'juliet']) assert.deepEqual(await c.archive.page({ username: u, order: 'desc', limit: 100 }), await a2.archive.page({ username: u, order: 'desc', limit: 100 }));
    assert.deepEqual(await c.roster.getAll('romeo'), await a2.roster.getAll('romeo'));
    assert.equal(COPY_TABLES.length, 18);
    assert.deepEqual(await c.muc.rooms(), [ROOM]);
    assert.deepEqual(await c.push.list('romeo'), await a2.push.list('romeo'));
    assert.deepEqual(await c.fastTokens.list('juliet'), await a2.fastTokens.list('juliet'));
  } finally {
    await c.close();
    await a2.close();
  }

  // New rows on PostgreSQL after the copy: identity sequences continue after the copied ones.
  const b2 = await PostgresStorage.open({ url });
  try {
    // Identity sequences continue after the copied rows: new rows on PostgreSQL do not collide.
    assert.equal(await b2.offline.store('nurse', { stamp: 6, stanza: '<message xmlns="jabber:client"/>', archiveId: undefined }, 100), true);
    assert.deepEqual((await b2.offline.take('nurse')).map((m) => m.stamp), [5, 6]);
    await b2.pubsub.putItem('juliet', 'urn:xmpp:avatar:metadata', { id: 'a2', publisher: 'juliet@localhost', publishedAt: 2, payload: '<x/>' }, 5);
    assert.deepEqual((await b2.pubsub.items('juliet', 'urn:xmpp:avatar:metadata')).map((i) => i.id), ['a1', 'a2']);
  } finally {
    await b2.close();
  }
});

test('a target that holds other data is refused; a target changed after the copy fails verification', async () => {
  const file = path.join(dir, 'small.sqlite');
  await fill(file, 50);
  const url = await pgServer.createDatabase();
  const other = await PostgresStorage.open({ url });
  await other.kv.set('someone', 'x', 'y', 'z');
  await other.close();
  await assert.rejects(runCli(['storage', 'migrate', file, url]), (e: { code?: number; stderr?: string }) => e.code === 1 && /target is not empty \(table kv has rows\)/.test(e.stderr ?? ''));

  const url2 = await pgServer.createDatabase();
  await runCli(['storage', 'migrate', file, url2]);
  const t = await PostgresStorage.open({ url: url2 });
  await t.pool.query("UPDATE archive SET stanza = stanza || ' ' WHERE id = (SELECT id FROM archive ORDER BY seq LIMIT 1)");
  await t.close();
  await assert.rejects(runCli(['storage', 'migrate', file, url2]), (e: { code?: number; stderr?: string }) => e.code === 1 && /verification failed: archive checksums differ/.test(e.stderr ?? ''));
});

test('a server moved from SQLite to PostgreSQL: MAM after the last id a client knew still works', async () => {
  const v1 = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'ju1iet']] });
  let lastKnown = '';
  try {
    const r = await device({ port: v1.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'desk', kind: 'mr2' });
    const j = await device({ port: v1.ports.c2s as number, user: 'juliet', password: 'ju1iet', resource: 'phone', kind: 'mr2' });
    for (let i = 0; i < 5; i++) {
      r.send(`<message to='juliet@localhost' type='chat' id='m${i}'><body>before-${i}</body></message>`);
      await copyWithBody(j, `before-${i}`);
    }
    const page = await mamQuery(j);
    assert.equal(page.items.length, 5);
    lastKnown = page.items[2]!.id;
    r.close();
    j.close();
  } finally {
    await v1.stop();
  }
  const url = await pgServer.createDatabase();
  await runCli(['storage', 'migrate', 'config', url, '--config', v1.configFile]);
  const v2 = await startVerona({ dataDir: v1.dataDir, config: { storage: { driver: 'postgres', postgres: { url } } } });
  try {
    const j = await device({ port: v2.ports.c2s as number, user: 'juliet', password: 'ju1iet', resource: 'phone', kind: 'mr2' });
    const r = await device({ port: v2.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'desk', kind: 'mr2' });
    r.send(`<message to='juliet@localhost' type='chat' id='after'><body>after-move</body></message>`);
    await copyWithBody(j, 'after-move');
    const page = await mamQuery(j, { rsm: `<after>${lastKnown}</after>` });
    assert.deepEqual(page.items.map((i) => i.body), ['before-3', 'before-4', 'after-move']);
    r.close();
    j.close();
  } finally {
    await v2.stop();
    v2.cleanup();
  }
});
