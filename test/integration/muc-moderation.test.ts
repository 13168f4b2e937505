/**
 * Group chat rules on the real server, raw clients: the configuration form,
 * subject, kick, ban, voice in a moderated room, members-only rooms with
 * mediated invitations and declines, XEP-0249 direct invitations, password
 * rooms, destroying a room, and the service's limits (rooms per account,
 * occupants per room, message rate), each with its error.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf, type TestClient } from '../helpers/client.js';
import {
  MUC_DOMAIN,
  NS_MUC_OWNER,
  NS_MUC_USER,
  JoinError,
  admin,
  configure,
  createRoom,
  drain,
  groupchatWithBody,
  itemOf,
  joinRaw,
  roomMam,
  say,
  statusCodes,
} from '../helpers/muc-clients.js';

const USERS: Array<[string, string]> = [['romeo', 'pw'], ['juliet', 'pw'], ['nurse', 'pw'], ['tybalt', 'pw'], ['greedy', 'pw']];
let v: Verona;
const c: Record<string, TestClient> = {};

before(async () => {
  v = await startVerona({ users: USERS, config: { moduleOptions: { muc: { maxRoomsPerAccount: 3, messageRate: 1, messageBurst: 4 } } } });
  for (const [u] of USERS) c[u] = await connectClient({ port: v.ports.c2s as number, user: u, password: 'pw', resource: 'r', presence: true });
});

after(async () => {
  for (const x of Object.values(c)) x.close();
  await v?.stop();
  v?.cleanup();
});

function joinFails(user: string, room: string, nick: string, password?: string): Promise<string | undefined> {
  return joinRaw(c[user] as TestClient, room, nick, { password }).then(
    () => undefined,
    (e: unknown) => (e instanceof JoinError ? e.condition : String(e)),
  );
}

function unavailableFrom(user: string, occupant: string): Promise<Element> {
  return (c[user] as TestClient).next((el) => el.name === 'presence' && el.attrs.type === 'unavailable' && el.attrs.from === occupant);
}

async function leave(user: string, occupant: string): Promise<void> {
  (c[user] as TestClient).send(`<presence to='${occupant}' type='unavailable'/>`);
  await unavailableFrom(user, occupant);
}

function clear(): void {
  for (const x of Object.values(c)) x.received.length = 0;
}

describe('configuration form', () => {
  const room = `cfg@${MUC_DOMAIN}`;
  test('the owner reads the form, submits changes, disco shows them, occupants hear 104; others are refused', async () => {
    await createRoom(c.romeo as TestClient, room, 'Romeo');
    await joinRaw(c.juliet as TestClient, room, 'Juliet');
    const form = await sendIq(c.romeo as TestClient, `<query xmlns='${NS_MUC_OWNER}'/>`, `type='get' to='${room}'`);
    const vars = form.getChild('query')?.getChild('x')?.getChildren('field').map((f) => f.attrs.var) ?? [];
    for (const f of ['muc#roomconfig_roomname', 'muc#roomconfig_persistentroom', 'muc#roomconfig_membersonly', 'muc#roomconfig_moderatedroom', 'muc#roomconfig_roomsecret', 'muc#roomconfig_whois', 'muc#roomconfig_maxusers']) {
      assert.ok(vars.includes(f), f);
    }
    const refused = await sendIq(c.juliet as TestClient, `<query xmlns='${NS_MUC_OWNER}'/>`, `type='get' to='${room}'`);
    assert.equal(stanzaErrorOf(refused), 'forbidden');
    await configure(c.romeo as TestClient, room, { 'muc#roomconfig_roomname': 'Configured', 'muc#roomconfig_whois': 'anyone', 'muc#roomconfig_publicroom': '0' });
    const notice = await (c.juliet as TestClient).next((el) => el.name === 'message' && el.attrs.from === room);
    assert.deepEqual(statusCodes(notice).sort(), [104, 172]);
    const info = await sendIq(c.nurse as TestClient, "<query xmlns='http://jabber.org/protocol/disco#info'/>", `type='get' to='${room}'`);
    const feats = info.getChild('query')?.getChildren('feature').map((f) => f.attrs.var) ?? [];
    assert.ok(feats.includes('muc_nonanonymous') && feats.includes('muc_hidden'));
    assert.equal(info.getChild('query')?.getChild('identity')?.attrs.name, 'Configured');
    // Hidden: not in the service's list.
    const items = await sendIq(c.nurse as TestClient, "<query xmlns='http://jabber.org/protocol/disco#items'/>", `type='get' to='${MUC_DOMAIN}'`);
    assert.ok(!items.getChild('query')?.getChildren('item').some((i) => i.attrs.jid === room));
    // A bad value is refused whole.
    const bad = await sendIq(c.romeo as TestClient, `<query xmlns='${NS_MUC_OWNER}'><x xmlns='jabber:x:data' type='submit'><field var='muc#roomconfig_whois'><value>everybody</value></field></x></query>`, `type='set' to='${room}'`);
    assert.equal(stanzaErrorOf(bad), 'bad-request');
    await leave('juliet', `${room}/Juliet`);
    await leave('romeo', `${room}/Romeo`);
    clear();
  });
});

describe('moderation', () => {
  const room = `court@${MUC_DOMAIN}`;
  test('subject: participants may not set it by default; the moderator does and everyone sees it', async () => {
    await createRoom(c.romeo as TestClient, room, 'Romeo');
    await joinRaw(c.tybalt as TestClient, room, 'Tybalt');
    await joinRaw(c.nurse as TestClient, room, 'Nurse');
    c.tybalt?.send(`<message to='${room}' type='groupchat' id='s1'><subject>Tybalt rules</subject></message>`);
    const err = await (c.tybalt as TestClient).next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorOf(err), 'forbidden');
    c.romeo?.send(`<message to='${room}' type='groupchat' id='s2'><subject>Peace in Verona</subject></message>`);
    for (const u of ['romeo', 'tybalt', 'nurse']) {
      const m = await (c[u] as TestClient).next((el) => el.name === 'message' && el.getChildText('subject') === 'Peace in Verona');
      assert.equal(m.attrs.from, `${room}/Romeo`);
    }
    const j = await joinRaw(c.juliet as TestClient, room, 'Juliet');
    assert.equal(j.subject.getChildText('subject'), 'Peace in Verona');
  });

  test('kick: a participant may not; the owner kicks (307) and the kicked may come back; owners cannot be kicked', async () => {
    const r1 = await admin(c.nurse as TestClient, room, "<item nick='Tybalt' role='none'/>");
    assert.equal(stanzaErrorOf(r1), 'forbidden');
    const r2 = await admin(c.romeo as TestClient, room, "<item nick='Tybalt' role='none'><reason>Brawling</reason></item>");
    assert.equal(r2.attrs.type, 'result');
    const self = await unavailableFrom('tybalt', `${room}/Tybalt`);
    assert.deepEqual(statusCodes(self).sort(), [110, 307]);
    assert.equal(self.getChild('x', NS_MUC_USER)?.getChild('item')?.getChildText('reason'), 'Brawling');
    assert.equal(self.getChild('x', NS_MUC_USER)?.getChild('item')?.getChild('actor')?.attrs.nick, 'Romeo');
    const seen = await unavailableFrom('nurse', `${room}/Tybalt`);
    assert.deepEqual(statusCodes(seen), [307]);
    await joinRaw(c.tybalt as TestClient, room, 'Tybalt');
    // Make Juliet an admin; an admin still cannot kick the owner.
    assert.equal((await admin(c.romeo as TestClient, room, "<item jid='juliet@localhost' affiliation='admin'/>")).attrs.type, 'result');
    const r3 = await admin(c.juliet as TestClient, room, "<item nick='Romeo' role='none'/>");
    assert.equal(stanzaErrorOf(r3), 'not-allowed');
  });

  test('voice: in a moderated room a visitor may not speak until a moderator grants voice', async () => {
    await configure(c.romeo as TestClient, room, { 'muc#roomconfig_moderatedroom': '1' });
    await leave('nurse', `${room}/Nurse`);
    const j = await joinRaw(c.nurse as TestClient, room, 'Nurse');
    assert.equal(itemOf(j.self)?.attrs.role, 'visitor');
    say(c.nurse as TestClient, room, 'May I speak?');
    const err = await (c.nurse as TestClient).next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorOf(err), 'forbidden');
    assert.equal((await admin(c.juliet as TestClient, room, "<item nick='Nurse' role='participant'/>")).attrs.type, 'result');
    const p = await (c.nurse as TestClient).next((el) => el.name === 'presence' && el.attrs.from === `${room}/Nurse` && itemOf(el)?.attrs.role === 'participant');
    assert.ok(statusCodes(p).includes(110));
    say(c.nurse as TestClient, room, 'Now I speak');
    await groupchatWithBody(c.romeo as TestClient, room, 'Now I speak');
    assert.equal((await admin(c.juliet as TestClient, room, "<item nick='Nurse' role='visitor'/>")).attrs.type, 'result');
    await (c.nurse as TestClient).next((el) => el.name === 'presence' && el.attrs.from === `${room}/Nurse` && itemOf(el)?.attrs.role === 'visitor');
  });

  test('ban: the banned occupant is removed (301), cannot rejoin nor read the archive, and is on the outcast list', async () => {
    assert.equal((await admin(c.juliet as TestClient, room, "<item jid='tybalt@localhost' affiliation='outcast'><reason>Killed Mercutio</reason></item>")).attrs.type, 'result');
    const self = await unavailableFrom('tybalt', `${room}/Tybalt`);
    assert.deepEqual(statusCodes(self).sort(), [110, 301]);
    assert.equal(itemOf(self)?.attrs.affiliation, 'outcast');
    assert.equal(await joinFails('tybalt', room, 'Tybalt'), 'forbidden');
    await assert.rejects(roomMam(c.tybalt as TestClient, room), (e: Error & { condition?: string }) => e.condition === 'forbidden');
    const list = await sendIq(c.juliet as TestClient, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='outcast'/></query>", `type='get' to='${room}'`);
    assert.deepEqual(list.getChild('query')?.getChildren('item').map((i) => i.attrs.jid), ['tybalt@localhost']);
    // An admin cannot demote the owner; the last owner cannot leave the room ownerless.
    assert.equal(stanzaErrorOf(await admin(c.juliet as TestClient, room, "<item jid='romeo@localhost' affiliation='member'/>")), 'not-allowed');
    assert.equal(stanzaErrorOf(await admin(c.romeo as TestClient, room, "<item jid='romeo@localhost' affiliation='admin'/>")), 'conflict');
  });

  test('destroy: occupants are told, the room and its archive are gone', async () => {
    say(c.romeo as TestClient, room, 'Last words');
    await groupchatWithBody(c.juliet as TestClient, room, 'Last words');
    const r = await sendIq(c.romeo as TestClient, `<query xmlns='${NS_MUC_OWNER}'><destroy><reason>Closing</reason></destroy></query>`, `type='set' to='${room}'`);
    assert.equal(r.attrs.type, 'result');
    const p = await unavailableFrom('juliet', `${room}/Juliet`);
    assert.equal(p.getChild('x', NS_MUC_USER)?.getChild('destroy')?.getChildText('reason'), 'Closing');
    const info = await sendIq(c.juliet as TestClient, "<query xmlns='http://jabber.org/protocol/disco#info'/>", `type='get' to='${room}'`);
    assert.equal(stanzaErrorOf(info), 'item-not-found');
    await createRoom(c.romeo as TestClient, room, 'Romeo');
    assert.deepEqual((await roomMam(c.romeo as TestClient, room)).items, [], 'a new room of that name starts with an empty archive');
    await leave('romeo', `${room}/Romeo`);
    clear();
  });
});

describe('members-only and password rooms, invitations', () => {
  const room = `capulet@${MUC_DOMAIN}`;
  test('members-only: strangers need membership; a revoked member is removed (321)', async () => {
    await createRoom(c.romeo as TestClient, room, 'Romeo', { 'muc#roomconfig_membersonly': '1' });
    assert.equal(await joinFails('juliet', room, 'Juliet'), 'registration-required');
    assert.equal((await admin(c.romeo as TestClient, room, "<item jid='juliet@localhost' affiliation='member'/>")).attrs.type, 'result');
    const j = await joinRaw(c.juliet as TestClient, room, 'Juliet');
    assert.equal(itemOf(j.self)?.attrs.affiliation, 'member');
    assert.equal((await admin(c.romeo as TestClient, room, "<item jid='juliet@localhost' affiliation='none'/>")).attrs.type, 'result');
    const gone = await unavailableFrom('juliet', `${room}/Juliet`);
    assert.ok(statusCodes(gone).includes(321));
    // A member list is an admin's business.
    const list = await sendIq(c.nurse as TestClient, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query>", `type='get' to='${room}'`);
    assert.equal(stanzaErrorOf(list), 'forbidden');
  });

  test('a mediated invitation makes the invitee a member; a decline goes back to the inviter', async () => {
    c.romeo?.send(`<message to='${room}'><x xmlns='${NS_MUC_USER}'><invite to='nurse@localhost'><reason>Come up</reason></invite></x></message>`);
    const inv = await (c.nurse as TestClient).next((el) => el.name === 'message' && el.attrs.from === room);
    const i = inv.getChild('x', NS_MUC_USER)?.getChild('invite');
    assert.equal(i?.attrs.from, 'romeo@localhost');
    assert.equal(i?.getChildText('reason'), 'Come up');
    await joinRaw(c.nurse as TestClient, room, 'Nurse');
    // Tybalt is invited too, and declines.
    c.romeo?.send(`<message to='${room}'><x xmlns='${NS_MUC_USER}'><invite to='tybalt@localhost'/></x></message>`);
    await (c.tybalt as TestClient).next((el) => el.name === 'message' && el.attrs.from === room);
    c.tybalt?.send(`<message to='${room}'><x xmlns='${NS_MUC_USER}'><decline to='romeo@localhost'><reason>Never</reason></decline></x></message>`);
    const d = await (c.romeo as TestClient).next((el) => el.name === 'message' && el.getChild('x', NS_MUC_USER)?.getChild('decline') !== undefined);
    assert.equal(d.getChild('x', NS_MUC_USER)?.getChild('decline')?.attrs.from, 'tybalt@localhost');
    // A member (not admin) may not invite into a members-only room unless the room allows it.
    c.nurse?.send(`<message to='${room}' id='inv2'><x xmlns='${NS_MUC_USER}'><invite to='greedy@localhost'/></x></message>`);
    const e = await (c.nurse as TestClient).next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorOf(e), 'forbidden');
  });

  test('a direct invitation (XEP-0249) is delivered to the invitee as sent', async () => {
    c.juliet?.send(`<message to='nurse@localhost' id='di1'><x xmlns='jabber:x:conference' jid='${room}' reason='Join us'/></message>`);
    const m = await (c.nurse as TestClient).next((el) => el.name === 'message' && el.getChild('x', 'jabber:x:conference') !== undefined);
    assert.equal(m.getChild('x', 'jabber:x:conference')?.attrs.jid, room);
    assert.equal(m.attrs.from, c.juliet?.jid);
  });

  test('password: none or a wrong one is not-authorized; the right one lets you in', async () => {
    const pr = `vault@${MUC_DOMAIN}`;
    await createRoom(c.romeo as TestClient, pr, 'Romeo', { 'muc#roomconfig_passwordprotectedroom': '1', 'muc#roomconfig_roomsecret': 'balcony' });
    assert.equal(await joinFails('juliet', pr, 'Juliet'), 'not-authorized');
    assert.equal(await joinFails('juliet', pr, 'Juliet', 'wrong'), 'not-authorized');
    await joinRaw(c.juliet as TestClient, pr, 'Juliet', { password: 'balcony' });
    const info = await sendIq(c.nurse as TestClient, "<query xmlns='http://jabber.org/protocol/disco#info'/>", `type='get' to='${pr}'`);
    assert.ok(info.getChild('query')?.getChildren('feature').some((f) => f.attrs.var === 'muc_passwordprotected'));
    // Reading the archive of a password room needs being in it.
    await assert.rejects(roomMam(c.nurse as TestClient, pr), (e: Error & { condition?: string }) => e.condition === 'forbidden');
    await leave('juliet', `${pr}/Juliet`);
    await leave('romeo', `${pr}/Romeo`);
    await leave('romeo', `${room}/Romeo`);
    await leave('nurse', `${room}/Nurse`);
    clear();
  });
});

describe('limits', () => {
  test('rooms per account: the fourth room of an account is refused (policy-violation)', async () => {
    for (const n of ['g1', 'g2', 'g3']) await createRoom(c.greedy as TestClient, `${n}@${MUC_DOMAIN}`, 'G', { 'muc#roomconfig_persistentroom': '1' });
    const r = await joinFails('greedy', `g4@${MUC_DOMAIN}`, 'G');
    assert.equal(r, 'policy-violation');
  });

  test('occupants per room: a full room refuses a newcomer (service-unavailable) but not an admin', async () => {
    const room = `small@${MUC_DOMAIN}`;
    await createRoom(c.romeo as TestClient, room, 'Romeo', { 'muc#roomconfig_maxusers': '2' });
    await joinRaw(c.juliet as TestClient, room, 'Juliet');
    assert.equal(await joinFails('nurse', room, 'Nurse'), 'service-unavailable');
  });

  test('message rate: beyond the burst an occupant gets policy-violation, and the others do not see those messages', async () => {
    const room = `small@${MUC_DOMAIN}`;
    drain(c.juliet as TestClient, () => true);
    for (let i = 0; i < 8; i++) say(c.juliet as TestClient, room, `flood ${i}`);
    const err = await (c.juliet as TestClient).next((el) => el.name === 'message' && el.attrs.type === 'error', 10000);
    assert.equal(stanzaErrorOf(err), 'policy-violation');
    await groupchatWithBody(c.romeo as TestClient, room, 'flood 0');
    // At most the burst (4) plus what refilled meanwhile (1/s) got through.
    await new Promise((r) => setTimeout(r, 300));
    const through = drain(c.romeo as TestClient, (el) => el.name === 'message' && /^flood/.test(el.getChildText('body') ?? '')).length + 1;
    assert.ok(through < 8, `${through} of 8 got through`);
  });
});
