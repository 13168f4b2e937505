// Login admission (src/net/admission.ts): at most `limit` logins in progress, the rest in order.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LoginGate } from '../../src/net/admission.js';

test('admits up to the limit, then one per release, in arrival order', () => {
  const g = new LoginGate(2);
  const started: number[] = [];
  const rel = [0, 1, 2, 3].map((i) => g.enter(() => started.push(i)));
  assert.deepEqual(started, [0, 1]);
  assert.equal(g.inProgress, 2);
  assert.equal(g.queued, 2);
  rel[1]!();
  assert.deepEqual(started, [0, 1, 2]);
  rel[1]!(); // a second release of the same entry frees nothing more
  assert.deepEqual(started, [0, 1, 2]);
  assert.equal(g.inProgress, 2);
  rel[0]!();
  assert.deepEqual(started, [0, 1, 2, 3]);
  rel[2]!();
  rel[3]!();
  assert.equal(g.inProgress, 0);
});

test('a connection that goes away while waiting leaves the queue without taking a slot', () => {
  const g = new LoginGate(1);
  const started: string[] = [];
  const a = g.enter(() => started.push('a'));
  const b = g.enter(() => started.push('b'));
  g.enter(() => started.push('c'));
  b();
  assert.equal(g.queued, 1);
  a();
  assert.deepEqual(started, ['a', 'c']);
  assert.equal(g.inProgress, 1);
});

test('limit 0 admits everything at once', () => {
  const g = new LoginGate(0);
  let n = 0;
  for (let i = 0; i < 100; i++) g.enter(() => n++);
  assert.equal(n, 100);
  assert.equal(g.queued, 0);
});
