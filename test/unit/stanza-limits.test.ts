/** The stanza limit decisions (src/limits/stanza-rules.ts), table-tested with an injected clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml } from '../../src/xml/parser.js';
import { chargesFor, directedAllowed, KeyedBuckets, RefusingBucket } from '../../src/limits/stanza-rules.js';
import { defaultConfig } from '../../src/config/defaults.js';

const PAGES = { defaultPage: 50, maxPage: 250 };
const OWN = 'romeo@localhost';

test('what a client stanza is charged against', () => {
  const mam = (inner: string): string => `<iq xmlns='jabber:client' type='set' id='q'><query xmlns='urn:xmpp:mam:2'>${inner}</query></iq>`;
  const table: Array<[string, string]> = [
    ["<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>", 'iq:1'],
    ["<iq xmlns='jabber:client' type='set' id='1'><query xmlns='jabber:iq:roster'/></iq>", 'iq:1'],
    // Answers are never charged.
    ["<iq xmlns='jabber:client' type='result' id='1'/>", ''],
    ["<iq xmlns='jabber:client' type='error' id='1'/>", ''],
    // A MAM query: its page, the default without <max/>, capped at the largest page.
    [mam(''), 'iq:1 mam:50'],
    [mam("<set xmlns='http://jabber.org/protocol/rsm'><max>10</max></set>"), 'iq:1 mam:10'],
    [mam("<set xmlns='http://jabber.org/protocol/rsm'><max>100000</max></set>"), 'iq:1 mam:250'],
    [mam("<set xmlns='http://jabber.org/protocol/rsm'><max>0</max></set>"), 'iq:1 mam:1'],
    [mam("<set xmlns='http://jabber.org/protocol/rsm'><max>lots</max></set>"), 'iq:1 mam:50'],
    // Messages: bounded by the read rate only.
    ["<message xmlns='jabber:client' to='juliet@localhost'><body>hi</body></message>", ''],
    // Presence.
    ["<presence xmlns='jabber:client'/>", 'presence-broadcast:1'],
    ["<presence xmlns='jabber:client' type='unavailable'/>", 'presence-broadcast:1'],
    ["<presence xmlns='jabber:client' to='Romeo@LOCALHOST'/>", 'presence-broadcast:1'],
    ["<presence xmlns='jabber:client' to='romeo@localhost/other'/>", ''],
    ["<presence xmlns='jabber:client' to='room@muc.localhost/romeo'/>", 'directed-presence:1'],
    ["<presence xmlns='jabber:client' to='room@muc.localhost/romeo' type='unavailable'/>", ''],
    ["<presence xmlns='jabber:client' to='juliet@localhost' type='subscribe'/>", 'subscription:1'],
    ["<presence xmlns='jabber:client' to='juliet@localhost' type='subscribed'/>", ''],
    ["<presence xmlns='jabber:client' to='juliet@localhost' type='probe'/>", ''],
    ["<presence xmlns='jabber:client' to='@@bad' type='subscribe'/>", ''],
  ];
  for (const [xml, want] of table) {
    const got = chargesFor(parseXml(xml), OWN, PAGES)
      .map((c) => `${c.kind}:${c.cost}`)
      .join(' ');
    assert.equal(got, want, xml);
  }
});

test('a refusing bucket: the burst at once, then the rate; refused takes spend nothing', () => {
  const b = new RefusingBucket(2, 3, 0);
  assert.equal(b.take(1, 0), 0);
  assert.equal(b.take(1, 0), 0);
  assert.equal(b.take(1, 0), 0);
  assert.equal(b.take(1, 0), 500);
  assert.equal(b.take(1, 0), 500, 'a refusal does not go into debt');
  assert.equal(b.take(1, 499), 2);
  assert.equal(b.take(1, 500), 0);
  // A cost above the burst is charged as the burst.
  const big = new RefusingBucket(10, 100, 0);
  assert.equal(big.take(250, 0), 0);
  assert.equal(big.take(1, 0), 100);
  assert.equal(big.full(10_000), true);
  // Rate 0: never refills.
  const none = new RefusingBucket(0, 1, 0);
  assert.equal(none.take(1, 0), 0);
  assert.equal(none.take(1, 1e9), Number.POSITIVE_INFINITY);
});

test('keyed buckets: one budget per key, burst 0 = off, refilled keys pruned', () => {
  const k = new KeyedBuckets({ perSecond: 100, burst: 250 });
  assert.equal(k.take('romeo', 250, 0), 0);
  assert.ok(k.take('romeo', 50, 0) > 0);
  assert.equal(k.take('juliet', 250, 0), 0, 'another account has its own budget');
  assert.equal(k.size, 2);
  k.prune(1000);
  assert.equal(k.size, 2, 'not refilled yet');
  k.prune(2500);
  assert.equal(k.size, 0);
  const off = new KeyedBuckets({ perSecond: 0, burst: 0 });
  for (let i = 0; i < 1000; i++) assert.equal(off.take('x', 1000, 0), 0);
  assert.equal(off.size, 0);
});

test('directed presences per session', () => {
  const known = new Set(['a@x', 'b@x']);
  assert.deepEqual(directedAllowed(known, 'c@x', 3), { ok: true, reason: 'under the limit' });
  assert.equal(directedAllowed(new Set([...known, 'c@x']), 'd@x', 3).ok, false);
  assert.equal(directedAllowed(new Set([...known, 'c@x']), 'a@x', 3).ok, true, 'a known target');
  assert.equal(directedAllowed(new Set([...known, 'c@x']), 'd@x', 0).ok, true, '0 = no limit');
});

test('the defaults leave normal clients alone: a login burst, a MAM catch-up of 10,000 messages, 500 rooms, a contact import', () => {
  const l = defaultConfig().limits;
  // A login: roster, disco of the server and of 200 contacts' devices, PEP, bookmarks, vCards: 280 IQs at once.
  const iq = new RefusingBucket(l.iqPerSecond, l.iqBurst, 0);
  for (let i = 0; i < 280; i++) assert.equal(iq.take(1, 0), 0, `login IQ ${i}`);
  // Catch-up: 40 pages of 250 back to back, one every 100 ms (a fast client on a fast link).
  const mam = new KeyedBuckets({ perSecond: l.mamRowsPerSecond, burst: l.mamRowsBurst });
  for (let p = 0; p < 40; p++) assert.equal(mam.take('romeo', 250, p * 100), 0, `page ${p}`);
  // Then it keeps paging at 2 pages per second without a refusal.
  for (let p = 0; p < 20; p++) assert.equal(mam.take('romeo', 250, 4000 + 2000 + p * 500), 0, `steady page ${p}`);
  // 500 rooms joined: 500 directed presences.
  const known = new Set<string>();
  for (let r = 0; r < 500; r++) {
    const room = `room${r}@muc.localhost/romeo`;
    assert.equal(directedAllowed(known, room, l.directedPresences).ok, true);
    known.add(room);
  }
  // Importing 150 contacts: 150 subscription requests at once.
  const subs = new KeyedBuckets({ perSecond: l.subscriptionsPerMinute / 60, burst: l.subscriptionBurst });
  for (let i = 0; i < 150; i++) assert.equal(subs.take('romeo', 1, 0), 0);
  // Presence: away/back/dnd changes, 20 at once, then one a second.
  const pres = new RefusingBucket(l.presencePerMinute / 60, l.presenceBurst, 0);
  for (let i = 0; i < 20; i++) assert.equal(pres.take(1, 0), 0);
  for (let i = 1; i <= 30; i++) assert.equal(pres.take(1, i * 1000), 0);
});
