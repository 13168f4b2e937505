/**
 * MR2 sender-id rules (computable archive ids): a message from an MR2 stream
 * needs an id that is new on that stream; the memory of ids is bounded and
 * starts afresh on a new stream (resumption changes the stream id).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RecentIds, checkMr2Id } from '../../src/modules/mr2.js';
import { Session, type SessionStream } from '../../src/core/session.js';
import { JID } from '../../src/jid/jid.js';
import { computableId } from '../../src/modules/mam/ids.js';

function stream(id: string): SessionStream {
  return { id, write: () => undefined, writeWire: () => undefined, closeWith: () => undefined, remoteAddress: '127.0.0.1', transportKind: 'tcp' };
}

test('RecentIds remembers the last `capacity` ids, first in first out', () => {
  const r = new RecentIds(3);
  assert.equal(r.add('a'), true);
  assert.equal(r.add('b'), true);
  assert.equal(r.add('a'), false);
  assert.equal(r.add('c'), true);
  assert.equal(r.add('d'), true); // evicts 'a'
  assert.equal(r.has('a'), false);
  assert.equal(r.has('b'), true);
  assert.equal(r.size, 3);
  assert.equal(r.add('a'), true);
});

test('RecentIds stays bounded under a long stream of unique ids and has no false positives', () => {
  const r = new RecentIds(1000);
  for (let i = 0; i < 100000; i++) assert.equal(r.add(`id-${i}`), true);
  assert.equal(r.size, 1000);
  assert.equal(r.has('id-99999'), true);
  assert.equal(r.has('id-98999'), false);
});

test('checkMr2Id: missing id is bad-request, reuse is conflict, a new stream starts afresh', () => {
  const s = new Session(new JID('romeo', 'montague.lit', 'phone'), stream('S1'));
  assert.equal(checkMr2Id(s, undefined, 10)?.condition, 'bad-request');
  assert.equal(checkMr2Id(s, '', 10)?.condition, 'bad-request');
  assert.equal(checkMr2Id(s, 'm1', 10), undefined);
  assert.equal(checkMr2Id(s, 'm1', 10)?.condition, 'conflict');
  assert.equal(checkMr2Id(s, 'm2', 10), undefined);
  // Resumed onto a new stream: the archive id prefix is the new stream id, so m1 is usable again.
  s.stream = stream('S2');
  assert.equal(checkMr2Id(s, 'm1', 10), undefined);
  assert.equal(checkMr2Id(s, 'm1', 10)?.condition, 'conflict');
});

test('the sender\'s archive id is <stream id>-<message id>', () => {
  assert.equal(computableId('Xb3-9_a', 'msg-1'), 'Xb3-9_a-msg-1');
});

test('RecentIds matches a reference model under random adds and evictions', () => {
  let seed = 1;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (const cap of [1, 2, 3, 7, 64, 500]) {
    const r = new RecentIds(cap);
    const order: string[] = [];
    for (let i = 0; i < 20000; i++) {
      const id = `x${rnd(cap * 3)}`;
      const expectNew = !order.includes(id);
      assert.equal(r.add(id), expectNew, `cap ${cap} step ${i} id ${id}`);
      if (expectNew) {
        order.push(id);
        if (order.length > cap) order.shift();
      }
      assert.equal(r.size, order.length);
    }
    for (const id of order) assert.equal(r.has(id), true);
  }
});
