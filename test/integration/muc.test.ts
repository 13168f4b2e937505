/**
 * Group chat on the real server: one room, three occupants on five devices
 * of four kinds (an MR2 raw client and a carbons raw client for Romeo under
 * one nick, @xmpp/client over TCP and StanzaJS over WebSocket for Juliet
 * under one nick, a carbons raw client for the Nurse). Every device gets
 * every message with the same room stanza-id, ids ascending; a late joiner
 * gets history; each device catches up from its own last id with MAM on
 * the room (the raw devices, xmpp.js and StanzaJS each from the id they
 * noted last); moderation (subject, voice revoked and restored, a kick of
 * the two-device occupant) is seen on every device; the room and its archive
 * survive a restart of the server.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as XMPP from 'stanza';
import { xml, type XmppClient } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { sendIq, stanzaErrorOf } from '../helpers/client.js';
import { device, type Dev } from './mr2-helpers.js';
import {
  MUC_DOMAIN,
  NS_MUC,
  NS_MUC_USER,
  NS_SID,
  drain,
  fromRoom,
  groupchatWithBody,
  joinRaw,
  occupantId,
  roomMam,
  roomStanzaId,
  say,
  statusCodes,
  type Conn,
} from '../helpers/muc-clients.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // @xmpp/client upgrades with STARTTLS; the test server's certificate is self-signed

const ROOM = `balcony@${MUC_DOMAIN}`;
const USERS: Array<[string, string]> = [['romeo', 'r0meo'], ['juliet', 'jul1et'], ['nurse', 'nurs3']];

let v: Verona;
let romeoDesk: Dev; // MR2
let romeoPhone: Dev; // carbons
let nurse: Dev; // carbons
let jx: XmppClient; // @xmpp/client, TCP
let js: XMPP.Agent; // StanzaJS, WebSocket
const jxGot: Element[] = [];
const jsGot: XMPP.Stanzas.ReceivedMessage[] = [];
const jsUnavailable: XMPP.Stanzas.ReceivedMUCPresence[] = [];
const jsTopics: string[] = [];

async function until<T>(what: string, fn: () => T | undefined, timeoutMs = 10000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const r = fn();
    if (r !== undefined) return r;
    if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

function jxMessage(body: string): Promise<Element> {
  return until(`xmpp.js copy of ${body}`, () => jxGot.find((el) => el.is('message') && el.attrs.type === 'groupchat' && el.getChildText('body') === body && !el.getChild('delay', 'urn:xmpp:delay')));
}

function jsMessage(body: string): Promise<XMPP.Stanzas.ReceivedMessage> {
  return until(`StanzaJS copy of ${body}`, () => jsGot.find((m) => m.type === 'groupchat' && m.body === body && !m.delay));
}

async function startXmppJs(port: number): Promise<XmppClient> {
  const c = client({ service: `xmpp://127.0.0.1:${port}`, domain: 'localhost', username: 'juliet', password: 'jul1et', resource: 'xmppjs' });
  c.on('error', () => undefined);
  c.on('stanza', (el: Element) => void jxGot.push(el));
  await c.start();
  return c;
}

async function startStanza(httpPort: number): Promise<XMPP.Agent> {
  const c = XMPP.createClient({
    jid: 'juliet@localhost',
    password: 'jul1et',
    resource: 'web',
    transports: { websocket: `ws://127.0.0.1:${httpPort}/xmpp-websocket`, bosh: false },
  });
  c.on('message', (m) => void jsGot.push(m));
  c.on('muc:unavailable', (p) => void jsUnavailable.push(p));
  c.on('muc:topic', (t) => void jsTopics.push(t.topic ?? ''));
  await new Promise<void>((resolve, reject) => {
    c.once('session:started', () => resolve());
    c.once('disconnected', () => reject(new Error('disconnected before session start')));
    c.connect();
  });
  return c;
}

async function devices(): Promise<void> {
  const port = v.ports.c2s as number;
  romeoDesk = await device({ port, user: 'romeo', password: 'r0meo', resource: 'desk', kind: 'mr2' });
  romeoPhone = await device({ port, user: 'romeo', password: 'r0meo', resource: 'phone', kind: 'carbons' });
  nurse = await device({ port, user: 'nurse', password: 'nurs3', resource: 'tablet', kind: 'carbons' });
  jx = await startXmppJs(port);
  js = await startStanza(v.ports.http as number);
}

before(async () => {
  v = await startVerona({ users: USERS });
  await devices();
});

after(async () => {
  for (const d of [romeoDesk, romeoPhone, nurse]) d?.close();
  await jx?.stop().catch(() => undefined);
  js?.disconnect();
  await v?.stop();
  v?.cleanup();
});

/** Last room stanza-id each device saw (what it would remember to catch up from). */
const lastSeen = new Map<string, string>();
/** Every archived id in the order delivered, per device. */
const seenOrder = new Map<string, string[]>();
function saw(device: string, id: string | undefined): void {
  assert.ok(id, `${device}: the copy carries the room's stanza-id`);
  lastSeen.set(device, id);
  const l = seenOrder.get(device) ?? [];
  l.push(id);
  seenOrder.set(device, l);
}

describe('one room, three occupants, five devices', () => {
  test('the server lists the MUC service; the service answers disco', async () => {
    const items = await sendIq(romeoDesk, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "type='get' to='localhost'");
    assert.ok(items.getChild('query')?.getChildren('item').some((i) => i.attrs.jid === MUC_DOMAIN));
    const info = await sendIq(romeoDesk, "<query xmlns='http://jabber.org/protocol/disco#info'/>", `type='get' to='${MUC_DOMAIN}'`);
    const q = info.getChild('query');
    assert.equal(q?.getChild('identity')?.attrs.category, 'conference');
    assert.ok(q?.getChildren('feature').some((f) => f.attrs.var === NS_MUC));
  });

  test('Romeo creates the room (201), it is locked until configured, then persistent and archived', async () => {
    const created = await joinRaw(romeoDesk, ROOM, 'Romeo');
    assert.ok(statusCodes(created.self).includes(201));
    assert.equal(created.self.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs.affiliation, 'owner');
    // Locked (§10.1.1): nobody else gets in before the owner configures it.
    await assert.rejects(joinRaw(nurse, ROOM, 'Nurse'), (e: Error & { condition?: string }) => e.condition === 'item-not-found');
    const r = await sendIq(romeoDesk, `<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field><field var='muc#roomconfig_persistentroom'><value>1</value></field><field var='muc#roomconfig_roomname'><value>The balcony</value></field></x></query>`, `type='set' to='${ROOM}'`);
    assert.equal(r.attrs.type, 'result');
  });

  test('every device joins; a second device of a nick joins the same occupant (multi-session)', async () => {
    const phone = await joinRaw(romeoPhone, ROOM, 'Romeo');
    assert.ok(statusCodes(phone.self).includes(110));
    assert.ok(statusCodes(phone.self).includes(170), 'the room says it is archived');
    // Nobody else saw a new occupant: Romeo is one occupant on two devices.
    await romeoDesk.nothing((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Romeo`, 300);

    const self = await js.joinRoom(ROOM, 'Juliet');
    assert.equal(self.muc?.statusCodes?.includes('110'), true);
    await jx.send(xml('presence', { to: `${ROOM}/Juliet` }, xml('x', { xmlns: NS_MUC })));
    await until('xmpp.js self-presence', () => jxGot.find((el) => el.is('presence') && el.attrs.from === `${ROOM}/Juliet` && el.getChild('x', NS_MUC_USER)?.getChildren('status').some((s) => s.attrs.code === '110')));

    const n = await joinRaw(nurse, ROOM, 'Nurse');
    assert.deepEqual(n.others.map((p) => p.attrs.from).sort(), [`${ROOM}/Juliet`, `${ROOM}/Romeo`]);
    // Semi-anonymous room: the nurse (not a moderator) does not see real JIDs; Romeo (owner, moderator) does.
    assert.equal(n.others[0]?.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs.jid, undefined);
    const seenByRomeo = await romeoDesk.next((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse`);
    assert.equal(seenByRomeo.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs.jid, nurse.jid);
    assert.ok(occupantId(seenByRomeo), 'presence carries an occupant id (XEP-0421)');
  });

  test('messages from three occupants reach all five devices with one room stanza-id each, ascending', async () => {
    const sent: Array<{ from: string; body: string }> = [
      { from: 'Romeo', body: 'But soft, what light' },
      { from: 'Juliet', body: 'Wherefore art thou' },
      { from: 'Nurse', body: 'Anon, good nurse' },
      { from: 'Romeo', body: 'by yonder window breaks' },
    ];
    for (const m of sent) {
      if (m.from === 'Romeo') say(romeoPhone, ROOM, m.body);
      else if (m.from === 'Nurse') say(nurse, ROOM, m.body);
      else await jx.send(xml('message', { to: ROOM, type: 'groupchat', id: `jx-${m.body.length}` }, xml('body', {}, m.body)));
      // Wait until every device has it before the next: the order assertions below are then about the room, not the senders.
      const copies = await Promise.all([groupchatWithBody(romeoDesk, ROOM, m.body), groupchatWithBody(romeoPhone, ROOM, m.body), groupchatWithBody(nurse, ROOM, m.body), jxMessage(m.body), jsMessage(m.body)]);
      const [d, p, n, x1, s1] = copies;
      const id = roomStanzaId(d, ROOM);
      assert.ok(id);
      for (const [name, c] of [['desk', d], ['phone', p], ['nurse', n], ['xmppjs', x1]] as const) {
        assert.equal(roomStanzaId(c, ROOM), id, `${name} sees the same archive id`);
        assert.equal(c.attrs.from, `${ROOM}/${m.from}`);
        saw(name, roomStanzaId(c, ROOM));
      }
      const sid = s1.stanzaIds?.find((i) => i.by === ROOM)?.id;
      assert.equal(sid, id, 'StanzaJS sees the same archive id');
      saw('web', sid);
      // The occupant id is the sender's, the same on every copy.
      assert.ok(occupantId(d));
      assert.equal(occupantId(p), occupantId(d));
    }
    for (const [dev, ids] of seenOrder) assert.deepEqual(ids, [...ids].sort(), `${dev}: ids ascending as delivered`);
    // Groupchat is not carbon-copied: the MR2 and carbons devices got exactly one plain copy each.
    assert.equal(drain(romeoDesk, (el) => el.name === 'message' && el.getChild('received', 'urn:xmpp:carbons:2') !== undefined).length, 0);
    assert.equal(drain(romeoPhone, (el) => el.name === 'message' && el.getChild('sent', 'urn:xmpp:carbons:2') !== undefined).length, 0);
  });

  test('a late device gets the history the room keeps (maxstanzas), delayed and with stanza-ids', async () => {
    const extra = await device({ port: v.ports.c2s as number, user: 'nurse', password: 'nurs3', resource: 'late', kind: 'plain' });
    try {
      const j = await joinRaw(extra, ROOM, 'Nurse', { history: "<history maxstanzas='3'/>" });
      assert.deepEqual(j.history.map((m) => m.getChildText('body')), ['Wherefore art thou', 'Anon, good nurse', 'by yonder window breaks']);
      assert.deepEqual(j.history.map((m) => roomStanzaId(m, ROOM)), seenOrder.get('desk')?.slice(1));
      assert.equal(j.history[0]?.getChild('delay', 'urn:xmpp:delay')?.attrs.from, ROOM);
      extra.send(`<presence to='${ROOM}/Nurse' type='unavailable'/>`);
      const gone = await extra.next((el) => el.name === 'presence' && el.attrs.type === 'unavailable' && el.attrs.from === `${ROOM}/Nurse`);
      assert.ok(statusCodes(gone).includes(110));
      // The nurse's tablet is still in the room: nobody saw the Nurse leave.
      await romeoDesk.nothing((el) => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse` && el.attrs.type === 'unavailable', 300);
      const fresh = await joinRaw(extra, ROOM, 'Nurse', { history: "<history maxchars='0'/>" });
      assert.equal(fresh.history.length, 0);
    } finally {
      extra.close();
    }
  });

  test('each device catches up from its own last id with MAM on the room', async () => {
    // The phone goes away; two messages arrive meanwhile.
    const phoneLast = lastSeen.get('phone') as string;
    romeoPhone.close();
    await romeoPhone.waitClose();
    say(nurse, ROOM, 'Romeo, Romeo');
    const m1 = await groupchatWithBody(romeoDesk, ROOM, 'Romeo, Romeo');
    say(romeoDesk, ROOM, 'I take thee at thy word');
    const m2 = await groupchatWithBody(nurse, ROOM, 'I take thee at thy word');
    const missed = [roomStanzaId(m1, ROOM), roomStanzaId(m2, ROOM)];
    await jsMessage('I take thee at thy word');
    await jxMessage('I take thee at thy word');

    romeoPhone = await device({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'phone', kind: 'carbons' });
    const page = await roomMam(romeoPhone as Conn, ROOM, { afterId: phoneLast });
    assert.deepEqual(page.items.map((i) => i.id), missed);
    assert.deepEqual(page.items.map((i) => i.body), ['Romeo, Romeo', 'I take thee at thy word']);
    assert.equal(page.items[0]?.from, `${ROOM}/Nurse`);
    assert.equal(page.complete, true);
    // The others are up to date: from their last id (the last live copy) nothing is missing.
    for (const d of [romeoDesk, nurse]) {
      const last = d === nurse ? roomStanzaId(m2, ROOM) : roomStanzaId(await Promise.resolve(m1), ROOM);
      const p = await roomMam(d as Conn, ROOM, { afterId: last });
      assert.deepEqual(p.items.map((i) => i.body), d === nurse ? [] : ['I take thee at thy word']);
    }
    // xmpp.js: the same query from its own last id, results collected from its stanza stream.
    const jxLast = lastSeen.get('xmppjs') as string;
    const qid = 'jx-catchup';
    const fin = await jx.iqCaller.request(
      xml('iq', { type: 'set', to: ROOM }, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid: qid }, xml('x', { xmlns: 'jabber:x:data', type: 'submit' }, xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'urn:xmpp:mam:2')), xml('field', { var: 'after-id' }, xml('value', {}, jxLast))))),
      30000,
    );
    assert.equal(fin.getChild('fin', 'urn:xmpp:mam:2')?.attrs.complete, 'true');
    const jxItems = jxGot.filter((el) => el.is('message') && el.getChild('result', 'urn:xmpp:mam:2')?.attrs.queryid === qid).map((el) => el.getChild('result', 'urn:xmpp:mam:2')?.attrs.id as string);
    assert.deepEqual(jxItems, missed, 'xmpp.js: everything after the last id it noted, nothing else');
    // StanzaJS pages the room archive by RSM from its last id.
    const jsLast = lastSeen.get('web') as string;
    const res = await js.searchHistory(ROOM, { paging: { after: jsLast } });
    assert.deepEqual((res.results ?? []).map((r) => r.id), missed);
    // The whole archive, in order, is what every device saw live.
    const all = await roomMam(romeoPhone as Conn, ROOM);
    assert.deepEqual(all.items.map((i) => i.id), [...(seenOrder.get('desk') ?? []), ...missed]);
  });

  test('a private message reaches the occupant and is forked to its MR2 device', async () => {
    nurse.send(`<message to='${ROOM}/Romeo' type='chat' id='pm1'><body>A word in private</body></message>`);
    const isPm = (el: Element): boolean => {
      const m = el.getChild('received', 'urn:xmpp:carbons:2')?.getChild('forwarded')?.getChild('message') ?? el;
      return el.name === 'message' && m.getChildText('body') === 'A word in private';
    };
    // One copy to Romeo's latest device, forked to the other one (MR2 or carbons): both have it.
    const [desk, phone] = await Promise.all([romeoDesk.next(isPm), romeoPhone.next(isPm)]);
    assert.ok(phone);
    const inner = desk.getChild('received', 'urn:xmpp:carbons:2')?.getChild('forwarded')?.getChild('message') ?? desk;
    assert.equal(inner.attrs.from, `${ROOM}/Nurse`);
    assert.ok(inner.getChild('x', NS_MUC_USER));
    // Archived in Romeo's own archive (a 1-1 message), so it carries Romeo's stanza-id.
    assert.ok(inner.getChildren('stanza-id', NS_SID).some((s) => s.attrs.by === 'romeo@localhost'));
  });

  test('a private message a device sends is in its own archive and reaches its other device as a sent copy', async () => {
    romeoDesk.send(`<message to='${ROOM}/Nurse' type='chat' id='pm2'><body>Meet me at the cell</body></message>`);
    const atNurse = await nurse.next((el) => el.name === 'message' && el.getChildText('body') === 'Meet me at the cell');
    assert.equal(atNurse.attrs.from, `${ROOM}/Romeo`);
    const sent = await romeoPhone.next((el) => el.name === 'message' && el.getChild('sent', 'urn:xmpp:carbons:2') !== undefined);
    const inner = sent.getChild('sent', 'urn:xmpp:carbons:2')?.getChild('forwarded')?.getChild('message');
    assert.equal(inner?.attrs.to, `${ROOM}/Nurse`);
    // The MR2 sender's archive id is computable: <stream id>-<message id>.
    const own = inner?.getChildren('stanza-id', NS_SID).find((x) => x.attrs.by === 'romeo@localhost');
    assert.equal(own?.attrs.id, `${romeoDesk.streamId}-pm2`);
  });

  test('self-ping (XEP-0410): joined answers result, not joined not-acceptable', async () => {
    const ok = await sendIq(romeoDesk, "<ping xmlns='urn:xmpp:ping'/>", `type='get' to='${ROOM}/Romeo'`);
    assert.equal(ok.attrs.type, 'result');
    const phone = await sendIq(romeoPhone, "<ping xmlns='urn:xmpp:ping'/>", `type='get' to='${ROOM}/Romeo'`);
    assert.equal(stanzaErrorOf(phone), 'not-acceptable', 'the reconnected phone has not rejoined');
  });

  test('moderation seen on every device: subject, voice revoked and restored, a two-device occupant kicked and back', async () => {
    // The reconnected phone rejoins first (the self-ping above said it must).
    await joinRaw(romeoPhone, ROOM, 'Romeo', { history: "<history maxchars='0'/>" });
    // Subject: the Nurse (participant) may not; Romeo (owner, moderator) does and all five devices see it.
    nurse.send(`<message to='${ROOM}' type='groupchat' id='subj1'><subject>Nurse's room</subject></message>`);
    const refused = await nurse.next((el) => el.name === 'message' && el.attrs.type === 'error' && el.attrs.id === 'subj1');
    assert.equal(stanzaErrorOf(refused), 'forbidden');
    romeoDesk.send(`<message to='${ROOM}' type='groupchat' id='subj2'><subject>Two households</subject></message>`);
    const isSubject = (el: Element): boolean => el.name === 'message' && el.attrs.from === `${ROOM}/Romeo` && el.getChildText('subject') === 'Two households';
    await Promise.all([romeoDesk.next(isSubject), romeoPhone.next(isSubject), nurse.next(isSubject), until('xmpp.js sees the subject', () => jxGot.find(isSubject)), until('StanzaJS sees the subject', () => (jsTopics.includes('Two households') ? true : undefined))]);
    // Voice: Romeo makes the Nurse a visitor; her message is refused; voice back, she speaks again.
    const roleOfNurse = (role: string) => (el: Element): boolean => el.name === 'presence' && el.attrs.from === `${ROOM}/Nurse` && el.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs.role === role;
    assert.equal((await sendIq(romeoDesk, `<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Nurse' role='visitor'/></query>`, `type='set' to='${ROOM}'`)).attrs.type, 'result');
    await Promise.all([nurse.next(roleOfNurse('visitor')), romeoPhone.next(roleOfNurse('visitor')), until('xmpp.js sees the Nurse silenced', () => jxGot.find(roleOfNurse('visitor')))]);
    say(nurse, ROOM, 'Silenced?');
    const noVoice = await nurse.next((el) => el.name === 'message' && el.attrs.type === 'error');
    assert.equal(stanzaErrorOf(noVoice), 'forbidden');
    assert.equal((await sendIq(romeoDesk, `<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Nurse' role='participant'/></query>`, `type='set' to='${ROOM}'`)).attrs.type, 'result');
    await nurse.next(roleOfNurse('participant'));
    say(nurse, ROOM, 'I have my voice back');
    await Promise.all([groupchatWithBody(romeoDesk, ROOM, 'I have my voice back'), groupchatWithBody(romeoPhone, ROOM, 'I have my voice back'), jxMessage('I have my voice back'), jsMessage('I have my voice back')]);
    // Kick: Juliet is one occupant on two devices (xmpp.js over TCP, StanzaJS over WebSocket): both are removed (307, 110), the others see her leave once.
    assert.equal((await sendIq(romeoPhone, `<query xmlns='http://jabber.org/protocol/muc#admin'><item nick='Juliet' role='none'><reason>Go home</reason></item></query>`, `type='set' to='${ROOM}'`)).attrs.type, 'result');
    const gone = (el: Element): boolean => el.name === 'presence' && el.attrs.type === 'unavailable' && el.attrs.from === `${ROOM}/Juliet`;
    const jxGone = await until('xmpp.js kicked', () => jxGot.find(gone));
    assert.deepEqual(statusCodes(jxGone).sort(), [110, 307]);
    const jsGone = await until('StanzaJS kicked', () => jsUnavailable.find((p) => p.from === `${ROOM}/Juliet`));
    assert.ok(jsGone.muc?.statusCodes?.includes('307'));
    const atNurse = await nurse.next(gone);
    assert.deepEqual(statusCodes(atNurse), [307]);
    assert.equal(atNurse.getChild('x', NS_MUC_USER)?.getChild('item')?.getChildText('reason'), 'Go home');
    await nurse.nothing(gone, 300);
    // Both of Juliet's devices come back; the room's order and ids go on.
    await js.joinRoom(ROOM, 'Juliet');
    await jx.send(xml('presence', { to: `${ROOM}/Juliet` }, xml('x', { xmlns: NS_MUC }, xml('history', { maxchars: '0' }))));
    await until('xmpp.js back in', () => jxGot.find((el) => el.is('presence') && el.attrs.from === `${ROOM}/Juliet` && el.attrs.type === undefined && statusCodes(el).includes(110) && jxGot.indexOf(el) > jxGot.indexOf(jxGone)));
    say(romeoDesk, ROOM, 'Welcome back');
    const [wd, wx, ws] = await Promise.all([groupchatWithBody(nurse, ROOM, 'Welcome back'), jxMessage('Welcome back'), jsMessage('Welcome back')]);
    assert.equal(roomStanzaId(wx, ROOM), roomStanzaId(wd, ROOM));
    assert.equal(ws.stanzaIds?.find((i) => i.by === ROOM)?.id, roomStanzaId(wd, ROOM));
  });

  test('the room, its configuration and its archive survive a restart of the server', async () => {
    const before = await roomMam(romeoDesk as Conn, ROOM);
    for (const d of [romeoDesk, romeoPhone, nurse]) d.close();
    await jx.stop().catch(() => undefined);
    js.disconnect();
    await v.stop();
    v = await startVerona({ dataDir: v.dataDir });
    jxGot.length = 0;
    jsGot.length = 0;
    await devices();
    const info = await sendIq(nurse, "<query xmlns='http://jabber.org/protocol/disco#info'/>", `type='get' to='${ROOM}'`);
    const features = info.getChild('query')?.getChildren('feature').map((f) => f.attrs.var) ?? [];
    assert.ok(features.includes('muc_persistent'));
    assert.equal(info.getChild('query')?.getChild('identity')?.attrs.name, 'The balcony');
    // The owner is still the owner; history comes from the archive; the archive is whole.
    const r = await joinRaw(romeoDesk, ROOM, 'Romeo', { history: "<history maxstanzas='2'/>" });
    assert.equal(r.self.getChild('x', NS_MUC_USER)?.getChild('item')?.attrs.affiliation, 'owner');
    assert.deepEqual(r.history.map((m) => m.getChildText('body')), ['I have my voice back', 'Welcome back']);
    const after = await roomMam(romeoDesk as Conn, ROOM);
    assert.deepEqual(after.items.map((i) => i.id), before.items.map((i) => i.id));
    await joinRaw(nurse, ROOM, 'Nurse');
    say(nurse, ROOM, 'After the restart');
    const m = await groupchatWithBody(romeoDesk, ROOM, 'After the restart');
    const id = roomStanzaId(m, ROOM) as string;
    assert.ok(id > (before.items[before.items.length - 1]?.id ?? ''), 'new ids sort after the old ones');
    assert.ok(fromRoom(ROOM)(m));
  });
});
