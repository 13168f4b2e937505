/**
 * Federation between two real Verona processes on loopback (a.localhost and
 * b.localhost, found through s2s.hosts): once with certificates from a test
 * CA (SASL EXTERNAL, XEP-0178) and once with self-signed certificates
 * (Server Dialback, XEP-0220). Each side has MR2 and carbons devices; every
 * copy's stanza-id must equal what that side's MAM returns, catch-up after
 * the last id works on both sides, and a presence subscription goes through
 * end to end.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { makeCA, metric, startFedServer, type FedServer, type TestCA } from '../helpers/s2s-servers.js';
import { device, copyWithBody, mamQuery, shapeOf, NS_SID, innerMessage, type Dev } from './mr2-helpers.js';

const PW = 'pw-s2s';

/** Every <stanza-id/> of a copy (inside the carbon wrapper for carbons). */
function stanzaIds(el: Element): Array<{ by: string; id: string }> {
  return innerMessage(el)
    .getChildren('stanza-id', NS_SID)
    .map((s) => ({ by: String(s.attrs.by), id: String(s.attrs.id) }));
}

function idBy(el: Element, by: string): string {
  const ids = stanzaIds(el).filter((s) => s.by === by);
  assert.equal(ids.length, 1, `exactly one stanza-id by ${by} in ${el.toString()}`);
  return (ids[0] as { id: string }).id;
}

async function lastMamItem(d: Dev, body: string): Promise<string> {
  const page = await mamQuery(d, { rsm: '<max>50</max><before/>' });
  const item = page.items.find((i) => i.body === body);
  assert.ok(item, `MAM of ${d.user} holds "${body}"`);
  return item.id;
}

function federation(name: string, addrs: [string, string], withCerts: boolean): void {
  describe(name, () => {
    let ca: TestCA | undefined;
    let A: FedServer;
    let B: FedServer;
    const devs: Dev[] = [];

    before(async () => {
      if (withCerts) ca = makeCA();
      const peersA = { 'b.localhost': `${addrs[1]}:5269` };
      const peersB = { 'a.localhost': `${addrs[0]}:5269` };
      [A, B] = await Promise.all([
        startFedServer({ domain: 'a.localhost', address: addrs[0], peers: peersA, ca, users: [['romeo', PW]] }),
        startFedServer({ domain: 'b.localhost', address: addrs[1], peers: peersB, ca, users: [['juliet', PW]] }),
      ]);
    });

    after(async () => {
      for (const d of devs) d.destroy();
      await Promise.all([A?.stop(), B?.stop()]);
      A?.cleanup();
      B?.cleanup();
      ca?.cleanup();
    });

    const dev = async (s: FedServer, user: string, resource: string, kind: 'mr2' | 'carbons'): Promise<Dev> => {
      const d = await device({ port: s.ports.c2s as number, user, password: PW, resource, kind, domain: s.xmppDomain });
      devs.push(d);
      return d;
    };

    it('carries messages both ways with archive ids that match each side\'s MAM, and catch-up works on both sides', async () => {
      const r1 = await dev(A, 'romeo', 'r1', 'mr2');
      const r2 = await dev(A, 'romeo', 'r2', 'mr2');
      const r3 = await dev(A, 'romeo', 'r3', 'carbons');
      const j1 = await dev(B, 'juliet', 'j1', 'mr2');
      const j2 = await dev(B, 'juliet', 'j2', 'carbons');

      // a -> b (the first stanza opens the stream: it waits in the queue meanwhile).
      r1.send(`<message to='juliet@b.localhost' type='chat' id='m1'><body>hello b</body></message>`);
      const sent = [await copyWithBody(r2, 'hello b', 30000), await copyWithBody(r3, 'hello b', 30000)];
      const got = [await copyWithBody(j1, 'hello b', 30000), await copyWithBody(j2, 'hello b', 30000)];
      for (const c of sent) {
        assert.equal(shapeOf(c), 'sent');
        // The computable id: <stream id>-<message id>.
        assert.equal(idBy(c, 'romeo@a.localhost'), `${r1.streamId}-m1`);
      }
      const jid1 = idBy(got[0] as Element, 'juliet@b.localhost');
      for (const c of got) {
        assert.equal(shapeOf(c), 'plain');
        assert.equal(innerMessage(c).attrs.from, 'romeo@a.localhost/r1');
        assert.equal(idBy(c, 'juliet@b.localhost'), jid1);
      }
      assert.equal(await lastMamItem(r2, 'hello b'), `${r1.streamId}-m1`);
      assert.equal(await lastMamItem(j1, 'hello b'), jid1);

      // b -> a, with a forged stanza-id claiming romeo's archive (a strips it).
      j1.send(
        `<message to='romeo@a.localhost' type='chat' id='m2'><body>hello a</body><stanza-id xmlns='urn:xmpp:sid:0' by='romeo@a.localhost' id='forged'/></message>`,
      );
      const jsent = await copyWithBody(j2, 'hello a', 30000);
      assert.equal(shapeOf(jsent), 'sent');
      assert.equal(idBy(jsent, 'juliet@b.localhost'), `${j1.streamId}-m2`);
      const rgot = await Promise.all([r1, r2, r3].map((d) => copyWithBody(d, 'hello a', 30000)));
      const rid = idBy(rgot[0] as Element, 'romeo@a.localhost');
      assert.notEqual(rid, 'forged');
      for (const c of rgot) assert.equal(idBy(c, 'romeo@a.localhost'), rid);
      assert.equal(await lastMamItem(r3, 'hello a'), rid);
      assert.equal(await lastMamItem(j2, 'hello a'), `${j1.streamId}-m2`);

      // Catch-up from the last id known before: exactly the newer message, on both sides.
      const ra = await mamQuery(r1, { fields: { 'after-id': `${r1.streamId}-m1` } });
      assert.deepEqual(ra.items.map((i) => i.body), ['hello a']);
      assert.equal(ra.items[0]?.id, rid);
      const jb = await mamQuery(j2, { fields: { 'after-id': jid1 } });
      assert.deepEqual(jb.items.map((i) => i.body), ['hello a']);
      assert.equal(jb.items[0]?.id, `${j1.streamId}-m2`);

      // How each side authenticated the other.
      const method = withCerts ? 'external' : 'dialback';
      assert.ok((await metric(A, 'verona_s2s_auth_out_total', { method })) >= 1, `a authenticated to b with ${method}`);
      // b answers on a's stream (XEP-0288 bidi, on by default) rather than authenticating a stream of its own.
      assert.ok((await metric(B, 'verona_s2s_auth_in_total', { method })) >= 1, `b accepted a's ${method}`);
    });

    it('routes IQs both ways: disco#info of the remote server, a request to a remote client and its result, and errors', async () => {
      const r = await dev(A, 'romeo', 'iq-r', 'mr2');
      const j = await dev(B, 'juliet', 'iq-j', 'carbons');
      r.send(`<iq type='get' id='d1' to='b.localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
      const info = await r.next((el) => el.is('iq') && el.attrs.id === 'd1', 30000);
      assert.equal(info.attrs.type, 'result');
      assert.equal(info.attrs.from, 'b.localhost');
      assert.ok(info.getChild('query')?.getChildren('feature').some((f) => f.attrs.var === 'urn:xmpp:ping'));
      // A request to a remote client, answered by that client.
      r.send(`<iq type='get' id='v1' to='juliet@b.localhost/iq-j'><query xmlns='jabber:iq:version'/></iq>`);
      const req = await j.next((el) => el.is('iq') && el.attrs.id === 'v1', 30000);
      assert.equal(req.attrs.from, 'romeo@a.localhost/iq-r');
      j.send(`<iq type='result' id='v1' to='romeo@a.localhost/iq-r'><query xmlns='jabber:iq:version'><name>test</name></query></iq>`);
      const res = await r.next((el) => el.is('iq') && el.attrs.id === 'v1', 30000);
      assert.equal(res.attrs.type, 'result');
      assert.equal(res.attrs.from, 'juliet@b.localhost/iq-j');
      // A resource that does not exist over there: the remote server's error comes back.
      r.send(`<iq type='get' id='v2' to='juliet@b.localhost/nobody'><query xmlns='jabber:iq:version'/></iq>`);
      const err = await r.next((el) => el.is('iq') && el.attrs.id === 'v2', 30000);
      assert.equal(err.attrs.type, 'error');
      assert.equal(err.getChild('error')?.getChildElements()[0]?.name, 'service-unavailable');
    });

    it('runs a presence subscription end to end, and unavailable on disconnect', async () => {
      const r = await dev(A, 'romeo', 'sub-r', 'mr2');
      const j = await dev(B, 'juliet', 'sub-j', 'mr2');
      // Roster pushes go to resources that asked for the roster (RFC 6121 §2.1.6).
      for (const d of [r, j]) {
        d.send(`<iq type='get' id='roster-${d.jid}'><query xmlns='jabber:iq:roster'/></iq>`);
        await d.next((el) => el.is('iq') && el.attrs.id === `roster-${d.jid}`, 30000);
      }
      r.send(`<presence to='juliet@b.localhost' type='subscribe' id='s1'/>`);
      const push1 = await r.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.jid === 'juliet@b.localhost', 30000);
      assert.equal(push1.getChild('query')?.getChild('item')?.attrs.ask, 'subscribe');
      const req = await j.next((el) => el.is('presence') && el.attrs.type === 'subscribe', 30000);
      assert.equal(req.attrs.from, 'romeo@a.localhost');
      j.send(`<presence to='romeo@a.localhost' type='subscribed'/>`);
      await r.next((el) => el.is('presence') && el.attrs.type === 'subscribed' && el.attrs.from === 'juliet@b.localhost', 30000);
      await r.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.subscription === 'to', 30000);
      // Approval makes b send juliet's current presence (RFC 6121 §3.1.5).
      await r.next((el) => el.is('presence') && el.attrs.from === `juliet@b.localhost/sub-j` && el.attrs.type === undefined, 30000);
      // Juliet's roster shows 'from'.
      await j.next((el) => el.is('iq') && el.getChild('query')?.getChild('item')?.attrs.subscription === 'from', 30000);
      // Juliet's resource goes away: romeo sees unavailable.
      j.destroy();
      await r.next((el) => el.is('presence') && el.attrs.from === 'juliet@b.localhost/sub-j' && el.attrs.type === 'unavailable', 60000);
    });
  });
}

federation('Verona <-> Verona with certificates (SASL EXTERNAL)', ['127.0.0.21', '127.0.0.22'], true);
federation('Verona <-> Verona with self-signed certificates (dialback)', ['127.0.0.24', '127.0.0.25'], false);
