/**
 * XEP-0160 offline messages on the real server, and how they meet MAM:
 * - a legacy client gets everything stored while it was away, at its
 *   initial presence, with a XEP-0203 delay and the archive's stanza-id;
 * - chat states are not stored; <no-store/> bounces; a full store bounces
 *   only what the recipient's archive does not hold either;
 * - a client that queried MAM before its initial presence gets no offline
 *   flood (what is archived it has fetched), only what is not archived;
 * - the same messages are never delivered twice.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import type { Element } from '@xmpp/xml';
import { bodyOf, device, mamQuery, stanzaErrorCondition, stanzaId, type Dev, type Kind } from './mr2-helpers.js';

let v: Verona;
let romeo: Dev;

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['julia', 'ju1ia'], ['nurse', 'nur5e'], ['friar', 'fr1ar']],
    config: { moduleOptions: { offline: { maxPerAccount: 4 } } },
  });
  romeo = await device({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'desk', kind: 'plain' });
});
after(async () => {
  romeo?.close();
  await v.stop();
  v.cleanup();
});

const login = (user: string, resource: string, kind: Kind, presence = true): Promise<Dev> =>
  device({ port: v.ports.c2s as number, user, password: { julia: 'ju1ia', nurse: 'nur5e', friar: 'fr1ar' }[user] ?? '', resource, kind, presence });

async function collect(c: Dev, ms = 400): Promise<Element[]> {
  await new Promise((r) => setTimeout(r, ms));
  const msgs = c.received.filter((el) => el.name === 'message');
  c.received.length = 0;
  return msgs;
}

test('a legacy client gets what came while it was away, once, with delay and stanza-id; chat states are not kept', async () => {
  romeo.send(`<message to='julia@localhost' type='chat' id='o1'><body>offline one</body></message>`);
  romeo.send(`<message to='julia@localhost' type='chat' id='o2'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
  romeo.send(`<message to='julia@localhost' id='o3'><body>offline two</body></message>`);
  // Not archived, but still kept for delivery.
  romeo.send(`<message to='julia@localhost' type='chat' id='o4'><body>offline three</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`);
  await romeo.nothing((el) => el.name === 'message' && el.attrs.type === 'error', 300);

  const j = await login('julia', 'old', 'plain');
  try {
    const msgs = await collect(j);
    assert.deepEqual(msgs.map((m) => bodyOf(m)), ['offline one', 'offline two', 'offline three']);
    for (const m of msgs) {
      const delay = m.getChild('delay', 'urn:xmpp:delay');
      assert.equal(delay?.attrs.from, 'localhost');
      assert.match(String(delay?.attrs.stamp), /^\d{4}-\d\d-\d\dT/);
    }
    // Archived ones carry Julia's archive id, which MAM knows.
    const ids = msgs.slice(0, 2).map((m) => stanzaId(m));
    assert.ok(ids.every((s) => s?.by === 'julia@localhost'));
    assert.equal(stanzaId(msgs[2]!), undefined, 'not archived: no stanza-id');
    const page = await mamQuery(j, { fields: { ids: ids.map((s) => s!.id) } });
    assert.deepEqual(page.items.map((i) => i.body), ['offline one', 'offline two']);
  } finally {
    j.close();
    await j.waitClose();
  }
  // Delivered once: the next login gets nothing.
  const again = await login('julia', 'old2', 'plain');
  assert.deepEqual(await collect(again, 300), []);
  again.close();
  await again.waitClose();
});

test('a client that queried MAM before its initial presence gets no offline flood, and loses nothing', async () => {
  romeo.send(`<message to='julia@localhost' type='chat' id='m1'><body>mam one</body></message>`);
  romeo.send(`<message to='julia@localhost' type='chat' id='m2'><body>mam two</body></message>`);
  romeo.send(`<message to='julia@localhost' type='chat' id='m3'><body>not archived</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`);
  await new Promise((r) => setTimeout(r, 200));

  const phone = await login('julia', 'phone', 'mr2', false);
  try {
    // Catch up from the archive first (the last page is enough here), then go online.
    const page = await mamQuery(phone, { rsm: '<max>2</max><before/>' });
    assert.deepEqual(page.items.map((i) => i.body), ['mam one', 'mam two']);
    phone.send('<presence/>');
    const msgs = await collect(phone, 500);
    // Only what the archive does not have comes as an offline message.
    assert.deepEqual(msgs.filter((m) => m.getChild('delay', 'urn:xmpp:delay')).map((m) => bodyOf(m)), ['not archived']);
  } finally {
    phone.close();
    await phone.waitClose();
  }
  // Nothing was left behind for a duplicate later.
  const later = await login('julia', 'later', 'plain');
  assert.deepEqual((await collect(later, 300)).map((m) => bodyOf(m)), []);
  later.close();
  await later.waitClose();
});

test('<no-store/> is archived nowhere and stored nowhere: the sender gets service-unavailable', async () => {
  romeo.send(`<message to='nurse@localhost' type='chat' id='ns1'><body>do not keep</body><no-store xmlns='urn:xmpp:hints'/></message>`);
  const e1 = await romeo.next((el) => el.name === 'message' && el.attrs.id === 'ns1' && el.attrs.type === 'error');
  assert.equal(stanzaErrorCondition(e1), 'service-unavailable');
});

test('a full offline store is not an error for an archived message: the legacy queue stops growing, MAM has everything', async () => {
  for (let i = 0; i < 4; i++) romeo.send(`<message to='nurse@localhost' type='chat' id='full${i}'><body>keep ${i}</body></message>`);
  romeo.send(`<message to='nurse@localhost' type='chat' id='full4'><body>one too many</body></message>`);
  // Nothing failed: the fifth message is in the recipient's archive.
  await romeo.nothing((el) => el.name === 'message' && el.attrs.type === 'error', 500);
  const nurse = await login('nurse', 'n', 'plain');
  try {
    assert.deepEqual((await collect(nurse)).map((m) => bodyOf(m)), ['keep 0', 'keep 1', 'keep 2', 'keep 3']);
    const page = await mamQuery(nurse, { fields: { with: 'romeo@localhost' } });
    const bodies = page.items.map((it) => bodyOf(it.message));
    assert.deepEqual(bodies.filter((b) => b?.startsWith('keep') || b === 'one too many'), ['keep 0', 'keep 1', 'keep 2', 'keep 3', 'one too many']);
  } finally {
    nurse.close();
    await nurse.waitClose();
  }
});

test('a full offline store bounces a message that nothing kept (the recipient archives nothing from the sender)', async () => {
  const friar = await login('friar', 'prefs', 'plain', false);
  friar.send(`<iq type='set' id='prefs1'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never><jid>romeo@localhost</jid></never></prefs></iq>`);
  assert.equal((await friar.next((el) => el.name === 'iq' && el.attrs.id === 'prefs1')).attrs.type, 'result');
  friar.close();
  await friar.waitClose();
  for (let i = 0; i < 4; i++) romeo.send(`<message to='friar@localhost' type='chat' id='fr${i}'><body>queued ${i}</body></message>`);
  romeo.send(`<message to='friar@localhost' type='chat' id='fr4'><body>lost without an error</body></message>`);
  const e = await romeo.next((el) => el.name === 'message' && el.attrs.id === 'fr4' && el.attrs.type === 'error');
  assert.equal(stanzaErrorCondition(e), 'service-unavailable');
  await romeo.nothing((el) => el.name === 'message' && el.attrs.type === 'error', 200);
});

test('a message to an account that does not exist is bounced and archived nowhere', async () => {
  romeo.send(`<message to='tybalt@localhost' type='chat' id='nx1'><body>to nobody</body></message>`);
  const e = await romeo.next((el) => el.name === 'message' && el.attrs.id === 'nx1' && el.attrs.type === 'error');
  assert.equal(stanzaErrorCondition(e), 'service-unavailable');
  const mine = await mamQuery(romeo, { fields: { with: 'tybalt@localhost' } });
  assert.deepEqual(mine.items, [], 'not in the sender\'s archive either');
});

test('offline storage is not used while an MR2 resource is bound (it gets the message), even without presence', async () => {
  const phone = await login('julia', 'phone2', 'mr2', false);
  try {
    romeo.send(`<message to='julia@localhost' type='chat' id='b1'><body>to bound mr2</body></message>`);
    const el = await phone.next((m) => m.name === 'message' && bodyOf(m) === 'to bound mr2');
    assert.ok(stanzaId(el));
  } finally {
    phone.close();
    await phone.waitClose();
  }
  const old = await login('julia', 'old3', 'plain');
  assert.deepEqual((await collect(old, 300)).map((m) => bodyOf(m)), []);
  old.close();
});
