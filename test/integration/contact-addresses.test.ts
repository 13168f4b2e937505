/**
 * XEP-0157 on the real server: the addresses configured in
 * moduleOptions.contact appear as the serverinfo form (XEP-0128) in the
 * server's disco#info, read by StanzaJS over WebSocket as a client would.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as XMPP from 'stanza';
import { startVerona, type Verona } from '../helpers/server.js';

let v: Verona;
let c: XMPP.Agent;

before(async () => {
  v = await startVerona({
    users: [['romeo', 'pw']],
    config: { moduleOptions: { contact: { abuse: ['mailto:abuse@localhost', 'xmpp:abuse@localhost'], security: 'https://localhost/security.txt' } } },
  });
  c = XMPP.createClient({ jid: 'romeo@localhost', password: 'pw', resource: 'web', transports: { websocket: `ws://127.0.0.1:${v.ports.http as number}/xmpp-websocket`, bosh: false } });
  await new Promise<void>((resolve, reject) => {
    c.once('session:started', () => resolve());
    c.once('disconnected', () => reject(new Error('disconnected before session start')));
    c.connect();
  });
});

after(async () => {
  c?.disconnect();
  await v?.stop();
  v?.cleanup();
});

test('the server disco#info carries the serverinfo form with the configured addresses', async () => {
  const info = await c.getDiscoInfo('localhost');
  const form = (info.extensions ?? []).find((f) => f.fields?.some((x) => x.name === 'FORM_TYPE' && x.value === 'http://jabber.org/network/serverinfo'));
  assert.ok(form, 'a serverinfo form');
  const field = (name: string): unknown => form.fields?.find((f) => f.name === name)?.value;
  assert.deepEqual(field('abuse-addresses'), ['mailto:abuse@localhost', 'xmpp:abuse@localhost']);
  assert.deepEqual(field('security-addresses'), ['https://localhost/security.txt']);
  assert.equal(field('support-addresses'), undefined, 'kinds not configured are left out');
});
