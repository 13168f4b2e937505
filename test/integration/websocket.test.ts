/**
 * XMPP over WebSocket (RFC 7395) against the real server: the xmpp.js client
 * logs in and messages over WebSocket (and with a TCP user), and a raw `ws`
 * client checks the framing (<open/>/<close/>, namespace-complete frames,
 * stanzas without xmlns), stream errors, the subprotocol and origin rules,
 * trusted-proxy handling, per-address limits, the ping heartbeat and stream
 * management resumption across WebSocket connections.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { WebSocket } from 'ws';
import { xml, type XmppClient } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import { Parser, type Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';

// xmpp.js uses the global WebSocket, which Node 20 lacks (Node 22 has one).
const g = globalThis as unknown as { WebSocket?: unknown };
g.WebSocket ??= WebSocket;

const FRAMING = 'urn:ietf:params:xml:ns:xmpp-framing';

/** A raw RFC 7395 connection: one parsed element per frame, parsed by xmpp.js's parser (not ours). */
class Frames {
  readonly raw: string[] = [];
  private readonly queue: Element[] = [];
  private waiters: Array<(el: Element) => void> = [];
  readonly closed: Promise<number>;

  constructor(readonly ws: WebSocket) {
    ws.on('message', (data, isBinary) => {
      assert.equal(isBinary, false, 'server frames are text');
      const s = data.toString();
      this.raw.push(s);
      const el = parseFrame(s);
      const w = this.waiters.shift();
      if (w) w(el);
      else this.queue.push(el);
    });
    this.closed = new Promise((resolve) => ws.on('close', (code) => resolve(code)));
  }

  send(s: string): void {
    this.ws.send(s);
  }

  next(timeoutMs = 5000): Promise<Element> {
    const el = this.queue.shift();
    if (el) return Promise.resolve(el);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no frame within ${timeoutMs} ms; got so far:\n${this.raw.join('\n')}`)), timeoutMs);
      this.waiters.push((e) => {
        clearTimeout(t);
        resolve(e);
      });
    });
  }

  async expect(name: string, timeoutMs = 5000): Promise<Element> {
    const el = await this.next(timeoutMs);
    assert.equal(el.name, name, `expected <${name}/>, got ${el.toString()}`);
    return el;
  }

  close(): void {
    this.ws.terminate();
  }
}

/** One frame is one complete element; wrapping it lets the stream parser hand it over whole. */
function parseFrame(s: string): Element {
  const p = new Parser();
  let out: Element | undefined;
  let error: Error | undefined;
  p.on('element', (el) => (out = el));
  p.on('error', (e) => (error = e));
  p.write(`<frame>${s}</frame>`);
  if (error) throw error;
  if (!out) throw new Error(`frame did not hold one element: ${s}`);
  return out;
}

interface WsOptions {
  protocol?: string | null;
  origin?: string;
  headers?: Record<string, string>;
  autoPong?: boolean;
}

/** Resolves with the open connection, or rejects with the HTTP status of a refused upgrade. */
function connectWs(port: number, opts: WsOptions = {}): Promise<Frames> {
  const protocols = opts.protocol === null ? [] : [opts.protocol ?? 'xmpp'];
  const ws = new WebSocket(`ws://127.0.0.1:${port}/xmpp-websocket`, protocols, {
    headers: { ...(opts.origin ? { Origin: opts.origin } : {}), ...opts.headers },
    autoPong: opts.autoPong ?? true,
  });
  return new Promise((resolve, reject) => {
    ws.once('open', () => {
      assert.equal(ws.protocol, 'xmpp', 'server selected the xmpp subprotocol');
      resolve(new Frames(ws));
    });
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode }));
      ws.terminate();
    });
    ws.on('error', (err) => reject(err));
  });
}

const open = (to = 'localhost'): string => `<open xmlns='${FRAMING}' to='${to}' version='1.0'/>`;
const b64 = (s: string): string => Buffer.from(s).toString('base64');

/** Open, authenticate with PLAIN, restart and bind: returns the bound JID. */
async function login(c: Frames, user: string, password: string, resource?: string): Promise<string> {
  c.send(open());
  await c.expect('open');
  await c.expect('stream:features');
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64(`\0${user}\0${password}`)}</auth>`);
  await c.expect('success');
  c.send(open());
  await c.expect('open');
  const f = await c.expect('stream:features');
  assert.ok(f.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind'));
  const res = resource ? `<resource>${resource}</resource>` : '';
  c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${res}</bind></iq>`);
  const r = await c.expect('iq');
  assert.equal(r.attrs.type, 'result');
  return r.getChild('bind')?.getChildText('jid') ?? '';
}

async function wsClient(port: number, user: string, password: string, resource?: string): Promise<XmppClient> {
  const c = client({ service: `ws://127.0.0.1:${port}/xmpp-websocket`, domain: 'localhost', username: user, password, resource });
  c.on('error', () => undefined);
  await c.start();
  return c;
}

function nextStanza(c: XmppClient, pred: (el: Element) => boolean, timeoutMs = 5000): Promise<Element> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error('stanza timeout')), timeoutMs);
    c.on('stanza', (el) => {
      if (pred(el)) {
        clearTimeout(t);
        resolve(el);
      }
    });
  });
}

let v: Verona; // quick-start-like: TLS required, but loopback counts as secure
let proxied: Verona; // behind a trusted proxy, small per-address limit
let wsPort: number;

before(async () => {
  [v, proxied] = await Promise.all([
    startVerona({
      users: [['romeo', 'r0meo'], ['juliet', 'jul1et']],
      config: {
        c2s: { requireTls: true, allowPlainWithoutTls: false },
        web: { allowedOrigins: ['https://chat.example.org'], websocket: { pingInterval: 1 } },
      },
    }),
    startVerona({
      users: [['romeo', 'r0meo']],
      config: { c2s: { requireTls: true, allowPlainWithoutTls: false }, web: { trustedProxies: ['127.0.0.1'], maxConnectionsPerAddress: 2 } },
    }),
  ]);
  wsPort = v.ports.http as number;
});
after(async () => {
  await Promise.all([v.stop(), proxied.stop()]);
  v.cleanup();
  proxied.cleanup();
});

describe('@xmpp/client over WebSocket', () => {
  test('logs in with SCRAM, binds, pings and exchanges messages with WebSocket and TCP users', async () => {
    const romeo = await wsClient(wsPort, 'romeo', 'r0meo', 'ws');
    const juliet = await wsClient(wsPort, 'juliet', 'jul1et', 'ws');
    const julietTcp = client({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username: 'juliet', password: 'jul1et', resource: 'tcp' });
    julietTcp.on('error', () => undefined);
    process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // STARTTLS with the generated self-signed certificate
    await julietTcp.start();
    try {
      assert.equal(String(romeo.jid), 'romeo@localhost/ws');
      const pong = await romeo.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
      assert.equal(pong.attrs.type, 'result');

      const got = nextStanza(juliet, (el) => el.is('message') && el.getChildText('body') === 'over the websocket');
      await romeo.send(xml('message', { to: 'juliet@localhost/ws', type: 'chat' }, xml('body', {}, 'over the websocket')));
      const m = await got;
      assert.equal(m.attrs.from, 'romeo@localhost/ws');

      // TCP -> WebSocket and back: both are ordinary sessions to the router.
      const got2 = nextStanza(romeo, (el) => el.is('message') && el.getChildText('body') === 'from tcp');
      await julietTcp.send(xml('message', { to: 'romeo@localhost/ws', type: 'chat' }, xml('body', {}, 'from tcp')));
      assert.equal((await got2).attrs.from, 'juliet@localhost/tcp');
      const got3 = nextStanza(julietTcp, (el) => el.is('message') && el.getChildText('body') === 'to tcp');
      await romeo.send(xml('message', { to: 'juliet@localhost/tcp', type: 'chat' }, xml('body', {}, 'to tcp')));
      assert.equal((await got3).attrs.from, 'romeo@localhost/ws');

      // The conversation is in Romeo's archive, queried over the WebSocket (MAM).
      const results: string[] = [];
      romeo.on('stanza', (el) => {
        const r = el.is('message') ? el.getChild('result', 'urn:xmpp:mam:2') : undefined;
        const body = r?.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message')?.getChildText('body');
        if (r?.attrs.queryid === 'q1' && body) results.push(body);
      });
      const form = xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
        xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'urn:xmpp:mam:2')),
        xml('field', { var: 'with' }, xml('value', {}, 'juliet@localhost')));
      const fin = await romeo.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid: 'q1' }, form)));
      assert.equal(fin.getChild('fin', 'urn:xmpp:mam:2')?.attrs.complete, 'true');
      assert.deepEqual(results, ['over the websocket', 'from tcp', 'to tcp']);
    } finally {
      await Promise.all([romeo.stop(), juliet.stop(), julietTcp.stop()]);
    }
  });

  test('a wrong password fails like on TCP (not-authorized)', async () => {
    const c = client({ service: `ws://127.0.0.1:${wsPort}/xmpp-websocket`, domain: 'localhost', username: 'romeo', password: 'wrong' });
    c.on('error', () => undefined);
    const err = await c.start().then(
      () => undefined,
      (e: unknown) => e,
    );
    await c.stop().catch(() => undefined);
    assert.ok(err instanceof Error);
    assert.match(String((err as { condition?: string }).condition ?? err.message), /not-authorized/);
  });
});

describe('RFC 7395 framing (raw frames)', () => {
  test('<open/> and features, namespace-less stanzas, namespace-complete replies, <close/>', async () => {
    const c = await connectWs(wsPort);
    c.send(open());
    const hdr = await c.expect('open');
    assert.equal(hdr.attrs.xmlns, FRAMING);
    assert.equal(hdr.attrs.from, 'localhost');
    assert.equal(hdr.attrs.version, '1.0');
    assert.ok(hdr.attrs.id && hdr.attrs.id.length >= 16, 'stream id');
    const f = await c.expect('stream:features');
    // Namespace-complete: the frame declares the prefix it uses, children their namespace.
    assert.equal(f.attrs['xmlns:stream'], 'http://etherx.jabber.org/streams');
    const mechs = f.getChild('mechanisms');
    assert.equal(mechs?.attrs.xmlns, 'urn:ietf:params:xml:ns:xmpp-sasl');
    // Loopback counts as secure, so PLAIN is offered although TLS is required; STARTTLS never is.
    assert.ok(mechs?.getChildren('mechanism').some((m) => m.text() === 'PLAIN'));
    assert.equal(f.getChild('starttls'), undefined);

    const jid = await login2(c);
    assert.equal(jid, 'romeo@localhost/raw');
    // A stanza without xmlns is jabber:client; the reply carries xmlns on its root.
    c.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    const pong = await c.expect('iq');
    assert.equal(pong.attrs.xmlns, 'jabber:client');
    assert.equal(pong.attrs.type, 'result');
    assert.equal(pong.attrs.id, 'p1');
    assert.match(c.raw[c.raw.length - 1] ?? '', /^<iq xmlns="jabber:client"/);
    // A message without xmlns is routed like any jabber:client message.
    const j = await connectWs(wsPort);
    assert.equal(await login(j, 'juliet', 'jul1et', 'raw'), 'juliet@localhost/raw');
    c.send(`<message to='juliet@localhost/raw' type='chat' id='m1'><body>no namespace</body></message>`);
    const got = await j.expect('message');
    assert.equal(got.attrs.xmlns, 'jabber:client');
    assert.equal(got.attrs.from, 'romeo@localhost/raw');
    assert.equal(got.getChildText('body'), 'no namespace');
    j.close();

    c.send(`<close xmlns='${FRAMING}'/>`);
    const bye = await c.expect('close');
    assert.equal(bye.attrs.xmlns, FRAMING);
    assert.equal(await c.closed, 1000);
  });

  async function login2(c: Frames): Promise<string> {
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64('\0romeo\0r0meo')}</auth>`);
    await c.expect('success');
    c.send(open());
    await c.expect('open');
    await c.expect('stream:features');
    c.send(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>`);
    const r = await c.expect('iq');
    return r.getChild('bind')?.getChildText('jid') ?? '';
  }

  test('malformed XML in a frame: not-well-formed stream error, <close/>, connection closed', async () => {
    const c = await connectWs(wsPort);
    c.send(open());
    await c.expect('open');
    await c.expect('stream:features');
    c.send('<message><body>unclosed</message>');
    const err = await c.expect('stream:error');
    assert.equal(err.attrs['xmlns:stream'], 'http://etherx.jabber.org/streams');
    assert.ok(err.getChild('not-well-formed', 'urn:ietf:params:xml:ns:xmpp-streams'));
    await c.expect('close');
    await c.closed;
  });

  test('a stanza before <open/> gets a header and invalid-namespace', async () => {
    const c = await connectWs(wsPort);
    c.send(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'/>`);
    await c.expect('open');
    const err = await c.expect('stream:error');
    assert.ok(err.getChild('invalid-namespace'));
    await c.closed;
  });

  test('<open/> to another host: host-unknown', async () => {
    const c = await connectWs(wsPort);
    c.send(open('example.net'));
    await c.expect('open');
    const err = await c.expect('stream:error');
    assert.ok(err.getChild('host-unknown'));
    await c.closed;
  });

  test('a frame larger than the pre-auth stanza limit: policy-violation', async () => {
    const c = await connectWs(wsPort);
    c.send(open());
    await c.expect('open');
    await c.expect('stream:features');
    c.send(`<message to='juliet@localhost'><body>${'x'.repeat(20000)}</body></message>`);
    const err = await c.expect('stream:error');
    assert.ok(err.getChild('policy-violation'));
    await c.closed;
  });

  test('binary frames are refused (bad-format)', async () => {
    const c = await connectWs(wsPort);
    c.send(open());
    await c.expect('open');
    await c.expect('stream:features');
    c.ws.send(Buffer.from(`<iq type='get' id='x'/>`), { binary: true });
    const err = await c.expect('stream:error');
    assert.ok(err.getChild('bad-format'));
    await c.closed;
  });
});

describe('upgrade rules', () => {
  test('the xmpp subprotocol is required', async () => {
    await assert.rejects(connectWs(wsPort, { protocol: null }), (e: { status?: number }) => e.status === 400);
    await assert.rejects(connectWs(wsPort, { protocol: 'chat' }), (e: { status?: number }) => e.status === 400);
  });

  test('browser origins: own host and allowedOrigins pass, others get 403', async () => {
    await assert.rejects(connectWs(wsPort, { origin: 'https://evil.example' }), (e: { status?: number }) => e.status === 403);
    await assert.rejects(connectWs(wsPort, { origin: 'null' }), (e: { status?: number }) => e.status === 403);
    for (const origin of ['https://chat.example.org', `http://127.0.0.1:${wsPort}`]) {
      const c = await connectWs(wsPort, { origin });
      c.send(open());
      await c.expect('open');
      c.close();
    }
  });

  test('other paths do not upgrade', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${wsPort}/elsewhere`, ['xmpp']);
    ws.on('error', () => undefined);
    const status = await new Promise<number>((resolve) => ws.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0)));
    ws.terminate();
    assert.equal(status, 404);
  });

  test('a peer that stops answering pings is disconnected; one that answers stays', async () => {
    const silent = await connectWs(wsPort, { autoPong: false });
    const lively = await connectWs(wsPort);
    silent.send(open());
    lively.send(open());
    await silent.expect('open');
    await lively.expect('open');
    const t0 = Date.now();
    await silent.closed; // pingInterval is 1 s here: gone after about two intervals
    assert.ok(Date.now() - t0 < 6000);
    assert.equal(lively.ws.readyState, WebSocket.OPEN);
    lively.close();
  });
});

describe('behind a trusted proxy', () => {
  const port = (): number => proxied.ports.http as number;

  test('X-Forwarded-Proto decides whether the client counts as secure (TLS required here)', async () => {
    const plain = await connectWs(port(), { headers: { 'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'http' } });
    plain.send(open());
    await plain.expect('open');
    const f1 = await plain.expect('stream:features');
    assert.equal(f1.getChild('mechanisms'), undefined, 'no SASL for a plain-http client when TLS is required');
    plain.close();

    const viaTls = await connectWs(port(), { headers: { 'X-Forwarded-For': '203.0.113.9', 'X-Forwarded-Proto': 'https' } });
    assert.match(await login(viaTls, 'romeo', 'r0meo'), /^romeo@localhost\/./);
    viaTls.close();
  });

  test('connections are limited per forwarded client address', async () => {
    const h = (ip: string): WsOptions => ({ headers: { 'X-Forwarded-For': ip, 'X-Forwarded-Proto': 'https' } });
    const a1 = await connectWs(port(), h('198.51.100.7'));
    const a2 = await connectWs(port(), h('198.51.100.7'));
    await assert.rejects(connectWs(port(), h('198.51.100.7')), (e: { status?: number }) => e.status === 429);
    const b1 = await connectWs(port(), h('198.51.100.8'));
    a1.close();
    await a1.closed;
    await new Promise((r) => setTimeout(r, 100));
    const a3 = await connectWs(port(), h('198.51.100.7'));
    for (const c of [a2, b1, a3]) c.close();
  });

  test('refused handshakes do not use up the per-address allowance', async () => {
    const headers = { 'X-Forwarded-For': '198.51.100.9', 'X-Forwarded-Proto': 'https' };
    // No Sec-WebSocket-Key: ws itself refuses the handshake.
    for (let i = 0; i < 3; i++) {
      const status = await new Promise<number>((resolve, reject) => {
        const req = http.request({ host: '127.0.0.1', port: port(), path: '/xmpp-websocket', headers: { ...headers, Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13', 'Sec-WebSocket-Protocol': 'xmpp' } });
        req.on('response', (res) => resolve(res.statusCode ?? 0));
        req.on('upgrade', () => reject(new Error('upgraded without a key')));
        req.on('error', reject);
        req.end();
      });
      assert.equal(status, 400);
    }
    await new Promise((r) => setTimeout(r, 100));
    const c1 = await connectWs(port(), { headers });
    const c2 = await connectWs(port(), { headers });
    c1.close();
    c2.close();
  });
});

describe('stream management over WebSocket', () => {
  test('a session survives a dropped WebSocket and resumes on a new one with the queued message', async () => {
    const c = await connectWs(wsPort);
    const jid = await login(c, 'romeo', 'r0meo', 'sm');
    assert.equal(jid, 'romeo@localhost/sm');
    c.send(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
    const enabled = await c.expect('enabled');
    const id = enabled.attrs.id as string;
    assert.ok(id);
    c.close(); // no <close/>: the connection just drops
    await c.closed;

    const juliet = await wsClient(wsPort, 'juliet', 'jul1et', 'sm-sender');
    await juliet.send(xml('message', { to: 'romeo@localhost/sm', type: 'chat', id: 'while-away' }, xml('body', {}, 'while you were away')));
    await new Promise((r) => setTimeout(r, 200));

    const c2 = await connectWs(wsPort);
    c2.send(open());
    await c2.expect('open');
    await c2.expect('stream:features');
    c2.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${b64('\0romeo\0r0meo')}</auth>`);
    await c2.expect('success');
    c2.send(open());
    await c2.expect('open');
    const f = await c2.expect('stream:features');
    assert.ok(f.getChild('sm', 'urn:xmpp:sm:3'));
    c2.send(`<resume xmlns='urn:xmpp:sm:3' previd='${id}' h='0'/>`);
    const resumed = await c2.expect('resumed');
    assert.equal(resumed.attrs.previd, id);
    let m: Element;
    do m = await c2.next();
    while (m.name !== 'message');
    assert.equal(m.getChildText('body'), 'while you were away');
    assert.equal(m.attrs.xmlns, 'jabber:client');
    c2.send(`<close xmlns='${FRAMING}'/>`);
    await c2.closed;
    await juliet.stop();
  });
});
