/**
 * XEP-0191 pieces without a server: JID matching (XEP-0016 §2.1 rules),
 * option validation, and the blocklist stores (the SQLite one on a real
 * database, against the in-memory reference), including deleteUserData.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseJID } from '../../src/jid/jid.js';
import { isBlocked, blockingOptions, blockedError } from '../../src/modules/blocking.js';
import { MemoryBlocklistStore, type BlocklistStore } from '../../src/storage/blocklist.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';

describe('JID matching', () => {
  const cases: Array<[string, string, boolean]> = [
    // item, stanza JID, blocked?
    ['juliet@capulet.lit', 'juliet@capulet.lit', true],
    ['juliet@capulet.lit', 'juliet@capulet.lit/balcony', true],
    ['juliet@capulet.lit', 'nurse@capulet.lit/balcony', false],
    ['juliet@capulet.lit', 'capulet.lit', false],
    ['juliet@capulet.lit/balcony', 'juliet@capulet.lit/balcony', true],
    ['juliet@capulet.lit/balcony', 'juliet@capulet.lit/garden', false],
    ['juliet@capulet.lit/balcony', 'juliet@capulet.lit', false],
    ['capulet.lit', 'capulet.lit', true],
    ['capulet.lit', 'juliet@capulet.lit', true],
    ['capulet.lit', 'juliet@capulet.lit/balcony', true],
    ['capulet.lit', 'capulet.lit/bot', true],
    ['capulet.lit', 'montague.lit', false],
    ['capulet.lit', 'juliet@sub.capulet.lit', false],
    ['capulet.lit/bot', 'capulet.lit/bot', true],
    ['capulet.lit/bot', 'capulet.lit', false],
    ['capulet.lit/bot', 'juliet@capulet.lit/bot', false],
    ['capulet.lit/bot', 'capulet.lit/other', false],
  ];
  for (const [item, jid, want] of cases) {
    test(`${item} ${want ? 'blocks' : 'does not block'} ${jid}`, () => {
      assert.equal(isBlocked(new Set([parseJID(item).toString()]), parseJID(jid)), want);
    });
  }
  test('an empty or missing list blocks nothing', () => {
    assert.equal(isBlocked(undefined, parseJID('a@b')), false);
    assert.equal(isBlocked(new Set(), parseJID('a@b')), false);
  });
  test('items are compared in prepared form', () => {
    assert.equal(isBlocked(new Set([parseJID('Juliet@Capulet.LIT').toString()]), parseJID('juliet@capulet.lit/x')), true);
  });
});

describe('blocking options and errors', () => {
  test('maxItems defaults to 1000 and must be a positive integer', () => {
    assert.deepEqual(blockingOptions({}), { maxItems: 1000 });
    assert.deepEqual(blockingOptions({ maxItems: 3 }), { maxItems: 3 });
    assert.throws(() => blockingOptions({ maxItems: 0 }), /maxItems/);
    assert.throws(() => blockingOptions({ maxItems: '5' }), /maxItems/);
    assert.throws(() => blockingOptions({ maxitems: 5 }), /unknown option/);
  });
  test('the outbound error is not-acceptable with <blocked/>', () => {
    const el = blockedError().toElement();
    assert.equal(el.attrs.type, 'cancel');
    assert.ok(el.getChild('not-acceptable', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    assert.ok(el.getChild('blocked', 'urn:xmpp:blocking:errors'));
  });
});

/** The same expectations for every implementation. */
async function conformance(store: BlocklistStore): Promise<void> {
  assert.deepEqual(await store.list('romeo'), []);
  assert.deepEqual(await store.add('romeo', ['tybalt@capulet.lit', 'capulet.lit']), ['tybalt@capulet.lit', 'capulet.lit']);
  assert.deepEqual(await store.add('romeo', ['capulet.lit', 'paris@verona.lit']), ['paris@verona.lit'], 'only new ones are reported');
  assert.deepEqual(await store.list('romeo'), ['capulet.lit', 'paris@verona.lit', 'tybalt@capulet.lit']);
  assert.deepEqual(await store.add('juliet', ['romeo@montague.lit']), ['romeo@montague.lit']);
  assert.deepEqual(await store.remove('romeo', ['capulet.lit', 'nobody@x']), ['capulet.lit']);
  const all = await store.all();
  assert.deepEqual([...all.keys()].sort(), ['juliet', 'romeo']);
  assert.deepEqual(all.get('romeo'), ['paris@verona.lit', 'tybalt@capulet.lit']);
  assert.deepEqual(await store.clear('romeo'), ['paris@verona.lit', 'tybalt@capulet.lit']);
  assert.deepEqual(await store.list('romeo'), []);
  assert.deepEqual([...(await store.all()).keys()], ['juliet'], 'an emptied list is not listed');
  assert.deepEqual(await store.clear('nobody'), []);
  assert.deepEqual(await store.remove('nobody', ['a@b']), []);
}

describe('blocklist stores', () => {
  test('memory store', async () => {
    await conformance(new MemoryBlocklistStore());
  });

  test('SQLite store: same behaviour, survives reopening, removed with the account', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'verona-blocklist-'));
    const file = path.join(dir, 'v.sqlite');
    try {
      let s = SqliteStorage.open(file, { synchronous: 'NORMAL' });
      await conformance(s.blocklist);
      await s.blocklist.add('juliet', ['tybalt@capulet.lit']);
      assert.ok(s.userTables().includes('blocklist'), 'the table is keyed by username');
      await s.close();

      s = SqliteStorage.open(file, { synchronous: 'NORMAL' });
      assert.deepEqual(await s.blocklist.list('juliet'), ['romeo@montague.lit', 'tybalt@capulet.lit']);
      await s.deleteUserData('juliet');
      assert.deepEqual(await s.blocklist.list('juliet'), []);
      await s.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
