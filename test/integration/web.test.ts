/**
 * The HTTP listener itself: discovery (XEP-0156 host-meta, XML and JSON,
 * with CORS), the converse.js chat page and its static files (caching,
 * compression, no path traversal), /metrics and its address restriction,
 * HTTPS with the c2s certificate (wss:// login), settings that switch parts
 * off, and the config checks for the web section.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import http from 'node:http';
import { WebSocket } from 'ws';
import { xml } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import { startVerona, type Verona } from '../helpers/server.js';
import { loadConfig, ConfigError } from '../../src/config/load.js';

const g = globalThis as unknown as { WebSocket?: unknown };
g.WebSocket ??= WebSocket; // for xmpp.js on Node 20
process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the generated certificate is self-signed

let v: Verona; // defaults: chat page, metrics on loopback, both transports
let off: Verona; // chat page and WebSocket off, publicUrl set, metrics elsewhere only, no HTTPS

before(async () => {
  [v, off] = await Promise.all([
    startVerona({ users: [['romeo', 'r0meo']] }),
    startVerona({
      config: {
        web: {
          tlsPort: -1,
          publicUrl: 'https://chat.example.org/',
          websocket: { enabled: false },
          client: { enabled: false },
          metrics: { allowFrom: ['10.0.0.0/8'] },
        },
      },
    }),
  ]);
});
after(async () => {
  await Promise.all([v.stop(), off.stop()]);
  v.cleanup();
  off.cleanup();
});

const base = (s: Verona): string => `http://127.0.0.1:${s.ports.http}`;

/** A raw request (fetch cannot send a literal '..' path or read gzip bytes as sent). */
function raw(port: number, reqPath: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: reqPath, headers, method }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('discovery (XEP-0156)', () => {
  test('host-meta (XRD) lists the WebSocket and BOSH endpoints, readable from any origin', async () => {
    const r = await fetch(`${base(v)}/.well-known/host-meta`, { headers: { Origin: 'https://elsewhere.example' } });
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^application\/xrd\+xml/);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    const body = await r.text();
    assert.match(body, /<XRD xmlns="http:\/\/docs\.oasis-open\.org\/ns\/xri\/xrd-1\.0">/);
    assert.ok(body.includes(`<Link rel="urn:xmpp:alt-connections:websocket" href="ws://127.0.0.1:${v.ports.http}/xmpp-websocket"/>`), body);
    assert.ok(body.includes(`<Link rel="urn:xmpp:alt-connections:xbosh" href="http://127.0.0.1:${v.ports.http}/http-bind"/>`), body);
  });

  test('host-meta.json says the same in JSON; preflight is answered', async () => {
    const r = await fetch(`${base(v)}/.well-known/host-meta.json`);
    assert.equal(r.headers.get('access-control-allow-origin'), '*');
    const doc = (await r.json()) as { links: Array<{ rel: string; href: string }> };
    assert.deepEqual(doc.links, [
      { rel: 'urn:xmpp:alt-connections:websocket', href: `ws://127.0.0.1:${v.ports.http}/xmpp-websocket` },
      { rel: 'urn:xmpp:alt-connections:xbosh', href: `http://127.0.0.1:${v.ports.http}/http-bind` },
    ]);
    const pre = await fetch(`${base(v)}/.well-known/host-meta.json`, { method: 'OPTIONS', headers: { Origin: 'https://x.example', 'Access-Control-Request-Method': 'GET' } });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers.get('access-control-allow-origin'), '*');
  });

  test('over HTTPS the links are wss:// and https://', async () => {
    const port = v.ports.https as number;
    const doc = (await (await fetch(`https://127.0.0.1:${port}/.well-known/host-meta.json`)).json()) as { links: Array<{ href: string }> };
    assert.deepEqual(
      doc.links.map((l) => l.href),
      [`wss://127.0.0.1:${port}/xmpp-websocket`, `https://127.0.0.1:${port}/http-bind`],
    );
  });

  test('publicUrl replaces the request host; disabled transports are not listed', async () => {
    const doc = (await (await fetch(`${base(off)}/.well-known/host-meta.json`)).json()) as { links: Array<{ rel: string; href: string }> };
    assert.deepEqual(doc.links, [{ rel: 'urn:xmpp:alt-connections:xbosh', href: 'https://chat.example.org/http-bind' }]);
  });
});

describe('HTTPS listener', () => {
  test('an xmpp.js client logs in over wss:// with the c2s certificate', async () => {
    const c = client({ service: `wss://127.0.0.1:${v.ports.https}/xmpp-websocket`, domain: 'localhost', username: 'romeo', password: 'r0meo', resource: 'wss' });
    c.on('error', () => undefined);
    await c.start();
    try {
      assert.equal(String(c.jid), 'romeo@localhost/wss');
      const pong = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
      assert.equal(pong.attrs.type, 'result');
    } finally {
      await c.stop();
    }
  });
});

describe('chat page', () => {
  test('/ serves the converse.js page configured for this server', async () => {
    const r = await fetch(`${base(v)}/`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/html/);
    assert.equal(r.headers.get('x-content-type-options'), 'nosniff');
    assert.match(r.headers.get('content-security-policy') ?? '', /frame-ancestors 'self'/);
    const html = await r.text();
    assert.ok(html.includes('<script type="module" src="/converse/converse.min.js"></script>'));
    assert.ok(html.includes('<script type="module" src="/verona-client.js"></script>'));
    const cfg = JSON.parse(/<script type="application\/json" id="verona-config">(.*?)<\/script>/s.exec(html)?.[1] ?? 'null') as Record<string, unknown>;
    assert.equal(cfg.domain, 'localhost');
    assert.equal(cfg.websocketPath, '/xmpp-websocket');
    assert.equal(cfg.boshPath, '/http-bind');
    assert.equal(cfg.assetsPath, '/converse/');
    const js = await fetch(`${base(v)}/verona-client.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /^text\/javascript/);
    assert.match(await js.text(), /message_archiving: 'always'/);
  });

  test('converse.js files come from node_modules, compressed and cacheable', async () => {
    const port = v.ports.http as number;
    const plain = await raw(port, '/converse/converse.min.js');
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.ok(plain.body.length > 100_000);
    const gz = await raw(port, '/converse/converse.min.js', { 'Accept-Encoding': 'gzip, br' });
    assert.equal(gz.headers['content-encoding'], 'gzip');
    assert.ok(gz.body.length < plain.body.length / 2);
    assert.deepEqual(gunzipSync(gz.body), plain.body);
    const etag = plain.headers.etag as string;
    assert.ok(etag);
    const again = await raw(port, '/converse/converse.min.js', { 'If-None-Match': etag });
    assert.equal(again.status, 304);
    const css = await raw(port, '/converse/converse.min.css');
    assert.match(String(css.headers['content-type']), /^text\/css/);
    assert.equal((await raw(port, '/favicon.ico')).status, 200);
  });

  test('no path leaves the served folders', async () => {
    const port = v.ports.http as number;
    for (const p of ['/../package.json', '/converse/../../package.json', '/converse/..%2f..%2fpackage.json', '/%2e%2e/package.json', '/converse/%2e%2e/package.json', '/converse/', '/converse/images']) {
      const r = await raw(port, p);
      assert.ok(r.status === 404 || r.status === 400, `${p} -> ${r.status}`);
      assert.ok(!r.body.toString().includes('"name"'), p);
    }
    assert.equal((await raw(port, '/converse/%00')).status, 400);
  });

  test('with web.client.enabled false the page and files are not served', async () => {
    const r = await fetch(`${base(off)}/`);
    assert.equal(r.status, 200);
    assert.match(await r.text(), /disabled/);
    assert.equal((await fetch(`${base(off)}/converse/converse.min.js`)).status, 404);
    assert.equal((await fetch(`${base(off)}/verona-client.js`)).status, 404);
  });
});

describe('other routes', () => {
  test('/metrics: Prometheus text for loopback; refused for others and for relayed requests', async () => {
    const r = await fetch(`${base(v)}/metrics`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const body = await r.text();
    assert.match(body, /^verona_sessions \d+$/m);
    assert.match(body, /^verona_bosh_sessions \d+$/m);
    assert.match(body, /^verona_websocket_connections \d+$/m);
    // A loopback peer that relays for someone else (a proxy not in trustedProxies) is not trusted with it.
    assert.equal((await fetch(`${base(v)}/metrics`, { headers: { 'X-Forwarded-For': '203.0.113.1' } })).status, 403);
    // allowFrom without loopback.
    assert.equal((await fetch(`${base(off)}/metrics`)).status, 403);
  });

  test('DNS rebinding: a page under a foreign name reaching loopback gets neither /metrics nor a same-host pass', async () => {
    const port = v.ports.http as number;
    // An evil page whose name now resolves to 127.0.0.1 sends its own name as Host.
    assert.equal((await raw(port, '/metrics', { Host: `evil.example:${port}` })).status, 403);
    assert.equal((await raw(port, '/metrics', { Host: `localhost:${port}` })).status, 200);
    assert.equal((await raw(port, '/metrics', { Host: `xmpp.localhost:${port}` })).status, 200, 'subdomains of the served domain are ours');
    const upgrade = (host: string, origin: string): Promise<number> =>
      new Promise((resolve) => {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/xmpp-websocket`, ['xmpp'], { headers: { Host: host, Origin: origin } });
        ws.on('error', () => undefined);
        ws.once('open', () => {
          ws.terminate();
          resolve(101);
        });
        ws.once('unexpected-response', (_q, res) => {
          ws.terminate();
          resolve(res.statusCode ?? 0);
        });
      });
    assert.equal(await upgrade(`evil.example:${port}`, `http://evil.example:${port}`), 403);
    assert.equal(await upgrade(`localhost:${port}`, `http://localhost:${port}`), 101);
    const create = "<body xmlns='http://jabber.org/protocol/httpbind' rid='1' to='localhost' wait='2' hold='1' ver='1.6'/>";
    const bosh = (host: string) => raw(port, '/http-bind', { Host: host, Origin: `http://${host}`, 'Content-Type': 'text/xml' }, 'POST', create);
    assert.equal((await bosh(`evil.example:${port}`)).status, 403);
    const ok = await bosh(`localhost:${port}`);
    assert.equal(ok.status, 200);
    const sid = /sid="([^"]+)"/.exec(ok.body.toString())?.[1] ?? '';
    await raw(port, '/http-bind', { 'Content-Type': 'text/xml' }, 'POST', `<body xmlns='http://jabber.org/protocol/httpbind' sid='${sid}' rid='2' type='terminate'/>`);
  });

  test('endpoint paths explain themselves; unknown paths and methods are refused', async () => {
    const ws = await fetch(`${base(v)}/xmpp-websocket`);
    assert.equal(ws.status, 426);
    assert.equal((await fetch(`${base(v)}/nothing-here`)).status, 404);
    assert.equal((await fetch(`${base(v)}/`, { method: 'DELETE' })).status, 405);
    // WebSocket off: no upgrade.
    const sock = new WebSocket(`ws://127.0.0.1:${off.ports.http}/xmpp-websocket`, ['xmpp']);
    sock.on('error', () => undefined);
    const status = await new Promise<number>((resolve) => sock.once('unexpected-response', (_q, res) => resolve(res.statusCode ?? 0)));
    sock.terminate();
    assert.equal(status, 404);
  });

  test('a disabled port is not opened', () => {
    assert.equal(typeof off.ports.http, 'number');
    assert.equal(off.ports.https, undefined);
  });
});

describe('config checks for the web section', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-webcfg-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const load = (web: Record<string, unknown>, extra: Record<string, unknown> = {}): ReturnType<typeof loadConfig> => {
    const file = path.join(dir, 'v.yml');
    writeFileSync(file, JSON.stringify({ dataDir: dir, web, ...extra }));
    return loadConfig({ file, checkFiles: false });
  };
  const fails = (web: Record<string, unknown>, key: RegExp, extra?: Record<string, unknown>): void => {
    assert.throws(
      () => load(web, extra),
      (e: unknown) => e instanceof ConfigError && key.test(e.path),
    );
  };

  test('defaults: loopback, 5280/5443, both transports and the chat page on', () => {
    const c = load({});
    assert.equal(c.web.host, '127.0.0.1');
    assert.equal(c.web.port, 5280);
    assert.equal(c.web.tlsPort, 5443);
    assert.equal(c.web.websocket.enabled, true);
    assert.equal(c.web.bosh.enabled, true);
    assert.equal(c.web.client.enabled, true);
    assert.deepEqual(c.web.metrics.allowFrom, ['127.0.0.1', '::1']);
  });

  test('origins and publicUrl are normalized; bad ones are refused with the key', () => {
    const c = load({ allowedOrigins: ['HTTPS://Chat.Example.org:443/', '*'], publicUrl: 'https://chat.example.org/xmpp/' });
    assert.deepEqual(c.web.allowedOrigins, ['https://chat.example.org', '*']);
    assert.equal(c.web.publicUrl, 'https://chat.example.org/xmpp');
    fails({ allowedOrigins: ['chat.example.org'] }, /^web\.allowedOrigins\.0$/);
    fails({ allowedOrigins: ['https://chat.example.org/path'] }, /^web\.allowedOrigins\.0$/);
    fails({ publicUrl: 'ftp://example.org' }, /^web\.publicUrl$/);
  });

  test('address lists take IPs and CIDR ranges only', () => {
    const c = load({ trustedProxies: ['10.0.0.0/8', '::1', '192.168.1.7'], metrics: { allowFrom: ['2001:db8::/32'] } });
    assert.deepEqual(c.web.trustedProxies, ['10.0.0.0/8', '::1', '192.168.1.7']);
    fails({ trustedProxies: ['proxy.local'] }, /^web\.trustedProxies\.0$/);
    fails({ trustedProxies: ['10.0.0.0/33'] }, /^web\.trustedProxies\.0$/);
    fails({ metrics: { allowFrom: ['everyone'] } }, /^web\.metrics\.allowFrom\.0$/);
  });

  test('ports must not collide; unknown keys get a suggestion', () => {
    fails({ port: 5222 }, /^web\.port$/);
    fails({ port: 8080, tlsPort: 8080 }, /^web\.tlsPort$/);
    assert.throws(() => load({ bosh: { maxwait: 10 } }), /web\.bosh\.maxwait: unknown key \(did you mean "maxWait"\?\)/);
    fails({ bosh: { maxBodySize: 100 } }, /^web\.bosh\.maxBodySize$/);
  });
});
