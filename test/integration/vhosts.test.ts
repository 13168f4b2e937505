/**
 * Virtual hosts (docs/virtual-hosts.md): one real Verona process serving a.localhost (primary)
 * and b.localhost, next to a second Verona serving c.localhost reached over s2s.
 *
 * - romeo@a.localhost and romeo@b.localhost are two accounts with their own passwords, archives
 *   and sessions;
 * - each domain answers TLS with its own certificate (SNI) on direct TLS, STARTTLS and HTTPS;
 * - a chat a <-> b is local: MR2 and carbons copies on both sides, every stanza-id equal to what
 *   that side's MAM returns, and no s2s stream is opened; a presence subscription goes through;
 * - a remote domain still goes over s2s, from either hosted domain, each authenticating as itself;
 * - the CLI takes the domain from the JID and refuses a domain that is not hosted.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { copyFileSync } from 'node:fs';
import path from 'node:path';
import { makeCA, metric, startFedServer, type FedServer } from '../helpers/s2s-servers.js';
import { connectRaw, connectClient } from '../helpers/client.js';
import { certForSni, certForStartTls } from '../helpers/vhosts-tls.js';
import { device, copyWithBody, mamQuery, shapeOf, NS_SID, innerMessage, type Dev } from './mr2-helpers.js';

const PW_A = 'pw-romeo-a';
const PW_B = 'pw-romeo-b';
const PW = 'pw-vhosts';
const ADDR_V = '127.0.10.1';
const ADDR_C = '127.0.10.2';

function idBy(el: Element, by: string): string {
  const ids = innerMessage(el)
    .getChildren('stanza-id', NS_SID)
    .filter((s) => s.attrs.by === by);
  assert.equal(ids.length, 1, `exactly one stanza-id by ${by} in ${el.toString()}`);
  return String(ids[0]?.attrs.id);
}

async function mamIdOf(d: Dev, body: string): Promise<string> {
  const page = await mamQuery(d, { rsm: '<max>50</max><before/>', timeoutMs: 30000 });
  const item = page.items.find((i) => i.body === body);
  assert.ok(item, `MAM of ${d.jid} holds "${body}"`);
  return item.id;
}

async function mamBodies(d: Dev): Promise<Array<string | undefined>> {
  return (await mamQuery(d, { rsm: '<max>100</max><before/>', timeoutMs: 30000 })).items.map((i) => i.body);
}

describe('virtual hosts: a.localhost and b.localhost in one server', () => {
  let V: FedServer;
  let C: FedServer;
  const devs: Dev[] = [];

  before(async () => {
    [V, C] = await Promise.all([
      startFedServer({
        domain: 'a.localhost',
        address: ADDR_V,
        peers: { 'c.localhost': `${ADDR_C}:5269` },
        config: { domains: ['b.localhost'] },
        users: [['romeo', PW_A], ['romeo@b.localhost', PW_B], ['juliet@b.localhost', PW], ['nurse@a.localhost', PW]],
      }),
      startFedServer({
        domain: 'c.localhost',
        address: ADDR_C,
        peers: { 'a.localhost': `${ADDR_V}:5269`, 'b.localhost': `${ADDR_V}:5269` },
        users: [['carol', PW]],
      }),
    ]);
  });

  after(async () => {
    for (const d of devs) d.destroy();
    await Promise.all([V?.stop(), C?.stop()]);
    V?.cleanup();
    C?.cleanup();
  });

  const dev = async (s: FedServer, user: string, domain: string, password: string, resource: string, kind: 'mr2' | 'carbons'): Promise<Dev> => {
    const d = await device({ port: s.ports.c2s as number, user, password, resource, kind, domain });
    devs.push(d);
    return d;
  };

  it('keeps romeo@a.localhost and romeo@b.localhost apart: own passwords, own JIDs', async () => {
    const a = await dev(V, 'romeo', 'a.localhost', PW_A, 'ra', 'mr2');
    const b = await dev(V, 'romeo', 'b.localhost', PW_B, 'rb', 'mr2');
    assert.equal(a.jid, 'romeo@a.localhost/ra');
    assert.equal(b.jid, 'romeo@b.localhost/rb');
    assert.equal(a.header?.attrs.from, 'a.localhost');
    assert.equal(b.header?.attrs.from, 'b.localhost');
    // a's password does not open b's account, and an account of a does not exist on b.
    await assert.rejects(connectClient({ port: V.ports.c2s as number, user: 'romeo', password: PW_A, domain: 'b.localhost' }), /not-authorized/);
    await assert.rejects(connectClient({ port: V.ports.c2s as number, user: 'nurse', password: PW, domain: 'b.localhost' }), /not-authorized/);
    // A message to romeo@b reaches b's romeo only.
    a.send(`<message to='romeo@b.localhost' type='chat' id='x1'><body>to the other romeo</body></message>`);
    const got = await copyWithBody(b, 'to the other romeo', 30000);
    assert.equal(innerMessage(got).attrs.from, 'romeo@a.localhost/ra');
    assert.equal(idBy(got, 'romeo@b.localhost'), await mamIdOf(b, 'to the other romeo'));
    // Each archive holds its own side once: a's as sent, b's as received; no cross-talk.
    const sentIds = await mamQuery(a, { rsm: '<max>50</max><before/>', timeoutMs: 30000 });
    assert.equal(sentIds.items.filter((i) => i.body === 'to the other romeo').length, 1);
    assert.equal(sentIds.items.find((i) => i.body === 'to the other romeo')?.id, `${a.streamId}-x1`);
    // A stream to a domain this server does not host is refused.
    const raw = await connectRaw(V.ports.c2s as number);
    raw.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='z.localhost' version='1.0'>`);
    const err = await raw.next((el) => el.name === 'stream:error', 30000);
    assert.ok(err.getChild('host-unknown'), err.toString());
    raw.destroy();
  });

  it('answers each domain with its own certificate (SNI) on direct TLS, STARTTLS and HTTPS', async () => {
    const tlsPort = V.ports['c2s-tls'] as number;
    for (const d of ['a.localhost', 'b.localhost']) {
      const other = d === 'a.localhost' ? 'b.localhost' : 'a.localhost';
      const direct = await certForSni(tlsPort, d);
      assert.ok(direct.covers(d), `direct TLS for ${d}: ${direct.altNames}`);
      assert.ok(!direct.covers(other), `direct TLS for ${d} is not ${other}'s certificate`);
      const st = await certForStartTls(V.ports.c2s as number, d);
      assert.ok(st.covers(d) && !st.covers(other), `STARTTLS for ${d}: ${st.altNames}`);
      const https = await certForSni(V.ports.https as number, d, 'http/1.1');
      assert.ok(https.covers(d) && !https.covers(other), `HTTPS for ${d}: ${https.altNames}`);
    }
    // A service subdomain gets its parent domain's certificate (the generated one covers *.b.localhost).
    const sub = await certForSni(tlsPort, 'upload.b.localhost');
    assert.ok(sub.covers('upload.b.localhost'), sub.altNames);
  });

  it('routes a chat a <-> b locally: MR2 and carbons copies on both sides, ids equal to each MAM, no s2s', async () => {
    const r1 = await dev(V, 'romeo', 'a.localhost', PW_A, 'r1', 'mr2');
    const r2 = await dev(V, 'romeo', 'a.localhost', PW_A, 'r2', 'carbons');
    const j1 = await dev(V, 'juliet', 'b.localhost', PW, 'j1', 'mr2');
    const j2 = await dev(V, 'juliet', 'b.localhost', PW, 'j2', 'carbons');

    r1.send(`<message to='juliet@b.localhost' type='chat' id='m1'><body>hello b</body></message>`);
    const sent = await copyWithBody(r2, 'hello b', 30000);
    assert.equal(shapeOf(sent), 'sent');
    assert.equal(idBy(sent, 'romeo@a.localhost'), `${r1.streamId}-m1`);
    const got = [await copyWithBody(j1, 'hello b', 30000), await copyWithBody(j2, 'hello b', 30000)];
    const jid = idBy(got[0] as Element, 'juliet@b.localhost');
    for (const c of got) {
      assert.equal(shapeOf(c), 'plain');
      assert.equal(innerMessage(c).attrs.from, 'romeo@a.localhost/r1');
      assert.equal(idBy(c, 'juliet@b.localhost'), jid);
    }
    assert.equal(await mamIdOf(r2, 'hello b'), `${r1.streamId}-m1`);
    assert.equal(await mamIdOf(j2, 'hello b'), jid);

    j1.send(`<message to='romeo@a.localhost' type='chat' id='m2'><body>hello a</body></message>`);
    const jsent = await copyWithBody(j2, 'hello a', 30000);
    assert.equal(shapeOf(jsent), 'sent');
    assert.equal(idBy(jsent, 'juliet@b.localhost'), `${j1.streamId}-m2`);
    const rgot = [await copyWithBody(r1, 'hello a', 30000), await copyWithBody(r2, 'hello a', 30000)];
    const rid = idBy(rgot[0] as Element, 'romeo@a.localhost');
    for (const c of rgot) assert.equal(idBy(c, 'romeo@a.localhost'), rid);
    assert.equal(await mamIdOf(r1, 'hello a'), rid);
    assert.equal(await mamIdOf(j1, 'hello a'), `${j1.streamId}-m2`);

    // Catch-up after the last known id gives exactly the newer message, on both sides.
    const ra = await mamQuery(r1, { fields: { 'after-id': `${r1.streamId}-m1` }, timeoutMs: 30000 });
    assert.deepEqual(ra.items.map((i) => i.body), ['hello a']);
    const jb = await mamQuery(j2, { fields: { 'after-id': jid }, timeoutMs: 30000 });
    assert.deepEqual(jb.items.map((i) => i.body), ['hello a']);

    // None of this used s2s.
    assert.equal(await metric(V, 'verona_s2s_connects_total'), 0);
    assert.equal(await metric(V, 'verona_s2s_stanzas_sent_total'), 0);
    // The other romeo (on b) saw none of it.
    const b = await dev(V, 'romeo', 'b.localhost', PW_B, 'rb2', 'mr2');
    assert.ok(!(await mamBodies(b)).includes('hello a'));
  });

  it('runs a presence subscription between the two hosted domains', async () => {
    const r = await dev(V, 'romeo', 'a.localhost', PW_A, 'sub-r', 'mr2');
    const j = await dev(V, 'juliet', 'b.localhost', PW, 'sub-j', 'mr2');
    for (const d of [r, j]) {
      d.send(`<iq type='get' id='roster-${d.jid}'><query xmlns='jabber:iq:roster'/></iq>`);
      await d.next((el) => el.is('iq') && el.attrs.id === `roster-${d.jid}`, 30000);
    }
    r.send(`<presence to='juliet@b.localhost' type='subscribe'/>`);
    const push1 = await r.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.jid === 'juliet@b.localhost', 30000);
    assert.equal(push1.getChild('query')?.getChild('item')?.attrs.ask, 'subscribe');
    const req = await j.next((el) => el.is('presence') && el.attrs.type === 'subscribe', 30000);
    assert.equal(req.attrs.from, 'romeo@a.localhost');
    j.send(`<presence to='romeo@a.localhost' type='subscribed'/>`);
    await r.next((el) => el.is('presence') && el.attrs.type === 'subscribed' && el.attrs.from === 'juliet@b.localhost', 30000);
    await r.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.subscription === 'to', 30000);
    await r.next((el) => el.is('presence') && el.attrs.from === 'juliet@b.localhost/sub-j' && el.attrs.type === undefined, 30000);
    await j.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.subscription === 'from', 30000);
    j.destroy();
    await r.next((el) => el.is('presence') && el.attrs.from === 'juliet@b.localhost/sub-j' && el.attrs.type === 'unavailable', 60000);
    assert.equal(await metric(V, 'verona_s2s_connects_total'), 0);
  });

  it('still reaches a remote domain over s2s, from each hosted domain as itself', async () => {
    const carol = await dev(C, 'carol', 'c.localhost', PW, 'c1', 'mr2');
    const j = await dev(V, 'juliet', 'b.localhost', PW, 'remote-j', 'mr2');
    const r = await dev(V, 'romeo', 'a.localhost', PW_A, 'remote-r', 'mr2');
    j.send(`<message to='carol@c.localhost' type='chat' id='s1'><body>from b to c</body></message>`);
    const g1 = await copyWithBody(carol, 'from b to c', 60000);
    assert.equal(innerMessage(g1).attrs.from, 'juliet@b.localhost/remote-j');
    r.send(`<message to='carol@c.localhost' type='chat' id='s2'><body>from a to c</body></message>`);
    const g2 = await copyWithBody(carol, 'from a to c', 60000);
    assert.equal(innerMessage(g2).attrs.from, 'romeo@a.localhost/remote-r');
    carol.send(`<message to='juliet@b.localhost' type='chat' id='s3'><body>from c to b</body></message>`);
    const back = await copyWithBody(j, 'from c to b', 60000);
    assert.equal(idBy(back, 'juliet@b.localhost'), await mamIdOf(j, 'from c to b'));
    assert.equal(await mamIdOf(j, 'from b to c'), `${j.streamId}-s1`);
    // Two outgoing streams from V (one per hosted domain), each authenticated (dialback: self-signed certificates).
    assert.ok((await metric(V, 'verona_s2s_connects_total')) >= 2);
    assert.ok((await metric(C, 'verona_s2s_auth_in_total')) >= 2);
  });

  it('SIGHUP reloads the certificate of every hosted domain', async () => {
    const ca = makeCA();
    try {
      const leaf = ca.leaf('b.localhost');
      const tlsPort = V.ports['c2s-tls'] as number;
      assert.notEqual((await certForSni(tlsPort, 'b.localhost')).issuerCN, 'Verona s2s test CA');
      const dir = path.join(V.dataDir, 'tls', 'b.localhost');
      copyFileSync(leaf.key, path.join(dir, 'key.pem'));
      copyFileSync(leaf.cert, path.join(dir, 'cert.pem'));
      V.proc.kill('SIGHUP');
      // Wait for the reload to take effect (no fixed sleep: poll until the new issuer shows).
      const deadline = Date.now() + 60000;
      let now = await certForSni(tlsPort, 'b.localhost');
      while (now.issuerCN !== 'Verona s2s test CA' && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 200));
        now = await certForSni(tlsPort, 'b.localhost');
      }
      assert.equal(now.issuerCN, 'Verona s2s test CA');
      assert.ok(now.covers('b.localhost'));
      assert.ok((await certForStartTls(V.ports.c2s as number, 'b.localhost')).issuerCN === 'Verona s2s test CA');
      // The primary's certificate is untouched.
      assert.notEqual((await certForSni(tlsPort, 'a.localhost')).issuerCN, 'Verona s2s test CA');
      // The test CA's certificates live 2 days: check against 0 days left.
      const check = await V.cli(['cert', 'check', 'b.localhost', '--days', '0']);
      assert.match(check.stdout, /ok: .* covers b\.localhost/);
    } finally {
      ca.cleanup();
    }
  });

  it('CLI: the domain comes from the JID; an unknown domain is a clear error', async () => {
    await V.cli(['adduser', 'mercutio@b.localhost', '--password', PW]);
    const m = await dev(V, 'mercutio', 'b.localhost', PW, 'cli', 'mr2');
    assert.equal(m.jid, 'mercutio@b.localhost/cli');
    await assert.rejects(connectClient({ port: V.ports.c2s as number, user: 'mercutio', password: PW, domain: 'a.localhost' }), /not-authorized/);
    await assert.rejects(V.cli(['adduser', 'tybalt@z.localhost', '--password', PW]), (err: Error & { stderr?: string }) => {
      assert.match(String(err.stderr), /tybalt@z\.localhost is not on this server's domain \(a\.localhost, b\.localhost\)/);
      return true;
    });
    const sessions = await V.cli(['sessions', 'mercutio@b.localhost']);
    assert.match(sessions.stdout, /mercutio@b\.localhost\/cli/);
    await V.cli(['deluser', 'mercutio@b.localhost']);
    await assert.rejects(connectClient({ port: V.ports.c2s as number, user: 'mercutio', password: PW, domain: 'b.localhost' }), /not-authorized/);
    const certs = await V.cli(['cert', 'show']);
    assert.match(certs.stdout, /b\.localhost/);
  });
});
