/**
 * Foundation (issue 2): a real client library connects to the real server
 * over STARTTLS and direct TLS, authenticates with SCRAM, binds, pings and
 * asks for the version; raw sockets send bad input and get the exact stream
 * error, and the server keeps serving the next client.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import { xml } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectRaw, connectClient, type RawConnection } from '../helpers/client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

let v: Verona;
let strict: Verona; // production-like: TLS required, PLAIN only over TLS

before(async () => {
  [v, strict] = await Promise.all([
    startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et']] }),
    startVerona({ users: [['romeo', 'r0meo']], config: { c2s: { requireTls: true, allowPlainWithoutTls: false } } }),
  ]);
});
after(async () => {
  await Promise.all([v.stop(), strict.stop()]);
  v.cleanup();
  strict.cleanup();
});

async function xmppClient(service: string, resource?: string) {
  const c = client({ service, domain: 'localhost', username: 'romeo', password: 'r0meo', resource });
  c.on('error', () => undefined);
  await c.start();
  return c;
}

describe('@xmpp/client (SCRAM-SHA-1)', () => {
  test('STARTTLS, server-chosen resource, ping, version, time', async () => {
    const c = await xmppClient(`xmpp://127.0.0.1:${strict.ports.c2s}`);
    try {
      assert.match(String(c.jid), /^romeo@localhost\/.+/);
      const pong = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
      assert.equal(pong.attrs.type, 'result');
      const ver = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'jabber:iq:version' })));
      assert.equal(ver.getChild('query')?.getChildText('name'), 'Verona');
      const time = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('time', { xmlns: 'urn:xmpp:time' })));
      assert.match(time.getChild('time')?.getChildText('utc') ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
      const info = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
      const features = info.getChild('query')?.getChildren('feature').map((f) => f.attrs.var) ?? [];
      for (const f of ['urn:xmpp:ping', 'jabber:iq:version', 'urn:xmpp:time', 'http://jabber.org/protocol/disco#info']) assert.ok(features.includes(f), f);
    } finally {
      await c.stop();
    }
  });

  test('direct TLS (XEP-0368), client-chosen resource', async () => {
    const c = await xmppClient(`xmpps://127.0.0.1:${strict.ports['c2s-tls']}`, 'balcony');
    try {
      assert.equal(String(c.jid), 'romeo@localhost/balcony');
      const unknown = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'urn:example:nothing' }))).catch((e: unknown) => e);
      assert.ok(unknown instanceof Error);
      assert.match(String((unknown as { condition?: string }).condition ?? unknown.message), /service-unavailable/);
    } finally {
      await c.stop();
    }
  });
});

/** An independent SCRAM-SHA-256 client (RFC 7677), written against the RFC, over STARTTLS. */
test('SCRAM-SHA-256 over STARTTLS verifies the server signature', async () => {
  const c = await connectRaw(strict.ports.c2s as number);
  const f1 = await c.open();
  assert.ok(f1.getChild('starttls'), 'STARTTLS offered');
  assert.ok(f1.getChild('starttls')?.getChild('required'), 'TLS required by default');
  assert.equal(f1.getChild('mechanisms'), undefined, 'no mechanisms before TLS when TLS is required');
  c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await c.next('proceed');
  await c.starttls();
  const f2 = await c.open();
  const mechs = f2.getChild('mechanisms')?.getChildren('mechanism').map((m) => m.text()) ?? [];
  assert.deepEqual(mechs.sort(), ['PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256']);
  const cnonce = randomBytes(18).toString('base64');
  const bare = `n=romeo,r=${cnonce}`;
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${Buffer.from('n,,' + bare).toString('base64')}</auth>`);
  const ch = Buffer.from((await c.next('challenge')).text(), 'base64').toString();
  const attrs = Object.fromEntries(ch.split(',').map((p) => [p[0], p.slice(2)]));
  assert.ok(attrs.r?.startsWith(cnonce));
  assert.ok(Number(attrs.i) >= 4096);
  const salted = pbkdf2Sync('r0meo', Buffer.from(attrs.s as string, 'base64'), Number(attrs.i), 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  const storedKey = createHash('sha256').update(clientKey).digest();
  const final = `c=biws,r=${attrs.r}`;
  const authMsg = `${bare},${ch},${final}`;
  const sig = createHmac('sha256', storedKey).update(authMsg).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ (sig[i] as number)));
  c.send(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(`${final},p=${proof.toString('base64')}`).toString('base64')}</response>`);
  const success = await c.next('success');
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  const expected = createHmac('sha256', serverKey).update(authMsg).digest('base64');
  assert.equal(Buffer.from(success.text(), 'base64').toString(), `v=${expected}`);
  const f3 = await c.open();
  assert.ok(f3.getChild('bind'));
  c.destroy();
});

test('wrong password gives not-authorized', async () => {
  const c = await connectRaw(v.ports.c2s as number);
  await c.open();
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0romeo\0wrong').toString('base64')}</auth>`);
  const f = await c.next('failure');
  assert.ok(f.getChild('not-authorized'));
  c.destroy();
});

test('PLAIN is not offered without TLS unless configured', async () => {
  const c = await connectRaw(strict.ports['c2s-tls'] as number).catch(() => undefined);
  c?.destroy();
  const plain = await connectRaw(strict.ports.c2s as number);
  await plain.open();
  plain.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0romeo\0r0meo').toString('base64')}</auth>`);
  const f = await plain.next('failure');
  assert.ok(f.getChild('encryption-required'));
  plain.destroy();
});

test('a second session with the same resource replaces the first with <conflict/>', async () => {
  const a = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'phone' });
  const b = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'phone' });
  const err = await a.next('stream:error');
  assert.ok(err.getChild('conflict'));
  await a.waitClose();
  assert.equal(b.jid, 'romeo@localhost/phone');
  b.close();
});

test('from spoofing is a stream error (invalid-from)', async () => {
  const a = await connectClient({ port: v.ports.c2s as number, user: 'juliet', password: 'jul1et' });
  a.send("<message from='romeo@localhost/x' to='juliet@localhost'><body>spoof</body></message>");
  const err = await a.next('stream:error');
  assert.ok(err.getChild('invalid-from'));
});

/** Each bad input gets its exact stream error; afterwards the server still serves a client. */
const BAD: Array<[string, string, (c: RawConnection) => void]> = [
  ['not-well-formed', 'mismatched tags', (c) => c.send(streamHeader() + '<message><body></message>')],
  ['restricted-xml', 'a comment', (c) => c.send(streamHeader() + '<!-- hello -->')],
  ['restricted-xml', 'a processing instruction', (c) => c.send(streamHeader() + "<?evil x='1'?>")],
  ['restricted-xml', 'a DOCTYPE', (c) => c.send("<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY x 'y'>]>" + streamHeader())],
  ['invalid-namespace', 'a wrong stream namespace', (c) => c.send("<stream:stream xmlns='jabber:client' xmlns:stream='urn:wrong' to='localhost' version='1.0'>")],
  ['invalid-namespace', 'a wrong content namespace', (c) => c.send("<stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>")],
  ['host-unknown', 'an unknown to', (c) => c.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>")],
  ['unsupported-version', 'version 2.0', (c) => c.send("<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='2.0'>")],
  ['policy-violation', 'a huge stanza before auth', (c) => c.send(streamHeader() + `<message><body>${'x'.repeat(20000)}</body></message>`)],
  ['policy-violation', 'deep nesting', (c) => c.send(streamHeader() + '<a>'.repeat(200))],
  ['not-authorized', 'a stanza before auth', (c) => c.send(streamHeader() + "<message to='juliet@localhost'><body>hi</body></message>")],
];

function streamHeader(): string {
  return "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";
}

describe('bad input gets the right stream error', () => {
  for (const [condition, what, send] of BAD) {
    test(`${what} -> <${condition}/>`, async () => {
      const c = await connectRaw(v.ports.c2s as number);
      send(c);
      const err = await c.next('stream:error');
      assert.ok(err.getChild(condition, 'urn:ietf:params:xml:ns:xmpp-streams'), `expected ${condition}, got ${err.toString()}`);
      await c.waitClose();
      // The server still serves the next client.
      const ok = await connectClient({ port: v.ports.c2s as number, user: 'juliet', password: 'jul1et' });
      assert.match(ok.jid, /^juliet@localhost\//);
      ok.close();
    });
  }
});

test('IQ to an unknown namespace gets service-unavailable; bad to gets jid-malformed', async () => {
  const c = await connectClient({ port: v.ports.c2s as number, user: 'juliet', password: 'jul1et' });
  c.send("<iq type='get' id='u1' to='localhost'><query xmlns='urn:example:unknown'/></iq>");
  const r = await c.next((el) => el.attrs.id === 'u1');
  assert.equal(r.attrs.type, 'error');
  assert.ok(r.getChild('error')?.getChild('service-unavailable'));
  c.send("<message id='m1' to='@@bad'><body>x</body></message>");
  const m = await c.next((el) => el.attrs.id === 'm1');
  assert.equal(m.attrs.type, 'error');
  assert.ok(m.getChild('error')?.getChild('jid-malformed'));
  c.close();
});

test('SIGTERM sends <system-shutdown/> to every stream and exits 0', async () => {
  const s = await startVerona({ users: [['romeo', 'r0meo']] });
  try {
    const c = await connectClient({ port: s.ports.c2s as number, user: 'romeo', password: 'r0meo' });
    const errP = c.next('stream:error');
    const code = await s.stop('SIGTERM');
    const err = await errP;
    assert.ok(err.getChild('system-shutdown'));
    assert.equal(code, 0);
  } finally {
    s.cleanup();
  }
});
