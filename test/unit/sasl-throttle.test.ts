/**
 * AuthThrottle: limits per address and per account over a sliding window,
 * and bounded memory.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle } from '../../src/sasl/throttle.js';

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let t = start;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('per-address limit', () => {
  const c = clock();
  const th = new AuthThrottle({ perAddress: 3, perAccount: 100, windowMs: 60_000, now: c.now });
  for (let i = 0; i < 3; i++) {
    assert.equal(th.allowed('192.0.2.1'), true, `attempt ${i}`);
    th.recordFailure('192.0.2.1', `user${i}`);
  }
  assert.equal(th.allowed('192.0.2.1'), false);
  assert.equal(th.allowed('192.0.2.1', 'someone'), false);
  assert.equal(th.allowed('192.0.2.2'), true, 'other addresses are unaffected');
});

test('per-account limit across addresses', () => {
  const c = clock();
  const th = new AuthThrottle({ perAddress: 100, perAccount: 2, windowMs: 60_000, now: c.now });
  th.recordFailure('192.0.2.1', 'juliet');
  th.recordFailure('198.51.100.7', 'Juliet'); // same account once prepared
  assert.equal(th.allowed('203.0.113.9', 'juliet'), false);
  assert.equal(th.allowed('203.0.113.9', 'romeo'), true);
  assert.equal(th.allowed('203.0.113.9'), true);
});

test('failures age out over the window', () => {
  const c = clock();
  const th = new AuthThrottle({ perAddress: 2, perAccount: 100, windowMs: 10_000, now: c.now });
  th.recordFailure('192.0.2.1');
  th.recordFailure('192.0.2.1');
  assert.equal(th.allowed('192.0.2.1'), false);
  c.advance(9_999);
  assert.equal(th.allowed('192.0.2.1'), false, 'still inside the window');
  c.advance(5_001); // the previous bucket now counts for half
  assert.equal(th.allowed('192.0.2.1'), true);
  th.recordFailure('192.0.2.1'); // 1 + 2 * ~0.5 >= 2
  assert.equal(th.allowed('192.0.2.1'), false, 'sliding: old failures still weigh in');
  c.advance(20_000);
  assert.equal(th.allowed('192.0.2.1'), true, 'two windows later everything is forgotten');
});

test('success clears the account counter but not the address counter', () => {
  const c = clock();
  const th = new AuthThrottle({ perAddress: 3, perAccount: 2, windowMs: 60_000, now: c.now });
  th.recordFailure('192.0.2.1', 'juliet');
  th.recordFailure('192.0.2.1', 'juliet');
  assert.equal(th.allowed('192.0.2.9', 'juliet'), false);
  th.recordSuccess('192.0.2.1', 'juliet');
  assert.equal(th.allowed('192.0.2.9', 'juliet'), true);
  th.recordFailure('192.0.2.1', 'romeo');
  assert.equal(th.allowed('192.0.2.1'), false, 'the address keeps its three failures');
});

test('IPv6 is counted per /64 and IPv4-mapped addresses as IPv4', () => {
  const c = clock();
  const th = new AuthThrottle({ perAddress: 2, perAccount: 100, windowMs: 60_000, now: c.now });
  th.recordFailure('2001:db8:1:2::1');
  th.recordFailure('2001:0db8:0001:0002:ffff:ffff:ffff:ffff');
  assert.equal(th.allowed('2001:db8:1:2::abcd'), false);
  assert.equal(th.allowed('2001:db8:1:3::1'), true);
  th.recordFailure('::ffff:192.0.2.5');
  th.recordFailure('192.0.2.5');
  assert.equal(th.allowed('192.0.2.5'), false);
  assert.equal(th.allowed('::ffff:192.0.2.5'), false);
});

test('a flood of distinct addresses does not grow memory without bound', () => {
  const c = clock();
  const th = new AuthThrottle({ perAddress: 5, perAccount: 5, windowMs: 1_000, maxEntries: 1_000, now: c.now });
  for (let i = 0; i < 50_000; i++) {
    th.recordFailure(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, `user${i}`);
    if (i % 1000 === 0) c.advance(1);
  }
  assert.ok(th.size <= 1_000, `size ${th.size}`);
  // stale entries are swept once their window is over
  c.advance(5_000);
  th.allowed('192.0.2.1');
  assert.equal(th.size, 0);
});

test('the most recently active offenders survive eviction', () => {
  const c = clock();
  const th = new AuthThrottle({ perAddress: 3, perAccount: 100, windowMs: 60_000, maxEntries: 100, now: c.now });
  for (let i = 0; i < 3; i++) th.recordFailure('192.0.2.1');
  for (let i = 0; i < 50; i++) th.recordFailure(`10.0.0.${i}`);
  th.recordFailure('192.0.2.1'); // touched again: moves to the young end
  for (let i = 50; i < 140; i++) th.recordFailure(`10.0.1.${i}`);
  assert.equal(th.allowed('192.0.2.1'), false);
});
