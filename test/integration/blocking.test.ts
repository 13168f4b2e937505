/**
 * XEP-0191 Blocking Command against the real server: list/block/unblock/
 * unblock-all with pushes to the resources that asked for the list, blocked
 * traffic (messages, presence, IQs) stopped in both directions with the
 * errors the XEP names, presence side effects of blocking and unblocking,
 * nothing stored offline from a blocked JID, full-JID items, persistence
 * across a restart, and a real client library (xmpp.js) using it.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { xml } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf, type TestClient } from '../helpers/client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // xmpp.js uses STARTTLS; the test server's certificate is self-signed

const BLOCKING = 'urn:xmpp:blocking';
const USERS: Array<[string, string]> = [
  ['romeo', 'r0meo'],
  ['juliet', 'jul1et'],
  ['nurse', 'nurse'],
  ['tybalt', 'tybalt'],
];
let v: Verona;

before(async () => {
  v = await startVerona({ users: USERS });
  await befriend('romeo', 'juliet');
  await befriend('romeo', 'tybalt');
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const pw = (u: string): string => (USERS.find(([n]) => n === u) as [string, string])[1];
function connect(user: string, resource: string, presence = false): Promise<TestClient> {
  return connectClient({ port: v.ports.c2s as number, user, password: pw(user), resource, presence });
}

/** Send an IQ and return its answer. */
const iq = sendIq;

const errorOf = stanzaErrorOf;
const isPush = (kind: string) => (el: Element) => el.is('iq') && el.attrs.type === 'set' && el.getChild(kind, BLOCKING) !== undefined;
const isPresence = (from: string, type?: string) => (el: Element) => el.is('presence') && el.attrs.from === from && el.attrs.type === type;
const body = (s: string) => (el: Element) => el.is('message') && el.getChildText('body') === s;
const itemsOf = (el: Element | undefined): string[] => (el?.getChildren('item') ?? []).map((i) => i.attrs.jid as string).sort();

/** Mutual presence subscription, through the protocol itself. */
async function befriend(a: string, b: string): Promise<void> {
  const ca = await connect(a, 'setup', true);
  const cb = await connect(b, 'setup', true);
  for (const [x1, x2, n1, n2] of [
    [ca, cb, a, b],
    [cb, ca, b, a],
  ] as const) {
    x1.send(`<presence to='${n2}@localhost' type='subscribe'/>`);
    await x2.next((el) => el.is('presence') && el.attrs.type === 'subscribe');
    x2.send(`<presence to='${n1}@localhost' type='subscribed'/>`);
    await x1.next((el) => el.is('presence') && el.attrs.type === 'subscribed');
  }
  ca.destroy();
  cb.destroy();
  await new Promise((r) => setTimeout(r, 150));
}

async function blocklist(c: TestClient): Promise<string[]> {
  const r = await iq(c, `<blocklist xmlns='${BLOCKING}'/>`, "type='get'");
  assert.equal(r.attrs.type, 'result', r.toString());
  return itemsOf(r.getChild('blocklist', BLOCKING));
}

describe('blocklist management (XEP-0191 §3.1-§3.4)', () => {
  test('block, unblock and unblock-all are pushed to every resource that asked for the list', async () => {
    const laptop = await connect('nurse', 'laptop');
    const phone = await connect('nurse', 'phone');
    const tablet = await connect('nurse', 'tablet'); // never asks for the list: gets no pushes
    try {
      assert.deepEqual(await blocklist(laptop), []);
      assert.deepEqual(await blocklist(phone), []);

      const r1 = await iq(laptop, `<block xmlns='${BLOCKING}'><item jid='Tybalt@LocalHost'/><item jid='capulet.lit'/></block>`);
      assert.equal(r1.attrs.type, 'result');
      for (const c of [laptop, phone]) {
        const push = await c.next(isPush('block'));
        assert.deepEqual(itemsOf(push.getChild('block', BLOCKING)), ['capulet.lit', 'tybalt@localhost'], 'items in prepared form');
        assert.equal(push.attrs.to, c.jid);
        c.send(`<iq type='result' id='${push.attrs.id}'/>`);
      }
      assert.deepEqual(await blocklist(phone), ['capulet.lit', 'tybalt@localhost']);

      const r2 = await iq(phone, `<unblock xmlns='${BLOCKING}'><item jid='capulet.lit'/></unblock>`);
      assert.equal(r2.attrs.type, 'result');
      for (const c of [laptop, phone]) assert.deepEqual(itemsOf((await c.next(isPush('unblock'))).getChild('unblock', BLOCKING)), ['capulet.lit']);
      assert.deepEqual(await blocklist(laptop), ['tybalt@localhost']);

      await iq(laptop, `<block xmlns='${BLOCKING}'><item jid='paris@verona.lit'/></block>`);
      for (const c of [laptop, phone]) await c.next(isPush('block'));
      const r3 = await iq(laptop, `<unblock xmlns='${BLOCKING}'/>`);
      assert.equal(r3.attrs.type, 'result');
      for (const c of [laptop, phone]) {
        const push = await c.next(isPush('unblock'));
        assert.equal(push.getChild('unblock', BLOCKING)?.getChildren('item').length, 0, 'unblock-all pushes an empty <unblock/>');
      }
      assert.deepEqual(await blocklist(laptop), []);
      await tablet.nothing(isPush('block'), 200);
      await tablet.nothing(isPush('unblock'), 50);
    } finally {
      for (const c of [laptop, phone, tablet]) c.destroy();
    }
  });

  test('bad requests and other accounts', async () => {
    const nurse = await connect('nurse', 'errors');
    const juliet = await connect('juliet', 'errors');
    try {
      assert.equal(errorOf(await iq(nurse, `<block xmlns='${BLOCKING}'/>`)), 'bad-request', 'a block without items');
      assert.equal(errorOf(await iq(nurse, `<block xmlns='${BLOCKING}'><item jid='a@b@c'/></block>`)), 'jid-malformed');
      assert.equal(errorOf(await iq(nurse, `<block xmlns='${BLOCKING}'><item/></block>`)), 'jid-malformed');
      assert.equal(errorOf(await iq(juliet, `<blocklist xmlns='${BLOCKING}'/>`, "type='get' to='nurse@localhost'")), 'service-unavailable');
      assert.equal(errorOf(await iq(juliet, `<block xmlns='${BLOCKING}'><item jid='x@y'/></block>`, "type='set' to='nurse@localhost'")), 'forbidden');
      assert.deepEqual(await blocklist(nurse), [], 'nothing was stored');
    } finally {
      nurse.destroy();
      juliet.destroy();
    }
  });

  test('the server advertises urn:xmpp:blocking', async () => {
    const c = await connect('nurse', 'disco');
    try {
      const r = await iq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='localhost'");
      const features = r.getChild('query')?.getChildren('feature').map((f) => f.attrs.var) ?? [];
      assert.ok(features.includes(BLOCKING));
    } finally {
      c.destroy();
    }
  });
});

describe('blocked traffic (XEP-0191 §3.2-§3.3)', () => {
  test('messages, presence and IQs stop in both directions, with the XEP errors; unblocking restores them', async () => {
    const romeo = await connect('romeo', 'orchard', true);
    const juliet = await connect('juliet', 'balcony', true);
    try {
      await romeo.next(isPresence(juliet.jid));
      await juliet.next(isPresence(romeo.jid));
      await blocklist(romeo);

      await iq(romeo, `<block xmlns='${BLOCKING}'><item jid='juliet@localhost'/></block>`);
      // §3.2: the blocked contact (who could see Romeo) gets unavailable presence; Romeo stops seeing her.
      await juliet.next(isPresence(romeo.jid, 'unavailable'));
      await romeo.next(isPresence(juliet.jid, 'unavailable'));

      // Inbound message: the contact gets service-unavailable, Romeo nothing.
      juliet.send(`<message to='romeo@localhost' type='chat' id='m1'><body>wherefore</body></message>`);
      const e1 = await juliet.next((el) => el.is('message') && el.attrs.id === 'm1');
      assert.equal(e1.attrs.type, 'error');
      assert.equal(errorOf(e1), 'service-unavailable');
      assert.equal(e1.getChildText('body'), null, 'no content echoed back');

      // Outbound message: not-acceptable with <blocked/>, Juliet nothing.
      romeo.send(`<message to='juliet@localhost/balcony' type='chat' id='m2'><body>hark</body></message>`);
      const e2 = await romeo.next((el) => el.is('message') && el.attrs.id === 'm2');
      assert.equal(e2.attrs.type, 'error');
      assert.equal(errorOf(e2), 'not-acceptable');
      assert.ok(e2.getChild('error')?.getChild('blocked', 'urn:xmpp:blocking:errors'), e2.toString());

      // Presence from her is dropped without an answer; presence to her is refused like messages.
      juliet.send(`<presence to='romeo@localhost'><status>here</status></presence>`);
      juliet.send(`<presence><show>away</show></presence>`);
      romeo.send(`<presence to='juliet@localhost'/>`);
      const e3 = await romeo.next((el) => el.is('presence') && el.attrs.type === 'error');
      assert.equal(errorOf(e3), 'not-acceptable');
      assert.ok(e3.getChild('error')?.getChild('blocked', 'urn:xmpp:blocking:errors'));
      romeo.send(`<presence><show>chat</show></presence>`); // his broadcast skips her

      // IQs: to his full JID or his account -> service-unavailable; from him -> not-acceptable.
      const e4 = await iq(juliet, "<ping xmlns='urn:xmpp:ping'/>", `type='get' to='${romeo.jid}'`);
      assert.equal(errorOf(e4), 'service-unavailable');
      const e5 = await iq(juliet, "<vCard xmlns='vcard-temp'/>", "type='get' to='romeo@localhost'");
      assert.equal(errorOf(e5), 'service-unavailable');
      const e6 = await iq(romeo, "<ping xmlns='urn:xmpp:ping'/>", `type='get' to='${juliet.jid}'`);
      assert.equal(errorOf(e6), 'not-acceptable');
      assert.ok(e6.getChild('error')?.getChild('blocked', 'urn:xmpp:blocking:errors'));

      await romeo.nothing((el) => el.is('message') || (el.is('presence') && el.attrs.from?.startsWith('juliet@') === true) || (el.is('iq') && el.attrs.type === 'get'), 300);
      await juliet.nothing((el) => el.is('message') || (el.is('presence') && el.attrs.from?.startsWith('romeo@') === true) || (el.is('iq') && el.attrs.type === 'get'), 50);

      // Unblock: she gets his current presence, he probes hers, and messages flow again.
      await iq(romeo, `<unblock xmlns='${BLOCKING}'><item jid='juliet@localhost'/></unblock>`);
      const back = await juliet.next(isPresence(romeo.jid));
      assert.equal(back.getChildText('show'), 'chat', 'his current presence');
      const hers = await romeo.next(isPresence(juliet.jid));
      assert.equal(hers.getChildText('show'), 'away', 'her current presence, answered to his probe');
      juliet.send(`<message to='romeo@localhost' type='chat'><body>again</body></message>`);
      await romeo.next(body('again'));
      romeo.send(`<message to='juliet@localhost' type='chat'><body>ay me</body></message>`);
      await juliet.next(body('ay me'));
    } finally {
      romeo.destroy();
      juliet.destroy();
    }
  });

  test('a message from a blocked JID to an offline account is bounced, not stored', async () => {
    const romeo = await connect('romeo', 'setup');
    await blocklist(romeo);
    await iq(romeo, `<block xmlns='${BLOCKING}'><item jid='tybalt@localhost'/></block>`);
    romeo.destroy();
    await new Promise((r) => setTimeout(r, 150));
    const tybalt = await connect('tybalt', 'street');
    try {
      tybalt.send(`<message to='romeo@localhost' type='chat' id='t1'><body>villain</body></message>`);
      const e = await tybalt.next((el) => el.is('message') && el.attrs.id === 't1');
      assert.equal(errorOf(e), 'service-unavailable');
      const r2 = await connect('romeo', 'later', true);
      try {
        await r2.nothing(body('villain'), 400);
      } finally {
        r2.destroy();
      }
    } finally {
      tybalt.destroy();
      const r3 = await connect('romeo', 'cleanup');
      await iq(r3, `<unblock xmlns='${BLOCKING}'/>`);
      r3.destroy();
    }
  });

  test('a full-JID item blocks that resource only', async () => {
    const nurse = await connect('nurse', 'kitchen');
    const j1 = await connect('juliet', 'balcony');
    const j2 = await connect('juliet', 'garden');
    try {
      await iq(nurse, `<block xmlns='${BLOCKING}'><item jid='juliet@localhost/balcony'/></block>`);
      j1.send(`<message to='${nurse.jid}' type='chat' id='f1'><body>one</body></message>`);
      assert.equal(errorOf(await j1.next((el) => el.attrs.id === 'f1')), 'service-unavailable');
      j2.send(`<message to='${nurse.jid}' type='chat'><body>two</body></message>`);
      await nurse.next(body('two'));
      await nurse.nothing(body('one'), 100);
    } finally {
      await iq(nurse, `<unblock xmlns='${BLOCKING}'/>`);
      for (const c of [nurse, j1, j2]) c.destroy();
    }
  });
});

test('a real client (xmpp.js) blocks and receives the push', async () => {
  const c = client({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username: 'nurse', password: 'nurse', resource: 'xmppjs' });
  c.on('error', () => undefined);
  const pushes: Element[] = [];
  c.on('stanza', (el) => {
    if (el.is('iq') && el.attrs.type === 'set' && el.getChild('block', BLOCKING)) pushes.push(el);
  });
  try {
    await c.start();
    const list = await c.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));
    assert.equal(list.getChildren('item').length, 0);
    await c.iqCaller.set(xml('block', { xmlns: BLOCKING }, xml('item', { jid: 'paris@localhost' })));
    const deadline = Date.now() + 3000;
    while (pushes.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    assert.equal(pushes[0]?.getChild('block', BLOCKING)?.getChild('item')?.attrs.jid, 'paris@localhost');
    const after = await c.iqCaller.get(xml('blocklist', { xmlns: BLOCKING }));
    assert.deepEqual(itemsOf(after), ['paris@localhost']);
    await c.iqCaller.set(xml('unblock', { xmlns: BLOCKING }));
  } finally {
    await c.stop();
  }
});

test('the blocklist survives a restart and is still enforced', async () => {
  const w = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et']] });
  let w2: Verona | undefined;
  try {
    const r = await connectClient({ port: w.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'a' });
    await iq(r, `<block xmlns='${BLOCKING}'><item jid='juliet@localhost'/></block>`);
    r.destroy();
    await w.stop();
    w2 = await startVerona({ dataDir: w.dataDir });
    const r2 = await connectClient({ port: w2.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'b' });
    const j = await connectClient({ port: w2.ports.c2s as number, user: 'juliet', password: 'jul1et', resource: 'c' });
    try {
      assert.deepEqual(await blocklist(r2), ['juliet@localhost']);
      j.send(`<message to='romeo@localhost/b' type='chat' id='p1'><body>x</body></message>`);
      assert.equal(errorOf(await j.next((el) => el.attrs.id === 'p1')), 'service-unavailable');
    } finally {
      r2.destroy();
      j.destroy();
    }
  } finally {
    await w2?.stop();
    await w.stop();
    w.cleanup();
  }
});
