/**
 * Stream management without the network: the counters and the unacked queue
 * (including `h` wrapping at 2^32), the rules for stanzas a session never got
 * (table-tested), which resource got which message, and option validation.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml } from '../../src/xml/parser.js';
import type { Element } from '../../src/xml/element.js';
import { SmCounters, parseH, wireH, H_MOD } from '../../src/modules/sm/state.js';
import { classifyUndelivered, archivedFor, unwrapFork, DeliveryTracker, type UndeliveredContext } from '../../src/modules/sm/undelivered.js';
import { parseSmOptions, SM_DEFAULTS } from '../../src/modules/sm/options.js';
import { Session, type SessionStream } from '../../src/core/session.js';
import { parseJID } from '../../src/jid/jid.js';

const el = (s: string): Element => parseXml(s);
const msg = (n: number): Element => el(`<message xmlns='jabber:client' id='m${n}'><body>${n}</body></message>`);

describe('SmCounters', () => {
  test('acks release exactly the acked prefix of the queue', () => {
    const c = new SmCounters();
    for (let i = 1; i <= 5; i++) c.sent(msg(i));
    assert.equal(c.queue.length, 5);
    const r = c.ack(3);
    assert.ok(r.ok);
    assert.deepEqual(r.acked.map((e) => e.attrs.id), ['m1', 'm2', 'm3']);
    assert.deepEqual(c.queue.map((e) => e.attrs.id), ['m4', 'm5']);
    // The same h again releases nothing; h = 5 releases the rest.
    assert.equal(c.ack(3).acked.length, 0);
    assert.equal(c.ack(5).acked.length, 2);
    assert.equal(c.queue.length, 0);
  });

  test('an h above what was sent is refused with both numbers', () => {
    const c = new SmCounters();
    c.sent(msg(1));
    c.sent(msg(2));
    const r = c.ack(3);
    assert.equal(r.ok, false);
    assert.equal(r.claimed, 3);
    assert.equal(r.sent, 2);
    assert.equal(c.queue.length, 2, 'nothing released on a bad ack');
  });

  test('an h behind the last ack is stale: it acks nothing and is no error', () => {
    const c = new SmCounters();
    for (let i = 1; i <= 4; i++) c.sent(msg(i));
    assert.ok(c.ack(3).ok);
    const r = c.ack(2);
    assert.ok(r.ok);
    assert.equal(r.acked.length, 0);
    assert.equal(c.queue.length, 1);
    // But never below zero: on a fresh counter, a "negative" h is a claim of unsent stanzas.
    const d = new SmCounters();
    d.sent(msg(1));
    assert.equal(d.ack(H_MOD - 1).ok, false);
  });

  test('h wraps at 2^32 on both directions', () => {
    const start = H_MOD - 2;
    const c = new SmCounters(start);
    for (let i = 1; i <= 5; i++) c.sent(msg(i));
    // The client counts mod 2^32 too: after 5 stanzas from 2^32-2 it says h = 3.
    const r = c.ack(2);
    assert.ok(r.ok);
    assert.deepEqual(r.acked.map((e) => e.attrs.id), ['m1', 'm2', 'm3', 'm4']);
    assert.equal(c.ack(3).acked.length, 1);
    assert.equal(c.ack(4).ok, false, 'one more than sent, across the wrap');

    for (let i = 0; i < 3; i++) {
      c.received();
      c.handled();
    }
    assert.equal(c.h, 1, '2^32 - 2 + 3 = 1 (mod 2^32)');
  });

  test('parseH accepts unsigned 32-bit decimals only', () => {
    assert.equal(parseH('0'), 0);
    assert.equal(parseH('4294967295'), 4294967295);
    for (const bad of [undefined, '', '-1', '4294967296', '1.5', '0x10', ' 1', '99999999999']) assert.equal(parseH(bad), undefined, String(bad));
    assert.equal(wireH(H_MOD + 7), 7);
  });
});

describe('classifyUndelivered (what happens to a stanza its session never acked)', () => {
  const account = 'romeo@montague.lit';
  const base: UndeliveredContext = { account, usesMam: false, deliveredElsewhere: false, alreadyOffline: false };
  const sid = `<stanza-id xmlns='urn:xmpp:sid:0' by='${account}' id='A1'/>`;
  const chat = (extra = '') => `<message xmlns='jabber:client' type='chat' from='juliet@capulet.lit/balcony' to='${account}'><body>hi</body>${extra}</message>`;
  const fork = (kind: string, inner: string) =>
    `<message xmlns='jabber:client' from='${account}' to='${account}/phone'><${kind} xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'>${inner}</forwarded></${kind}></message>`;

  const cases: Array<[string, string, Partial<UndeliveredContext>, string, string]> = [
    ['archived message, MAM client', chat(sid), { usesMam: true }, 'drop', 'archived'],
    ['archived message, legacy client', chat(sid), {}, 'offline', 'legacy-client'],
    ['archived message, legacy, another resource got it', chat(sid), { deliveredElsewhere: true }, 'drop', 'delivered-elsewhere'],
    ['archived message, legacy, already stored offline', chat(sid), { alreadyOffline: true }, 'drop', 'already-offline'],
    ['unarchived message, MAM client (archive failed or no-store)', chat(), { usesMam: true }, 'offline', 'not-archived'],
    ['stanza-id of someone else does not count', chat(`<stanza-id xmlns='urn:xmpp:sid:0' by='evil@x' id='1'/>`), { usesMam: true }, 'offline', 'not-archived'],
    ['received fork, archived, MAM client', fork('received', chat(sid)), { usesMam: true }, 'drop', 'archived'],
    ['received fork, legacy, the addressed resource got it', fork('received', chat(sid)), { deliveredElsewhere: true }, 'drop', 'delivered-elsewhere'],
    ['received fork, legacy, nobody got it', fork('received', chat(sid)), {}, 'offline', 'legacy-client'],
    ['own sent copy', fork('sent', chat()), {}, 'drop', 'own-sent-copy'],
    ['error message', `<message xmlns='jabber:client' type='error'/>`, {}, 'drop', 'error'],
    ['groupchat', `<message xmlns='jabber:client' type='groupchat'><body>x</body></message>`, {}, 'drop', 'groupchat'],
    ['headline', `<message xmlns='jabber:client' type='headline'><body>x</body></message>`, {}, 'drop', 'headline'],
    ['MAM result', `<message xmlns='jabber:client'><result xmlns='urn:xmpp:mam:2' id='x'/></message>`, {}, 'drop', 'mam-result'],
    ['iq get', `<iq xmlns='jabber:client' type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`, {}, 'bounce', 'iq-request'],
    ['iq set', `<iq xmlns='jabber:client' type='set' id='1'><query xmlns='jabber:iq:roster'/></iq>`, {}, 'bounce', 'iq-request'],
    ['iq result', `<iq xmlns='jabber:client' type='result' id='1'/>`, {}, 'drop', 'iq-response'],
    ['presence', `<presence xmlns='jabber:client' from='juliet@capulet.lit/balcony'/>`, {}, 'drop', 'presence'],
  ];
  for (const [name, xml, ctx, action, reason] of cases) {
    test(name, () => {
      const v = classifyUndelivered(el(xml), { ...base, ...ctx });
      assert.equal(v.action, action);
      assert.equal(v.reason, reason);
    });
  }

  test('the offline copy of a received fork is the inner message', () => {
    const v = classifyUndelivered(el(fork('received', chat(sid))), base);
    assert.equal(v.action, 'offline');
    if (v.action !== 'offline') return;
    assert.equal(v.stanza.attrs.from, 'juliet@capulet.lit/balcony');
    assert.equal(v.stanza.getChildText('body'), 'hi');
    assert.equal(v.archived, true);
  });

  test('helpers', () => {
    assert.equal(archivedFor(el(chat(sid)), account), true);
    assert.equal(archivedFor(el(chat()), account), false);
    assert.equal(unwrapFork(el(chat())), undefined);
    assert.equal(unwrapFork(el(fork('sent', chat())))?.kind, 'sent');
  });
});

describe('DeliveryTracker', () => {
  const stream: SessionStream = { id: 's', write: () => undefined, writeWire: () => undefined, closeWith: () => undefined, remoteAddress: '::1', transportKind: 'tcp' };
  const session = (r: string) => new Session(parseJID(`romeo@montague.lit/${r}`), stream);

  test('another holder that is still connected counts; once it is closed it does not', () => {
    const t = new DeliveryTracker();
    const a = session('a');
    const b = session('b');
    const orig = msg(1);
    const copyA = orig.clone();
    const copyB = orig.clone();
    t.delivered(orig, copyA, a, true);
    t.delivered(orig, copyB, b, true);
    assert.equal(t.elsewhere(copyA, a), true, 'b still holds it');
    b.closed = true;
    t.released(copyB, b);
    assert.equal(t.elsewhere(copyA, a), false, 'b ended without acking');
  });

  test('an ack elsewhere, or a session without SM, means received', () => {
    const t = new DeliveryTracker();
    const a = session('a');
    const b = session('b');
    const c = session('c');
    const orig = msg(2);
    t.delivered(orig, orig, a, true);
    t.delivered(orig, orig, b, true);
    t.acked(orig, b);
    b.closed = true;
    assert.equal(t.elsewhere(orig, a), true);
    const orig2 = msg(3);
    t.delivered(orig2, orig2, a, true);
    t.delivered(orig2, orig2, c, false);
    assert.equal(t.elsewhere(orig2, a), true);
    assert.equal(t.elsewhere(orig2, c), true, 'a still holds it');
    a.closed = true;
    assert.equal(t.elsewhere(orig2, c), false, 'its own receipt does not count');
  });

  test('offline storage is recorded once per message, for every copy', () => {
    const t = new DeliveryTracker();
    const a = session('a');
    const b = session('b');
    const orig = msg(4);
    const ca = orig.clone();
    const cb = orig.clone();
    t.delivered(orig, ca, a, true);
    t.delivered(orig, cb, b, true);
    t.markOffline(ca);
    assert.equal(t.isOffline(cb), true);
    assert.equal(t.isOffline(msg(5)), false, 'untracked stanza');
  });
});

describe('sm options', () => {
  test('defaults and overrides', () => {
    assert.deepEqual(parseSmOptions({}), SM_DEFAULTS);
    assert.equal(SM_DEFAULTS.resumeTimeout, 300, 'five minutes by default');
    const o = parseSmOptions({ resumeTimeout: 60, maxQueue: 10 });
    assert.equal(o.resumeTimeout, 60);
    assert.equal(o.maxQueue, 10);
  });
  test('bad options are refused with the key named', () => {
    assert.throws(() => parseSmOptions({ resumeTimeOut: 1 }), /moduleOptions\.sm\.resumeTimeOut: unknown option/);
    assert.throws(() => parseSmOptions({ maxQueue: -1 }), /maxQueue/);
    assert.throws(() => parseSmOptions({ maxQueue: 'x' }), /maxQueue/);
  });
  test('maxResumeTimeout is never below resumeTimeout', () => {
    assert.equal(parseSmOptions({ resumeTimeout: 2000 }).maxResumeTimeout, 2000);
  });
});
