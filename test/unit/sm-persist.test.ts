/**
 * The written-down form of a resumable session (src/modules/sm/persist.ts):
 * it round-trips, and anything that is not exactly one of ours restores nothing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeHibernation, encodeHibernation, type Hibernation } from '../../src/modules/sm/persist.js';

const good: Hibernation = {
  jid: 'romeo@localhost/phone',
  sid: 'abc',
  max: 300,
  out: 7,
  acked: 5,
  handled: 4294967296 + 3,
  queue: ['<message xmlns="jabber:client"><body>é</body></message>', '<iq xmlns="jabber:client" type="get" id="p"/>'],
  queriedMam: true,
  session: { sid: 'abc', priority: -1, available: true, presence: '<presence xmlns="jabber:client"/>', interested: true, mr2: true, carbons: false, csiInactive: true, data: { blocking: true, pep: { available: true, notify: ['urn:x'] } } },
  directedTo: ['room@muc.localhost/romeo'],
};

test('a hibernated session round-trips', () => {
  assert.deepEqual(decodeHibernation(encodeHibernation(good)), good);
});

test('anything else restores nothing', () => {
  const enc = (o: Record<string, unknown>) => JSON.stringify({ v: 1, ...good, ...o });
  const cases: Array<[string, string]> = [
    ['not JSON', '{'],
    ['another version', JSON.stringify({ ...good, v: 2 })],
    ['queue longer than unacked', enc({ acked: 6 })],
    ['acked beyond sent', enc({ acked: 8, out: 7 })],
    ['negative counter', enc({ handled: -1 })],
    ['fractional max', enc({ max: 1.5 })],
    ['queue of non-strings', enc({ queue: [1, 2] })],
    ['bad session snapshot', enc({ session: { ...good.session, priority: 'high' } })],
    ['no jid', enc({ jid: undefined })],
    ['directedTo not a list', enc({ directedTo: 'x' })],
  ];
  for (const [why, text] of cases) assert.equal(decodeHibernation(text), undefined, why);
});

test('a live checkpoint (crash info) round-trips; damaged crash info restores nothing', () => {
  const live: Hibernation = { ...good, out: 5, acked: 5, queue: [], crash: { live: true, ackedId: 'A1', pending: [[6, 'A2'], [8, 'A3']], since: 1000, deadline: 0, at: 0 } };
  assert.deepEqual(decodeHibernation(encodeHibernation(live)), live);
  const none = { ...live, crash: { ...live.crash, ackedId: undefined } } as Hibernation;
  assert.deepEqual(decodeHibernation(encodeHibernation(none))?.crash?.ackedId, undefined);
  const enc = (c: Record<string, unknown>) => JSON.stringify({ v: 1, ...live, crash: { ...live.crash, ...c } });
  const cases: Array<[string, string]> = [
    ['live not boolean', enc({ live: 'yes' })],
    ['pending entry not a pair', enc({ pending: [[6]] })],
    ['pending id not a string', enc({ pending: [[6, 7]] })],
    ['negative since', enc({ since: -1 })],
    ['ackedId not a string', enc({ ackedId: 5 })],
    ['no at', enc({ at: undefined })],
    ['crash not an object', JSON.stringify({ v: 1, ...live, crash: 'x' })],
  ];
  for (const [why, text] of cases) assert.equal(decodeHibernation(text), undefined, why);
});
