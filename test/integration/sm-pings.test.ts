/**
 * One counted path (issue 11): every stanza the server writes to a client
 * stream, including its own XMPP pings and the RFC 3921 <session/> reply, is
 * counted by stream management. A client that answers the server's pings and
 * acks everything it received keeps its stream over several ping intervals,
 * on every transport: TCP (@xmpp/client), WebSocket (@xmpp/client) and BOSH
 * (StanzaJS). Before the fix, the first ack after a server ping was one more
 * than the server had counted and the stream ended with undefined-condition.
 *
 * The server pings after 1 s of silence and asks for an ack after every
 * counted stanza, so each ping is followed by an ack that includes it; a
 * message from another user arrives between pings too.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { client } from '../helpers/xmppjs.js';
import type { Element } from '@xmpp/xml';
import * as XMPP from 'stanza';
import { startVerona, type Verona } from '../helpers/server.js';
import { WebSocket } from 'ws';
import { SmClient } from './sm-client.js';

// xmpp.js uses the global WebSocket, which Node 20 lacks.
const g = globalThis as unknown as { WebSocket?: unknown };
g.WebSocket ??= WebSocket;

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // @xmpp/client upgrades to TLS; the test certificate is self-signed

const PW = 'secret';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const PINGS = 3;

let v: Verona;
before(async () => {
  v = await startVerona({
    users: [['romeo', PW], ['juliet', PW], ['nurse', PW], ['friar', PW]],
    config: {
      c2s: { pingInterval: 1, pingTimeout: 30 },
      web: { bosh: { maxWait: 2, inactivity: 30 } },
      moduleOptions: { sm: { requestEvery: 1, requestAfter: 1 } },
    },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const isServerPing = (el: Element) => el.is('iq') && el.attrs.type === 'get' && el.attrs.from === 'localhost' && el.getChild('ping', 'urn:xmpp:ping') !== undefined;

async function until(pred: () => boolean, ms: number, what: string): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not reached in ${ms} ms`);
    await sleep(25);
  }
}

/** A sender on its own connection, for the message that arrives between pings. */
async function sender(): Promise<SmClient> {
  return SmClient.connect({ port: v.ports.c2s as number, user: 'friar', password: PW, resource: 'sender', sm: false });
}

function noAckErrors(): void {
  const bad = v.output.filter((l) => l.includes('You acknowledged'));
  assert.deepEqual(bad, [], 'the server never saw an ack for more than it sent');
}

describe('server pings under stream management keep the stream', () => {
  for (const transport of ['tcp', 'websocket'] as const) {
    test(`@xmpp/client over ${transport}: ${PINGS} server pings answered and acked, a message between them, the stream stays`, async () => {
      const service = transport === 'tcp' ? `xmpp://127.0.0.1:${v.ports.c2s}` : `ws://127.0.0.1:${v.ports.http}/xmpp-websocket`;
      const user = transport === 'tcp' ? 'romeo' : 'juliet';
      const c = client({ service, domain: 'localhost', username: user, password: PW, resource: transport });
      // xmpp.js waits 2 s for each stream step by default; a loaded machine needs longer.
      (c as unknown as { timeout: number }).timeout = 30_000;
      const errors: unknown[] = [];
      c.on('error', (e) => errors.push(e));
      let pings = 0;
      const bodies: string[] = [];
      c.on('stanza', (el) => {
        if (isServerPing(el)) pings++;
        const b = el.is('message') ? el.getChildText('body') : null;
        if (b) bodies.push(b);
      });
      let offline = false;
      c.on('offline', () => { offline = true; });
      const sm = c.streamManagement as unknown as { enabled: boolean; inbound: number; id: string };
      const s = await sender();
      try {
        await c.start();
        await until(() => sm.enabled, 5000, 'sm enabled');
        const id = sm.id;
        await until(() => pings >= 1, 10000, 'first server ping');
        s.send(`<message to='${user}@localhost/${transport}' type='chat' id='m-${transport}'><body>between pings</body></message>`);
        await until(() => bodies.includes('between pings'), 5000, 'message');
        await until(() => pings >= PINGS, 20000, `${PINGS} server pings`);
        await sleep(300); // let the last ack reach the server
        assert.equal(offline, false, 'the stream was not closed');
        assert.equal(sm.id, id, 'same SM session (no reconnect)');
        assert.ok(sm.inbound >= PINGS + 1, `client counted ${sm.inbound} stanzas`);
        assert.deepEqual(errors, []);
        noAckErrors();
      } finally {
        await s.close();
        await c.stop().catch(() => undefined);
      }
    });
  }

  test(`StanzaJS over BOSH: ${PINGS} server pings answered and acked, the stream stays`, async () => {
    const url = `http://127.0.0.1:${v.ports.http}/http-bind`;
    const c = XMPP.createClient({ jid: 'nurse@localhost', password: PW, resource: 'bosh', transports: { websocket: false, bosh: url } });
    let pings = 0;
    let disconnected = false;
    let streamError: string | undefined;
    c.on('iq:get:ping', (iq) => { if (iq.from === 'localhost') pings++; });
    c.on('disconnected', () => { disconnected = true; });
    c.on('stream:error', (e) => { streamError = e.condition; });
    const bodies: string[] = [];
    c.on('message', (m) => { if (m.body) bodies.push(m.body); });
    const s = await sender();
    try {
      await new Promise<void>((resolve, reject) => {
        c.once('session:started', () => resolve());
        c.once('disconnected', () => reject(new Error('disconnected before session start')));
        c.connect();
      });
      await until(() => c.sm.started, 5000, 'sm enabled');
      await until(() => pings >= 1, 10000, 'first server ping');
      s.send(`<message to='nurse@localhost/bosh' type='chat' id='m-bosh'><body>between pings</body></message>`);
      await until(() => bodies.includes('between pings'), 5000, 'message');
      await until(() => pings >= PINGS, 30000, `${PINGS} server pings`);
      await sleep(500);
      assert.equal(streamError, undefined);
      assert.equal(disconnected, false);
      assert.ok(c.sm.handled >= PINGS, `client counted ${c.sm.handled}`);
      noAckErrors();
    } finally {
      await s.close();
      c.disconnect();
    }
  });

  test('the <session/> reply after bind is counted: a raw client that acks it keeps its stream', async () => {
    const c = await SmClient.connect({ port: v.ports.c2s as number, user: 'romeo', password: PW, resource: 'legacy', sm: 'resume' });
    try {
      c.send(`<iq type='set' id='sess1'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq>`);
      const reply = await c.next((el) => el.attrs.id === 'sess1');
      assert.equal(reply.attrs.type, 'result');
      // requestEvery 1: the server asks for an ack right after the reply; the client's h includes it.
      await until(() => c.requests >= 1, 5000, 'ack request');
      assert.equal(c.h, 1);
      assert.equal(await c.requestAck(), 1, 'the server handled our <session/> iq');
      assert.equal(c.closed, false, 'the stream was not closed');
      assert.equal(c.streamError, undefined);
      noAckErrors();
    } finally {
      await c.close();
    }
  });
});
