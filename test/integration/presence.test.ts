/**
 * Presence with a real server: priorities from presence decide message
 * delivery (the router reads session.priority/available), an abrupt
 * disconnect is seen by a contact using xmpp.js, a session that stream
 * management keeps for resumption stays available until it expires, and
 * subscription stanzas to full JIDs are handled as to the bare JID.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { xml, type XmppClient } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient } from '../helpers/client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const ROSTER = 'jabber:iq:roster';
let v: Verona;

before(async () => {
  v = await startVerona({
    users: [
      ['romeo', 'r0meo'],
      ['juliet', 'jul1et'],
      ['paris', 'county'],
    ],
  });
  await befriend();
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const port = (): number => v.ports.c2s as number;
const isPresence = (from: string, type?: string) => (el: Element) => el.is('presence') && el.attrs.from === from && el.attrs.type === type;

/** Romeo and Juliet subscribed both ways (done once, through the protocol itself). */
async function befriend(): Promise<void> {
  const r = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 'setup' });
  const j = await connectClient({ port: port(), user: 'juliet', password: 'jul1et', resource: 'setup' });
  // Available, so that requests and approvals are delivered to them.
  r.send('<presence/>');
  j.send('<presence/>');
  for (const [a, b, bname] of [
    [r, j, 'juliet'],
    [j, r, 'romeo'],
  ] as const) {
    const aname = bname === 'juliet' ? 'romeo' : 'juliet';
    a.send(`<presence to='${bname}@localhost' type='subscribe'/>`);
    await b.next((el) => el.is('presence') && el.attrs.type === 'subscribe');
    b.send(`<presence to='${aname}@localhost' type='subscribed'/>`);
    await a.next((el) => el.is('presence') && el.attrs.type === 'subscribed');
  }
  r.send(`<iq type='get' id='chk'><query xmlns='${ROSTER}'/></iq>`);
  const res = await r.next((el) => el.attrs.id === 'chk');
  assert.equal(res.getChild('query')?.getChild('item')?.attrs.subscription, 'both');
  r.destroy();
  j.destroy();
  await new Promise((res2) => setTimeout(res2, 200));
}


describe('priorities drive delivery of messages to the bare JID (RFC 6121 §8.5.2.1.1)', () => {
  test('the highest priority available resource gets the message; changes apply at once', async () => {
    const laptop = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 'laptop' });
    const phone = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 'phone' });
    const paris = await connectClient({ port: port(), user: 'paris', password: 'county', resource: 'p' });
    try {
      laptop.send('<presence><priority>5</priority></presence>');
      phone.send('<presence><priority>1</priority></presence>');
      await laptop.next(isPresence('romeo@localhost/phone'));
      await phone.next(isPresence('romeo@localhost/laptop'));
      const body = (s: string) => (el: Element) => el.is('message') && el.getChildText('body') === s;

      paris.send(`<message to='romeo@localhost' type='chat'><body>one</body></message>`);
      await laptop.next(body('one'));
      await phone.nothing(body('one'));

      laptop.send('<presence><priority>0</priority></presence>');
      await phone.next(isPresence('romeo@localhost/laptop'));
      paris.send(`<message to='romeo@localhost' type='chat'><body>two</body></message>`);
      await phone.next(body('two'));
      await laptop.nothing(body('two'));

      // Negative priority: never chosen for the bare JID; unavailable: not at all.
      phone.send('<presence><priority>-1</priority></presence>');
      await laptop.next(isPresence('romeo@localhost/phone'));
      laptop.send("<presence type='unavailable'/>");
      await phone.next(isPresence('romeo@localhost/laptop', 'unavailable'));
      laptop.send('<presence><priority>3</priority></presence>');
      await phone.next(isPresence('romeo@localhost/laptop'));
      paris.send(`<message to='romeo@localhost' type='chat'><body>three</body></message>`);
      await laptop.next(body('three'));
      await phone.nothing(body('three'));
    } finally {
      laptop.destroy();
      phone.destroy();
      paris.destroy();
    }
  });
});

describe('going away', () => {
  test('an xmpp.js contact sees Romeo go unavailable when his socket dies', async () => {
    const juliet: XmppClient = client({ service: `xmpp://127.0.0.1:${port()}`, domain: 'localhost', username: 'juliet', password: 'jul1et', resource: 'lib' });
    juliet.on('error', () => undefined);
    const seen: Element[] = [];
    juliet.on('stanza', (el) => {
      if (el.is('presence')) seen.push(el);
    });
    await juliet.start();
    try {
      await juliet.send(xml('presence'));
      const romeo = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 'doomed' });
      romeo.send('<presence><status>here</status></presence>');
      // The probe at Romeo's login brings Juliet's presence; Juliet gets his.
      await romeo.next(isPresence('juliet@localhost/lib'));
      await until(() => seen.some((p) => p.attrs.from === 'romeo@localhost/doomed' && p.attrs.type === undefined));
      romeo.destroy();
      await until(() => seen.some((p) => p.attrs.from === 'romeo@localhost/doomed' && p.attrs.type === 'unavailable'));
    } finally {
      await juliet.stop();
    }
  });

  test('a session kept for stream-management resumption stays available until it expires', async () => {
    const juliet = await connectClient({ port: port(), user: 'juliet', password: 'jul1et', resource: 'watch' });
    juliet.send('<presence/>');
    const romeo = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 'sm' });
    try {
      romeo.send("<enable xmlns='urn:xmpp:sm:3' resume='true' max='1'/>");
      const enabled = await romeo.next((el) => el.name === 'enabled');
      assert.equal(enabled.attrs.max, '1');
      romeo.send('<presence/>');
      await juliet.next(isPresence('romeo@localhost/sm'));
      romeo.destroy();
      // Detached, not ended: contacts see nothing yet...
      await juliet.nothing(isPresence('romeo@localhost/sm', 'unavailable'), 500);
      // ...until the resumption window (1 s) closes.
      await juliet.next(isPresence('romeo@localhost/sm', 'unavailable'), 5000);
    } finally {
      juliet.destroy();
    }
  });
});

describe('addressing', () => {
  test('a subscription stanza to a full JID is handled as to the bare JID (RFC 6121 §3.1.2)', async () => {
    const paris = await connectClient({ port: port(), user: 'paris', password: 'county', resource: 'p' });
    const juliet = await connectClient({ port: port(), user: 'juliet', password: 'jul1et', resource: 'balcony' });
    try {
      juliet.send('<presence/>');
      paris.send(`<iq type='get' id='g'><query xmlns='${ROSTER}'/></iq>`);
      await paris.next((el) => el.attrs.id === 'g');
      paris.send(`<presence to='juliet@localhost/balcony' type='subscribe'/>`);
      const push = await paris.next((el) => el.is('iq') && el.attrs.type === 'set');
      assert.equal(push.getChild('query')?.getChild('item')?.attrs.jid, 'juliet@localhost');
      const req = await juliet.next((el) => el.is('presence') && el.attrs.type === 'subscribe');
      assert.equal(req.attrs.from, 'paris@localhost');
      assert.equal(req.attrs.to, 'juliet@localhost');
      // A request to an account that does not exist is answered 'unsubscribed' (§8.5.1),
      // which cancels the pending state again.
      paris.send(`<presence to='rosaline@localhost' type='subscribe'/>`);
      const ask = await paris.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.ask === 'subscribe');
      assert.equal(ask.getChild('query')?.getChild('item')?.attrs.jid, 'rosaline@localhost');
      await paris.next(isPresence('rosaline@localhost', 'unsubscribed'));
      const cancelled = await paris.next((el) => el.is('iq') && el.attrs.type === 'set');
      const item = cancelled.getChild('query')?.getChild('item');
      assert.equal(item?.attrs.jid, 'rosaline@localhost');
      assert.equal(item?.attrs.subscription, 'none');
      assert.equal(item?.attrs.ask, undefined);
    } finally {
      paris.destroy();
      juliet.destroy();
    }
  });

  test('presence of an unknown type is a bad-request', async () => {
    const paris = await connectClient({ port: port(), user: 'paris', password: 'county', resource: 'p2' });
    try {
      paris.send(`<presence to='juliet@localhost' type='invisible' id='x1'/>`);
      const err = await paris.next((el) => el.is('presence') && el.attrs.type === 'error');
      assert.equal(err.attrs.id, 'x1');
      assert.ok(err.getChild('error')?.getChild('bad-request'));
    } finally {
      paris.destroy();
    }
  });
});

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

