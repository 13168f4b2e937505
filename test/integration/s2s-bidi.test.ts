/**
 * XEP-0288 bidirectional s2s streams, between real servers on the bidi
 * loopback range (127.0.20.x):
 *
 * - Verona <-> Verona with certificates (SASL EXTERNAL): messages both ways
 *   over ONE TCP connection (counted from the kernel with `ss`, and by the
 *   servers' stream gauges);
 * - the same with `s2s.bidi: false`: two connections, one per direction;
 * - Verona <-> Verona with dialback: bidi on both connections, where the
 *   second one exists only because dialback verifies over a connection of
 *   its own (XEP-0288 §2.2 forbids verifying on the requesting connection);
 * (Verona <-> Prosody 0.12 with bidi: s2s-bidi-prosody.test.ts)
 * - idle streams close after s2s.idleTimeout (a metric), and the next
 *   stanza opens a new one;
 * - direct TLS (XEP-0368) on s2s.tlsPort, reached with `tls:` in s2s.hosts.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeCA, metric, startFedServer, type FedServer, type TestCA } from '../helpers/s2s-servers.js';
import { acceptedConnections } from '../helpers/bidi-net.js';
import { device, copyWithBody, type Dev } from './mr2-helpers.js';

const PW = 'pw-bidi';

/** Poll until `f` holds (the machine is slow and loaded: no fixed sleeps). */
async function until(what: string, f: () => Promise<boolean> | boolean, timeoutMs = 60000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await f()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface Pair {
  A: FedServer;
  B: FedServer;
  romeo: Dev;
  juliet: Dev;
  listeners: string[];
}

function pair(addrs: [string, string], o: { certs: boolean; bidi: boolean; directTls?: boolean; s2s?: Record<string, unknown> }, run: (p: () => Pair) => void): void {
  let ca: TestCA | undefined;
  let p: Pair | undefined;
  before(async () => {
    if (o.certs) ca = makeCA();
    // Direct TLS (XEP-0368): the listener on 5270 only, reached through `tls:` entries in s2s.hosts.
    const port = o.directTls ? 5270 : 5269;
    const s2s = { bidi: o.bidi, ...(o.directTls ? { port: -1, tlsPort: 5270 } : {}), ...o.s2s };
    const at = (addr: string): string => `${o.directTls ? 'tls:' : ''}${addr}:${port}`;
    const [A, B] = await Promise.all([
      startFedServer({ domain: 'a.localhost', address: addrs[0], peers: { 'b.localhost': at(addrs[1]) }, ca, users: [['romeo', PW]], s2s }),
      startFedServer({ domain: 'b.localhost', address: addrs[1], peers: { 'a.localhost': at(addrs[0]) }, ca, users: [['juliet', PW]], s2s }),
    ]);
    const romeo = await device({ port: A.ports.c2s as number, user: 'romeo', password: PW, resource: 'r', kind: 'mr2', domain: 'a.localhost' });
    const juliet = await device({ port: B.ports.c2s as number, user: 'juliet', password: PW, resource: 'j', kind: 'mr2', domain: 'b.localhost' });
    p = { A, B, romeo, juliet, listeners: [`${addrs[0]}:${port}`, `${addrs[1]}:${port}`] };
  });
  after(async () => {
    p?.romeo.destroy();
    p?.juliet.destroy();
    await Promise.all([p?.A.stop(), p?.B.stop()]);
    p?.A.cleanup();
    p?.B.cleanup();
    ca?.cleanup();
  });
  run(() => {
    assert.ok(p, 'servers started');
    return p;
  });
}

/** romeo -> juliet, then juliet -> romeo; each message must arrive. */
async function bothWays(p: Pair, tag: string): Promise<void> {
  p.romeo.send(`<message to='juliet@b.localhost' type='chat' id='${tag}-1'><body>${tag} a to b</body></message>`);
  await copyWithBody(p.juliet, `${tag} a to b`, 60000);
  p.juliet.send(`<message to='romeo@a.localhost' type='chat' id='${tag}-2'><body>${tag} b to a</body></message>`);
  await copyWithBody(p.romeo, `${tag} b to a`, 60000);
}

const streams = async (v: FedServer): Promise<[number, number]> => [await metric(v, 'verona_s2s_streams_out'), await metric(v, 'verona_s2s_streams_in')];

describe('XEP-0288 Verona <-> Verona with certificates, bidi on', () => {
  pair(['127.0.20.1', '127.0.20.2'], { certs: true, bidi: true }, (get) => {
    it('carries both directions on one TCP connection', async () => {
      const p = get();
      await bothWays(p, 'bidi');
      // A opened the one stream; B answered on it instead of connecting back.
      assert.equal(acceptedConnections(p.listeners), 1, 'one TCP connection between a and b');
      assert.deepEqual(await streams(p.A), [1, 0]);
      assert.deepEqual(await streams(p.B), [0, 1]);
      assert.equal(await metric(p.A, 'verona_s2s_bidi_total', { direction: 'out' }), 1);
      assert.equal(await metric(p.B, 'verona_s2s_bidi_total', { direction: 'in' }), 1);
      assert.equal(await metric(p.A, 'verona_s2s_streams_bidi'), 1);
      assert.equal(await metric(p.B, 'verona_s2s_streams_bidi'), 1);
      // And it stays one: more traffic both ways reuses it.
      await bothWays(p, 'again');
      assert.equal(acceptedConnections(p.listeners), 1);
      assert.ok((await metric(p.A, 'verona_s2s_stanzas_received_total', { kind: 'message' })) >= 2, 'a received b\'s messages on its outgoing stream');
    });
  });
});

describe('XEP-0288 switched off (s2s.bidi: false)', () => {
  pair(['127.0.20.3', '127.0.20.4'], { certs: true, bidi: false }, (get) => {
    it('uses one connection per direction, and neither side offers or asks for bidi', async () => {
      const p = get();
      await bothWays(p, 'nobidi');
      assert.equal(acceptedConnections(p.listeners), 2, 'two TCP connections between a and b');
      assert.deepEqual(await streams(p.A), [1, 1]);
      assert.deepEqual(await streams(p.B), [1, 1]);
      assert.equal(await metric(p.A, 'verona_s2s_bidi_total'), 0);
      assert.equal(await metric(p.B, 'verona_s2s_bidi_total'), 0);
    });
  });
});

describe('XEP-0288 Verona <-> Verona with dialback', () => {
  pair(['127.0.20.5', '127.0.20.6'], { certs: false, bidi: true }, (get) => {
    it('negotiates bidi on both connections; the second exists only for dialback verification', async () => {
      const p = get();
      await bothWays(p, 'db');
      // b verifies a's key over a connection of its own (never on the requesting one), and
      // that connection authenticates too: two connections, both bidirectional, no third.
      assert.equal(acceptedConnections(p.listeners), 2);
      assert.equal(await metric(p.A, 'verona_s2s_streams_bidi'), 2);
      assert.equal(await metric(p.B, 'verona_s2s_streams_bidi'), 2);
      await bothWays(p, 'db-again');
      assert.equal(acceptedConnections(p.listeners), 2);
    });
  });
});

describe('idle s2s streams close after s2s.idleTimeout', () => {
  pair(['127.0.20.7', '127.0.20.8'], { certs: true, bidi: true, s2s: { idleTimeout: 2 } }, (get) => {
    it('closes the idle stream with a metric, and the next stanza opens a new one', async () => {
      const p = get();
      await bothWays(p, 'idle');
      await until('the idle stream to close', async () => (await metric(p.A, 'verona_s2s_idle_closed_total')) + (await metric(p.B, 'verona_s2s_idle_closed_total')) >= 1);
      await until('no s2s stream left', async () => (await streams(p.A)).every((n) => n === 0) && (await streams(p.B)).every((n) => n === 0));
      await until('the TCP connection to go', () => acceptedConnections(p.listeners) === 0);
      await bothWays(p, 'idle-after');
      assert.equal(acceptedConnections(p.listeners), 1);
    });
  });
});

describe('XEP-0368 direct TLS between Veronas (s2s.tlsPort, ALPN xmpp-server), bidi on', () => {
  pair(['127.0.20.14', '127.0.20.15'], { certs: true, bidi: true, directTls: true }, (get) => {
    it('carries both directions on one direct-TLS connection, authenticated with SASL EXTERNAL', async () => {
      const p = get();
      await bothWays(p, 'dtls');
      assert.equal(acceptedConnections(p.listeners), 1, 'one TCP connection, to the direct TLS port');
      assert.equal(await metric(p.A, 'verona_s2s_auth_out_total', { method: 'external' }), 1);
      assert.equal(await metric(p.B, 'verona_s2s_streams_bidi'), 1);
    });
  });
});
