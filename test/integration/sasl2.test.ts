/**
 * SASL2 + Bind2 + FAST + channel binding on the real server:
 * - @xmpp/client 0.14 (a real client library with SASL2, Bind2, inline SM
 *   and FAST HT-SHA-256-NONE) logs in, gets a token, and logs in again with
 *   the token alone (its password wrong);
 * - a raw client: inline MR2, carbons, SM, CSI and the MAM metadata in
 *   <bound/>; FAST reconnect with the token (same user agent: the older
 *   session is replaced); inline resumption, and a failed one that still
 *   binds; a token revoked by a password change fails;
 * - over TLS: SCRAM-SHA-256-PLUS, SCRAM-SHA-1-PLUS and HT-SHA-256-EXPR/-ENDP with the right
 *   channel binding succeed, with a wrong one fail.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Element } from '@xmpp/xml';
import { xml } from '@xmpp/client';
import { client as xmppClient } from '../helpers/xmppjs.js';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, type RawConnection, type TestClient } from '../helpers/client.js';
import {
  BIND2, FAST, SASL2, authenticate, clientChannelBinding, failureOf, htInitial, htResponder, openRaw, plainInitial, scram, scram256,
} from '../helpers/sasl2-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // @xmpp/client upgrades to TLS; the test certificate is self-signed

let v: Verona;
let julia: TestClient;
const SM = 'urn:xmpp:sm:3';

before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['julia', 'ju1ia'], ['nurse', 'nur5e']] });
  julia = await connectClient({ port: v.ports.c2s as number, user: 'julia', password: 'ju1ia', resource: 'balcony', presence: true });
});
after(async () => {
  julia?.close();
  await v.stop();
  v.cleanup();
});

async function opened(secure = false): Promise<{ c: RawConnection; features: Element }> {
  const c = await openRaw(secure ? (v.ports['c2s-tls'] as number) : (v.ports.c2s as number), secure);
  const features = await c.open('localhost');
  return { c, features };
}

test('features offer SASL2 with inline Bind2 (MR2, carbons, SM, CSI), SM and FAST', async () => {
  const { c, features } = await opened();
  const auth = features.getChild('authentication', SASL2);
  assert.ok(auth);
  assert.ok(auth.getChildren('mechanism').some((m) => m.text() === 'SCRAM-SHA-256'));
  const inline = auth.getChild('inline');
  const vars = inline?.getChild('bind', BIND2)?.getChild('inline')?.getChildren('feature').map((f) => f.attrs.var);
  assert.deepEqual(vars, ['urn:xmpp:mr2:0', 'urn:xmpp:carbons:2', SM, 'urn:xmpp:csi:0']);
  assert.ok(inline?.getChild('sm', SM));
  assert.deepEqual(inline?.getChild('fast', FAST)?.getChildren('mechanism').map((m) => m.text()), ['HT-SHA-256-NONE'], 'no channel binding without TLS');
  c.destroy();
});

test('@xmpp/client: SASL2 + Bind2 + inline SM, then a FAST login with the token (password wrong)', async () => {
  const userAgent = xml('user-agent', { id: randomUUID() });
  const first = xmppClient({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username: 'nurse', password: 'nur5e', resource: 'pocket', userAgent, timeout: 30000 });
  first.on('error', () => undefined);
  let token: { token: string; mechanism: string; expiry: string } | undefined;
  first.fast.saveToken = async (t) => {
    token = t;
  };
  await first.start();
  assert.equal(String(first.jid), 'nurse@localhost/pocket', 'the tag is the resource when no other device uses it');
  assert.ok(first.streamManagement?.id, 'SM was enabled inline in Bind2');
  assert.equal(token?.mechanism, 'HT-SHA-256-NONE');
  assert.ok((token?.token.length ?? 0) > 64);
  const firstJid = String(first.jid);

  const second = xmppClient({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username: 'nurse', password: 'wrong password', resource: 'pocket', userAgent, timeout: 30000 });
  second.on('error', () => undefined);
  second.fast.fetchToken = async () => token;
  const replaced = new Promise<void>((r) => first.once('disconnect', () => r()));
  await second.start();
  assert.equal(String(second.jid), firstJid, 'same user agent, same resource');
  await replaced; // the older session of the same user agent was replaced
  const reply = await second.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
  assert.equal(reply.attrs.type, 'result');
  await second.stop();
  await first.stop().catch(() => undefined);
});

test('raw: inline MR2/carbons/SM/CSI and MAM metadata in <bound/>; FAST reconnect; inline resumption; a failed one still binds', async () => {
  // Something in Romeo's archive first.
  julia.send(`<message to='romeo@localhost' type='chat' id='pre1'><body>before login</body></message>`);
  const agent = randomUUID();
  const bindReq = `<bind xmlns='${BIND2}'><tag>phone</tag><enable xmlns='urn:xmpp:mr2:0'/><enable xmlns='urn:xmpp:carbons:2'/><enable xmlns='${SM}' resume='true'/><inactive xmlns='urn:xmpp:csi:0'/></bind>`;
  const { c } = await opened();
  const ok = await authenticate(c, { mechanism: 'PLAIN', initial: plainInitial('romeo', 'r0meo'), agent, inline: `${bindReq}<request-token xmlns='${FAST}' mechanism='HT-SHA-256-NONE'/>` });
  assert.equal(ok.name, 'success', ok.toString());
  const jid = ok.getChildText('authorization-identifier') ?? '';
  assert.equal(jid, 'romeo@localhost/phone');
  const bound = ok.getChild('bound', BIND2) as Element;
  assert.ok(bound.getChild('enabled', 'urn:xmpp:mr2:0'));
  const enabled = bound.getChild('enabled', SM) as Element;
  assert.equal(enabled.attrs.resume, 'true');
  const end = bound.getChild('metadata', 'urn:xmpp:mam:2')?.getChild('end');
  assert.ok(end?.attrs.id, 'the archive end is in the bind result');
  const token = ok.getChild('token', FAST)?.attrs.token as string;
  assert.ok(token);

  // CSI inactive from the start: a chat state is held, a body passes; MR2: the body carries stanza-id.
  julia.send(`<message to='romeo@localhost' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
  await c.nothing((el) => el.attrs.id === 'cs1', 600);
  julia.send(`<message to='romeo@localhost' type='chat' id='b1'><body>live</body></message>`);
  const b1 = await c.next((el) => el.attrs.id === 'b1');
  assert.ok(b1.getChild('stanza-id', 'urn:xmpp:sid:0'));
  await c.next((el) => el.attrs.id === 'cs1'); // flushed by the urgent body

  // The connection dies; FAST + inline resumption on a new one brings the session back.
  c.destroy();
  await new Promise((r) => setTimeout(r, 200));
  julia.send(`<message to='romeo@localhost' type='chat' id='b2'><body>while away</body></message>`);
  const r2 = await opened();
  const res = await authenticate(r2.c, {
    mechanism: 'HT-SHA-256-NONE', initial: htInitial('romeo', token), agent,
    inline: `<resume xmlns='${SM}' previd='${String(enabled.attrs.id)}' h='1'/><fast xmlns='${FAST}' count='1'/>`,
  });
  assert.equal(res.name, 'success', res.toString());
  assert.equal(res.getChildText('additional-data'), htResponder(token), 'the server proves it knows the token');
  assert.ok(res.getChild('resumed', SM));
  assert.equal(res.getChildText('authorization-identifier'), jid);
  const b2 = await r2.c.next((el) => el.attrs.id === 'b2');
  assert.equal(b2.getChildText('body'), 'while away');
  r2.c.send(`<a xmlns='${SM}' h='3'/>`);

  // A replayed count fails.
  const r3 = await opened();
  const replay = await authenticate(r3.c, { mechanism: 'HT-SHA-256-NONE', initial: htInitial('romeo', token), agent, inline: `<fast xmlns='${FAST}' count='1'/>` });
  assert.equal(replay.name, 'failure');

  // An unknown previd: <failed/> inside <success/>, and Bind2 still binds (replacing the older session of this agent).
  const bad = await authenticate(r3.c, {
    mechanism: 'HT-SHA-256-NONE', initial: htInitial('romeo', token), agent,
    inline: `<resume xmlns='${SM}' previd='nope' h='0'/>${bindReq}<fast xmlns='${FAST}' count='2'/>`,
  });
  assert.equal(bad.name, 'success', bad.toString());
  assert.ok(bad.getChild('failed', SM));
  assert.equal(bad.getChildText('authorization-identifier'), jid);
  assert.ok(bad.getChild('bound', BIND2)?.getChild('enabled', SM));
  await r2.c.waitClose(); // replaced: same user agent, same resource
  r3.c.close();
});

test('a token is revoked by a password change; an unknown agent cannot use it', async () => {
  const agent = randomUUID();
  const { c } = await opened();
  const ok = await authenticate(c, { mechanism: 'PLAIN', initial: plainInitial('nurse', 'nur5e'), agent, inline: `<request-token xmlns='${FAST}' mechanism='HT-SHA-256-NONE'/>` });
  const token = ok.getChild('token', FAST)?.attrs.token as string;
  c.destroy();

  const other = await opened();
  const f1 = await authenticate(other.c, { mechanism: 'HT-SHA-256-NONE', initial: htInitial('nurse', token), agent: randomUUID() });
  assert.equal(f1.name, 'failure');
  assert.equal(failureOf(f1), 'credentials-expired');

  const works = await authenticate(other.c, { mechanism: 'HT-SHA-256-NONE', initial: htInitial('nurse', token), agent });
  assert.equal(works.name, 'success');
  other.c.destroy();

  await v.cli(['passwd', 'nurse@localhost', '--password', 'n3w-pass']);
  const after = await opened();
  const f2 = await authenticate(after.c, { mechanism: 'HT-SHA-256-NONE', initial: htInitial('nurse', token), agent });
  assert.equal(f2.name, 'failure');
  assert.equal(failureOf(f2), 'credentials-expired');
  after.c.destroy();
});

test('TLS: SCRAM-SHA-256-PLUS and HT-SHA-256-EXPR/-ENDP succeed with the right channel binding and fail with a wrong one', async () => {
  const { c, features } = await opened(true);
  const mechs = features.getChild('authentication', SASL2)?.getChildren('mechanism').map((m) => m.text());
  assert.ok(mechs?.includes('SCRAM-SHA-256-PLUS'));
  // Classic SASL is unchanged: -PLUS is offered through SASL2 only.
  assert.ok(!features.getChild('mechanisms', 'urn:ietf:params:xml:ns:xmpp-sasl')?.getChildren('mechanism').some((m) => m.text().endsWith('-PLUS')));
  const types = features.getChild('sasl-channel-binding', 'urn:xmpp:sasl-cb:0')?.getChildren('channel-binding').map((t) => t.attrs.type);
  assert.deepEqual(types, ['tls-server-end-point', 'tls-exporter']);

  const wrong = await scram256(c, 'julia', 'ju1ia', { type: 'tls-exporter', data: Buffer.alloc(32, 7) });
  assert.equal(wrong.name, 'failure');
  const agent = randomUUID();
  const right = await scram256(c, 'julia', 'ju1ia', { type: 'tls-exporter', data: clientChannelBinding(c, 'tls-exporter') },
    `<request-token xmlns='${FAST}' mechanism='HT-SHA-256-EXPR'/>`, agent);
  assert.equal(right.name, 'success', right.toString());
  const token = right.getChild('token', FAST)?.attrs.token as string;
  c.destroy();

  const t2 = await opened(true);
  const badCb = await authenticate(t2.c, { mechanism: 'HT-SHA-256-EXPR', initial: htInitial('julia', token, Buffer.alloc(32, 1)), agent });
  assert.equal(badCb.name, 'failure');
  const cb = clientChannelBinding(t2.c, 'tls-exporter');
  const good = await authenticate(t2.c, { mechanism: 'HT-SHA-256-EXPR', initial: htInitial('julia', token, cb), agent });
  assert.equal(good.name, 'success', good.toString());
  assert.equal(good.getChildText('additional-data'), htResponder(token, cb));
  t2.c.destroy();

  // tls-server-end-point with SCRAM: right and wrong.
  const t3 = await opened(true);
  const endp = await scram256(t3.c, 'julia', 'ju1ia', { type: 'tls-server-end-point', data: clientChannelBinding(t3.c, 'tls-server-end-point') },
    `<request-token xmlns='${FAST}' mechanism='HT-SHA-256-ENDP'/>`, agent);
  assert.equal(endp.name, 'success', endp.toString());
  const endpToken = endp.getChild('token', FAST)?.attrs.token as string;
  t3.c.destroy();
  const t5 = await opened(true);
  // The EXPR token is gone (one token per user agent, replaced by the new one) and never worked with ENDP; the ENDP token does.
  const wrongMech = await authenticate(t5.c, { mechanism: 'HT-SHA-256-ENDP', initial: htInitial('julia', token, clientChannelBinding(t5.c, 'tls-server-end-point')), agent });
  assert.equal(wrongMech.name, 'failure');
  const endpOk = await authenticate(t5.c, { mechanism: 'HT-SHA-256-ENDP', initial: htInitial('julia', endpToken, clientChannelBinding(t5.c, 'tls-server-end-point')), agent });
  assert.equal(endpOk.name, 'success', endpOk.toString());
  t5.c.destroy();
  const t4 = await opened(true);
  const endpBad = await scram256(t4.c, 'julia', 'ju1ia', { type: 'tls-server-end-point', data: Buffer.alloc(32) });
  assert.equal(endpBad.name, 'failure');
  t4.c.destroy();
});

test('TLS: SCRAM-SHA-1-PLUS with tls-exporter and tls-server-end-point succeeds with the right binding, fails with a wrong one', async () => {
  const { c, features } = await opened(true);
  assert.ok(features.getChild('authentication', SASL2)?.getChildren('mechanism').some((m) => m.text() === 'SCRAM-SHA-1-PLUS'));
  const wrong = await scram(c, 'sha1', 'julia', 'ju1ia', { type: 'tls-exporter', data: Buffer.alloc(32, 9) });
  assert.equal(wrong.name, 'failure');
  const right = await scram(c, 'sha1', 'julia', 'ju1ia', { type: 'tls-exporter', data: clientChannelBinding(c, 'tls-exporter') });
  assert.equal(right.name, 'success', right.toString());
  c.destroy();
  const t2 = await opened(true);
  const endpWrong = await scram(t2.c, 'sha1', 'julia', 'ju1ia', { type: 'tls-server-end-point', data: Buffer.alloc(32, 3) });
  assert.equal(endpWrong.name, 'failure');
  const endp = await scram(t2.c, 'sha1', 'julia', 'ju1ia', { type: 'tls-server-end-point', data: clientChannelBinding(t2.c, 'tls-server-end-point') });
  assert.equal(endp.name, 'success', endp.toString());
  t2.c.destroy();
});
