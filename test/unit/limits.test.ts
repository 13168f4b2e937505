/** The limit decisions (src/limits/limits.ts), table-tested with an injected clock. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ConnectionLimiter, TokenBucket, addressKey, sessionsAllowed } from '../../src/limits/limits.js';

test('addresses are counted per IPv4 address and per IPv6 /64', () => {
  const table: Array<[string, string]> = [
    ['192.0.2.1', '192.0.2.1'],
    ['2001:db8:1:2:3:4:5:6', '2001:db8:1:2::/64'],
    ['2001:db8:1:2::9', '2001:db8:1:2::/64'],
    ['::1', '0:0:0:0::/64'],
    ['unknown', 'unknown'],
  ];
  for (const [a, k] of table) assert.equal(addressKey(a), k, a);
});

test('connections per address: at most max, released ones free a slot, exempt and 0 never limited', () => {
  const l = new ConnectionLimiter(2, new Set(['127.0.0.1']));
  assert.equal(l.acquire('192.0.2.1'), true);
  assert.equal(l.acquire('192.0.2.1'), true);
  assert.equal(l.acquire('192.0.2.1'), false);
  assert.equal(l.acquire('192.0.2.2'), true);
  // Two addresses of one /64 share the budget.
  assert.equal(l.acquire('2001:db8::1'), true);
  assert.equal(l.acquire('2001:db8::2'), true);
  assert.equal(l.acquire('2001:db8::3'), false);
  l.release('192.0.2.1');
  assert.equal(l.acquire('192.0.2.1'), true);
  for (let i = 0; i < 10; i++) assert.equal(l.acquire('127.0.0.1'), true);
  const off = new ConnectionLimiter(0);
  for (let i = 0; i < 10; i++) assert.equal(off.acquire('192.0.2.1'), true);
  // Releasing everything leaves no entry behind (memory bounded by open connections).
  const m = new ConnectionLimiter(5);
  m.acquire('192.0.2.9');
  m.release('192.0.2.9');
  assert.equal(m.size, 0);
});

test('token bucket: a burst passes, then reading pauses for exactly the deficit at the rate', () => {
  const b = new TokenBucket(1000, 5000, 0); // 1000 B/s, 5000 B burst
  assert.equal(b.take(5000, 0), 0); // the burst
  assert.equal(b.take(500, 0), 500); // 500 B over at 1000 B/s: pause 500 ms
  assert.equal(b.take(0, 500), 0); // refilled to 0 after 500 ms
  assert.equal(b.take(1000, 1500), 0); // 1 s later: 1000 B available
  assert.equal(b.take(0, 1_000_000), 0);
  assert.equal(b.take(5000, 1_000_000), 0); // refill is capped at the burst
  assert.equal(b.take(1, 1_000_000), 1);
});

test('sessions per account: the limit, 0 = none, replacing a resource always allowed', () => {
  assert.deepEqual(sessionsAllowed(1, 2, false), { ok: true, reason: 'under the limit' });
  assert.deepEqual(sessionsAllowed(2, 2, false), { ok: false, reason: '2 sessions already bound' });
  assert.deepEqual(sessionsAllowed(2, 2, true), { ok: true, reason: 'replaces an existing resource' });
  assert.deepEqual(sessionsAllowed(1000, 0, false), { ok: true, reason: 'no limit' });
});
