/**
 * s2s for domains hosted beside the server (a push app server connected as
 * a component): the policy functions take a predicate for "ours", and the
 * manager keys streams by domain pair (src/s2s/policy.ts, outgoing.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkIncomingStanza, dialbackRequest, isLocal } from '../../src/s2s/policy.js';
import { outgoingKey } from '../../src/s2s/policy.js';

const ours = (d: string): boolean => d === 'b.example' || d === 'push.b.example';

test('isLocal: a string is the one domain, a predicate answers for hosted ones', () => {
  assert.equal(isLocal('b.example', 'b.example'), true);
  assert.equal(isLocal('b.example', 'push.b.example'), false);
  assert.equal(isLocal(ours, 'push.b.example'), true);
  assert.equal(isLocal(ours, 'evil.example'), false);
});

test('checkIncomingStanza: a stanza to a hosted domain is accepted, to any other refused', () => {
  const auth = new Set(['a.example']);
  assert.deepEqual(checkIncomingStanza(auth, 'a.example', 'push.b.example', ours), { ok: true });
  const c = checkIncomingStanza(auth, 'a.example', 'c.example', ours);
  assert.equal(c.ok, false);
  if (!c.ok) assert.equal(c.condition, 'host-unknown');
});

test('dialbackRequest: a db:result for a hosted domain is verified, for another refused', () => {
  const base = { localDomain: ours, secure: true, requireTls: true, secureAuth: false, insecurePeer: false, peerCertValidForFrom: false };
  assert.equal(dialbackRequest({ ...base, to: 'push.b.example' }).action, 'verify');
  assert.equal(dialbackRequest({ ...base, to: 'c.example' }).action, 'refuse');
});

test('outgoingKey: the server domain keys by remote domain alone (unchanged), a hosted one by the pair', () => {
  assert.equal(outgoingKey('b.example', 'b.example', 'a.example'), 'a.example');
  assert.equal(outgoingKey('b.example', 'push.b.example', 'a.example'), 'push.b.example a.example');
});
