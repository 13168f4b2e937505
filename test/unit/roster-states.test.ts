/**
 * The presence subscription state machine against the tables of RFC 6121
 * Appendix A (A.2 outbound, A.3 inbound), plus §3.1.2/§3.3.2 for outbound
 * subscribe/unsubscribe (always routed) and §3.4 pre-approval. Each row:
 * existing state | forwarded? | new state ('-' = no change).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import {
  inbound,
  outbound,
  parseState,
  stateName,
  type ContactState,
  type SubscriptionType,
  type Transition,
} from '../../src/modules/roster/states.js';

type Row = [state: string, forward: 'yes' | 'no', next: string];

const NINE = [
  'None',
  'None + Pending Out',
  'None + Pending In',
  'None + Pending Out/In',
  'To',
  'To + Pending In',
  'From',
  'From + Pending Out',
  'Both',
];

function check(fn: (s: ContactState, t: SubscriptionType) => Transition, type: SubscriptionType, rows: Row[]): void {
  for (const [from, forward, to] of rows) {
    test(`${type}: ${from} -> ${to} (${forward === 'yes' ? 'forwarded' : 'not forwarded'})`, () => {
      const s = parseState(from);
      const t = fn(s, type);
      assert.equal(t.forward, forward === 'yes', `forward for ${from}: ${t.reason}`);
      assert.equal(stateName(t.next), to === '-' ? from : to, `next state for ${from}: ${t.reason}`);
      assert.equal(t.changed, to !== '-' && to !== from, 'changed flag');
      assert.ok(t.reason.length > 0);
    });
  }
}

describe('outbound subscribe (§3.1.2: always routed)', () => {
  check(outbound, 'subscribe', [
    ['None', 'yes', 'None + Pending Out'],
    ['None + Pending Out', 'yes', '-'],
    ['None + Pending In', 'yes', 'None + Pending Out/In'],
    ['None + Pending Out/In', 'yes', '-'],
    ['To', 'yes', '-'],
    ['To + Pending In', 'yes', '-'],
    ['From', 'yes', 'From + Pending Out'],
    ['From + Pending Out', 'yes', '-'],
    ['Both', 'yes', '-'],
  ]);
});

describe('outbound unsubscribe (§3.3.2: always routed)', () => {
  check(outbound, 'unsubscribe', [
    ['None', 'yes', '-'],
    ['None + Pending Out', 'yes', 'None'],
    ['None + Pending In', 'yes', '-'],
    ['None + Pending Out/In', 'yes', 'None + Pending In'],
    ['To', 'yes', 'None'],
    ['To + Pending In', 'yes', 'None + Pending In'],
    ['From', 'yes', '-'],
    ['From + Pending Out', 'yes', 'From'],
    ['Both', 'yes', 'From'],
  ]);
});

describe('outbound subscribed (A.2.1, with pre-approval)', () => {
  check(outbound, 'subscribed', [
    ['None', 'no', 'None + Pre-Approved'],
    ['None + Pending Out', 'no', 'None + Pending Out + Pre-Approved'],
    ['None + Pending In', 'yes', 'From'],
    ['None + Pending Out/In', 'yes', 'From + Pending Out'],
    ['To', 'no', 'To + Pre-Approved'],
    ['To + Pending In', 'yes', 'Both'],
    ['From', 'no', '-'],
    ['From + Pending Out', 'no', '-'],
    ['Both', 'no', '-'],
    ['None + Pre-Approved', 'no', '-'],
  ]);
});

describe('outbound unsubscribed (A.2.2, cancels pre-approval)', () => {
  check(outbound, 'unsubscribed', [
    ['None', 'no', '-'],
    ['None + Pending Out', 'no', '-'],
    ['None + Pending In', 'yes', 'None'],
    ['None + Pending Out/In', 'yes', 'None + Pending Out'],
    ['To', 'no', '-'],
    ['To + Pending In', 'yes', 'To'],
    ['From', 'yes', 'None'],
    ['From + Pending Out', 'yes', 'None + Pending Out'],
    ['Both', 'yes', 'To'],
    ['None + Pre-Approved', 'no', 'None'],
    ['To + Pre-Approved', 'no', 'To'],
  ]);
});

describe('inbound subscribe (A.3.1)', () => {
  check(inbound, 'subscribe', [
    ['None', 'yes', 'None + Pending In'],
    ['None + Pending Out', 'yes', 'None + Pending Out/In'],
    ['None + Pending In', 'no', '-'],
    ['None + Pending Out/In', 'no', '-'],
    ['To', 'yes', 'To + Pending In'],
    ['To + Pending In', 'no', '-'],
    ['From', 'no', '-'],
    ['From + Pending Out', 'no', '-'],
    ['Both', 'no', '-'],
    // §3.4: a pre-approved contact is approved at once, without asking the user.
    ['None + Pre-Approved', 'no', 'From'],
    ['None + Pending Out + Pre-Approved', 'no', 'From + Pending Out'],
    ['To + Pre-Approved', 'no', 'Both'],
  ]);
});

describe('inbound unsubscribe (A.3.2)', () => {
  check(inbound, 'unsubscribe', [
    ['None', 'no', '-'],
    ['None + Pending Out', 'no', '-'],
    ['None + Pending In', 'yes', 'None'],
    ['None + Pending Out/In', 'yes', 'None + Pending Out'],
    ['To', 'no', '-'],
    ['To + Pending In', 'yes', 'To'],
    ['From', 'yes', 'None'],
    ['From + Pending Out', 'yes', 'None + Pending Out'],
    ['Both', 'yes', 'To'],
  ]);
});

describe('inbound subscribed (A.3.3)', () => {
  check(inbound, 'subscribed', [
    ['None', 'no', '-'],
    ['None + Pending Out', 'yes', 'To'],
    ['None + Pending In', 'no', '-'],
    ['None + Pending Out/In', 'yes', 'To + Pending In'],
    ['To', 'no', '-'],
    ['To + Pending In', 'no', '-'],
    ['From', 'no', '-'],
    ['From + Pending Out', 'yes', 'Both'],
    ['Both', 'no', '-'],
  ]);
});

describe('inbound unsubscribed (A.3.4)', () => {
  check(inbound, 'unsubscribed', [
    ['None', 'no', '-'],
    ['None + Pending Out', 'yes', 'None'],
    ['None + Pending In', 'no', '-'],
    ['None + Pending Out/In', 'yes', 'None + Pending In'],
    ['To', 'yes', 'None'],
    ['To + Pending In', 'yes', 'None + Pending In'],
    ['From', 'no', '-'],
    ['From + Pending Out', 'yes', 'From'],
    ['Both', 'yes', 'From'],
  ]);
});

describe('side effects', () => {
  test('inbound subscribe from an approved contact is answered by the server, with presence', () => {
    for (const s of ['From', 'From + Pending Out', 'Both', 'None + Pre-Approved', 'To + Pre-Approved']) {
      const t = inbound(parseState(s), 'subscribe');
      assert.equal(t.autoReply, 'subscribed', s);
      assert.equal(t.presence, 'available', s);
    }
    for (const s of ['None', 'None + Pending Out', 'To', 'None + Pending In']) assert.equal(inbound(parseState(s), 'subscribe').autoReply, undefined, s);
  });

  test('approving sends the user presence to the contact; cancelling sends unavailable (§3.1.5, §3.2.2)', () => {
    assert.equal(outbound(parseState('None + Pending In'), 'subscribed').presence, 'available');
    assert.equal(outbound(parseState('To + Pending In'), 'subscribed').presence, 'available');
    assert.equal(outbound(parseState('Both'), 'unsubscribed').presence, 'unavailable');
    assert.equal(outbound(parseState('From'), 'unsubscribed').presence, 'unavailable');
    assert.equal(outbound(parseState('None + Pending In'), 'unsubscribed').presence, undefined, 'a denied request showed nothing');
    assert.equal(inbound(parseState('Both'), 'unsubscribe').presence, 'unavailable', '§3.3.3');
    assert.equal(inbound(parseState('None + Pending In'), 'unsubscribe').presence, undefined);
  });

  test('only changes the roster item shows cause a roster push', () => {
    // Pending In is not part of the item: a new request is delivered, not pushed.
    const t = inbound(parseState('None'), 'subscribe');
    assert.equal(t.changed, true);
    assert.equal(t.itemChanged, false);
    assert.equal(outbound(parseState('None + Pending In'), 'subscribed').itemChanged, true);
    assert.equal(outbound(parseState('None'), 'subscribed').itemChanged, true, 'approved="true" is shown');
    assert.equal(outbound(parseState('None + Pending In'), 'unsubscribed').itemChanged, false);
  });

  test('invariants hold for every state and stanza', () => {
    const types: SubscriptionType[] = ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed'];
    const states = [...NINE, ...NINE.filter((n) => !n.startsWith('From') && !n.startsWith('Both')).map((n) => `${n} + Pre-Approved`)];
    for (const name of states) {
      for (const type of types) {
        for (const fn of [inbound, outbound]) {
          const n = fn(parseState(name), type).next;
          const from = n.subscription === 'from' || n.subscription === 'both';
          const to = n.subscription === 'to' || n.subscription === 'both';
          assert.ok(!(from && n.pendingIn), `${fn.name} ${type} on ${name}: Pending In with from`);
          assert.ok(!(to && n.pendingOut), `${fn.name} ${type} on ${name}: Pending Out with to`);
          assert.ok(!(from && n.approved), `${fn.name} ${type} on ${name}: pre-approved with from`);
        }
      }
    }
  });

  test('state names round-trip', () => {
    for (const n of NINE) assert.equal(stateName(parseState(n)), n);
  });
});
