/**
 * Voice requests in a moderated room (XEP-0045 §7.13 and §8.6) with real
 * clients: the Nurse is a visitor on StanzaJS over WebSocket and asks for
 * voice with StanzaJS's own requestRoomVoice(); every device of every
 * moderator gets the approval form (Romeo, owner, on two raw devices; Juliet,
 * admin, on @xmpp/client over TCP); Juliet approves it from xmpp.js, the
 * Nurse becomes a participant and speaks. Also: a denial changes nothing, a
 * non-moderator cannot approve, a second request inside the interval and a
 * participant's request are refused.
 *
 * Nickname registration (§7.10, §7.12) in the same room: Tybalt (raw client)
 * gets the muc#register form and reserves a nick; the Nurse, a stranger, is
 * made a member by registering and StanzaJS's getReservedNick() finds her
 * nick; a reserved nick cannot be registered or taken by another account
 * (xmpp.js nick change refused); <remove/> gives it up.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as XMPP from 'stanza';
import { xml, type XmppClient } from '@xmpp/client';
import type { Element } from '@xmpp/xml';
import { client } from '../helpers/xmppjs.js';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf, type TestClient } from '../helpers/client.js';
import { MUC_DOMAIN, createRoom, groupchatWithBody, itemOf, joinRaw, statusCodes, admin } from '../helpers/muc-clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // @xmpp/client upgrades with STARTTLS; the test server's certificate is self-signed

const ROOM = `court@${MUC_DOMAIN}`;
const NS_DATA = 'jabber:x:data';
const NS_REQUEST = 'http://jabber.org/protocol/muc#request';
const USERS: Array<[string, string]> = [['romeo', 'pw'], ['juliet', 'pw'], ['nurse', 'pw'], ['tybalt', 'pw']];

let v: Verona;
let romeoDesk: TestClient;
let romeoPhone: TestClient;
let tybalt: TestClient;
let jx: XmppClient;
let nurse: XMPP.Agent;
const jxGot: Element[] = [];
const nurseMsgs: XMPP.Stanzas.ReceivedMessage[] = [];
const nursePresence: XMPP.Stanzas.ReceivedMUCPresence[] = [];

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 15000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = fn();
    if (r !== undefined) return r;
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

function requestFormOf(el: Element): Map<string, string> | undefined {
  const form = el.getChild('x', NS_DATA);
  if (el.name !== 'message' || !form) return undefined;
  const fields = new Map(form.getChildren('field').map((f) => [String(f.attrs.var), f.getChildText('value') ?? '']));
  return fields.get('FORM_TYPE') === NS_REQUEST ? fields : undefined;
}

const isVoiceRequest = (el: Element): boolean => el.attrs.from === ROOM && requestFormOf(el) !== undefined;

function answer(allow: boolean, nick = 'Nurse'): string {
  return `<message to='${ROOM}'><x xmlns='${NS_DATA}' type='submit'><field var='FORM_TYPE'><value>${NS_REQUEST}</value></field><field var='muc#role'><value>participant</value></field><field var='muc#roomnick'><value>${nick}</value></field><field var='muc#request_allow'><value>${allow ? 'true' : 'false'}</value></field></x></message>`;
}

async function nurseError(): Promise<string | undefined> {
  const m = await until('an error message to the Nurse', () => nurseMsgs.find((x) => x.type === 'error'));
  nurseMsgs.splice(nurseMsgs.indexOf(m), 1);
  return m.error?.condition;
}

before(async () => {
  v = await startVerona({ users: USERS });
  const port = v.ports.c2s as number;
  romeoDesk = await connectClient({ port, user: 'romeo', password: 'pw', resource: 'desk', presence: true });
  romeoPhone = await connectClient({ port, user: 'romeo', password: 'pw', resource: 'phone', presence: true });
  tybalt = await connectClient({ port, user: 'tybalt', password: 'pw', resource: 'r', presence: true });
  jx = client({ service: `xmpp://127.0.0.1:${port}`, domain: 'localhost', username: 'juliet', password: 'pw', resource: 'xmppjs' });
  jx.on('error', () => undefined);
  jx.on('stanza', (el: Element) => void jxGot.push(el));
  await jx.start();
  nurse = XMPP.createClient({ jid: 'nurse@localhost', password: 'pw', resource: 'web', transports: { websocket: `ws://127.0.0.1:${v.ports.http as number}/xmpp-websocket`, bosh: false } });
  nurse.on('message', (m) => void nurseMsgs.push(m));
  nurse.on('muc:available', (p) => void nursePresence.push(p));
  await new Promise<void>((resolve, reject) => {
    nurse.once('session:started', () => resolve());
    nurse.once('disconnected', () => reject(new Error('disconnected before session start')));
    nurse.connect();
  });
});

after(async () => {
  for (const d of [romeoDesk, romeoPhone, tybalt]) d?.close();
  await jx?.stop().catch(() => undefined);
  nurse?.disconnect();
  await v?.stop();
  v?.cleanup();
});

describe('voice requests in a moderated room', () => {
  test('a moderated room: Juliet is made admin (moderator), Tybalt is a participant member, the Nurse enters as a visitor', async () => {
    await createRoom(romeoDesk as TestClient & { jid: string }, ROOM, 'Romeo', { 'muc#roomconfig_moderatedroom': '1', 'muc#roomconfig_persistentroom': '1' });
    await joinRaw(romeoPhone as TestClient & { jid: string }, ROOM, 'Romeo');
    assert.equal((await admin(romeoDesk, ROOM, "<item jid='juliet@localhost' affiliation='admin'/><item jid='tybalt@localhost' affiliation='member'/>")).attrs.type, 'result');
    await jx.send(xml('presence', { to: `${ROOM}/Juliet` }, xml('x', { xmlns: 'http://jabber.org/protocol/muc' })));
    const jSelf = await until('Juliet joined', () => jxGot.find((el) => el.is('presence') && el.attrs.from === `${ROOM}/Juliet` && statusCodes(el).includes(110)));
    assert.equal(itemOf(jSelf)?.attrs.role, 'moderator');
    const t = await joinRaw(tybalt as TestClient & { jid: string }, ROOM, 'Tybalt');
    assert.equal(itemOf(t.self)?.attrs.role, 'participant');
    const self = await nurse.joinRoom(ROOM, 'Nurse');
    assert.equal(self.muc?.role, 'visitor');
    // A visitor has no voice: its groupchat message is refused.
    nurse.sendMessage({ to: ROOM, type: 'groupchat', body: 'Hark' });
    assert.equal(await nurseError(), 'forbidden');
    const disco = await nurse.getDiscoInfo(ROOM);
    assert.ok(disco.features.includes(NS_REQUEST), 'the room advertises muc#request');
  });

  test('a participant cannot ask for voice it has; only a visitor can', async () => {
    tybalt.send(`<message to='${ROOM}'><x xmlns='${NS_DATA}' type='submit'><field var='FORM_TYPE'><value>${NS_REQUEST}</value></field><field var='muc#role'><value>participant</value></field></x></message>`);
    const err = await tybalt.next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorOf(err), 'not-acceptable');
  });

  test('the visitor asks (StanzaJS requestRoomVoice); every device of every moderator gets the approval form', async () => {
    nurse.requestRoomVoice(ROOM);
    const [desk, phone, jul] = await Promise.all([
      romeoDesk.next(isVoiceRequest, 15000),
      romeoPhone.next(isVoiceRequest, 15000),
      until('Juliet got the voice request', () => jxGot.find(isVoiceRequest)),
    ]);
    for (const el of [desk, phone, jul]) {
      const f = requestFormOf(el) as Map<string, string>;
      assert.equal(f.get('muc#roomnick'), 'Nurse');
      assert.equal(f.get('muc#jid'), 'nurse@localhost/web');
      assert.equal(f.get('muc#role'), 'participant');
      assert.equal(f.get('muc#request_allow'), 'false');
      assert.equal(el.getChild('x', NS_DATA)?.attrs.type, 'form');
    }
    // Tybalt (a participant, not a moderator) is not asked.
    await tybalt.nothing(isVoiceRequest, 300);
    // Asking again at once is refused: one request per interval.
    nurse.requestRoomVoice(ROOM);
    assert.equal(await nurseError(), 'resource-constraint');
  });

  test('a participant cannot approve; a moderator denying changes nothing', async () => {
    tybalt.send(answer(true));
    const err = await tybalt.next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorOf(err), 'forbidden');
    romeoPhone.send(answer(false));
    await romeoDesk.nothing((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse` && itemOf(el)?.attrs.role === 'participant', 500);
    assert.equal(nursePresence.filter((p) => p.from === `${ROOM}/Nurse` && p.muc?.role === 'participant').length, 0);
  });

  test('Juliet approves from xmpp.js: the Nurse becomes a participant, everyone sees it, and she speaks', async () => {
    await jx.send(xml('message', { to: ROOM }, xml('x', { xmlns: NS_DATA, type: 'submit' },
      xml('field', { var: 'FORM_TYPE' }, xml('value', {}, NS_REQUEST)),
      xml('field', { var: 'muc#role' }, xml('value', {}, 'participant')),
      xml('field', { var: 'muc#jid' }, xml('value', {}, 'nurse@localhost/web')),
      xml('field', { var: 'muc#roomnick' }, xml('value', {}, 'Nurse')),
      xml('field', { var: 'muc#request_allow' }, xml('value', {}, 'true')),
    )));
    const mine = await until('the Nurse sees herself a participant', () => nursePresence.find((p) => p.from === `${ROOM}/Nurse` && p.muc?.role === 'participant'));
    assert.ok(mine.muc?.statusCodes?.includes('110'));
    await romeoDesk.next((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse` && itemOf(el)?.attrs.role === 'participant');
    await tybalt.next((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse` && itemOf(el)?.attrs.role === 'participant');
    nurse.sendMessage({ to: ROOM, type: 'groupchat', body: 'Now I may speak' });
    await Promise.all([groupchatWithBody(romeoDesk, ROOM, 'Now I may speak'), groupchatWithBody(tybalt, ROOM, 'Now I may speak')]);
    // An answer that comes after another moderator approved changes nothing and is no error.
    romeoDesk.send(answer(true));
    await romeoDesk.nothing((el) => el.name === 'message' && el.attrs.type === 'error', 500);
  });
});

const NS_REGISTER = 'jabber:iq:register';

function registerIq(nick: string): string {
  return `<query xmlns='${NS_REGISTER}'><x xmlns='${NS_DATA}' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#register</value></field><field var='muc#register_roomnick'><value>${nick}</value></field></x></query>`;
}

describe('nickname registration', () => {
  let nurseRaw: TestClient;
  before(async () => {
    nurseRaw = await connectClient({ port: v.ports.c2s as number, user: 'nurse', password: 'pw', resource: 'raw', presence: true });
  });
  after(() => nurseRaw?.close());

  test('the room hands out the muc#register form; Tybalt reserves a nick and is told it is registered', async () => {
    const disco = await nurse.getDiscoInfo(ROOM);
    assert.ok(disco.features.includes(NS_REGISTER), 'the room advertises jabber:iq:register');
    const get = await sendIq(tybalt, `<query xmlns='${NS_REGISTER}'/>`, `type='get' to='${ROOM}'`);
    const form = get.getChild('query', NS_REGISTER)?.getChild('x', NS_DATA);
    assert.equal(form?.attrs.type, 'form');
    assert.ok(form?.getChildren('field').some((f) => f.attrs.var === 'muc#register_roomnick' && f.getChild('required') !== undefined));
    assert.equal((await sendIq(tybalt, registerIq('Prince of Cats'), `type='set' to='${ROOM}'`)).attrs.type, 'result');
    const again = await sendIq(tybalt, `<query xmlns='${NS_REGISTER}'/>`, `type='get' to='${ROOM}'`);
    assert.ok(again.getChild('query', NS_REGISTER)?.getChild('registered'));
    assert.equal(again.getChild('query', NS_REGISTER)?.getChildText('username'), 'Prince of Cats');
    // The owner's member list shows the reserved nick.
    const members = await sendIq(romeoDesk, "<query xmlns='http://jabber.org/protocol/muc#admin'><item affiliation='member'/></query>", `type='get' to='${ROOM}'`);
    assert.equal(members.getChild('query')?.getChildren('item').find((i) => i.attrs.jid === 'tybalt@localhost')?.attrs.nick, 'Prince of Cats');
  });

  test('a reserved nick is kept from other accounts: registering it or changing to it is a conflict', async () => {
    const r = await sendIq(nurseRaw, registerIq('Prince of Cats'), `type='set' to='${ROOM}'`);
    assert.equal(stanzaErrorOf(r), 'conflict');
    // Nor can a nick held by another occupant be registered.
    assert.equal(stanzaErrorOf(await sendIq(nurseRaw, registerIq('Romeo'), `type='set' to='${ROOM}'`)), 'conflict');
    await jx.send(xml('presence', { to: `${ROOM}/Prince of Cats` }));
    const err = await until('xmpp.js nick change refused', () => jxGot.find((el) => el.is('presence') && el.attrs.type === 'error' && el.attrs.from === `${ROOM}/Prince of Cats`));
    assert.equal(err.getChild('error')?.getChildren('conflict').length, 1);
  });

  test('a stranger registering becomes a member; StanzaJS finds its reserved nick (x-roomuser-item)', async () => {
    await assert.rejects(nurse.getReservedNick(ROOM));
    assert.equal((await sendIq(nurseRaw, registerIq('Angelica'), `type='set' to='${ROOM}'`)).attrs.type, 'result');
    assert.equal(await nurse.getReservedNick(ROOM), 'Angelica');
    // She is in the room (as Nurse): everyone sees her new affiliation.
    await romeoDesk.next((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse` && itemOf(el)?.attrs.affiliation === 'member');
  });

  test('<remove/> gives the nick (and the membership it brought) up', async () => {
    assert.equal((await sendIq(nurseRaw, `<query xmlns='${NS_REGISTER}'><remove/></query>`, `type='set' to='${ROOM}'`)).attrs.type, 'result');
    await assert.rejects(nurse.getReservedNick(ROOM));
    await romeoDesk.next((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse` && itemOf(el)?.attrs.affiliation === 'none');
    assert.equal(stanzaErrorOf(await sendIq(nurseRaw, `<query xmlns='${NS_REGISTER}'><remove/></query>`, `type='set' to='${ROOM}'`)), 'item-not-found');
  });
});
