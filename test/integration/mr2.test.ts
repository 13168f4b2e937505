/**
 * MR2 negotiation against the real server: the feature is offered after
 * SASL; <enable/> works between SASL and bind and fails (without ending the
 * stream) before auth, after bind and a second time; the server's disco
 * lists it; messages from an MR2 stream need a fresh id.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectRaw, nextId } from '../helpers/client.js';
import { device, mamQuery, NS_MR2, stanzaErrorCondition, type Dev } from './mr2-helpers.js';

let v: Verona;
before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['julia', 'ju1ia']] });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const port = (): number => v.ports.c2s as number;

test('MR2 is offered after SASL only; enable between SASL and bind answers <enabled/>', async () => {
  const c = await connectRaw(port());
  try {
    const pre = await c.open();
    assert.equal(pre.getChild('mr2', NS_MR2), undefined, 'not offered before authentication');
    // Before auth: <failed> with a stanza error condition, and the stream goes on.
    c.send(`<enable xmlns='${NS_MR2}'/>`);
    const f = await c.next((el) => el.attrs.xmlns === NS_MR2);
    assert.equal(f.name, 'failed');
    assert.ok(f.getChild('unexpected-request', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0romeo\0r0meo').toString('base64')}</auth>`);
    await c.next('success');
    const post = await c.open();
    assert.ok(post.getChild('mr2', NS_MR2), 'offered after authentication');
    assert.ok(post.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind'));
    c.send(`<enable xmlns='${NS_MR2}'/>`);
    assert.equal((await c.next((el) => el.attrs.xmlns === NS_MR2)).name, 'enabled');
    // A second time: failed, stream goes on.
    c.send(`<enable xmlns='${NS_MR2}'/>`);
    assert.equal((await c.next((el) => el.attrs.xmlns === NS_MR2)).name, 'failed');
    const id = nextId();
    c.send(`<iq type='set' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>neg</resource></bind></iq>`);
    assert.equal((await c.next((el) => el.attrs.id === id)).attrs.type, 'result');
    // After bind: failed, stream goes on (a ping still works).
    c.send(`<enable xmlns='${NS_MR2}'/>`);
    assert.equal((await c.next((el) => el.attrs.xmlns === NS_MR2)).name, 'failed');
    // There is no disable.
    c.send(`<disable xmlns='${NS_MR2}'/>`);
    assert.equal((await c.next((el) => el.attrs.xmlns === NS_MR2)).name, 'failed');
    const p = nextId();
    c.send(`<iq type='get' id='${p}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    assert.equal((await c.next((el) => el.attrs.id === p)).attrs.type, 'result');
    assert.equal(c.closed, false);
  } finally {
    c.close();
  }
});

test('server disco lists MR2, carbons, stanza ids and msgoffline; the account lists MAM', async () => {
  const c = await device({ port: port(), user: 'romeo', password: 'r0meo', resource: 'disco', kind: 'plain', presence: false });
  try {
    const id = nextId();
    c.send(`<iq type='get' id='${id}' to='localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    const r = await c.next((el) => el.attrs.id === id);
    const features = r.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
    for (const f of [NS_MR2, 'urn:xmpp:carbons:2', 'urn:xmpp:carbons:rules:0', 'urn:xmpp:sid:0', 'msgoffline']) assert.ok(features.includes(f), f);
    const id2 = nextId();
    c.send(`<iq type='get' id='${id2}' to='romeo@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    const r2 = await c.next((el) => el.attrs.id === id2);
    const acc = r2.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
    for (const f of ['urn:xmpp:mam:2', 'urn:xmpp:mam:2#extended']) assert.ok(acc.includes(f), f);
  } finally {
    c.close();
  }
});

test('MR2 message without id: bad-request; a reused id: conflict; neither routed nor archived', async () => {
  const r: Dev = await device({ port: port(), user: 'romeo', password: 'r0meo', resource: 'ids', kind: 'mr2' });
  const j: Dev = await device({ port: port(), user: 'julia', password: 'ju1ia', resource: 'ids', kind: 'mr2' });
  try {
    r.send(`<message to='julia@localhost' type='chat'><body>no id</body></message>`);
    const e1 = await r.next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorCondition(e1), 'bad-request');
    r.send(`<message to='julia@localhost' type='chat' id='dup-1'><body>first</body></message>`);
    await j.next((el) => el.name === 'message' && el.getChildText('body') === 'first');
    r.send(`<message to='julia@localhost' type='chat' id='dup-1'><body>second</body></message>`);
    const e2 = await r.next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorCondition(e2), 'conflict');
    assert.equal(e2.attrs.id, 'dup-1');
    await j.nothing((el) => el.name === 'message' && el.getChildText('body') !== 'first', 300);
    // Only 'first' is in either archive.
    const jm = await mamQuery(j, { fields: { with: 'romeo@localhost' } });
    assert.deepEqual(jm.items.map((i) => i.body), ['first']);
    const rm = await mamQuery(r, { fields: { with: 'julia@localhost' } });
    assert.deepEqual(rm.items.map((i) => i.body), ['first']);
    assert.equal(rm.items[0]?.id, `${r.streamId}-dup-1`, 'the sender copy is stored under the computable id');
    // The same id on a new stream is fine: the archive id prefix differs.
    const r2 = await device({ port: port(), user: 'romeo', password: 'r0meo', resource: 'ids2', kind: 'mr2' });
    r2.send(`<message to='julia@localhost' type='chat' id='dup-1'><body>third</body></message>`);
    await j.next((el) => el.name === 'message' && el.getChildText('body') === 'third');
    r2.close();
  } finally {
    r.close();
    j.close();
  }
});

test('MR2 survives stream-management resumption; the new stream id becomes the archive id prefix', async () => {
  const phone = await device({ port: port(), user: 'julia', password: 'ju1ia', resource: 'sm-phone', kind: 'mr2' });
  const romeo = await device({ port: port(), user: 'romeo', password: 'r0meo', resource: 'sm-desk', kind: 'plain' });
  phone.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
  const enabled = await phone.next('enabled');
  const previd = String(enabled.attrs.id);
  const oldStream = phone.streamId;
  // The connection drops without a stream close: the session waits for resumption.
  phone.destroy();
  await new Promise((r) => setTimeout(r, 200));
  const c = (await connectRaw(port())) as Dev;
  try {
    await c.open();
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0julia\0ju1ia').toString('base64')}</auth>`);
    await c.next('success');
    await c.open();
    const newStream = String(c.header?.attrs.id);
    assert.notEqual(newStream, oldStream);
    c.send(`<resume xmlns='urn:xmpp:sm:3' previd='${previd}' h='0'/>`);
    assert.equal((await c.next((el) => el.name === 'resumed' || el.name === 'failed')).name, 'resumed');
    // Still MR2: a message to another resource of julia's is forked to it as 'received'.
    const other = await device({ port: port(), user: 'julia', password: 'ju1ia', resource: 'sm-laptop', kind: 'plain' });
    romeo.send(`<message to='julia@localhost/sm-laptop' type='chat' id='sm1'><body>after resume</body></message>`);
    const fork = await c.next((el) => el.name === 'message' && el.getChild('received', 'urn:xmpp:carbons:2') !== undefined);
    assert.ok(fork);
    // Still id-checked, and the computed id uses the new stream's id.
    c.send(`<message to='romeo@localhost' type='chat' id='res-1'><body>sent after resume</body></message>`);
    await romeo.next((el) => el.name === 'message' && el.getChildText('body') === 'sent after resume');
    const q = await mamQuery(c as Dev, { fields: { ids: `${newStream}-res-1` } });
    assert.equal(q.items[0]?.body, 'sent after resume');
    c.send(`<message to='romeo@localhost' type='chat'><body>no id after resume</body></message>`);
    const err = await c.next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorCondition(err), 'bad-request');
    other.close();
  } finally {
    c.close();
    romeo.close();
  }
});
