/**
 * XEP-0484 FAST token life cycle on the real server (SQLite storage), with
 * a short token lifetime (60 s, the smallest allowed) so rotation and expiry
 * happen during the test:
 * - `<request-token/>` on a FAST login gives a new token; the old one keeps
 *   working until the new one is used, then fails;
 * - a token past half its life is rotated at its next use (no request);
 * - an expired token fails;
 * - deleting the account revokes its tokens, even when an account of the same
 *   name and password is created again.
 * The waits follow the server's own clock (the token's `expiry`), never a
 * guess about the machine's speed.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { FAST, authenticate, htInitial, openRaw, plainInitial } from '../helpers/sasl2-client.js';

const LIFETIME = 60;
let v: Verona;

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['mercutio', 'm3rc'], ['tybalt', 'tyb4lt']],
    // The failures here are the point: the per-address throttle (5 a minute by default) must not mask them.
    config: { auth: { failuresPerAddress: 100 }, moduleOptions: { sasl2: { tokenLifetime: LIFETIME } } },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

async function login(user: string, mechanism: string, initial: Buffer, agent: string, inline = ''): Promise<Element> {
  const c = await openRaw(v.ports.c2s as number);
  await c.open('localhost');
  const r = await authenticate(c, { mechanism, initial, agent, inline });
  c.destroy();
  return r;
}

const REQUEST = `<request-token xmlns='${FAST}' mechanism='HT-SHA-256-NONE'/>`;
const fast = (user: string, token: string, agent: string, inline = ''): Promise<Element> => login(user, 'HT-SHA-256-NONE', htInitial(user, token), agent, inline);

function tokenOf(el: Element): { token: string; expiry: number } | undefined {
  const t = el.getChild('token', FAST);
  return t ? { token: String(t.attrs.token), expiry: Date.parse(String(t.attrs.expiry)) } : undefined;
}

async function rotatedMetric(): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
  return Number(/^verona_fast_tokens_issued_total\{why="rotated"\} (\d+)/m.exec(text)?.[1] ?? 0);
}

const sleepUntil = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms - Date.now())));

test('rotation on request and near expiry: the old token works until the new one is used; an expired token fails', async () => {
  const agent = randomUUID();
  const first = await login('romeo', 'PLAIN', plainInitial('romeo', 'r0meo'), agent, REQUEST);
  assert.equal(first.name, 'success', first.toString());
  const a1 = tokenOf(first);
  assert.ok(a1);
  const issued = Date.now();
  assert.ok(a1.expiry > issued && a1.expiry <= issued + LIFETIME * 1000 + 1000, `expiry ${new Date(a1.expiry).toISOString()} within the lifetime`);

  // Another device's token, left alone until it expires.
  const otherAgent = randomUUID();
  const other = tokenOf(await login('romeo', 'PLAIN', plainInitial('romeo', 'r0meo'), otherAgent, REQUEST));
  assert.ok(other);

  // <request-token/> on a FAST login: a new token.
  const r2 = await fast('romeo', a1.token, agent, REQUEST);
  assert.equal(r2.name, 'success', r2.toString());
  const a2 = tokenOf(r2);
  assert.ok(a2 && a2.token !== a1.token, 'a new token');
  // The old one still works (the client may have lost the answer) and gives no token of its own.
  const again = await fast('romeo', a1.token, agent);
  assert.equal(again.name, 'success', again.toString());
  assert.equal(tokenOf(again), undefined, 'no rotation for a young token used without a request');
  // Using the new token retires the old one.
  assert.equal((await fast('romeo', a2.token, agent)).name, 'success');
  const retired = await fast('romeo', a1.token, agent);
  assert.equal(retired.name, 'failure', 'the old token is void once its successor was used');
  // And the new one keeps working.
  assert.equal((await fast('romeo', a2.token, agent)).name, 'success');

  // Past half its life, the token is rotated at its next use without being asked.
  const before = await rotatedMetric();
  await sleepUntil(a2.expiry - (LIFETIME * 1000) / 2 + 1500);
  const r3 = await fast('romeo', a2.token, agent);
  assert.equal(r3.name, 'success', r3.toString());
  const a3 = tokenOf(r3);
  assert.ok(a3 && a3.token !== a2.token, 'rotated near expiry');
  assert.ok(a3.expiry > a2.expiry, 'the new token lives longer');
  assert.equal(await rotatedMetric(), before + 1);
  assert.equal((await fast('romeo', a3.token, agent)).name, 'success');
  assert.equal((await fast('romeo', a2.token, agent)).name, 'failure', 'the rotated token is void once its successor was used');

  // The other device's token expires.
  await sleepUntil(other.expiry + 1000);
  const expired = await fast('romeo', other.token, otherAgent);
  assert.equal(expired.name, 'failure', 'an expired token fails');
  // The rotated one is still good (it was issued later).
  assert.equal((await fast('romeo', a3.token, agent)).name, 'success');
});

test('invalidate: a client gives its token up', async () => {
  const agent = randomUUID();
  const t = tokenOf(await login('tybalt', 'PLAIN', plainInitial('tybalt', 'tyb4lt'), agent, REQUEST));
  assert.ok(t);
  const bye = await fast('tybalt', t.token, agent, `<fast xmlns='${FAST}' invalidate='true'/>`);
  assert.equal(bye.name, 'success', 'the login itself succeeds');
  assert.equal((await fast('tybalt', t.token, agent)).name, 'failure');
});

test('deleting the account revokes its tokens, also against an account created again under the same name and password', async () => {
  const agent = randomUUID();
  const t = tokenOf(await login('mercutio', 'PLAIN', plainInitial('mercutio', 'm3rc'), agent, REQUEST));
  assert.ok(t);
  assert.equal((await fast('mercutio', t.token, agent)).name, 'success');
  await v.cli(['deluser', 'mercutio@localhost']);
  assert.equal((await fast('mercutio', t.token, agent)).name, 'failure', 'no account');
  await v.cli(['adduser', 'mercutio', '--password', 'm3rc']);
  assert.equal((await fast('mercutio', t.token, agent)).name, 'failure', 'the new account does not inherit the token');
  assert.equal((await login('mercutio', 'PLAIN', plainInitial('mercutio', 'm3rc'), agent)).name, 'success', 'the password works');
});
