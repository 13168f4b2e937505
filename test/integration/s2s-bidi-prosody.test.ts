/**
 * XEP-0288 against Prosody 0.12 from Debian, whose own mod_s2s_bidi (part of
 * Prosody 0.12 itself, not of prosody-modules) is loaded: with certificates
 * from a test CA (SASL EXTERNAL both ways), messages both ways travel on ONE
 * TCP connection (counted from the kernel with `ss`), whichever side opens it.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeCA, metric, startFedServer, type FedServer, type TestCA } from '../helpers/s2s-servers.js';
import { startProsody, type Prosody } from '../helpers/s2s-prosody.js';
import { acceptedConnections, prosodyClient } from '../helpers/bidi-net.js';
import type { RawConnection } from '../helpers/client.js';
import { device, copyWithBody, type Dev } from './mr2-helpers.js';

const PW = 'pw-bidi';

function withProsody(name: string, verAddr: string, prosAddr: string, firstFromVerona: boolean): void {
  describe(name, () => {
    let ca: TestCA;
    let V: FedServer;
    let P: Prosody;
    const conns: Array<Dev | RawConnection> = [];

    before(async () => {
      ca = makeCA();
      P = await startProsody({ domain: 'prosody.test', address: prosAddr, hosts: { 'verona.test': verAddr }, cert: ca.leaf('prosody.test'), cafile: ca.ca, bidi: true });
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

    it('carries both directions on one TCP connection', async () => {
      const r = await device({ port: V.ports.c2s as number, user: 'romeo', password: PW, resource: 'r', kind: 'mr2', domain: 'verona.test' });
      conns.push(r);
      const j = await prosodyClient(P, 'juliet', PW, 'j');
      conns.push(j);
      const toProsody = async (body: string): Promise<void> => {
        r.send(`<message to='juliet@prosody.test' type='chat' id='${body}'><body>${body}</body></message>`);
        await j.next((el) => el.name === 'message' && el.getChildText('body') === body, 60000);
      };
      const toVerona = async (body: string): Promise<void> => {
        j.send(`<message to='romeo@verona.test' type='chat' id='${body}'><body>${body}</body></message>`);
        await copyWithBody(r, body, 60000);
      };
      try {
        if (firstFromVerona) {
          await toProsody('v1');
          await toVerona('p1');
        } else {
          await toVerona('p1');
          await toProsody('v1');
        }
        await toProsody('v2');
        await toVerona('p2');
        assert.equal(acceptedConnections([`${verAddr}:5269`, `${prosAddr}:5269`]), 1, 'one TCP connection between Verona and Prosody');
        assert.equal(await metric(V, 'verona_s2s_streams_bidi'), 1);
        assert.equal(await metric(V, 'verona_s2s_bidi_total', { direction: firstFromVerona ? 'out' : 'in' }), 1);
      } catch (err) {
        console.log(P.log().split('\n').filter((l) => /bidi|s2s/i.test(l)).slice(-60).join('\n'));
        throw err;
      }
    });
  });
}

withProsody('XEP-0288 Verona -> Prosody 0.12 (mod_s2s_bidi), Verona connects', '127.0.20.10', '127.0.20.11', true);
withProsody('XEP-0288 Prosody 0.12 (mod_s2s_bidi) -> Verona, Prosody connects', '127.0.20.12', '127.0.20.13', false);
