/**
 * BOSH (XEP-0124 / XEP-0206) against the real server: the StanzaJS client
 * logs in and messages over BOSH (with a WebSocket user on the other end),
 * and raw HTTP requests check session creation, rid ordering and
 * retransmission, hold/wait, pause, inactivity, polling and overactivity
 * rules, stream restarts, terminate, binding errors, CORS and size limits.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { WebSocket } from 'ws';
import * as XMPP from 'stanza';
import { xml, type XmppClient } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import { Parser, type Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';

const g = globalThis as unknown as { WebSocket?: unknown };
g.WebSocket ??= WebSocket; // for xmpp.js on Node 20

const HTTPBIND = 'http://jabber.org/protocol/httpbind';
const XBOSH = 'urn:xmpp:xbosh';

interface Resp {
  status: number;
  text: string;
  headers: Headers;
  attrs: Record<string, string | undefined>;
  children: Element[];
}

/** Parse a response <body/> with xmpp.js's parser (independent of ours). */
function parseBody(text: string): { attrs: Record<string, string | undefined>; children: Element[] } {
  const p = new Parser();
  let attrs: Record<string, string | undefined> = {};
  const children: Element[] = [];
  let error: Error | undefined;
  p.on('start', (el) => (attrs = el.attrs));
  p.on('element', (el) => children.push(el));
  p.on('error', (e) => (error = e));
  p.write(text);
  if (error) throw error;
  return { attrs, children };
}

let v: Verona;
let url: string;

async function post(body: string, headers: Record<string, string> = {}): Promise<Resp> {
  const res = await fetch(url, { method: 'POST', body, headers: { 'Content-Type': 'text/xml; charset=utf-8', ...headers } });
  const text = await res.text();
  const parsed = text === '' ? { attrs: {}, children: [] } : parseBody(text);
  return { status: res.status, text, headers: res.headers, ...parsed };
}

function bodyXml(attrs: Record<string, string | number | undefined>, children = ''): string {
  let s = `<body xmlns='${HTTPBIND}' xmlns:xmpp='${XBOSH}'`;
  for (const [k, val] of Object.entries(attrs)) if (val !== undefined) s += ` ${k}='${val}'`;
  return children === '' ? `${s}/>` : `${s}>${children}</body>`;
}

/** A raw BOSH session: tracks sid and the next rid. */
class RawBosh {
  sid = '';
  rid = Math.floor(Math.random() * 1e9) + 1000;

  async create(attrs: Record<string, string | number | undefined> = {}): Promise<Resp> {
    const r = await post(bodyXml({ rid: this.rid++, to: 'localhost', wait: 2, hold: 1, ver: '1.6', 'xml:lang': 'en', 'xmpp:version': '1.0', ...attrs }));
    this.sid = r.attrs.sid ?? '';
    return r;
  }

  send(children = '', attrs: Record<string, string | number | undefined> = {}, rid = this.rid++): Promise<Resp> {
    return post(bodyXml({ sid: this.sid, rid, ...attrs }, children));
  }

  /** PLAIN login (loopback counts as secure), restart, bind. */
  async login(user: string, password: string, resource: string): Promise<string> {
    const c = await this.create();
    assert.equal(c.status, 200);
    const auth = await this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
    assert.ok(auth.children.some((e) => e.name === 'success'), auth.text);
    const restart = await this.send('', { 'xmpp:restart': 'true', to: 'localhost' });
    const features = restart.children.find((e) => e.name === 'stream:features');
    assert.ok(features?.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind'), restart.text);
    const bind = await this.send(`<iq xmlns='jabber:client' type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
    const iq = bind.children.find((e) => e.name === 'iq');
    return iq?.getChild('bind')?.getChildText('jid') ?? '';
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves to 'pending' if the promise has not settled after `ms`. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | 'pending'> {
  return Promise.race([p, sleep(ms).then(() => 'pending' as const)]);
}

async function wsJuliet(resource: string): Promise<XmppClient> {
  const c = client({ service: `ws://127.0.0.1:${v.ports.http}/xmpp-websocket`, domain: 'localhost', username: 'juliet', password: 'jul1et', resource });
  c.on('error', () => undefined);
  await c.start();
  return c;
}

function collectBodies(c: XmppClient): string[] {
  const out: string[] = [];
  c.on('stanza', (el) => {
    const b = el.is('message') ? el.getChildText('body') : null;
    if (b !== null) out.push(b);
  });
  return out;
}

async function until(pred: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await sleep(20);
  }
}

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['juliet', 'jul1et']],
    config: {
      c2s: { requireTls: true, allowPlainWithoutTls: false },
      web: { allowedOrigins: ['https://chat.example.org'], bosh: { maxWait: 10, maxHold: 1, inactivity: 5, polling: 2, maxPause: 30, maxBodySize: 65536 } },
    },
  });
  url = `http://127.0.0.1:${v.ports.http}/http-bind`;
});
after(async () => {
  await v.stop();
  v.cleanup();
});

describe('StanzaJS over BOSH', () => {
  test('logs in, pings and exchanges messages with a WebSocket user', async () => {
    const romeo = XMPP.createClient({ jid: 'romeo@localhost', password: 'r0meo', resource: 'bosh', transports: { websocket: false, bosh: url } });
    const juliet = await wsJuliet('ws');
    const heard = collectBodies(juliet);
    try {
      await new Promise<void>((resolve, reject) => {
        romeo.once('session:started', () => resolve());
        romeo.once('disconnected', () => reject(new Error('disconnected before session start')));
        romeo.connect();
      });
      assert.equal(romeo.jid, 'romeo@localhost/bosh');
      await romeo.ping('localhost');

      romeo.sendMessage({ to: 'juliet@localhost/ws', type: 'chat', body: 'over bosh' });
      await until(() => heard.includes('over bosh'));

      const got = new Promise<string | undefined>((resolve) => romeo.on('message', (m) => m.body && resolve(m.body)));
      await juliet.send(xml('message', { to: 'romeo@localhost/bosh', type: 'chat' }, xml('body', {}, 'to bosh')));
      assert.equal(await got, 'to bosh');

      // Both messages are in Romeo's archive, queried over BOSH (MAM).
      const fin = await romeo.searchHistory({ with: 'juliet@localhost' });
      assert.equal(fin.complete, true);
      const bodies = (fin.results ?? []).map((r) => r.item.message?.body);
      assert.deepEqual(bodies.slice(-2), ['over bosh', 'to bosh']);
    } finally {
      const ended = new Promise((r) => romeo.once('disconnected', r));
      romeo.disconnect();
      await ended;
      await juliet.stop();
    }
  });
});

describe('session creation and restart (raw)', () => {
  test('the creation response carries the session attributes and the stream features', async () => {
    const b = new RawBosh();
    const r = await b.create({ wait: 60, hold: 3 });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/xml/);
    const a = r.attrs;
    assert.equal(a.xmlns, HTTPBIND);
    assert.ok(a.sid && a.sid.length >= 16);
    assert.equal(a.wait, '10', 'wait capped at bosh.maxWait');
    assert.equal(a.hold, '1', 'hold capped at bosh.maxHold');
    assert.equal(a.requests, '2');
    assert.equal(a.inactivity, '5');
    assert.equal(a.polling, '2');
    assert.equal(a.maxpause, '30');
    assert.equal(a.ver, '1.11');
    assert.equal(a.from, 'localhost');
    assert.ok(a.authid, 'authid is the stream id');
    assert.equal(a['xmpp:version'], '1.0');
    assert.equal(a['xmpp:restartlogic'], 'true');
    const f = r.children.find((e) => e.name === 'stream:features');
    assert.ok(f, r.text);
    const mechs = f.getChild('mechanisms')?.getChildren('mechanism').map((m) => m.text()) ?? [];
    assert.ok(mechs.includes('PLAIN') && mechs.includes('SCRAM-SHA-256'), 'loopback is secure: SASL offered though TLS is required');
    await b.send('', { type: 'terminate' });
  });

  test('login, restart, bind, stanzas in jabber:client, terminate; then the sid is gone', async () => {
    const b = new RawBosh();
    assert.equal(await b.login('romeo', 'r0meo', 'raw'), 'romeo@localhost/raw');
    const ping = await b.send(`<iq xmlns='jabber:client' type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const iq = ping.children.find((e) => e.name === 'iq');
    assert.equal(iq?.attrs.xmlns, 'jabber:client');
    assert.equal(iq?.attrs.type, 'result');
    assert.equal(iq?.attrs.id, 'p1');
    const end = await b.send(`<presence xmlns='jabber:client' type='unavailable'/>`, { type: 'terminate' });
    assert.equal(end.status, 200);
    assert.equal(end.attrs.type, 'terminate');
    const after = await b.send();
    assert.equal(after.attrs.type, 'terminate');
    assert.equal(after.attrs.condition, 'item-not-found');
  });

  test('stanzas without xmlns inside <body/> are treated as jabber:client', async () => {
    const b = new RawBosh();
    await b.login('romeo', 'r0meo', 'nons');
    const ping = await b.send(`<iq type='get' id='p2' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const iq = ping.children.find((e) => e.name === 'iq');
    assert.equal(iq?.attrs.type, 'result', ping.text);
    await b.send('', { type: 'terminate' });
  });

  test('a restart before authentication is a stream error (remote-stream-error)', async () => {
    const b = new RawBosh();
    await b.create();
    const r = await b.send('', { 'xmpp:restart': 'true' });
    assert.equal(r.attrs.type, 'terminate');
    assert.equal(r.attrs.condition, 'remote-stream-error');
    const err = r.children.find((e) => e.name === 'stream:error');
    assert.ok(err?.getChild('bad-format'), r.text);
  });

  test('an unexpected element before auth ends the stream with the stream error inside the terminate body', async () => {
    const b = new RawBosh();
    await b.create();
    const r = await b.send(`<foo xmlns='urn:example:foo'/>`);
    assert.equal(r.attrs.condition, 'remote-stream-error');
    assert.ok(r.children.find((e) => e.name === 'stream:error')?.getChild('not-authorized'));
  });

  test('a stanza over the pre-auth size limit: policy-violation', async () => {
    const b = new RawBosh();
    await b.create();
    const r = await b.send(`<message xmlns='jabber:client' to='juliet@localhost'><body>${'x'.repeat(20000)}</body></message>`);
    assert.equal(r.attrs.condition, 'remote-stream-error');
    assert.ok(r.children.find((e) => e.name === 'stream:error')?.getChild('policy-violation'), r.text);
  });

  test('creation errors: another host, missing rid, malformed XML, wrong root', async () => {
    const other = await post(bodyXml({ rid: 1, to: 'example.net', wait: 2, hold: 1, ver: '1.6' }));
    assert.equal(other.status, 200);
    assert.equal(other.attrs.condition, 'host-unknown');
    const norid = await post(bodyXml({ to: 'localhost', wait: 2, hold: 1, ver: '1.6' }));
    assert.equal(norid.attrs.condition, 'bad-request');
    const bad = await post(`<body xmlns='${HTTPBIND}' rid='1'`);
    assert.equal(bad.attrs.condition, 'bad-request');
    const wrong = await post(`<stream xmlns='${HTTPBIND}' rid='1'/>`);
    assert.equal(wrong.attrs.condition, 'bad-request');
  });
});

describe('request handling (raw)', () => {
  test('a request waits until there is something to say, and a newer request releases it (hold=1)', async () => {
    const b = new RawBosh();
    await b.login('romeo', 'r0meo', 'hold');
    const first = b.send();
    assert.equal(await settledWithin(first, 300), 'pending', 'an empty request is held');
    const second = b.send(`<iq xmlns='jabber:client' type='get' id='p3' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    // The older request is released (carrying the reply if it is ready first); the reply comes on one of them.
    const [r1, r2] = await Promise.all([first, second]);
    const replies = [...r1.children, ...r2.children].filter((e) => e.name === 'iq');
    assert.deepEqual(replies.map((e) => e.attrs.id), ['p3']);
    await b.send('', { type: 'terminate' });
  });

  test('a held request is answered empty after wait seconds', async () => {
    const b = new RawBosh();
    await b.login('romeo', 'r0meo', 'wait'); // wait=2
    const t0 = Date.now();
    const r = await b.send();
    const took = Date.now() - t0;
    assert.equal(r.status, 200);
    assert.equal(r.children.length, 0);
    assert.ok(took >= 1500 && took < 5000, `answered after ${took} ms`);
    await b.send('', { type: 'terminate' });
  });

  test('requests are processed in rid order even when they arrive out of order', async () => {
    const juliet = await wsJuliet('order');
    const heard = collectBodies(juliet);
    const b = new RawBosh();
    await b.login('romeo', 'r0meo', 'order');
    const rid = b.rid;
    b.rid += 2;
    const msg = (body: string): string => `<message xmlns='jabber:client' to='juliet@localhost/order' type='chat'><body>${body}</body></message>`;
    const later = b.send(msg('second'), {}, rid + 1);
    await sleep(200);
    assert.deepEqual(heard, [], 'the early request waits for the gap');
    const earlier = b.send(msg('first'), {}, rid);
    await until(() => heard.length === 2);
    assert.deepEqual(heard, ['first', 'second']);
    await Promise.all([earlier, later]);
    await b.send('', { type: 'terminate' });
    await juliet.stop();
  });

  test('a repeated rid gets the same response again, and its payload is not processed twice', async () => {
    const juliet = await wsJuliet('retransmit');
    const heard = collectBodies(juliet);
    const b = new RawBosh();
    await b.login('romeo', 'r0meo', 'retransmit');
    const rid = b.rid++;
    const payload = `<message xmlns='jabber:client' to='juliet@localhost/retransmit' type='chat'><body>once</body></message><iq xmlns='jabber:client' type='get' id='p4' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`;
    const r1 = await b.send(payload, {}, rid);
    assert.ok(r1.children.some((e) => e.name === 'iq'), r1.text);
    const again = await b.send(payload, {}, rid);
    assert.equal(again.text, r1.text);
    await sleep(200);
    assert.deepEqual(heard, ['once']);
    await b.send('', { type: 'terminate' });
    await juliet.stop();
  });

  test('rid outside the window, or too old to resend: item-not-found, and the session ends', async () => {
    const b = new RawBosh();
    await b.login('romeo', 'r0meo', 'window');
    const ahead = await b.send('', {}, b.rid + 5);
    assert.equal(ahead.attrs.type, 'terminate');
    assert.equal(ahead.attrs.condition, 'item-not-found');
    const gone = await b.send();
    assert.equal(gone.attrs.condition, 'item-not-found');

    const c = new RawBosh();
    await c.login('romeo', 'r0meo', 'old');
    const old = await c.send('', {}, c.rid - 4);
    assert.equal(old.attrs.condition, 'item-not-found');
  });

  test('unknown sid: item-not-found in a terminate body', async () => {
    const r = await post(bodyXml({ sid: 'no-such-session', rid: 5 }));
    assert.equal(r.status, 200);
    assert.equal(r.attrs.type, 'terminate');
    assert.equal(r.attrs.condition, 'item-not-found');
  });

  test('clients older than BOSH 1.6 (no ver) get HTTP error codes instead of terminate bodies', async () => {
    const bad = await post(bodyXml({ to: 'localhost', wait: 2, hold: 1 }));
    assert.equal(bad.status, 400);
    const b = new RawBosh();
    const c = await b.create({ ver: undefined });
    assert.equal(c.status, 200);
    const ahead = await b.send('', {}, b.rid + 5);
    assert.equal(ahead.status, 404);
  });

  test('more simultaneous requests than allowed: policy-violation', async () => {
    const b = new RawBosh();
    await b.login('romeo', 'r0meo', 'busy');
    const rid = b.rid;
    const held = b.send('', {}, rid); // waiting: 1
    await sleep(100);
    const early = b.send('', {}, rid + 2); // early: 1
    await sleep(100);
    const third = await b.send('', {}, rid + 1); // 3 open > requests (2)
    assert.equal(third.attrs.condition, 'policy-violation');
    assert.equal((await held).attrs.type, 'terminate');
    assert.equal((await early).attrs.type, 'terminate');
  });

  test('a polling session (hold=0) that polls faster than "polling" is ended', async () => {
    const b = new RawBosh();
    const c = await b.create({ hold: 0 });
    assert.equal(c.attrs.hold, '0');
    assert.equal(c.attrs.requests, '1');
    const p1 = await b.send();
    assert.equal(p1.attrs.type, undefined, 'first poll answered at once');
    const p2 = await b.send();
    assert.equal(p2.attrs.condition, 'policy-violation');
  });

  test('pause keeps a session past inactivity; an idle one is ended after inactivity seconds', async () => {
    const paused = new RawBosh();
    await paused.login('romeo', 'r0meo', 'paused');
    const idle = new RawBosh();
    await idle.login('romeo', 'r0meo', 'idle');
    const held = paused.send();
    await sleep(100);
    const t0 = Date.now();
    const p = await paused.send('', { pause: 20 });
    assert.ok(Date.now() - t0 < 1000, 'a pause request is answered at once');
    assert.equal(p.attrs.type, undefined);
    assert.equal((await held).status, 200, 'held requests are answered too');
    const tooLong = new RawBosh();
    await tooLong.login('romeo', 'r0meo', 'toolong');
    const refused = await tooLong.send('', { pause: 31 });
    assert.equal(refused.attrs.condition, 'policy-violation');

    await sleep(7000); // inactivity is 5 s
    const late = await idle.send();
    assert.equal(late.attrs.condition, 'item-not-found', 'the idle session expired');
    const back = await paused.send(`<iq xmlns='jabber:client' type='get' id='p5' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    assert.equal(back.children.find((e) => e.name === 'iq')?.attrs.type, 'result', back.text);
    await paused.send('', { type: 'terminate' });
  });
});

describe('HTTP rules', () => {
  test('CORS: preflight and POST for allowed origins; other origins are refused', async () => {
    const pre = await fetch(url, { method: 'OPTIONS', headers: { Origin: 'https://chat.example.org', 'Access-Control-Request-Method': 'POST' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), 'https://chat.example.org');
    assert.match(pre.headers.get('access-control-allow-methods') ?? '', /POST/);
    assert.match(pre.headers.get('access-control-allow-headers') ?? '', /Content-Type/i);
    const denied = await fetch(url, { method: 'OPTIONS', headers: { Origin: 'https://evil.example' } });
    assert.equal(denied.status, 403);

    const b = new RawBosh();
    const ok = await post(bodyXml({ rid: b.rid, to: 'localhost', wait: 2, hold: 1, ver: '1.6' }), { Origin: 'https://chat.example.org' });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'https://chat.example.org');
    b.sid = ok.attrs.sid ?? '';
    b.rid++;
    await b.send('', { type: 'terminate' });
    const evil = await post(bodyXml({ rid: 1, to: 'localhost', wait: 2, hold: 1, ver: '1.6' }), { Origin: 'https://evil.example' });
    assert.equal(evil.status, 403);
  });

  test('a body over bosh.maxBodySize is refused with 413 and policy-violation', async () => {
    const r = await post(bodyXml({ rid: 1, to: 'localhost', wait: 2, hold: 1, ver: '1.6' }, `<x xmlns='urn:example'>${'y'.repeat(70000)}</x>`));
    assert.equal(r.status, 413);
    assert.equal(r.attrs.condition, 'policy-violation');
  });

  test('GET explains the endpoint; other methods are refused', async () => {
    const get = await fetch(url);
    assert.equal(get.status, 200);
    assert.match(await get.text(), /BOSH/);
    const put = await fetch(url, { method: 'PUT', body: 'x' });
    assert.equal(put.status, 405);
  });
});
