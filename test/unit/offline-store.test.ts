/**
 * Offline storage (XEP-0160): what is stored, the per-account limit, take
 * (read and delete at once), and dropping archived copies for MAM clients.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseXml } from '../../src/xml/parser.js';
import { offlineVerdict } from '../../src/modules/offline.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';

let dir: string;
let storage: SqliteStorage;
before(() => {
  dir = mkdtempSync(path.join(tmpdir(), 'verona-offline-'));
  storage = SqliteStorage.open(path.join(dir, 'o.sqlite'), { synchronous: 'NORMAL' });
});
after(async () => {
  await storage.close();
  rmSync(dir, { recursive: true, force: true });
});

test('offlineVerdict: content is stored, chat states dropped, no-store bounced', () => {
  const v = (xml: string) => offlineVerdict(parseXml(`<message xmlns='jabber:client' ${xml}`)).action;
  assert.equal(v(`type='chat'><body>hi</body></message>`), 'store');
  assert.equal(v(`><body>hi</body></message>`), 'store');
  assert.equal(v(`type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`), 'store');
  assert.equal(v(`type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`), 'store');
  assert.equal(v(`type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`), 'drop');
  assert.equal(v(`type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`), 'bounce');
  assert.equal(v(`type='headline'><body>hi</body></message>`), 'drop');
});

test('store up to the limit, then refuse; take returns oldest first and empties', async () => {
  const o = storage.offline;
  for (let i = 0; i < 3; i++) assert.equal(await o.store('juliet', { stamp: 1000 + i, stanza: `<message xmlns="jabber:client"><body>${i}</body></message>`, archiveId: i === 1 ? undefined : `A${i}` }, 3), true);
  assert.equal(await o.store('juliet', { stamp: 2000, stanza: '<message xmlns="jabber:client"/>', archiveId: undefined }, 3), false);
  assert.equal(await o.count('juliet'), 3);
  const got = await o.take('juliet');
  assert.deepEqual(got.map((m) => [m.stamp, m.archiveId]), [[1000, 'A0'], [1001, undefined], [1002, 'A2']]);
  assert.equal(await o.count('juliet'), 0);
  assert.deepEqual(await o.take('juliet'), []);
});

test('dropArchived removes only the messages that are in the archive', async () => {
  const o = storage.offline;
  await o.store('romeo', { stamp: 1, stanza: '<message xmlns="jabber:client"><body>a</body></message>', archiveId: 'X' }, 10);
  await o.store('romeo', { stamp: 2, stanza: '<message xmlns="jabber:client"><body>b</body></message>', archiveId: undefined }, 10);
  assert.equal(await o.dropArchived('romeo'), 1);
  assert.deepEqual((await o.take('romeo')).map((m) => m.stamp), [2]);
});
