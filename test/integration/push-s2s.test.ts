/**
 * XEP-0357 push to an app server on another domain, over s2s between two
 * real Verona processes (test/helpers/phone-s2s.ts): the app server is a
 * XEP-0114 component of b.localhost, the phone's account is on a.localhost.
 * A hibernated phone's push publish reaches the app server through
 * a.localhost -> push.b.localhost; the app server's answer comes back over a
 * stream b authenticates as push.b.localhost (dialback per domain pair) and
 * counts as sent; the phone then resumes and has the message exactly once
 * (live through resumption, once in MAM).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connectClient, type TestClient } from '../helpers/client.js';
import { metric } from '../helpers/s2s-servers.js';
import { APP_DOMAIN, startPushFederation, type PushFederation } from '../helpers/phone-s2s.js';
import { SmClient, mamAll, tryResume } from './sm-client.js';

const PW = 'pw-phone-s2s';
let f: PushFederation;
let julia: TestClient;

before(async () => {
  f = await startPushFederation([['romeo', PW], ['julia', PW]]);
  julia = await connectClient({ port: f.A.ports.c2s as number, user: 'julia', password: PW, resource: 'balcony', presence: true, domain: 'a.localhost' });
});
after(async () => {
  if (process.env.PHONE_DEBUG) for (const s of [f?.A, f?.B]) console.error(s?.xmppDomain, (s?.output ?? []).join('\n'));
  julia?.close();
  await f?.stop();
});

async function until(what: string, fn: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 600; i++) {
    if (await fn()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what}`);
}

test('a hibernated phone on a.localhost: the push publish reaches the app server on b.localhost over s2s, its answer comes back, and the phone resumes with the message exactly once', async () => {
  const phone = await SmClient.connect({ port: f.A.ports.c2s as number, user: 'romeo', password: PW, resource: 'phone', mr2: true, presence: true, domain: 'a.localhost' });
  phone.sendStanza(
    `<iq type='set' id='push-on'><enable xmlns='urn:xmpp:push:0' jid='${APP_DOMAIN}' node='remote-node'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>s2s-secret-7</value></field></x></enable></iq>`,
  );
  const on = await phone.next((el) => el.name === 'iq' && el.attrs.id === 'push-on');
  assert.equal(on.attrs.type, 'result', on.toString());
  const previd = phone.smId as string;
  phone.kill();
  await until('the phone to hibernate', async () => (await metric(f.A, 'verona_sm_hibernating')) === 1);

  julia.send(`<message to='romeo@a.localhost' type='chat' id='far1'><body>across the wall</body></message>`);
  // The first stanza to push.b.localhost opens the s2s stream (dialback): generous timeout.
  const p = await f.app.next('remote-node', 60000);
  assert.equal(p.iq.attrs.from, 'romeo@a.localhost', 'the publish comes from the account, over s2s');
  assert.equal(p.iq.attrs.to, APP_DOMAIN);
  assert.equal(p.summary.FORM_TYPE, 'urn:xmpp:push:summary');
  assert.equal(p.summary['message-count'], '1');
  assert.equal(p.summary['last-message-sender'], 'julia@a.localhost/balcony');
  assert.equal(p.options.secret, 's2s-secret-7', 'the client secret reaches the remote app server');
  // The app server's result travels back b -> a on a stream authenticated as push.b.localhost.
  await until('the push to count as sent on a.localhost', async () => (await metric(f.A, 'verona_push_sent_total')) === 1);
  assert.equal(await metric(f.A, 'verona_push_failed_total'), 0);
  assert.ok((await metric(f.B, 'verona_s2s_stanzas_received_total', { kind: 'iq' })) >= 1, 'b received the publish over s2s');
  assert.ok((await metric(f.A, 'verona_s2s_stanzas_received_total', { kind: 'iq' })) >= 1, 'a received the answer over s2s');

  const { client, result } = await tryResume({ port: f.A.ports.c2s as number, user: 'romeo', password: PW, resume: { previd, h: phone.h }, domain: 'a.localhost' });
  assert.equal(result.name, 'resumed', result.toString());
  const m = await client.next((el) => el.name === 'message' && el.attrs.id === 'far1');
  assert.equal(m.getChildText('body'), 'across the wall');
  // Exactly once: no second copy on the stream, one row in the archive.
  client.sendStanza(`<iq type='get' id='sync'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await client.next((el) => el.name === 'iq' && el.attrs.id === 'sync');
  const copies = [...phone.drain((el) => el.name === 'message' && el.attrs.id === 'far1'), ...client.drain((el) => el.name === 'message' && el.attrs.id === 'far1')];
  assert.equal(copies.length, 0, 'no second copy after the resumption');
  const archived = (await mamAll(client)).filter((r) => r.msg.getChildText('body') === 'across the wall');
  assert.equal(archived.length, 1, 'once in MAM');
  // Back: nothing more is pushed while the phone is live.
  julia.send(`<message to='romeo@a.localhost' type='chat' id='far2'><body>live again</body></message>`);
  await client.next((el) => el.attrs.id === 'far2');
  await f.app.none('remote-node', 1000);
  await client.close();
});
