// Pure accounting of the load driver (bench/driver/stats.ts): percentiles must match the shared
// Python driver's rule exactly, and the copy ledger must call lost/missing/duplicated copies right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CopyLedger, chatMasks, latSummary, median, percentile, popcount, roundHalfEven } from '../../bench/driver/stats.js';

test('roundHalfEven rounds like Python round()', () => {
  assert.deepEqual([0.5, 1.5, 2.5, 2.4999, 2.5001, 3, 7.2].map(roundHalfEven), [0, 2, 2, 2, 3, 3, 7]);
});

test('percentile uses nearest rank index round(p/100*(n-1)), as xmppbench.py', () => {
  const v = Array.from({ length: 100 }, (_, i) => 100 - i); // 100..1, unsorted on purpose
  assert.equal(percentile(v, 50), 51); // index round(49.5) = 50 (half to even) -> 51
  assert.equal(percentile(v, 99), 99); // index round(98.01) = 98
  assert.equal(percentile(v, 90), 90); // index round(89.1) = 89
  assert.equal(percentile(v, 0), 1);
  assert.equal(percentile(v, 100), 100);
  assert.equal(percentile([7], 99), 7);
  assert.equal(percentile([], 50), null);
  // two samples: p50 index round(0.5) = 0 -> the smaller one
  assert.equal(percentile([3, 1], 50), 1);
});

test('latSummary reports n, p50/p90/p99, max and mean in ms rounded to µs', () => {
  const s = latSummary([1, 2, 3, 4, 1000]);
  assert.deepEqual(s, { n: 5, p50_ms: 3, p90_ms: 1000, p99_ms: 1000, max_ms: 1000, mean_ms: 202 });
  assert.deepEqual(latSummary([]), { n: 0 });
});

test('median of even and odd counts', () => {
  assert.equal(median([3, 1, 2]), 2);
  assert.equal(median([4, 1, 3, 2]), 2.5);
  assert.equal(median([]), null);
});

test('chatMasks: recipient resources are primary, sender resources get sent-copies when forking', () => {
  assert.deepEqual(chatMasks(1, 0, false), { expected: 0b10, primary: 0b10 });
  // R=2: slots 0,1 = sender r1,r2; 2,3 = recipient r1,r2; sender r1 sends -> r2 gets a carbon
  assert.deepEqual(chatMasks(2, 0, true), { expected: 0b1110, primary: 0b1100 });
  assert.deepEqual(chatMasks(2, 1, true), { expected: 0b1101, primary: 0b1100 });
  assert.equal(popcount(chatMasks(3, 0, true).expected), 5); // R + (R-1) copies per message
  assert.throws(() => chatMasks(17, 0, true));
});

test('ledger: complete delivery has no loss, no missing and no duplicates', () => {
  const l = new CopyLedger();
  const m = chatMasks(2, 0, true);
  const a = l.sent(10, m.expected, m.primary);
  const b = l.sent(11, m.expected, m.primary);
  assert.equal(l.outstanding, 6);
  assert.equal(l.received(a, 3), 'first'); // recipient r2 first
  assert.equal(l.received(a, 2), 'copy');
  assert.equal(l.received(a, 1), 'copy'); // sent-carbon
  assert.equal(l.received(b, 1), 'copy'); // a carbon before delivery does not count as delivered
  assert.equal(l.isDelivered(b), false);
  assert.equal(l.received(b, 2), 'first');
  assert.equal(l.received(b, 3), 'copy');
  assert.ok(l.complete());
  assert.equal(l.sentTime(b), 11);
  assert.deepEqual(l.summary(), {
    total_sent: 2, lost_msgs: 0, missing_copies: 0, dup_copies: 0, unexpected_copies: 0, delivered_copies: 6,
  });
});

test('ledger: lost, missing, duplicated, unexpected and unknown copies are told apart', () => {
  const l = new CopyLedger();
  const m = chatMasks(2, 0, true);
  const lost = l.sent(0, m.expected, m.primary); // only the sender's carbon arrives
  const partial = l.sent(0, m.expected, m.primary); // one recipient copy, no carbon
  const dup = l.sent(0, m.expected, m.primary); // everything, one copy twice
  assert.equal(l.received(lost, 1), 'copy');
  assert.equal(l.received(partial, 2), 'first');
  for (const s of [2, 3, 1]) l.received(dup, s);
  assert.equal(l.received(dup, 3), 'dup');
  assert.equal(l.received(dup, 0), 'unexpected'); // the sending resource never gets its own message
  assert.equal(l.received(99, 2), 'unknown');
  assert.equal(l.received(-1, 2), 'unknown');
  assert.equal(l.complete(), false);
  assert.deepEqual(l.summary(), {
    total_sent: 3, lost_msgs: 1, missing_copies: 2 + 2, dup_copies: 2, unexpected_copies: 1, delivered_copies: 5,
  });
  assert.equal(l.outstanding, 4);
});

test('ledger grows past its initial capacity without losing state', () => {
  const l = new CopyLedger();
  const m = chatMasks(1, 0, false);
  for (let i = 0; i < 5000; i++) l.sent(i, m.expected, m.primary);
  for (let i = 0; i < 5000; i += 2) assert.equal(l.received(i, 1), 'first');
  assert.equal(l.sentTime(4999), 4999);
  assert.equal(l.summary().lost_msgs, 2500);
  assert.equal(l.summary().missing_copies, 2500);
});
