/**
 * Authentication windows: a plain connection that never starts TLS is closed
 * after the short pre-TLS limit, while a client that started TLS gets the long
 * limit (an interactive client may stop to ask its user about the certificate).
 * Event-ordered, no sleeps: the STARTTLS client connects first, so if it were
 * still under the pre-TLS limit it would be closed before the idle one.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectRaw } from '../helpers/client.js';

let v: Verona;
before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo']],
    config: { c2s: { host: '127.0.0.71', requireTls: true, allowPlainWithoutTls: false, authTimeoutPreTls: 1, authTimeout: 3600 } },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

test('a plain connection gets the pre-TLS limit; one that started TLS outlives it and can still log in', async () => {
  const secure = await connectRaw(v.ports.c2s, '127.0.0.71');
  await secure.open();
  secure.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await secure.next('proceed');
  await secure.starttls();

  const idle = await connectRaw(v.ports.c2s, '127.0.0.71');
  await idle.open();
  const err = await idle.next('stream:error', 30_000);
  assert.ok(err.getChild('connection-timeout'), `connection-timeout expected: ${err.toString()}`);
  assert.match(err.getChildText('text') ?? '', /TLS was not started/);
  await idle.waitClose(10_000);

  // The TLS client connected before the idle one and is still here.
  assert.equal(secure.closed, false);
  await secure.open();
  const creds = Buffer.from('\0romeo\0r0meo').toString('base64');
  secure.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${creds}</auth>`);
  const r = await secure.next((el) => el.name === 'success' || el.name === 'failure');
  assert.equal(r.name, 'success');
  secure.destroy();
});
