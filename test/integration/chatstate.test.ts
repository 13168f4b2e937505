/**
 * "Every device holds the whole conversation" (issue 4), end to end on the
 * real server. Romeo has three clients, Julia two, of every kind:
 *
 *   romeo/desk   MR2 stream           priority 0
 *   romeo/web    legacy with carbons  priority 0
 *   romeo/old    plain legacy         priority 5 (RFC 6121 target for his bare JID)
 *   julia/laptop legacy with carbons  priority 5 (RFC 6121 target for her bare JID)
 *   julia/phone  MR2 stream           priority -1
 *
 * Every row of the fork table in both directions, with the exact copy each
 * client gets; the <stanza-id/> on every live copy is the id MAM returns for
 * it; the sender's computed id finds its message; Julia's phone goes away,
 * messages flow, and one "after my last id" query returns exactly what it
 * missed; a failed archive write still delivers and tells the MR2 sender.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { copyWithBody, device, innerMessage, mamQuery, nobodyGets, shapeOf, stanzaErrorCondition, stanzaId, bodyOf, type Dev, type Kind } from './mr2-helpers.js';

let v: Verona;
const R: Record<'desk' | 'web' | 'old', Dev> = {} as never;
const J: Record<'laptop' | 'phone', Dev> = {} as never;
const all = (): Dev[] => [R.desk, R.web, R.old, J.laptop, J.phone];

/** Every live copy that carried a stanza-id: what MAM must return for it. */
const seen: Array<{ owner: string; id: string; body: string; by: Dev }> = [];
/** The last archive id Julia's phone knows (from copies it got and from the messages it sent). */
let phoneLastId = '';

async function dev(user: 'romeo' | 'julia', resource: string, kind: Kind, priority = 0): Promise<Dev> {
  return device({ port: v.ports.c2s as number, user, password: user === 'romeo' ? 'r0meo' : 'ju1ia', resource, kind, priority });
}

before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['julia', 'ju1ia']] });
  R.desk = await dev('romeo', 'desk', 'mr2');
  R.web = await dev('romeo', 'web', 'carbons');
  R.old = await dev('romeo', 'old', 'plain', 5);
  J.laptop = await dev('julia', 'laptop', 'carbons', 5);
  J.phone = await dev('julia', 'phone', 'mr2', -1);
  // Drain the presence traffic of the logins.
  await new Promise((r) => setTimeout(r, 200));
  for (const c of all()) c.received.length = 0;
});
after(async () => {
  for (const c of all()) c?.close();
  await v.stop();
  v.cleanup();
});

let n = 0;
interface Expect {
  /** Clients that must get a copy, with its shape. */
  gets: Array<[Dev, 'plain' | 'sent' | 'received']>;
}

/**
 * Send one message and check who gets which copy: everyone listed gets
 * exactly that shape, everyone else nothing. Returns the copies.
 */
async function row(sender: Dev, attrs: string, extra: string, expect: Expect): Promise<{ body: string; id: string; copies: Map<Dev, Element> }> {
  const body = `m${++n}-${Math.random().toString(36).slice(2, 7)}`;
  const id = `id-${n}`;
  sender.send(`<message ${attrs} id='${id}'><body>${body}</body>${extra}</message>`);
  const copies = new Map<Dev, Element>();
  await Promise.all(
    expect.gets.map(async ([c, shape]) => {
      const el = await copyWithBody(c, body);
      assert.equal(shapeOf(el), shape, `${c.jid} gets a ${shape} copy`);
      copies.set(c, el);
    }),
  );
  // Nobody else, and nobody a second copy.
  await nobodyGets(all(), (el) => bodyOf(el) === body, 250);
  for (const [c, el] of copies) {
    const sid = stanzaId(el);
    if (sid) {
      seen.push({ owner: sid.by, id: sid.id, body, by: c });
      if (c === J.phone && sid.by === 'julia@localhost') phoneLastId = sid.id;
    }
  }
  return { body, id, copies };
}

describe('fork table on the wire', () => {
  test('chat, Romeo (MR2) -> julia bare: laptop plain, phone plain, romeo/web sent; the same stanza-id on Julia\'s copies', async () => {
    const r = await row(R.desk, `to='julia@localhost' type='chat'`, '', { gets: [[J.laptop, 'plain'], [J.phone, 'plain'], [R.web, 'sent']] });
    const a = stanzaId(r.copies.get(J.laptop)!);
    const b = stanzaId(r.copies.get(J.phone)!);
    assert.equal(a?.by, 'julia@localhost');
    assert.deepEqual(a, b);
    // The sent carbon carries Romeo's archive id: the one romeo/desk computed before sending.
    assert.deepEqual(stanzaId(r.copies.get(R.web)!), { by: 'romeo@localhost', id: `${R.desk.streamId}-${r.id}` });
  });

  test('chat, Julia (carbons) -> romeo bare: old plain (top priority), desk plain (MR2), web received; phone sent', async () => {
    const r = await row(J.laptop, `to='romeo@localhost' type='chat'`, '', { gets: [[R.old, 'plain'], [R.desk, 'plain'], [R.web, 'received'], [J.phone, 'sent']] });
    assert.equal(stanzaId(r.copies.get(R.web)!)?.by, 'romeo@localhost');
    assert.equal(stanzaId(r.copies.get(J.phone)!)?.by, 'julia@localhost', 'a legacy sender still gets a server-made id in its archive');
  });

  test('chat, Romeo (carbons) -> julia/phone: phone plain, laptop received; desk sent, old nothing', async () => {
    await row(R.web, `to='julia@localhost/phone' type='chat'`, '', { gets: [[J.phone, 'plain'], [J.laptop, 'received'], [R.desk, 'sent']] });
  });

  test('normal, Julia (MR2) -> romeo/old: old plain, desk received, web received; laptop sent', async () => {
    await row(J.phone, `to='romeo@localhost/old'`, '', { gets: [[R.old, 'plain'], [R.desk, 'received'], [R.web, 'received'], [J.laptop, 'sent']] });
  });

  test('headline, Julia (carbons) -> romeo bare: every non-negative resource plain; MR2 phone gets sent (outgoing headline forks)', async () => {
    await row(J.laptop, `to='romeo@localhost' type='headline'`, '', { gets: [[R.old, 'plain'], [R.desk, 'plain'], [R.web, 'plain'], [J.phone, 'sent']] });
  });

  test('headline, Romeo (MR2) -> julia bare: laptop only (incoming headline is not forked; the phone has priority -1)', async () => {
    await row(R.desk, `to='julia@localhost' type='headline'`, '', { gets: [[J.laptop, 'plain']] });
  });

  test('private, Romeo (plain) -> julia/phone: phone plain, laptop nothing (carbons honour private), desk sent (MR2 ignores private)', async () => {
    await row(R.old, `to='julia@localhost/phone' type='chat'`, `<private xmlns='urn:xmpp:carbons:2'/>`, { gets: [[J.phone, 'plain'], [R.desk, 'sent']] });
  });

  test('no-copy hint, Julia (carbons) -> romeo/old: old plain, desk received (MR2), web nothing; phone sent', async () => {
    await row(J.laptop, `to='romeo@localhost/old' type='chat'`, `<no-copy xmlns='urn:xmpp:hints'/>`, { gets: [[R.old, 'plain'], [R.desk, 'received'], [J.phone, 'sent']] });
  });

  test('full JID whose resource is gone: as the bare JID', async () => {
    await row(R.desk, `to='julia@localhost/gone' type='chat'`, '', { gets: [[J.laptop, 'plain'], [J.phone, 'plain'], [R.web, 'sent']] });
  });

  test('groupchat to a bare JID: bounced, nobody gets a copy', async () => {
    J.phone.send(`<message to='romeo@localhost' type='groupchat' id='gc1'><body>gc-bounce</body></message>`);
    const err = await J.phone.next((el) => el.name === 'message' && el.attrs.type === 'error' && el.attrs.id === 'gc1');
    assert.equal(stanzaErrorCondition(err), 'service-unavailable');
    await nobodyGets(all(), (el) => bodyOf(el) === 'gc-bounce');
  });

  test('error messages are not forked: only the addressed resource gets one', async () => {
    R.desk.send(`<message to='julia@localhost/laptop' type='error' id='err1'><body>err-copy</body><error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></message>`);
    const el = await copyWithBody(J.laptop, 'err-copy');
    assert.equal(shapeOf(el), 'plain');
    await nobodyGets(all(), (e) => bodyOf(e) === 'err-copy');
  });

  test('a chat state alone is forked to MR2 resources but not archived (no stanza-id)', async () => {
    R.desk.send(`<message to='julia@localhost/laptop' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
    const isCs = (el: Element): boolean => el.name === 'message' && innerMessage(el).getChild('composing', 'http://jabber.org/protocol/chatstates') !== undefined;
    const a = await J.laptop.next(isCs);
    const b = await J.phone.next(isCs);
    const c = await R.web.next(isCs);
    assert.equal(shapeOf(a), 'plain');
    assert.equal(shapeOf(b), 'received');
    assert.equal(shapeOf(c), 'sent');
    for (const el of [a, b, c]) assert.equal(stanzaId(el), undefined);
  });

  test('a client-supplied stanza-id claiming our server is stripped; origin-id is kept', async () => {
    R.desk.send(`<message to='julia@localhost/laptop' type='chat' id='spoof1'><body>spoof</body><stanza-id xmlns='urn:xmpp:sid:0' by='julia@localhost' id='FAKE'/><stanza-id xmlns='urn:xmpp:sid:0' by='localhost' id='FAKE2'/><origin-id xmlns='urn:xmpp:sid:0' id='orig-1'/></message>`);
    const el = await copyWithBody(J.laptop, 'spoof');
    const sids = el.getChildren('stanza-id', 'urn:xmpp:sid:0');
    assert.equal(sids.length, 1);
    assert.notEqual(sids[0]?.attrs.id, 'FAKE');
    assert.equal(el.getChild('origin-id', 'urn:xmpp:sid:0')?.attrs.id, 'orig-1');
    seen.push({ owner: 'julia@localhost', id: String(sids[0]?.attrs.id), body: 'spoof', by: J.laptop });
    await copyWithBody(J.phone, 'spoof');
    await copyWithBody(R.web, 'spoof');
  });
});

describe('archive ids', () => {
  test('the stanza-id on every live copy is the id MAM returns for that message, in the right archive', async () => {
    assert.ok(seen.length >= 15, `copies with ids: ${seen.length}`);
    for (const owner of ['romeo@localhost', 'julia@localhost']) {
      const mine = seen.filter((s) => s.owner === owner);
      const asker = owner.startsWith('romeo') ? R.desk : J.laptop;
      const ids = [...new Set(mine.map((s) => s.id))];
      const page = await mamQuery(asker, { fields: { ids } });
      assert.equal(page.items.length, ids.length);
      for (const s of mine) assert.equal(page.items.find((i) => i.id === s.id)?.body, s.body, `${owner} ${s.id}`);
    }
  });

  test('each message is in each archive once, under different ids', async () => {
    const rm = await mamQuery(R.desk, { rsm: '<max>250</max>' });
    const jm = await mamQuery(J.laptop, { rsm: '<max>250</max>' });
    const bodies = (p: typeof rm): string[] => p.items.map((i) => String(i.body));
    assert.equal(new Set(bodies(rm)).size, rm.items.length, 'no duplicates in romeo\'s archive');
    assert.equal(new Set(bodies(jm)).size, jm.items.length, 'no duplicates in julia\'s archive');
    const shared = bodies(rm).filter((b) => bodies(jm).includes(b));
    assert.ok(shared.length >= 8);
    for (const b of shared) assert.notEqual(rm.items.find((i) => i.body === b)?.id, jm.items.find((i) => i.body === b)?.id);
    // Headlines and chat states are not archived.
    assert.ok(!jm.items.some((i) => i.message.attrs.type === 'headline'));
    // Stored copies carry no stanza-id of ours.
    assert.ok(!jm.items.some((i) => i.message.getChild('stanza-id')?.attrs.by === 'julia@localhost'));
  });

  test('the sender computes its archive id before sending, and MAM finds the message under it', async () => {
    const id = 'computed-1';
    R.desk.send(`<message to='julia@localhost' type='chat' id='${id}'><body>computed</body></message>`);
    await copyWithBody(J.phone, 'computed').then((el) => (phoneLastId = stanzaId(el)!.id));
    await copyWithBody(J.laptop, 'computed');
    await copyWithBody(R.web, 'computed');
    const page = await mamQuery(R.desk, { fields: { ids: `${R.desk.streamId}-${id}` } });
    assert.equal(page.items[0]?.body, 'computed');
  });

  test('messages Julia\'s phone sends are known to it by computed id', async () => {
    const id = 'phone-own-1';
    J.phone.send(`<message to='romeo@localhost' type='chat' id='${id}'><body>from-phone</body></message>`);
    await copyWithBody(R.desk, 'from-phone');
    await copyWithBody(J.laptop, 'from-phone');
    await copyWithBody(R.old, 'from-phone');
    await copyWithBody(R.web, 'from-phone');
    phoneLastId = `${J.phone.streamId}-${id}`;
    const page = await mamQuery(J.phone, { fields: { ids: phoneLastId } });
    assert.equal(page.items[0]?.body, 'from-phone');
  });
});

describe('catching up', () => {
  test('Julia\'s phone goes offline; one "after my last id" query returns exactly what it missed', async () => {
    J.phone.close();
    await J.phone.waitClose();
    await new Promise((r) => setTimeout(r, 100));
    const missed: string[] = [];
    for (let i = 0; i < 5; i++) {
      const body = `while-away-${i}`;
      missed.push(body);
      const sender = i % 2 ? J.laptop : R.desk;
      sender.send(`<message to='${sender === R.desk ? 'julia@localhost' : 'romeo@localhost'}' type='chat' id='away-${i}'><body>${body}</body></message>`);
      await copyWithBody(sender === R.desk ? J.laptop : R.old, body);
    }
    // Not archived, so not part of what the phone should fetch.
    R.desk.send(`<message to='julia@localhost' type='chat' id='away-cs'><active xmlns='http://jabber.org/protocol/chatstates'/></message>`);
    const phone = await dev('julia', 'phone', 'mr2', -1);
    J.phone = phone;
    const page = await mamQuery(phone, { fields: { 'after-id': phoneLastId } });
    assert.deepEqual(page.items.map((i) => i.body), missed);
    assert.equal(page.complete, true);
    phoneLastId = page.last as string;
    // Caught up: asking again gives nothing.
    const again = await mamQuery(phone, { fields: { 'after-id': phoneLastId } });
    assert.deepEqual(again.items, []);
    assert.equal(again.complete, true);
    // Romeo's MR2 desk can do the same from the last id it computed.
  });
});

describe('archive failure', () => {
  test('a failed archive write still delivers; the MR2 sender gets <archive-failed/>; it is logged', async () => {
    // A real SQLite failure: a trigger in the server's database refuses rows with this body.
    const db = new Database(path.join(v.dataDir, 'verona.sqlite'), { timeout: 5000 });
    db.exec(`CREATE TRIGGER test_archive_fail BEFORE INSERT ON archive WHEN NEW.stanza LIKE '%ARCHIVE-FAIL%' BEGIN SELECT RAISE(ABORT, 'archive refused (test)'); END;`);
    try {
      R.desk.send(`<message to='julia@localhost' type='chat' id='af-1'><body>ARCHIVE-FAIL</body></message>`);
      const nonza = await R.desk.next((el) => el.name === 'archive-failed');
      assert.equal(nonza.attrs.xmlns, 'urn:xmpp:mr2:0');
      assert.equal(nonza.attrs.id, 'af-1');
      assert.equal(nonza.attrs.reason, 'storage');
      const a = await copyWithBody(J.laptop, 'ARCHIVE-FAIL');
      const b = await copyWithBody(J.phone, 'ARCHIVE-FAIL');
      const c = await copyWithBody(R.web, 'ARCHIVE-FAIL');
      for (const el of [a, b, c]) assert.equal(stanzaId(el), undefined, 'no stanza-id for a message that is not in the archive');
      await assert.rejects(mamQuery(R.desk, { fields: { ids: `${R.desk.streamId}-af-1` } }), /item-not-found/);
      // A legacy sender is not told (it has no archive ids), but the message is delivered too.
      R.old.send(`<message to='julia@localhost' type='chat' id='af-2'><body>ARCHIVE-FAIL 2</body></message>`);
      await copyWithBody(J.laptop, 'ARCHIVE-FAIL 2');
      await R.old.nothing((el) => el.name === 'archive-failed', 200);
    } finally {
      db.exec('DROP TRIGGER test_archive_fail');
      db.close();
    }
    // Archiving works again.
    R.desk.send(`<message to='julia@localhost' type='chat' id='af-3'><body>after-failure</body></message>`);
    assert.ok(stanzaId(await copyWithBody(J.laptop, 'after-failure')));
    assert.ok(v.output.some((l) => l.includes('archive write failed')), 'the failure is logged');
    // And counted: both sides of both failed messages.
    const metrics = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
    const count = (side: string): number => Number(metrics.match(new RegExp(`verona_archive_failures_total\\{side="${side}"\\} (\\d+)`))?.[1] ?? 0);
    assert.equal(count('sender'), 2, metrics.split('\n').filter((l) => l.includes('archive')).join('\n'));
    assert.equal(count('recipient'), 2);
  });

  test("the sender's own preferences exclude the contact: the MR2 sender is told its id is not archived; the recipient's archive has it", async () => {
    const setPrefs = async (never: string): Promise<void> => {
      R.desk.send(`<iq type='set' id='pr-${never.length}'><prefs xmlns='urn:xmpp:mam:2' default='always'><always/><never>${never}</never></prefs></iq>`);
      assert.equal((await R.desk.next((el) => el.name === 'iq' && el.attrs.id === `pr-${never.length}`)).attrs.type, 'result');
    };
    await setPrefs('<jid>julia@localhost</jid>');
    try {
      R.desk.send(`<message to='julia@localhost' type='chat' id='np-1'><body>not in my archive</body></message>`);
      const nonza = await R.desk.next((el) => el.name === 'archive-failed');
      assert.equal(nonza.attrs.id, 'np-1');
      assert.equal(nonza.attrs.reason, 'preferences');
      await assert.rejects(mamQuery(R.desk, { fields: { ids: `${R.desk.streamId}-np-1` } }), /item-not-found/);
      // Julia's archive is governed by Julia's preferences: her copies carry her archive's id.
      const got = await copyWithBody(J.laptop, 'not in my archive');
      assert.ok(stanzaId(got));
      // Romeo's web (carbons) copy has no stanza-id: nothing in Romeo's archive to point at.
      assert.equal(stanzaId(await copyWithBody(R.web, 'not in my archive')), undefined);
    } finally {
      await setPrefs('');
    }
    R.desk.send(`<message to='julia@localhost' type='chat' id='np-2'><body>archived again</body></message>`);
    await copyWithBody(J.laptop, 'archived again');
    await R.desk.nothing((el) => el.name === 'archive-failed', 200);
    const page = await mamQuery(R.desk, { fields: { ids: `${R.desk.streamId}-np-2` } });
    assert.equal(page.items.length, 1);
  });
});
