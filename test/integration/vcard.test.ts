/**
 * XEP-0054 vcard-temp against the real server: empty vCard when none is
 * stored, set and get the own one (without `to` and with the own bare JID),
 * read another account's, refuse changing another's, the size limit,
 * deletion with an empty vCard, persistence across a restart, disco, and a
 * real client library (xmpp.js) reading what a raw client wrote.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { xml } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf } from '../helpers/client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // xmpp.js uses STARTTLS; the test server's certificate is self-signed

const VCARD = 'vcard-temp';
let v: Verona;

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['juliet', 'jul1et']],
    config: { moduleOptions: { vcard: { maxSize: 2000 } } },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const iq = sendIq;
const errorOf = stanzaErrorOf;
const connect = (user: string, password: string, resource: string, port = v.ports.c2s as number) =>
  connectClient({ port, user, password, resource });

const ROMEO_VCARD = `<vCard xmlns='${VCARD}'><FN>Romeo Montague</FN><NICKNAME>romeo</NICKNAME><EMAIL><INTERNET/><USERID>romeo@montague.lit</USERID></EMAIL></vCard>`;

test('own vCard: empty at first, then what was set (without to and to the own bare JID)', async () => {
  const r = await connect('romeo', 'r0meo', 'a');
  try {
    const empty = await iq(r, `<vCard xmlns='${VCARD}'/>`, "type='get'");
    assert.equal(empty.attrs.type, 'result');
    const ev = empty.getChild('vCard', VCARD);
    assert.ok(ev, 'an empty vCard, not an error');
    assert.equal(ev.getChildElements().length, 0);

    const set = await iq(r, ROMEO_VCARD);
    assert.equal(set.attrs.type, 'result', set.toString());
    for (const attrs of ["type='get'", "type='get' to='romeo@localhost'"]) {
      const got = await iq(r, `<vCard xmlns='${VCARD}'/>`, attrs);
      const card = got.getChild('vCard', VCARD);
      assert.equal(card?.getChildText('FN'), 'Romeo Montague');
      assert.equal(card?.getChild('EMAIL')?.getChildText('USERID'), 'romeo@montague.lit');
      assert.ok(card?.getChild('EMAIL')?.getChild('INTERNET'));
    }
  } finally {
    r.destroy();
  }
});

test("another account's vCard can be read, not changed; unknown accounts get service-unavailable", async () => {
  const r = await connect('romeo', 'r0meo', 'b');
  const j = await connect('juliet', 'jul1et', 'b');
  try {
    await iq(r, ROMEO_VCARD);
    const got = await iq(j, `<vCard xmlns='${VCARD}'/>`, "type='get' to='romeo@localhost'");
    assert.equal(got.attrs.type, 'result');
    assert.equal(got.attrs.from, 'romeo@localhost');
    assert.equal(got.getChild('vCard', VCARD)?.getChildText('NICKNAME'), 'romeo');

    const set = await iq(j, `<vCard xmlns='${VCARD}'><FN>Not Romeo</FN></vCard>`, "type='set' to='romeo@localhost'");
    assert.equal(errorOf(set), 'forbidden');
    const still = await iq(r, `<vCard xmlns='${VCARD}'/>`, "type='get'");
    assert.equal(still.getChild('vCard', VCARD)?.getChildText('FN'), 'Romeo Montague');

    const none = await iq(j, `<vCard xmlns='${VCARD}'/>`, "type='get' to='benvolio@localhost'");
    assert.equal(errorOf(none), 'service-unavailable');
  } finally {
    r.destroy();
    j.destroy();
  }
});

test('size limit, deletion with an empty vCard, and disco', async () => {
  const j = await connect('juliet', 'jul1et', 'c');
  try {
    const big = await iq(j, `<vCard xmlns='${VCARD}'><DESC>${'x'.repeat(3000)}</DESC></vCard>`);
    assert.equal(errorOf(big), 'not-acceptable');
    await iq(j, `<vCard xmlns='${VCARD}'><FN>Juliet</FN></vCard>`);
    assert.equal((await iq(j, `<vCard xmlns='${VCARD}'/>`, "type='get'")).getChild('vCard')?.getChildText('FN'), 'Juliet');
    assert.equal((await iq(j, `<vCard xmlns='${VCARD}'/>`)).attrs.type, 'result');
    const gone = await iq(j, `<vCard xmlns='${VCARD}'/>`, "type='get'");
    assert.equal(gone.getChild('vCard', VCARD)?.getChildElements().length, 0);

    const info = await iq(j, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='localhost'");
    assert.ok(info.getChild('query')?.getChildren('feature').some((f) => f.attrs.var === VCARD));
  } finally {
    j.destroy();
  }
});

test('a real client (xmpp.js) reads and writes vCards; they survive a restart', async () => {
  const w = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et']] });
  let w2: Verona | undefined;
  try {
    const c = client({ service: `xmpp://127.0.0.1:${w.ports.c2s}`, domain: 'localhost', username: 'juliet', password: 'jul1et', resource: 'xmppjs' });
    c.on('error', () => undefined);
    try {
      await c.start();
      await c.iqCaller.set(xml('vCard', { xmlns: VCARD }, xml('FN', {}, 'Juliet Capulet'), xml('ROLE', {}, 'heiress')));
      const mine = await c.iqCaller.get(xml('vCard', { xmlns: VCARD }));
      assert.equal(mine.getChildText('FN'), 'Juliet Capulet');
    } finally {
      await c.stop();
    }
    await w.stop();
    w2 = await startVerona({ dataDir: w.dataDir });
    const r = await connect('romeo', 'r0meo', 'x', w2.ports.c2s as number);
    try {
      const hers = await iq(r, `<vCard xmlns='${VCARD}'/>`, "type='get' to='juliet@localhost'");
      assert.equal(hers.getChild('vCard', VCARD)?.getChildText('ROLE'), 'heiress');
    } finally {
      r.destroy();
    }
  } finally {
    await w2?.stop();
    await w.stop();
    w.cleanup();
  }
});
