/**
 * What a session back from a crash gets when it resumes (src/modules/sm/rebuild.ts): the client's
 * count from its h, the archived stanzas it already had, the copy shape of each archived message
 * for this session, and the keys that recognise a message it sends again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { x } from '../../src/xml/element.js';
import { NS } from '../../src/core/namespaces.js';
import { archiveIdIn, clientCount, copyShapeFor, deliveredIds, resendKey, sentKeys, type ArchivedRow } from '../../src/modules/sm/rebuild.js';
import type { SessionView } from '../../src/core/routing.js';

const msg = (attrs: Record<string, string>, body = 'hi') => x('message', NS.CLIENT, attrs, [x('body', NS.CLIENT, {}, [body])]);

test('clientCount: the plain count behind a wire h (wrap at 2^32; an h behind the checkpoint means nothing more)', () => {
  const cases: Array<[number, number, number, string]> = [
    [10, 10, 10, 'equal'],
    [15, 10, 15, 'ahead'],
    [5, 10, 10, 'behind: stale'],
    [3, 2 ** 32 - 2, 2 ** 32 + 3, 'across the wrap'],
    [7, 2 ** 32 + 5, 2 ** 32 + 7, 'after the wrap'],
  ];
  for (const [h, acked, want, why] of cases) assert.equal(clientCount(h, acked), want, why);
});

test('deliveredIds: recorded archived stanzas with a number up to the count', () => {
  assert.deepEqual([...deliveredIds([[6, 'a'], [7, 'b'], [9, 'c']], 7)], ['a', 'b']);
  assert.deepEqual([...deliveredIds([[6, 'a']], 5)], []);
});

test('archiveIdIn: the stanza-id of this account, on the message or inside a fork', () => {
  const plain = msg({ from: 'j@l/d', to: 'r@l' });
  plain.append(x('stanza-id', NS.SID, { by: 'other@l', id: 'O' }));
  plain.append(x('stanza-id', NS.SID, { by: 'r@l', id: 'R1' }));
  assert.equal(archiveIdIn(plain, 'r@l'), 'R1');
  assert.equal(archiveIdIn(plain, 'x@l'), undefined);
  const inner = msg({ from: 'r@l/pc', to: 'j@l' });
  inner.append(x('stanza-id', NS.SID, { by: 'r@l', id: 'R2' }));
  const fork = x('message', NS.CLIENT, { to: 'r@l/phone' }, [x('sent', NS.CARBONS, {}, [x('forwarded', NS.FORWARD, {}, [inner])])]);
  assert.equal(archiveIdIn(fork, 'r@l'), 'R2');
  assert.equal(archiveIdIn(x('presence', NS.CLIENT, {}), 'r@l'), undefined);
});

test('copyShapeFor: the fork rules for this one session', () => {
  const view = (o: Partial<SessionView>): SessionView => ({ resource: 'phone', priority: 0, available: true, mr2: false, carbons: false, ...o });
  const row = (outgoing: boolean, attrs: Record<string, string>): ArchivedRow => ({ id: 'i', outgoing, msg: msg(attrs) });
  const cases: Array<[string, ArchivedRow, SessionView, string | undefined]> = [
    ['chat to the bare JID, available legacy', row(false, { from: 'j@l/d', to: 'r@l', type: 'chat' }), view({}), 'plain'],
    ['chat to the bare JID, unavailable legacy', row(false, { from: 'j@l/d', to: 'r@l', type: 'chat' }), view({ available: false }), undefined],
    ['chat to the bare JID, MR2 even unavailable', row(false, { from: 'j@l/d', to: 'r@l', type: 'chat' }), view({ available: false, mr2: true }), 'plain'],
    ['to this full JID', row(false, { from: 'j@l/d', to: 'r@l/phone', type: 'chat' }), view({}), 'plain'],
    ['to another resource, legacy without carbons', row(false, { from: 'j@l/d', to: 'r@l/pc', type: 'chat' }), view({}), undefined],
    ['to another resource, carbons', row(false, { from: 'j@l/d', to: 'r@l/pc', type: 'chat' }), view({ carbons: true }), 'received'],
    ['to another resource, MR2', row(false, { from: 'j@l/d', to: 'r@l/pc', type: 'chat' }), view({ mr2: true }), 'received'],
    ['sent by another resource, MR2', row(true, { from: 'r@l/pc', to: 'j@l', type: 'chat' }), view({ mr2: true }), 'sent'],
    ['sent by this session itself', row(true, { from: 'r@l/phone', to: 'j@l', type: 'chat' }), view({ mr2: true }), undefined],
    ['sent by another resource, legacy', row(true, { from: 'r@l/pc', to: 'j@l', type: 'chat' }), view({}), undefined],
  ];
  for (const [why, r, v, want] of cases) assert.equal(copyShapeFor(r, v), want, why);
});

test('resend keys: to and id of the messages this full JID sent; none without an id', () => {
  const rows: ArchivedRow[] = [
    { id: '1', outgoing: true, msg: msg({ from: 'r@l/phone', to: 'j@l', id: 'm1' }) },
    { id: '2', outgoing: true, msg: msg({ from: 'r@l/pc', to: 'j@l', id: 'm2' }) },
    { id: '3', outgoing: false, msg: msg({ from: 'j@l/d', to: 'r@l', id: 'm3' }) },
    { id: '4', outgoing: true, msg: msg({ from: 'r@l/phone', to: 'j@l' }) },
  ];
  const keys = sentKeys(rows, 'r@l/phone');
  assert.deepEqual([...keys], ['j@l\u0000m1']);
  assert.equal(resendKey(msg({ to: 'j@l', id: 'm1' })), 'j@l\u0000m1');
  assert.equal(resendKey(msg({ to: 'j@l' })), undefined);
  assert.equal(resendKey(x('presence', NS.CLIENT, { to: 'j@l', id: 'p' })), undefined);
});
