/**
 * Presence decisions (RFC 6121 §4): stanza kinds, priority parsing and the
 * broadcast plan for initial, updated and unavailable presence.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml } from '../../src/xml/parser.js';
import { parsePriority, planBroadcast, presenceKind, type BroadcastInput } from '../../src/modules/roster/presence-rules.js';

test('presence kinds', () => {
  assert.equal(presenceKind(undefined), 'available');
  for (const t of ['unavailable', 'probe', 'error', 'subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']) assert.equal(presenceKind(t), t);
  assert.equal(presenceKind('available'), 'invalid', "'available' is not a type value");
  assert.equal(presenceKind('bogus'), 'invalid');
});

test('priority (§4.7.2.3)', () => {
  const p = (inner: string) => parsePriority(parseXml(`<presence xmlns='jabber:client'>${inner}</presence>`));
  assert.equal(p(''), 0);
  assert.equal(p('<priority>5</priority>'), 5);
  assert.equal(p('<priority> -1 </priority>'), -1);
  assert.equal(p('<priority>+7</priority>'), 7);
  assert.equal(p('<priority>1000</priority>'), 127);
  assert.equal(p('<priority>-1000</priority>'), -128);
  assert.equal(p('<priority>high</priority>'), 0);
  assert.equal(p('<priority>1.5</priority>'), 0);
  assert.equal(p("<priority xmlns='urn:other'>9</priority>"), 0, 'only jabber:client priority counts');
});

describe('broadcast plan', () => {
  const contacts = [
    { jid: 'juliet@localhost', subscription: 'both' as const },
    { jid: 'nurse@localhost', subscription: 'from' as const },
    { jid: 'tybalt@localhost', subscription: 'to' as const },
    { jid: 'paris@localhost', subscription: 'none' as const },
  ];
  const base: BroadcastInput = {
    kind: 'available',
    wasAvailable: false,
    contacts,
    directedTo: [],
    others: [
      { resource: 'phone', available: true },
      { resource: 'idle', available: false },
    ],
    fromClient: true,
  };

  test('initial presence: broadcast to from/both, probe to/both, own resources both ways, pending requests', () => {
    const p = planBroadcast(base);
    assert.equal(p.reason, 'initial');
    assert.deepEqual(p.contacts, ['juliet@localhost', 'nurse@localhost']);
    assert.deepEqual(p.probe, ['juliet@localhost', 'tybalt@localhost']);
    assert.deepEqual(p.ownResources, ['phone']);
    assert.deepEqual(p.ownPresenceTo, ['phone']);
    assert.equal(p.reflect, true);
    assert.equal(p.resendPending, true);
  });

  test('update: broadcast and reflect, no probes', () => {
    const p = planBroadcast({ ...base, wasAvailable: true });
    assert.equal(p.reason, 'update');
    assert.deepEqual(p.contacts, ['juliet@localhost', 'nurse@localhost']);
    assert.deepEqual(p.probe, []);
    assert.deepEqual(p.ownPresenceTo, []);
    assert.equal(p.resendPending, false);
    assert.equal(p.reflect, true);
  });

  test('unavailable: subscribers, own resources, directed targets (not twice)', () => {
    const p = planBroadcast({
      ...base,
      kind: 'unavailable',
      wasAvailable: true,
      directedTo: ['benvolio@localhost/sword', 'juliet@localhost/balcony', 'room@conference.example'],
    });
    assert.deepEqual(p.contacts, ['juliet@localhost', 'nurse@localhost']);
    assert.deepEqual(p.directed, ['benvolio@localhost/sword', 'room@conference.example']);
    assert.deepEqual(p.ownResources, ['phone']);
    assert.equal(p.reflect, false);
    assert.deepEqual(p.probe, []);
  });

  test('abrupt end of a resource that never was available: only directed presence is undone', () => {
    const p = planBroadcast({ ...base, kind: 'unavailable', wasAvailable: false, directedTo: ['benvolio@localhost'], fromClient: false });
    assert.deepEqual(p.contacts, []);
    assert.deepEqual(p.ownResources, []);
    assert.deepEqual(p.directed, ['benvolio@localhost']);
    assert.equal(p.reason, 'directed-only');
  });

  test('session ended while available', () => {
    const p = planBroadcast({ ...base, kind: 'unavailable', wasAvailable: true, fromClient: false });
    assert.equal(p.reason, 'session-ended');
    assert.deepEqual(p.contacts, ['juliet@localhost', 'nurse@localhost']);
  });
});
