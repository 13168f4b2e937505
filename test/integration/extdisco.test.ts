/**
 * XEP-0215 against the real server and a real coturn: the STUN/TURN services
 * the operator configured are handed out, TURN with time-limited credentials
 * of the TURN REST scheme; coturn (use-auth-secret) allocates a relay with
 * them, and refuses a wrong password and an expired username.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf } from '../helpers/client.js';
import { coturnMissing, startCoturn, turnAllocate, type Coturn } from '../helpers/apps-turn.js';
import { turnRestCredentials } from '../../src/modules/extdisco.js';

const NS = 'urn:xmpp:extdisco:2';
const SECRET = 'north-wind-shared-secret';
const missing = coturnMissing();
const skip = missing && !process.env.CI ? missing : false;
if (skip) console.log(`# SKIP coturn part: ${skip}`);

let v: Verona;
let turn: Coturn | undefined;

before(async () => {
  if (missing && process.env.CI) throw new Error(`CI: ${missing}`);
  if (!skip) turn = await startCoturn(SECRET);
  v = await startVerona({
    users: [['romeo', 'r0meo']],
    config: {
      moduleOptions: {
        extdisco: {
          services: [
            { type: 'stun', host: turn?.host ?? '127.0.0.61', port: turn?.port ?? 3478 },
            { type: 'turn', host: turn?.host ?? '127.0.0.61', port: turn?.port ?? 3478, transport: 'udp', secret: SECRET, ttl: 3600 },
          ],
        },
      },
    },
  });
});
after(async () => {
  await v?.stop();
  v?.cleanup();
  await turn?.stop();
});

test('the server advertises extdisco and lists both services; TURN carries expiring credentials', async () => {
  const r = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'call' });
  try {
    const info = await sendIq(r, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='localhost'");
    assert.ok(info.getChild('query')?.getChildren('feature').some((f) => f.attrs.var === NS));
    const res = await sendIq(r, `<services xmlns='${NS}'/>`, "type='get' to='localhost'");
    const services = res.getChild('services', NS)?.getChildren('service') ?? [];
    assert.deepEqual(services.map((s) => s.attrs.type), ['stun', 'turn']);
    assert.equal(services[0]?.attrs.username, undefined, 'STUN needs no credentials');
    const t = services[1];
    assert.match(t?.attrs.username ?? '', /^\d+:romeo$/);
    const expiry = Number((t?.attrs.username ?? '').split(':')[0]);
    const now = Date.now() / 1000;
    assert.ok(expiry > now + 3500 && expiry <= now + 3601, 'valid for the configured hour');
    assert.equal(new Date(t?.attrs.expires ?? '').getTime() / 1000, expiry);
    // coturn's documented algorithm: base64(HMAC-SHA1(static-auth-secret, username)).
    assert.equal(t?.attrs.password, turnRestCredentials(SECRET, 'romeo', expiry - 3600, 3600).password);
    const only = await sendIq(r, `<services xmlns='${NS}' type='stun'/>`, "type='get' to='localhost'");
    assert.equal(only.getChild('services', NS)?.getChildren('service').length, 1);
    const cred = await sendIq(r, `<credentials xmlns='${NS}'><service type='turn' host='${t?.attrs.host}'/></credentials>`, "type='get' to='localhost'");
    assert.match(cred.getChild('credentials', NS)?.getChild('service')?.attrs.username ?? '', /:romeo$/);
    const none = await sendIq(r, `<credentials xmlns='${NS}'><service type='turn' host='turn.elsewhere'/></credentials>`, "type='get' to='localhost'");
    assert.equal(stanzaErrorOf(none), 'item-not-found');
  } finally {
    r.destroy();
  }
});

test('coturn allocates a relay with the handed-out credentials and refuses wrong or expired ones', { skip }, async () => {
  const c = turn as Coturn;
  const r = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'call2' });
  let username = '';
  let password = '';
  try {
    const res = await sendIq(r, `<services xmlns='${NS}' type='turn'/>`, "type='get' to='localhost'");
    const s = res.getChild('services', NS)?.getChild('service');
    username = s?.attrs.username ?? '';
    password = s?.attrs.password ?? '';
  } finally {
    r.destroy();
  }
  const ok = await turnAllocate(c.host, c.port, username, password);
  assert.equal(ok.ok, true, `allocation refused (${ok.error}): ${c.output.join('').slice(-2000)}`);
  assert.match(ok.relayed ?? '', /^127\.0\.0\.61:\d+$/);

  const wrong = await turnAllocate(c.host, c.port, username, Buffer.from('not the password').toString('base64'));
  assert.equal(wrong.ok, false);
  assert.equal(wrong.error, 401);

  // Correctly signed, but expired an hour ago: coturn checks the timestamp.
  const old = turnRestCredentials(SECRET, 'romeo', Date.now() / 1000 - 7200, 3600);
  const expired = await turnAllocate(c.host, c.port, old.username, old.password);
  assert.equal(expired.ok, false);
  assert.equal(expired.error, 401);
});
