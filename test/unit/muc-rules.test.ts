/**
 * The MUC decision functions (src/modules/muc/rules.ts), table by table:
 * the join decision with its reasons in XEP-0045's order, the role and
 * affiliation permission matrices, subject/voice/private-message/invite
 * rights, archive access, history selection, the rate bucket; the
 * configuration form; the options; and the room store (memory and SQLite,
 * one suite).
 */
import { test, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  canChangeAffiliation,
  canChangeRole,
  canInvite,
  canPrivateMessage,
  canReadArchive,
  canSetSubject,
  canSpeak,
  decideJoin,
  decideRegistration,
  decideVoiceApproval,
  decideVoiceRequest,
  defaultRole,
  roomArchivable,
  selectHistory,
  takeToken,
  type Decision,
  type JoinRequest,
} from '../../src/modules/muc/rules.js';
import { applyConfigForm, configForm, isRequestForm, requestFields, voiceRequestForm } from '../../src/modules/muc/forms.js';
import { parseMucOptions, ROOM_DEFAULTS } from '../../src/modules/muc/options.js';
import { MemoryMucStore, type Affiliation, type MucStore, type Role, type RoomConfig, type RoomRecord } from '../../src/storage/muc.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { parseXml } from '../../src/xml/parser.js';
import { StanzaError } from '../../src/core/errors.js';

const cfg = (o: Partial<RoomConfig> = {}): RoomConfig => ({ ...ROOM_DEFAULTS, ...o });
const verdict = (d: Decision): string => (d.ok ? `ok:${d.reason}` : d.condition);

describe('decideJoin', () => {
  const base: JoinRequest = {
    affiliation: 'none',
    locked: false,
    password: undefined,
    nickInUseByOther: false,
    nickReservedByOther: false,
    sameAccountSameNick: false,
    occupants: 0,
    sessionsOfNick: 0,
    maxSessionsPerNick: 3,
  };
  const rows: Array<[string, Partial<JoinRequest>, Partial<RoomConfig>, string]> = [
    ['anyone enters an open room', {}, {}, 'ok:allowed'],
    ['an outcast is banned, before anything else', { affiliation: 'outcast', locked: true, nickInUseByOther: true }, { membersOnly: true, password: 'x' }, 'forbidden'],
    ['a locked room admits only its owner', { locked: true }, {}, 'item-not-found'],
    ['the owner enters its locked room', { affiliation: 'owner', locked: true }, {}, 'ok:owner-of-locked-room'],
    ['members-only refuses a stranger', {}, { membersOnly: true }, 'registration-required'],
    ['members-only admits a member', { affiliation: 'member' }, { membersOnly: true }, 'ok:allowed'],
    ['members-only is checked before the password', {}, { membersOnly: true, password: 'x' }, 'registration-required'],
    ['no password for a password room', {}, { password: 'secret' }, 'not-authorized'],
    ['a wrong password', { password: 'guess' }, { password: 'secret' }, 'not-authorized'],
    ['the right password', { password: 'secret' }, { password: 'secret' }, 'ok:allowed'],
    ['a member still needs the password', { affiliation: 'member' }, { password: 'secret' }, 'not-authorized'],
    ['an admin needs no password', { affiliation: 'admin' }, { password: 'secret' }, 'ok:allowed'],
    ['the password is checked before the nick', { nickInUseByOther: true }, { password: 'secret' }, 'not-authorized'],
    ['a nick held by another account', { nickInUseByOther: true }, {}, 'conflict'],
    ['a nick reserved by another account', { nickReservedByOther: true }, {}, 'conflict'],
    ['another device of the same account and nick', { sameAccountSameNick: true, sessionsOfNick: 2 }, {}, 'ok:another-device'],
    ['too many devices under one nick', { sameAccountSameNick: true, sessionsOfNick: 3 }, {}, 'resource-constraint'],
    ['another device joins even a full room', { sameAccountSameNick: true, sessionsOfNick: 1, occupants: 5 }, { maxUsers: 5 }, 'ok:another-device'],
    ['a full room refuses a newcomer', { occupants: 5 }, { maxUsers: 5 }, 'service-unavailable'],
    ['an admin enters a full room', { affiliation: 'admin', occupants: 5 }, { maxUsers: 5 }, 'ok:allowed'],
  ];
  for (const [name, req, c, want] of rows) {
    test(name, () => assert.equal(verdict(decideJoin({ ...base, ...req }, cfg(c))), want));
  }
});

test('defaultRole by affiliation, moderated or not', () => {
  const rows: Array<[Affiliation, boolean, Role]> = [
    ['owner', false, 'moderator'],
    ['admin', true, 'moderator'],
    ['member', true, 'participant'],
    ['none', false, 'participant'],
    ['none', true, 'visitor'],
    ['outcast', false, 'none'],
  ];
  for (const [a, moderated, want] of rows) assert.equal(defaultRole(a, { moderated, membersOnly: false }), want, `${a} moderated=${moderated}`);
});

describe('canChangeRole: the moderator matrix', () => {
  // actor (aff/role) -> target (aff/role) -> new role -> verdict
  const rows: Array<[string, string, Role, string]> = [
    ['none/participant', 'none/participant', 'none', 'forbidden'],
    ['member/participant', 'none/visitor', 'participant', 'forbidden'],
    ['owner/moderator', 'none/participant', 'none', 'ok:kick'],
    ['admin/moderator', 'member/participant', 'none', 'ok:kick'],
    ['admin/moderator', 'none/visitor', 'participant', 'ok:grant-voice'],
    ['admin/moderator', 'none/participant', 'visitor', 'ok:revoke-voice'],
    ['admin/moderator', 'none/participant', 'moderator', 'ok:grant-moderator'],
    ['none/moderator', 'none/participant', 'moderator', 'forbidden'],
    ['none/moderator', 'none/moderator', 'participant', 'forbidden'],
    ['none/moderator', 'none/participant', 'none', 'ok:kick'],
    ['none/moderator', 'member/participant', 'none', 'not-allowed'],
    ['admin/moderator', 'owner/moderator', 'none', 'not-allowed'],
    ['owner/moderator', 'admin/moderator', 'none', 'not-allowed'],
    ['admin/moderator', 'admin/moderator', 'visitor', 'not-allowed'],
    ['owner/moderator', 'none/none', 'participant', 'item-not-found'],
  ];
  for (const [actor, target, role, want] of rows) {
    test(`${actor} sets ${target} to ${role}: ${want}`, () => {
      const [aa, ar] = actor.split('/') as [Affiliation, Role];
      const [ta, tr] = target.split('/') as [Affiliation, Role];
      assert.equal(verdict(canChangeRole({ affiliation: aa, role: ar }, { affiliation: ta, role: tr }, role)), want);
    });
  }
  test('kicking oneself as owner is a conflict', () => {
    assert.equal(verdict(canChangeRole({ affiliation: 'owner', role: 'moderator' }, { affiliation: 'owner', role: 'moderator' }, 'none', true)), 'conflict');
  });
});

describe('canChangeAffiliation: the admin/owner matrix', () => {
  const affs: Affiliation[] = ['owner', 'admin', 'member', 'none', 'outcast'];
  const low = new Set<Affiliation>(['member', 'none', 'outcast']);
  for (const actor of affs) {
    for (const current of affs) {
      for (const next of affs) {
        const want = actor === 'owner' ? 'ok' : actor === 'admin' ? (low.has(current) && low.has(next) ? 'ok' : 'not-allowed') : 'forbidden';
        test(`${actor}: ${current} -> ${next} is ${want}`, () => {
          const d = canChangeAffiliation(actor, current, next);
          assert.equal(d.ok ? 'ok' : d.condition, want);
        });
      }
    }
  }
});

test('subject, voice, private messages, invitations', () => {
  const mod = { affiliation: 'none' as Affiliation, role: 'moderator' as Role };
  const part = { affiliation: 'none' as Affiliation, role: 'participant' as Role };
  const vis = { affiliation: 'none' as Affiliation, role: 'visitor' as Role };
  const out = { affiliation: 'none' as Affiliation, role: 'none' as Role };
  const admin = { affiliation: 'admin' as Affiliation, role: 'moderator' as Role };
  assert.equal(verdict(canSetSubject(mod, { changeSubject: false })), 'ok:moderator');
  assert.equal(verdict(canSetSubject(part, { changeSubject: false })), 'forbidden');
  assert.equal(verdict(canSetSubject(part, { changeSubject: true })), 'ok:participants-may-change-subject');
  assert.equal(verdict(canSetSubject(vis, { changeSubject: true })), 'forbidden');
  assert.equal(verdict(canSpeak(part)), 'ok:participant');
  assert.equal(verdict(canSpeak(vis)), 'forbidden');
  assert.equal(verdict(canSpeak(out)), 'not-acceptable');
  assert.equal(verdict(canPrivateMessage(vis, 'anyone')), 'ok:anyone');
  assert.equal(verdict(canPrivateMessage(vis, 'participants')), 'forbidden');
  assert.equal(verdict(canPrivateMessage(part, 'moderators')), 'forbidden');
  assert.equal(verdict(canPrivateMessage(mod, 'none')), 'forbidden');
  assert.equal(verdict(canInvite(part, { membersOnly: false, allowInvites: false })), 'ok:open-room');
  assert.equal(verdict(canInvite(part, { membersOnly: true, allowInvites: false })), 'forbidden');
  assert.equal(verdict(canInvite(part, { membersOnly: true, allowInvites: true })), 'ok:occupants-may-invite');
  assert.equal(verdict(canInvite(admin, { membersOnly: true, allowInvites: false })), 'ok:admin');
  assert.equal(verdict(canInvite(out, { membersOnly: false, allowInvites: true })), 'not-acceptable');
});

test('decideVoiceRequest: visitors only, role participant, a moderator present, one per interval (§7.13)', () => {
  const v = { affiliation: 'none' as Affiliation, role: 'visitor' as Role };
  const rows: Array<[string, Parameters<typeof decideVoiceRequest>, string]> = [
    ['a visitor asks', [v, 'participant', undefined, 1000, 60000, 1], 'ok:visitor-asks'],
    ['after the interval again', [v, 'participant', 0, 60000, 60000, 2], 'ok:visitor-asks'],
    ['within the interval', [v, 'participant', 0, 59999, 60000, 1], 'resource-constraint'],
    ['no moderator to ask', [v, 'participant', undefined, 1000, 60000, 0], 'service-unavailable'],
    ['a participant has voice', [{ affiliation: 'member', role: 'participant' }, 'participant', undefined, 0, 60000, 1], 'not-acceptable'],
    ['not in the room', [{ affiliation: 'none', role: 'none' }, 'participant', undefined, 0, 60000, 1], 'not-acceptable'],
    ['asks for moderator', [v, 'moderator', undefined, 0, 60000, 1], 'bad-request'],
    ['asks for nothing', [v, undefined, undefined, 0, 60000, 1], 'bad-request'],
  ];
  for (const [what, args, want] of rows) assert.equal(verdict(decideVoiceRequest(...args)), want, what);
});

test('decideVoiceApproval: moderators answer; approval grants voice unless it outranks them (§8.6)', () => {
  const mod = { affiliation: 'admin' as Affiliation, role: 'moderator' as Role };
  const visitor = { affiliation: 'none' as Affiliation, role: 'visitor' as Role };
  const rows: Array<[string, Parameters<typeof decideVoiceApproval>, string]> = [
    ['approve', [mod, visitor, true], 'ok:approved'],
    ['deny', [mod, visitor, false], 'ok:denied'],
    ['approved by another moderator already', [mod, { affiliation: 'none', role: 'participant' }, true], 'ok:has-voice-already'],
    ['the visitor left', [mod, undefined, true], 'item-not-found'],
    ['a participant answers', [{ affiliation: 'member', role: 'participant' }, visitor, true], 'forbidden'],
    ['a visitor answers for itself', [visitor, visitor, true], 'forbidden'],
    ['a moderator (member) approves an admin silenced', [{ affiliation: 'member', role: 'moderator' }, { affiliation: 'owner', role: 'visitor' }, true], 'not-allowed'],
  ];
  for (const [what, args, want] of rows) assert.equal(verdict(decideVoiceApproval(...args)), want, what);
});

test('decideRegistration: nick reservation makes a member; banned, members-only strangers and taken nicks refused (§7.10)', () => {
  const rows: Array<[string, Parameters<typeof decideRegistration>, string]> = [
    ['a stranger in an open room', ['none', { membersOnly: false }, 'Mercutio', false], 'ok:becomes-member'],
    ['a member renames', ['member', { membersOnly: true }, 'Mercutio', false], 'ok:keeps-affiliation'],
    ['an owner reserves', ['owner', { membersOnly: false }, 'Romeo', false], 'ok:keeps-affiliation'],
    ['banned', ['outcast', { membersOnly: false }, 'Tybalt', false], 'forbidden'],
    ['a stranger in a members-only room', ['none', { membersOnly: true }, 'Mercutio', false], 'not-allowed'],
    ['no nick', ['none', { membersOnly: false }, undefined, false], 'not-acceptable'],
    ['a blank nick', ['none', { membersOnly: false }, '  ', false], 'not-acceptable'],
    ['taken', ['none', { membersOnly: false }, 'Romeo', true], 'conflict'],
  ];
  for (const [what, args, want] of rows) assert.equal(verdict(decideRegistration(...args)), want, what);
});

test('muc#request forms: the approval form carries the visitor and parses back', () => {
  const f = voiceRequestForm('nurse@localhost/tablet', 'Nurse');
  assert.ok(isRequestForm(f));
  const fields = requestFields(f);
  assert.equal(fields.get('muc#jid'), 'nurse@localhost/tablet');
  assert.equal(fields.get('muc#roomnick'), 'Nurse');
  assert.equal(fields.get('muc#request_allow'), 'false');
  assert.equal(fields.get('muc#role'), 'participant');
  assert.equal(isRequestForm(parseXml("<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field></x>")), false);
  assert.equal(isRequestForm(undefined), false);
});

test('canReadArchive: never more than joining would show', () => {
  const c = (o: Partial<RoomConfig>) => ({ membersOnly: false, password: '', archive: true, ...o });
  assert.equal(verdict(canReadArchive('none', false, c({}))), 'ok:could-join');
  assert.equal(verdict(canReadArchive('none', false, c({ archive: false }))), 'service-unavailable');
  assert.equal(verdict(canReadArchive('outcast', true, c({}))), 'forbidden');
  assert.equal(verdict(canReadArchive('none', false, c({ membersOnly: true }))), 'forbidden');
  assert.equal(verdict(canReadArchive('member', false, c({ membersOnly: true }))), 'ok:could-join');
  assert.equal(verdict(canReadArchive('member', false, c({ password: 'x' }))), 'forbidden');
  assert.equal(verdict(canReadArchive('none', true, c({ password: 'x' }))), 'ok:occupant');
});

test('roomArchivable: what a reader would miss is archived, nothing else', () => {
  const v = (inner: string) => roomArchivable(parseXml(`<message xmlns='jabber:client' type='groupchat'>${inner}</message>`)).reason;
  assert.equal(v('<body>hi</body>'), 'body');
  assert.equal(v("<encrypted xmlns='eu.siacs.conversations.axolotl'/>"), 'im-payload');
  assert.equal(v("<reactions xmlns='urn:xmpp:reactions:0' id='x'/>"), 'im-payload');
  assert.equal(v("<composing xmlns='http://jabber.org/protocol/chatstates'/>"), 'no-content');
  assert.equal(v('<subject>s</subject>'), 'subject');
  assert.equal(v("<body>hi</body><no-store xmlns='urn:xmpp:hints'/>"), 'no-store-hint');
  assert.equal(v("<store xmlns='urn:xmpp:hints'/>"), 'store-hint');
});

test('selectHistory: the newest within every limit, oldest first', () => {
  const now = 100_000;
  const entries = [0, 1, 2, 3, 4].map((i) => ({ i, at: now - (5 - i) * 10_000, chars: 10 }));
  const pick = (r: Partial<Parameters<typeof selectHistory>[1]>, len = 20) =>
    selectHistory(entries, { maxStanzas: undefined, maxChars: undefined, seconds: undefined, since: undefined, ...r }, len, now).map((e) => e.i);
  assert.deepEqual(pick({}), [0, 1, 2, 3, 4]);
  assert.deepEqual(pick({}, 2), [3, 4]);
  assert.deepEqual(pick({ maxStanzas: 3 }), [2, 3, 4]);
  assert.deepEqual(pick({ maxStanzas: 0 }), []);
  assert.deepEqual(pick({ maxChars: 0 }), []);
  assert.deepEqual(pick({ maxChars: 25 }), [3, 4]);
  assert.deepEqual(pick({ seconds: 25 }), [3, 4]);
  assert.deepEqual(pick({ since: now - 30_000 }), [2, 3, 4]);
});

test('takeToken: a burst passes, then the refill rate', () => {
  let s = { tokens: 3, at: 0 };
  const passed: boolean[] = [];
  for (let i = 0; i < 5; i++) {
    const r = takeToken(s, 0, 1, 3);
    s = r;
    passed.push(r.ok);
  }
  assert.deepEqual(passed, [true, true, true, false, false]);
  assert.equal(takeToken(s, 1000, 1, 3).ok, true, 'one token back after a second');
  assert.equal(takeToken({ tokens: 0, at: 0 }, 1_000_000, 1, 3).tokens, 2, 'never more than the burst');
});

describe('configuration form', () => {
  const submit = (fields: string) => parseXml(`<x xmlns='jabber:x:data' type='submit'>${fields}</x>`);
  const f = (v: string, val: string) => `<field var='${v}'><value>${val}</value></field>`;
  test('the form carries the current values; a submit changes only what it names', () => {
    const form = configForm(cfg({ name: 'Hall' }), 100, 50);
    assert.equal(form.getChildren('field').find((x) => x.attrs.var === 'muc#roomconfig_roomname')?.getChildText('value'), 'Hall');
    const c = applyConfigForm(cfg({ name: 'Hall' }), submit(f('muc#roomconfig_membersonly', '1') + f('muc#roomconfig_maxusers', '1000')), 100, 50);
    assert.equal(c.membersOnly, true);
    assert.equal(c.name, 'Hall');
    assert.equal(c.maxUsers, 100, 'capped at the service limit');
  });
  test('an empty submit is the instant room; a password needs a secret; bad values are refused', () => {
    assert.deepEqual(applyConfigForm(cfg(), submit(''), 100, 50), cfg());
    const p = applyConfigForm(cfg(), submit(f('muc#roomconfig_passwordprotectedroom', '1') + f('muc#roomconfig_roomsecret', 's')), 100, 50);
    assert.equal(p.password, 's');
    assert.equal(applyConfigForm(p, submit(f('muc#roomconfig_passwordprotectedroom', '0')), 100, 50).password, '');
    const err = (xml: string) => {
      try {
        applyConfigForm(cfg(), submit(xml), 100, 50);
        return 'ok';
      } catch (e) {
        return e instanceof StanzaError ? e.condition : String(e);
      }
    };
    assert.equal(err(f('muc#roomconfig_passwordprotectedroom', '1')), 'not-acceptable');
    assert.equal(err(f('muc#roomconfig_persistentroom', 'maybe')), 'bad-request');
    assert.equal(err(f('muc#roomconfig_whois', 'all')), 'bad-request');
    assert.equal(err(f('muc#roomconfig_unknown', '1')), 'not-acceptable');
    assert.equal(err(f('FORM_TYPE', 'urn:other')), 'bad-request');
  });
});

test('options: defaults, validation, domain', () => {
  const o = parseMucOptions({}, 'example.org');
  assert.equal(o.domain, 'conference.example.org');
  assert.equal(parseMucOptions({ domain: 'Rooms.Example.org' }, 'example.org').domain, 'rooms.example.org');
  assert.throws(() => parseMucOptions({ domain: 'example.org' }, 'example.org'), /differ/);
  assert.throws(() => parseMucOptions({ maxRoomsPerAccount: 0 }, 'example.org'), /maxRoomsPerAccount/);
  assert.throws(() => parseMucOptions({ colour: 'red' }, 'example.org'), /unknown option/);
  assert.throws(() => parseMucOptions({ roomDefaults: { persistent: 'yes' } }, 'example.org'), /persistent/);
  assert.equal(parseMucOptions({ roomDefaults: { persistent: true } }, 'example.org').roomDefaults.persistent, true);
});

describe('room store (one suite for every backend)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-muc-'));
  const sqlite = SqliteStorage.open(path.join(dir, 'm.sqlite'), { synchronous: 'NORMAL' });
  after(async () => {
    await sqlite.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const rec = (room: string, o: Partial<RoomRecord> = {}): RoomRecord => ({
    room,
    config: cfg({ persistent: true }),
    affiliations: [{ jid: 'romeo@localhost', affiliation: 'owner' }],
    subject: undefined,
    salt: 'salt',
    createdAt: 1,
    ...o,
  });
  const stores: Array<[string, MucStore]> = [
    ['memory', new MemoryMucStore()],
    ['sqlite', sqlite.muc],
  ];
  for (const [name, store] of stores) {
    test(`${name}: save, replace, list, remove`, async () => {
      await store.save(rec('b'));
      await store.save(rec('a', { subject: { text: 'hi', nick: 'R', stamp: 5 } }));
      const changed = rec('b', { affiliations: [{ jid: 'romeo@localhost', affiliation: 'owner' }, { jid: 'tybalt@localhost', affiliation: 'outcast', reason: 'brawl' }] });
      await store.save(changed);
      changed.affiliations.length = 0; // the store keeps what was saved, not the caller's object
      const all = await store.rooms();
      assert.deepEqual(all.map((r) => r.room), ['a', 'b']);
      assert.equal(all[0]?.subject?.text, 'hi');
      assert.deepEqual(all[1]?.affiliations.map((a) => a.affiliation), ['owner', 'outcast']);
      await store.remove('a');
      assert.deepEqual((await store.rooms()).map((r) => r.room), ['b']);
    });
  }
});
