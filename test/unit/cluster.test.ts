/**
 * The cluster's pure parts: the wire decoders (table-tested: bad input is refused, never thrown),
 * the archive clock's lanes, and the registry's mirror (merge, ownership by node, what is
 * published when a local session changes).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeEvent, decodeInbox, decodeSnapshot, sessionField, splitSessionField, type InboxMsg, type SessionSnapshot } from '../../src/cluster/wire.js';
import { ClusterRegistry, RemoteSession, snapshotOf, type ClusterLink } from '../../src/cluster/registry.js';
import { ArchiveClock } from '../../src/modules/mam/ids.js';
import { Session, type SessionStream } from '../../src/core/session.js';
import { JID } from '../../src/jid/jid.js';
import { x } from '../../src/xml/element.js';

const SNAP: SessionSnapshot = { sid: 's1', priority: 5, available: true, interested: true, mr2: false, carbons: true, csiInactive: false, data: { blocking: true } };

test('wire: decodeSnapshot accepts a snapshot and refuses broken ones', () => {
  assert.deepEqual(decodeSnapshot(SNAP), SNAP);
  const cases: Array<[string, unknown]> = [
    ['not an object', 'x'],
    ['no sid', { ...SNAP, sid: undefined }],
    ['priority not an integer', { ...SNAP, priority: 1.5 }],
    ['flag not a boolean', { ...SNAP, mr2: 'yes' }],
    ['presence not a string', { ...SNAP, presence: 3 }],
    ['no data', { ...SNAP, data: undefined }],
  ];
  for (const [why, v] of cases) assert.equal(decodeSnapshot(v), undefined, why);
  // Unknown or ill-typed module state is left out, not an error.
  assert.deepEqual(decodeSnapshot({ ...SNAP, data: { blocking: 'x', pep: { available: true, notify: ['a', 1] } } })?.data, {});
});

test('wire: events and inbox messages', () => {
  const table: Array<[string, string, unknown]> = [
    ['up', JSON.stringify({ t: 'up', n: 'a', u: 'romeo', r: 'x', s: SNAP, q: 3 }), { t: 'up', n: 'a', u: 'romeo', r: 'x', s: SNAP }],
    ['down', JSON.stringify({ t: 'down', n: 'a', u: 'romeo', r: 'x' }), { t: 'down', n: 'a', u: 'romeo', r: 'x' }],
    ['hello', JSON.stringify({ t: 'hello', n: 'a' }), { t: 'hello', n: 'a' }],
    ['dead', JSON.stringify({ t: 'dead', n: 'b' }), { t: 'dead', n: 'b' }],
    ['no node', JSON.stringify({ t: 'hello', n: '' }), undefined],
    ['unknown type', JSON.stringify({ t: 'boom', n: 'a' }), undefined],
    ['up without snapshot', JSON.stringify({ t: 'up', n: 'a', u: 'romeo', r: 'x' }), undefined],
    ['not JSON', '{', undefined],
    ['JSON array', '[]', undefined],
  ];
  for (const [why, text, want] of table) assert.deepEqual(decodeEvent(text), want, why);
  const inbox: Array<[string, string, InboxMsg | undefined]> = [
    ['send', JSON.stringify({ t: 'send', u: 'romeo', r: 'x', x: '<message/>' }), { t: 'send', u: 'romeo', r: 'x', x: '<message/>' }],
    ['close with condition', JSON.stringify({ t: 'close', u: 'romeo', r: 'x', c: 'conflict' }), { t: 'close', u: 'romeo', r: 'x', c: 'conflict' }],
    ['send without stanza', JSON.stringify({ t: 'send', u: 'romeo', r: 'x' }), undefined],
    ['no user', JSON.stringify({ t: 'close', r: 'x' }), undefined],
    ['garbage', 'nope', undefined],
    ['sm handover request', JSON.stringify({ t: 'sm-give', u: 'romeo', r: '', id: 'abc', f: 'node1', k: 'k1' }), { t: 'sm-give', u: 'romeo', r: '', id: 'abc', f: 'node1', k: 'k1' }],
    ['sm handover request without id', JSON.stringify({ t: 'sm-give', u: 'romeo', r: '', f: 'node1', k: 'k1' }), undefined],
    ['sm handover answer', JSON.stringify({ t: 'sm-given', u: 'romeo', r: '', k: 'k1', f: 'node0', ok: true }), { t: 'sm-given', u: 'romeo', r: '', k: 'k1', f: 'node0', ok: true }],
    ['sm handover answer with a non-boolean ok', JSON.stringify({ t: 'sm-given', u: 'romeo', r: '', k: 'k1', f: 'node0', ok: 'yes' }), undefined],
  ];
  for (const [why, text, want] of inbox) assert.deepEqual(decodeInbox(text), want, why);
});

test('wire: session fields split at the first slash (resources may contain slashes)', () => {
  assert.equal(sessionField('romeo', 'a/b'), 'romeo/a/b');
  assert.deepEqual(splitSessionField('romeo/a/b'), { u: 'romeo', r: 'a/b' });
  assert.equal(splitSessionField('#q'), undefined);
  assert.equal(splitSessionField('/x'), undefined);
});

test('archive clock lanes: two nodes at the same instant never hand out the same seq, each strictly increasing', () => {
  const now = (): number => 1_700_000_000_000;
  const a = new ArchiveClock(0, now);
  const b = new ArchiveClock(0, now);
  a.setLane(0, 64);
  b.setLane(1, 64);
  const sa = Array.from({ length: 500 }, () => a.next());
  const sb = Array.from({ length: 500 }, () => b.next());
  assert.equal(new Set([...sa, ...sb]).size, 1000);
  for (let i = 1; i < 500; i++) {
    assert.ok((sa[i] as number) > (sa[i - 1] as number));
    assert.ok((sb[i] as number) > (sb[i - 1] as number));
  }
  assert.ok(sa.every((s) => s % 64 === 0) && sb.every((s) => s % 64 === 1));
  assert.throws(() => a.setLane(64, 64));
});

class FakeStream implements SessionStream {
  readonly remoteAddress = '127.0.0.1';
  readonly transportKind = 'test';
  readonly wire: string[] = [];
  constructor(readonly id: string) {}
  write(): void {}
  writeWire(el: { toString(): string }): void {
    this.wire.push(el.toString());
  }
  closeWith(): void {}
}

/** A link that records what the registry tells the cluster. */
function recorder(): ClusterLink & { log: string[]; sent: Array<[string, InboxMsg]> } {
  const log: string[] = [];
  const sent: Array<[string, InboxMsg]> = [];
  return {
    log,
    sent,
    sendTo: (node, msg) => void sent.push([node, msg]),
    sessionUp: (u, r, s) => void log.push(`up ${u}/${r} p=${s.priority} a=${s.available} c=${s.carbons}`),
    sessionDown: (u, r) => void log.push(`down ${u}/${r}`),
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

test('registry: local and remote sessions of one account, remote ones owned by their node', () => {
  const reg = new ClusterRegistry('localhost');
  const link = recorder();
  reg.link = link;
  const local = new Session(new JID('romeo', 'localhost', 'here'), new FakeStream('s0'));
  reg.add(local);
  reg.upsertRemote('n1', 'romeo', 'there', SNAP);
  assert.deepEqual(reg.byUser('romeo').map((s) => s.resource), ['here', 'there']);
  const there = reg.byFullJid('romeo', 'there');
  assert.ok(there instanceof RemoteSession);
  assert.equal(there.remoteNode, 'n1');
  assert.equal(there.priority, 5);
  assert.equal(there.carbons, true);
  assert.equal(there.data.get('blocking'), true);
  // Sending to the proxy goes to its node's inbox, namespace-complete.
  there.send(x('message', 'jabber:client', { to: 'romeo@localhost/there' }, [x('body', 'jabber:client', {}, ['hi'])]));
  assert.equal(link.sent[0]?.[0], 'n1');
  assert.match((link.sent[0]?.[1] as { x: string }).x, /^<message xmlns="jabber:client"/);
  // The resource moves to node n2 (conflict there): n1's late "down" must not remove n2's session.
  reg.upsertRemote('n2', 'romeo', 'there', { ...SNAP, priority: 1 });
  assert.equal(reg.removeRemote('n1', 'romeo', 'there'), undefined);
  assert.equal((reg.byFullJid('romeo', 'there') as RemoteSession).remoteNode, 'n2');
  assert.equal(there.closed, true, 'the replaced proxy is closed');
  assert.equal(reg.dropNode('n2').length, 1);
  assert.deepEqual(reg.byUser('romeo').map((s) => s.resource), ['here']);
  assert.equal(reg.count(), 1, 'count() is this node\'s sessions');
});

test('registry: a change of a local session is published once per turn; removal says down', async () => {
  const reg = new ClusterRegistry('localhost');
  const link = recorder();
  reg.link = link;
  const s = new Session(new JID('julia', 'localhost', 'phone'), new FakeStream('s1'));
  reg.add(s);
  s.priority = 3;
  s.available = true;
  s.carbons = true;
  await tick();
  s.carbons = true; // no change: nothing published
  await tick();
  reg.remove(s);
  assert.deepEqual(link.log, ['up julia/phone p=0 a=false c=false', 'up julia/phone p=3 a=true c=true', 'down julia/phone']);
  // Module state set through data is published too.
  const t = new Session(new JID('julia', 'localhost', 'tab'), new FakeStream('s2'));
  reg.add(t);
  t.data.set('blocking', true);
  await tick();
  assert.equal(snapshotOf(t).data.blocking, true);
  assert.equal(link.log.length, 5);
});
