/**
 * Verona <-> Prosody 0.12 (Debian's package, run as a child with its own
 * config on a loopback address of the fed range): messages, presence and
 * subscriptions both ways, once with Server Dialback (self-signed
 * certificates on both sides) and once with certificates from a test CA
 * (SASL EXTERNAL both ways). Verona's side keeps its promises: the sender's
 * copy is archived under the computable id and forked, the recipient's
 * copies carry the id MAM returns.
 *
 * Domains are under .test: Prosody resolves through libunbound, whose
 * built-in `localhost.` redirect zone would send every *.localhost to 127.0.0.1.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { makeCA, metric, startFedServer, type FedServer, type TestCA } from '../helpers/s2s-servers.js';
import { startProsody, type Prosody } from '../helpers/s2s-prosody.js';
import { connectRaw, type RawConnection } from '../helpers/client.js';
import { device, copyWithBody, mamQuery, shapeOf, NS_SID, innerMessage, type Dev } from './mr2-helpers.js';

const PW = 'pw-s2s';

function idBy(el: Element, by: string): string | undefined {
  return innerMessage(el)
    .getChildren('stanza-id', NS_SID)
    .find((s) => s.attrs.by === by)?.attrs.id as string | undefined;
}

/** A plain client of Prosody (PLAIN without TLS is allowed by the test config), with carbons and roster. */
async function prosodyClient(p: Prosody, user: string, resource: string): Promise<RawConnection> {
  const c = await connectRaw(p.c2sPort, p.address);
  await c.open(p.domain);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${PW}`).toString('base64')}</auth>`);
  const r = await c.next((el) => el.name === 'success' || el.name === 'failure', 20000);
  assert.equal(r.name, 'success', `login to Prosody: ${r.toString()}`);
  await c.open(p.domain);
  c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await c.next((el) => el.name === 'iq' && el.attrs.id === 'bind', 20000);
  c.send(`<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>`);
  await c.next((el) => el.name === 'iq' && el.attrs.id === 'roster', 20000);
  c.send(`<presence/>`);
  await c.next((el) => el.name === 'presence' && String(el.attrs.from).startsWith(`${user}@`), 20000);
  return c;
}

function withProsody(name: string, verAddr: string, prosAddr: string, withCerts: boolean): void {
  describe(name, () => {
    let ca: TestCA | undefined;
    let V: FedServer;
    let P: Prosody;
    const conns: RawConnection[] = [];

    before(async () => {
      if (withCerts) ca = makeCA();
      P = await startProsody({
        domain: 'prosody.test',
        address: prosAddr,
        hosts: { 'verona.test': verAddr },
        cert: ca?.leaf('prosody.test'),
        cafile: ca?.ca,
      });
      P.register('juliet', PW);
      V = await startFedServer({ domain: 'verona.test', address: verAddr, peers: { 'prosody.test': `${prosAddr}:5269` }, ca, users: [['romeo', PW]] });
    });

    after(async () => {
      for (const c of conns) c.destroy();
      await V?.stop();
      V?.cleanup();
      await P?.stop();
      ca?.cleanup();
    });

    const rdev = async (resource: string, kind: 'mr2' | 'carbons'): Promise<Dev> => {
      const d = await device({ port: V.ports.c2s as number, user: 'romeo', password: PW, resource, kind, domain: 'verona.test' });
      conns.push(d);
      d.send(`<iq type='get' id='roster-${resource}'><query xmlns='jabber:iq:roster'/></iq>`);
      await d.next((el) => el.is('iq') && el.attrs.id === `roster-${resource}`, 20000);
      return d;
    };

    it('carries messages both ways, archived and forked on Verona\'s side', async () => {
      const r1 = await rdev('r1', 'mr2');
      const r2 = await rdev('r2', 'carbons');
      const j = await prosodyClient(P, 'juliet', 'j');
      conns.push(j);
      try {
        r1.send(`<message to='juliet@prosody.test' type='chat' id='p1'><body>to prosody</body></message>`);
        const sent = await copyWithBody(r2, 'to prosody', 60000);
        assert.equal(shapeOf(sent), 'sent');
        assert.equal(idBy(sent, 'romeo@verona.test'), `${r1.streamId}-p1`);
        const atJ = await j.next((el) => el.name === 'message' && el.getChildText('body') === 'to prosody', 60000);
        assert.equal(atJ.attrs.from, 'romeo@verona.test/r1');
        // Our archive id is ours: it does not travel to the other server.
        assert.equal(idBy(atJ, 'romeo@verona.test'), undefined);

        j.send(`<message to='romeo@verona.test' type='chat' id='p2'><body>to verona</body></message>`);
        const copies = await Promise.all([r1, r2].map((d) => copyWithBody(d, 'to verona', 60000)));
        const rid = idBy(copies[0] as Element, 'romeo@verona.test');
        assert.ok(rid);
        for (const c of copies) assert.equal(idBy(c, 'romeo@verona.test'), rid);
        const page = await mamQuery(r1, { rsm: '<max>10</max><before/>' });
        assert.deepEqual(
          page.items.map((i) => [i.body, i.id]),
          [
            ['to prosody', `${r1.streamId}-p1`],
            ['to verona', rid],
          ],
        );
        const method = withCerts ? 'external' : 'dialback';
        assert.ok((await metric(V, 'verona_s2s_auth_out_total', { method })) >= 1, `Verona authenticated to Prosody with ${method}`);
        assert.ok((await metric(V, 'verona_s2s_auth_in_total', { method })) >= 1, `Prosody authenticated to Verona with ${method}`);
      } catch (err) {
        console.log(P.log().split('\n').slice(-80).join('\n'));
        throw err;
      }
    });

    it('runs presence subscriptions in both directions, with presence and unavailable', async () => {
      const r = await rdev('sub', 'mr2');
      const j = await prosodyClient(P, 'juliet', 'js');
      conns.push(j);
      try {
      // Verona -> Prosody.
      r.send(`<presence to='juliet@prosody.test' type='subscribe'/>`);
      const req = await j.next((el) => el.name === 'presence' && el.attrs.type === 'subscribe', 60000);
      assert.equal(req.attrs.from, 'romeo@verona.test');
      j.send(`<presence to='romeo@verona.test' type='subscribed'/>`);
      await r.next((el) => el.is('presence') && el.attrs.type === 'subscribed' && el.attrs.from === 'juliet@prosody.test', 60000);
      await r.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.subscription === 'to', 60000);
      await r.next((el) => el.is('presence') && el.attrs.from === 'juliet@prosody.test/js' && el.attrs.type === undefined, 60000);
      // Prosody -> Verona.
      j.send(`<presence to='romeo@verona.test' type='subscribe'/>`);
      const req2 = await r.next((el) => el.is('presence') && el.attrs.type === 'subscribe' && el.attrs.from === 'juliet@prosody.test', 60000);
      assert.ok(req2);
      r.send(`<presence to='juliet@prosody.test' type='subscribed'/>`);
      await j.next((el) => el.name === 'presence' && el.attrs.type === 'subscribed' && el.attrs.from === 'romeo@verona.test', 60000);
      await j.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@verona.test/sub' && el.attrs.type === undefined, 60000);
      await r.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.subscription === 'both', 60000);
      // Each side sees the other leave.
      r.send(`<presence type='unavailable'/>`);
      await j.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@verona.test/sub' && el.attrs.type === 'unavailable', 60000);
      // Back online first (seen at Prosody), so that the unavailable below has a resource to reach.
      r.send(`<presence/>`);
      await j.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@verona.test/sub' && el.attrs.type === undefined, 60000);
      j.destroy();
      await r.next((el) => el.is('presence') && el.attrs.from === 'juliet@prosody.test/js' && el.attrs.type === 'unavailable', 60000);
      } catch (err) {
        console.log(P.log().split('\n').filter((l) => /Received\[s2sin\]|Sending\[s2sout\]|c2s.*Received/.test(l)).slice(-60).join('\n'));
        throw err;
      }
    });
  });
}

withProsody('Verona <-> Prosody with dialback', '127.0.0.31', '127.0.0.23', false);
withProsody('Verona <-> Prosody with certificates (SASL EXTERNAL)', '127.0.0.32', '127.0.0.33', true);
