/**
 * Federation when things go wrong, against a real Verona (a.localhost on
 * 127.0.0.27): a peer that is down, a peer that never answers, a peer that
 * authenticates one domain and then sends stanzas from another, peers that
 * send garbage, oversized stanzas or too many streams, and a full per-domain
 * queue. Each gets the right error and a metric; nothing is lost locally
 * (the sender's archived copy stays).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import type { Element } from '@xmpp/xml';
import { metric, startFedServer, type FedServer } from '../helpers/s2s-servers.js';
import { connectRaw, RawConnection } from '../helpers/client.js';
import { device, copyWithBody, mamQuery, innerMessage, NS_SID, stanzaErrorCondition, type Dev } from './mr2-helpers.js';

const PW = 'pw-fail';
const ADDR = '127.0.0.27';
const HDR = (from: string, to: string): string =>
  `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${from}' to='${to}' version='1.0'>`;

function streamErrorOf(el: Element): string | undefined {
  return el.getChildElements().find((c) => c.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-streams' && c.name !== 'text')?.name;
}

/**
 * A fake peer x.localhost: the authoritative server that says every dialback key is valid
 * (so it can authenticate its domain with Verona), listening where s2s.hosts sends Verona.
 */
function fakeAuthoritative(address: string): Promise<net.Server> {
  const srv = net.createServer((sock) => {
    const c = new RawConnection(sock);
    void (async () => {
      const h = await c.waitHeader(20000);
      c.send(
        `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' id='fake-1' from='x.localhost' to='${String(h.attrs.from)}' version='1.0'><stream:features><dialback xmlns='urn:xmpp:features:dialback'/></stream:features>`,
      );
      for (;;) {
        const el = await c.next((e) => e.name === 'verify' || e.name === 'result', 60000);
        c.send(`<db:${el.name} from='x.localhost' to='${String(el.attrs.from)}' ${el.attrs.id ? `id='${String(el.attrs.id)}' ` : ''}type='valid'/>`);
      }
    })().catch(() => undefined);
  });
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen(5269, address, () => resolve(srv));
  });
}

describe('federation failures and limits', () => {
  let A: FedServer;
  let silent: net.Server;
  let fake: net.Server;
  const silentSockets: net.Socket[] = [];
  const devs: Dev[] = [];

  before(async () => {
    silent = net.createServer((s) => void silentSockets.push(s));
    await new Promise<void>((r) => silent.listen(5269, '127.0.0.29', () => r()));
    fake = await fakeAuthoritative('127.0.0.30');
    A = await startFedServer({
      domain: 'a.localhost',
      address: ADDR,
      peers: { 'down.localhost': '127.0.0.28:5269', 'silent.localhost': '127.0.0.29:5269', 'queue.localhost': '127.0.0.29:5269', 'x.localhost': '127.0.0.30:5269' },
      users: [['romeo', PW]],
      s2s: { connectTimeout: 4, authTimeout: 4, insecureDomains: ['x.localhost'], maxStanzaSize: 10000, maxStreamsPerAddress: 3, maxQueue: 2 },
    });
  });

  after(async () => {
    for (const d of devs) d.destroy();
    for (const s of silentSockets) s.destroy();
    await A?.stop();
    A?.cleanup();
    silent?.close();
    fake?.close();
  });

  const dev = async (resource: string): Promise<Dev> => {
    const d = await device({ port: A.ports.c2s as number, user: 'romeo', password: PW, resource, kind: 'mr2', domain: 'a.localhost' });
    devs.push(d);
    return d;
  };

  it('bounces with remote-server-not-found when the peer is down, and the sender keeps the archived, forked copy', async () => {
    const r1 = await dev('down1');
    const r2 = await dev('down2');
    r1.send(`<message to='juliet@down.localhost' type='chat' id='d1'><body>to nowhere</body></message>`);
    const err = await r1.next((el) => el.name === 'message' && el.attrs.type === 'error' && el.attrs.id === 'd1', 30000);
    assert.equal(stanzaErrorCondition(err), 'remote-server-not-found');
    const sent = await copyWithBody(r2, 'to nowhere', 30000);
    assert.equal(innerMessage(sent).getChild('stanza-id', NS_SID)?.attrs.id, `${r1.streamId}-d1`);
    const page = await mamQuery(r2, { fields: { with: 'juliet@down.localhost' } });
    assert.deepEqual(page.items.map((i) => i.id), [`${r1.streamId}-d1`]);
    assert.ok((await metric(A, 'verona_s2s_bounced_total', { condition: 'remote-server-not-found' })) >= 1);
  });

  it('bounces with remote-server-timeout when the peer never answers; a full queue refuses with resource-constraint', async () => {
    const r = await dev('silent');
    r.send(`<message to='juliet@silent.localhost' type='chat' id='s1'><body>to silence</body></message>`);
    // The queue for one domain holds 2 here: the third is refused at once.
    for (const id of ['q1', 'q2', 'q3']) r.send(`<message to='juliet@queue.localhost' type='chat' id='${id}'><body>${id}</body></message>`);
    const full = await r.next((el) => el.name === 'message' && el.attrs.id === 'q3', 30000);
    assert.equal(stanzaErrorCondition(full), 'resource-constraint');
    const err = await r.next((el) => el.name === 'message' && el.attrs.type === 'error' && el.attrs.id === 's1', 30000);
    assert.equal(stanzaErrorCondition(err), 'remote-server-timeout');
    for (const id of ['q1', 'q2']) {
      const e = await r.next((el) => el.name === 'message' && el.attrs.id === id, 30000);
      assert.equal(stanzaErrorCondition(e), 'remote-server-timeout');
    }
    const page = await mamQuery(r, { fields: { with: 'juliet@silent.localhost' } });
    assert.deepEqual(page.items.map((i) => i.id), [`${r.streamId}-s1`]);
    assert.ok((await metric(A, 'verona_s2s_refused_total', { limit: 'queue' })) >= 1);
  });

  it('accepts stanzas from the domain a stream authenticated, and ends the stream on a spoofed from (never routed)', async () => {
    const r = await dev('spoof');
    const peer = await connectRaw(5269, ADDR);
    peer.send(HDR('x.localhost', 'a.localhost'));
    await peer.next((el) => el.name === 'stream:features' || el.name === 'features', 20000);
    peer.send(`<db:result from='x.localhost' to='a.localhost'>any-key-the-fake-vouches-for</db:result>`);
    const res = await peer.next((el) => el.name === 'db:result' || el.name === 'result', 30000);
    assert.equal(res.attrs.type, 'valid');
    // From the authenticated domain, with a stanza-id forged for romeo's archive: routed, forgery stripped.
    peer.send(`<message from='eve@x.localhost/pc' to='romeo@a.localhost' type='chat' id='e1'><body>from x</body><stanza-id xmlns='urn:xmpp:sid:0' by='romeo@a.localhost' id='forged'/></message>`);
    const got = await copyWithBody(r, 'from x', 30000);
    const ids = innerMessage(got).getChildren('stanza-id', NS_SID);
    assert.equal(ids.length, 1);
    assert.notEqual(ids[0]?.attrs.id, 'forged');
    const page = await mamQuery(r, { fields: { with: 'eve@x.localhost' } });
    assert.deepEqual(page.items.map((i) => i.id), [ids[0]?.attrs.id]);
    // From a domain this stream never authenticated: invalid-from, and romeo gets nothing.
    peer.send(`<message from='mallory@evil.localhost' to='romeo@a.localhost' type='chat' id='e2'><body>spoofed</body></message>`);
    const se = await peer.next((el) => el.name === 'stream:error', 20000);
    assert.equal(streamErrorOf(se), 'invalid-from');
    await r.nothing((el) => el.name === 'message' && innerMessage(el).getChildText('body') === 'spoofed', 1000);
    assert.ok((await metric(A, 'verona_s2s_rejected_total', { reason: 'from-not-authenticated' })) >= 1);
    peer.destroy();
  });

  it('refuses stanzas before authentication, garbage, oversized stanzas, silent streams and too many streams per address', async () => {
    // A stanza before any authentication.
    const p1 = await connectRaw(5269, ADDR);
    p1.send(HDR('x.localhost', 'a.localhost'));
    await p1.next((el) => el.name === 'stream:features', 20000);
    p1.send(`<message from='eve@x.localhost' to='romeo@a.localhost'><body>early</body></message>`);
    assert.equal(streamErrorOf(await p1.next((el) => el.name === 'stream:error', 20000)), 'not-authorized');
    await p1.waitClose(20000);

    // XEP-0288 <bidi/> where it is not offered (before TLS, from a peer that must use TLS).
    const p0 = await connectRaw(5269, ADDR);
    p0.send(HDR('y.localhost', 'a.localhost'));
    const f0 = await p0.next((el) => el.name === 'stream:features', 20000);
    assert.equal(f0.getChild('bidi', 'urn:xmpp:features:bidi'), undefined, 'no bidi offered before TLS');
    p0.send(`<bidi xmlns='urn:xmpp:bidi'/>`);
    assert.equal(streamErrorOf(await p0.next((el) => el.name === 'stream:error', 20000)), 'policy-violation');
    await p0.waitClose(20000);
    assert.ok((await metric(A, 'verona_s2s_refused_total', { limit: 'bidi' })) >= 1);

    // Garbage.
    const p2 = await connectRaw(5269, ADDR);
    p2.send(HDR('x.localhost', 'a.localhost'));
    await p2.next((el) => el.name === 'stream:features', 20000);
    p2.send(`<message><<<&&& not xml`);
    assert.equal(streamErrorOf(await p2.next((el) => el.name === 'stream:error', 20000)), 'not-well-formed');
    await p2.waitClose(20000);

    // A stanza over s2s.maxStanzaSize (10000 here).
    const oversizedBefore = await metric(A, 'verona_s2s_parse_errors_total', { condition: 'policy-violation' });
    const p3 = await connectRaw(5269, ADDR);
    p3.send(HDR('x.localhost', 'a.localhost'));
    await p3.next((el) => el.name === 'stream:features', 20000);
    p3.send(`<message from='eve@x.localhost' to='romeo@a.localhost'><body>${'x'.repeat(20000)}</body></message>`);
    assert.equal(streamErrorOf(await p3.next((el) => el.name === 'stream:error', 20000)), 'policy-violation');
    await p3.waitClose(20000);
    assert.ok((await metric(A, 'verona_s2s_parse_errors_total')) >= 2);
    assert.equal(await metric(A, 'verona_s2s_parse_errors_total', { condition: 'policy-violation' }), oversizedBefore + 1);

    // A stream that never authenticates is cut off after s2s.authTimeout (4 s here).
    const p4 = await connectRaw(5269, ADDR);
    p4.send(HDR('x.localhost', 'a.localhost'));
    assert.equal(streamErrorOf(await p4.next((el) => el.name === 'stream:error', 30000)), 'connection-timeout');
    await p4.waitClose(20000);
    assert.ok((await metric(A, 'verona_s2s_stream_errors_total', { condition: 'connection-timeout', reason: 'auth-timeout' })) >= 1);

    // At most 3 streams per remote address here: the 4th is refused.
    const open: RawConnection[] = [];
    for (let i = 0; i < 3; i++) {
      const c = await connectRaw(5269, ADDR);
      c.send(HDR('x.localhost', 'a.localhost'));
      await c.next((el) => el.name === 'stream:features', 20000);
      open.push(c);
    }
    const extra = await connectRaw(5269, ADDR);
    assert.equal(streamErrorOf(await extra.next((el) => el.name === 'stream:error', 20000)), 'policy-violation');
    for (const c of open) c.destroy();
    extra.destroy();
    assert.ok((await metric(A, 'verona_s2s_refused_total', { limit: 'streams-per-address' })) >= 1);

    // Nothing was lost locally: the archive still answers with everything from before.
    const r = await dev('after');
    const page = await mamQuery(r, { rsm: '<max>50</max>' });
    assert.ok(page.items.some((i) => i.body === 'to nowhere'));
    assert.ok(page.items.some((i) => i.body === 'from x'));
  });
});
