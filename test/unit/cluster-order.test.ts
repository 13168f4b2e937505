/**
 * Archive-id order across cluster nodes: the pure decision (src/cluster/order.ts, table-tested),
 * the order filter on real sessions (src/cluster/order-gate.ts: holds, releases, asks, a node that
 * leaves, a silent node, FIFO of what is not archived), the mark source, the archive clock's floor
 * and the wire messages.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decide, insertAt, type HeldItem, type NodeMark, type ReleaseReason } from '../../src/cluster/order.js';
import { MarkSource, OrderGate, archiveSeqOf } from '../../src/cluster/order-gate.js';
import { decodeEvent, decodeInbox } from '../../src/cluster/wire.js';
import { ArchiveClock, archiveIdFor, computableId, seqOfArchiveId } from '../../src/modules/mam/ids.js';
import { Session, type SessionStream } from '../../src/core/session.js';
import { JID } from '../../src/jid/jid.js';
import { Metrics } from '../../src/metrics/metrics.js';
import { x, type Element } from '../../src/xml/element.js';

const NOW = 1_000_000;
const HOLD = 2000;

function marks(m: Record<string, number | [number, number]>): Map<string, NodeMark> {
  return new Map(Object.entries(m).map(([n, v]) => [n, Array.isArray(v) ? { w: v[0], silentSince: v[1] } : { w: v }]));
}
const q = (...seqs: Array<number | undefined>): HeldItem[] => seqs.map((seq) => ({ seq }));

test('order: decide() releases what every counted mark allows, in queue order', () => {
  const table: Array<[string, HeldItem[], Map<string, NodeMark>, ReleaseReason[], number | undefined, string[]]> = [
    ['empty queue', q(), marks({ self: 0 }), [], undefined, []],
    ['nothing archived: all goes', q(undefined, undefined), marks({ self: 0, b: 0 }), ['not-archived', 'not-archived'], undefined, []],
    ['one node below the seq: held, ask it', q(100), marks({ self: 100, a: 150, b: 99 }), [], 100, ['b']],
    ['every mark at the seq: released', q(100), marks({ self: 100, a: 100, b: 100 }), ['marks'], undefined, []],
    ['two nodes below: both asked', q(100), marks({ self: 50, a: 150, b: 99 }), [], 100, ['b', 'self']],
    ['a presence behind a held copy waits', q(100, undefined), marks({ self: 100, b: 99 }), [], 100, ['b']],
    ['release up to the first held copy', q(100, undefined, 105, undefined), marks({ self: 200, b: 101 }), ['marks', 'not-archived'], 105, ['b']],
    ['a silent node (no answer for the hold time) is left out', q(100), marks({ self: 100, b: [0, NOW - HOLD] }), ['silent'], undefined, []],
    ['a node silent for less than the hold time still counts', q(100), marks({ self: 100, b: [0, NOW - HOLD + 1] }), [], 100, ['b']],
    ['a node that answered counts again', q(100), marks({ self: 100, b: 100 }), ['marks'], undefined, []],
    ['a node that left (no mark) does not count', q(100, 101), marks({ self: 200 }), ['marks', 'marks'], undefined, []],
    ['only this node: its own mark decides', q(100), marks({ self: 99 }), [], 100, ['self']],
  ];
  for (const [why, queue, m, reasons, blockedAt, waitingFor] of table) {
    assert.deepEqual(decide(queue, m, NOW, HOLD), { reasons, blockedAt, waitingFor }, why);
  }
});

test('order: insertAt() puts an archived copy before higher held ids, anything else at the end', () => {
  const table: Array<[string, HeldItem[], number | undefined, number]> = [
    ['empty', q(), 5, 0],
    ['not archived: end', q(100, 105), undefined, 2],
    ['smaller id: first', q(100, 105), 99, 0],
    ['between', q(100, 105), 102, 1],
    ['largest: end', q(100, 105), 200, 2],
    ['after a presence that followed a smaller id', q(100, undefined, 105), 102, 2],
    ['before a presence when smaller than the copy before it', q(100, undefined), 99, 0],
  ];
  for (const [why, queue, seq, want] of table) assert.equal(insertAt(queue, seq), want, why);
});

test('ids: seqOfArchiveId() inverts archiveIdFor(); computable MR2 ids have no seq', () => {
  for (const seq of [0, 1, 63, 1_764_000_000_000_000, 2 ** 53 - 1]) assert.equal(seqOfArchiveId(archiveIdFor(seq)), seq);
  assert.equal(seqOfArchiveId(computableId('abc123', 'm-1')), undefined);
  assert.equal(seqOfArchiveId('0123456789ABCDEI'), undefined, 'I is not Crockford');
  assert.equal(seqOfArchiveId('short'), undefined);
});

test('clock: floor() bounds every seq handed out so far and every later one is above it, even when time steps back', () => {
  let t = 5000;
  const c = new ArchiveClock(0, () => t);
  c.setLane(3, 64);
  const a = c.next();
  const f = c.floor();
  assert.ok(f >= a && f >= 5000 * 1000);
  t = 4000; // the system clock steps back
  const b = c.next();
  assert.ok(b > f);
  assert.equal(b % 64, 3, 'still in its lane');
  c.atLeast(f + 10_000);
  assert.ok(c.floor() >= f + 10_000 && c.next() > f + 10_000);
});

test('wire: order marks and asks', () => {
  assert.deepEqual(decodeEvent(JSON.stringify({ t: 'wm', n: 'a', w: 123 })), { t: 'wm', n: 'a', w: 123 });
  assert.equal(decodeEvent(JSON.stringify({ t: 'wm', n: 'a', w: -1 })), undefined);
  assert.equal(decodeEvent(JSON.stringify({ t: 'wm', n: 'a', w: 1.5 })), undefined);
  assert.equal(decodeEvent(JSON.stringify({ t: 'wm', n: 'a' })), undefined);
  assert.deepEqual(decodeInbox(JSON.stringify({ t: 'wm-ask', u: '', r: '', f: 'b', w: 7 })), { t: 'wm-ask', u: '', r: '', f: 'b', w: 7 });
  assert.equal(decodeInbox(JSON.stringify({ t: 'wm-ask', u: '', r: '', w: 7 })), undefined);
  assert.equal(decodeInbox(JSON.stringify({ t: 'wm-ask', u: '', r: '', f: 'b', w: '7' })), undefined);
});

class Wire implements SessionStream {
  readonly remoteAddress = '127.0.0.1';
  readonly transportKind = 'test';
  readonly out: Element[] = [];
  readonly id = 's';
  write(): void {}
  writeWire(el: Element): void {
    this.out.push(el);
  }
  closeWith(): void {}
}

function session(resource = 'r'): { s: Session; wire: Wire } {
  const wire = new Wire();
  return { s: new Session(new JID('carol', 'localhost', resource), wire), wire };
}

const copy = (seq: number, body = String(seq)): Element =>
  x('message', 'jabber:client', { to: 'carol@localhost/r', type: 'chat' }, [x('body', 'jabber:client', {}, [body]), x('stanza-id', 'urn:xmpp:sid:0', { by: 'carol@localhost', id: archiveIdFor(seq) })]);
const presence = (): Element => x('presence', 'jabber:client', { from: 'dave@localhost/x' });
const turn = (): Promise<void> => new Promise((r) => setImmediate(r));
const labels = (w: Wire): string[] => w.out.map((el) => (el.name === 'message' ? el.getChildText('body') ?? '?' : el.name));

function gate(holdMs = HOLD): { g: OrderGate; asks: Array<[string, number]>; metrics: Metrics } {
  const asks: Array<[string, number]> = [];
  const metrics = new Metrics();
  const g = new OrderGate('self', { metrics, ask: (n, seq) => asks.push([n, seq]) }, holdMs);
  return { g, asks, metrics };
}

test('gate: archiveSeqOf() reads the account\'s id in plain copies and carbons, not another entity\'s', () => {
  const { s } = session();
  assert.equal(archiveSeqOf(copy(77), s), 77);
  const carbon = x('message', 'jabber:client', {}, [x('received', 'urn:xmpp:carbons:2', {}, [x('forwarded', 'urn:xmpp:forward:0', {}, [copy(78)])])]);
  assert.equal(archiveSeqOf(carbon, s), 78);
  const room = x('message', 'jabber:client', {}, [x('stanza-id', 'urn:xmpp:sid:0', { by: 'room@muc.localhost', id: archiveIdFor(5) })]);
  assert.equal(archiveSeqOf(room, s), undefined);
  assert.equal(archiveSeqOf(presence(), s), undefined);
});

test('gate: copies wait for every node\'s mark and leave in id order; what follows a held copy stays behind it', async () => {
  const { g, asks } = gate();
  g.setMembers(['a', 'b']);
  const { s, wire } = session();
  s.addFilter(g.filter);
  s.send(presence()); // nothing held: straight through
  s.send(copy(101, 'b101'));
  s.send(presence()); // behind the held copy
  s.send(copy(100, 'a100')); // a smaller id arriving later goes first
  assert.deepEqual(labels(wire), ['presence']);
  await turn();
  // One ask per node, for the highest held id.
  assert.deepEqual(asks.sort(), [['a', 101], ['b', 101], ['self', 101]]);
  g.mark('self', 200);
  g.mark('a', 200);
  await turn();
  assert.deepEqual(labels(wire), ['presence'], 'b has not answered');
  g.mark('b', 100);
  await turn();
  assert.deepEqual(labels(wire), ['presence', 'a100'], 'b\'s mark allows 100, not 101');
  g.mark('b', 101);
  await turn();
  assert.deepEqual(labels(wire), ['presence', 'a100', 'b101', 'presence']);
  // Marks known: a copy at or below them passes at once.
  g.mark('b', 200);
  s.send(copy(150));
  assert.deepEqual(labels(wire).at(-1), '150');
  g.close();
});

test('gate: a node that leaves no longer counts; sessions are independent', async () => {
  const { g } = gate();
  g.setMembers(['a']);
  g.mark('self', 1000);
  const one = session('one');
  const two = session('two');
  one.s.addFilter(g.filter);
  two.s.addFilter(g.filter);
  one.s.send(copy(500));
  two.s.send(copy(400));
  g.mark('a', 450);
  await turn();
  assert.deepEqual(labels(one.wire), []);
  assert.deepEqual(labels(two.wire), ['400']);
  g.gone('a');
  await turn();
  assert.deepEqual(labels(one.wire), ['500']);
  g.close();
});

test('gate: a node that does not answer within the hold time is left out (counted), and counts again once it answers', async () => {
  const { g, metrics } = gate(40);
  g.setMembers(['mute']);
  g.mark('self', 1000);
  const { s, wire } = session();
  s.addFilter(g.filter);
  s.send(copy(10));
  await turn();
  assert.deepEqual(labels(wire), []);
  const end = Date.now() + 10000;
  while (wire.out.length === 0) {
    assert.ok(Date.now() < end, 'released after the hold time');
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.deepEqual(g.silentNodes(), ['mute']);
  assert.match(metrics.render(), /verona_cluster_order_released_total\{reason="silent"\} 1/);
  g.mark('mute', 5);
  assert.deepEqual(g.silentNodes(), []);
  s.send(copy(20));
  await turn();
  assert.deepEqual(labels(wire), ['10'], 'held again: the node answered and counts');
  g.close();
  assert.deepEqual(labels(wire), ['10', '20'], 'close() lets everything out');
});

test('gate: a closed session gets everything held at once', async () => {
  const { g } = gate();
  g.setMembers(['a']);
  const { s, wire } = session();
  s.addFilter(g.filter);
  s.send(copy(10));
  s.send(presence());
  s.closed = true;
  g.mark('a', 0); // any mark makes it look again
  await turn();
  assert.deepEqual(labels(wire), ['10', 'presence']);
  g.close();
});

test('mark source: the clock\'s floor when nothing is queued, else just below the oldest id not yet delivered; asks answered once covered; a mark right after copies sent across', async () => {
  let t = 1000;
  const clock = new ArchiveClock(0, () => t);
  let pending = 0;
  const published: number[] = [];
  const src = new MarkSource({ clock: () => clock, pending: () => pending, publish: (w) => published.push(w) });
  clock.onNext = (q) => src.assigned(q);
  assert.equal(src.current(), 1_000_000, 'idle: now');
  // Two messages queued (ids taken), not yet delivered.
  const a = clock.next();
  t = 1001;
  const b = clock.next();
  pending = 2;
  assert.equal(src.current(), a - 1, 'just below the oldest queued id');
  // Another node holds an id between a and b: covered once a is out.
  const between = a + 500;
  src.asked(between);
  await turn();
  assert.deepEqual(published, [], 'not covered yet: no answer');
  pending = 1;
  src.delivered([a]);
  assert.equal(src.current(), b - 1);
  await turn();
  assert.deepEqual(published, [b - 1], 'answered as soon as the delivery covers the ask');
  pending = 0;
  src.delivered([b, undefined]);
  await turn();
  assert.deepEqual(published, [b - 1], 'nobody waits, nothing went across: quiet');
  // An id taken for something never delivered (a room's row) does not pin the mark once idle.
  clock.next();
  assert.ok(src.current() >= 1_001_000);
  // A copy went to another node: the mark follows it unasked.
  t = 2000;
  const c = clock.next();
  pending = 1;
  src.sentAcross();
  pending = 0;
  src.delivered([c]);
  await turn();
  assert.equal(published.length, 2);
  assert.ok((published[1] as number) >= c);
  // An ask from a node whose clock is ahead raises this node's clock (later ids above it).
  src.asked(5_000_000_000);
  await turn();
  assert.ok((published[2] as number) >= 5_000_000_000 && clock.next() > 5_000_000_000);
  // Without an archive (MAM disabled) a node hands out no ids: its mark is never in the way.
  assert.equal(new MarkSource({ clock: () => undefined, pending: () => 3, publish: () => undefined }).current(), Number.MAX_SAFE_INTEGER);
});

test('gate: with its own mark at hand the node never asks itself', async () => {
  const asks: Array<[string, number]> = [];
  let self = 0;
  const g = new OrderGate('self', { metrics: new Metrics(), ask: (n, seq) => asks.push([n, seq]), selfMark: () => self }, HOLD);
  g.setMembers(['a']);
  g.mark('a', 100);
  const { s, wire } = session();
  s.addFilter(g.filter);
  s.send(copy(50));
  await turn();
  assert.deepEqual(asks, []);
  assert.deepEqual(labels(wire), []);
  self = 60;
  g.mark('self', self);
  await turn();
  assert.deepEqual(labels(wire), ['50']);
  g.close();
});
