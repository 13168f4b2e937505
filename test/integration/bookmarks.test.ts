/**
 * XEP-0402 <-> XEP-0048 bookmark conversion against the real server: a room
 * bookmarked natively shows up for a legacy client in private XML storage and
 * on PEP storage:bookmarks; a legacy client's private XML document becomes
 * native items (and retractions), keeping its <url/>s; a document published on
 * PEP storage:bookmarks converts too; the account advertises #compat.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, type TestClient } from '../helpers/client.js';

const B2 = 'urn:xmpp:bookmarks:1';
const PUBSUB = 'http://jabber.org/protocol/pubsub';
let v: Verona;

before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et'], ['nurse', 'nurs3']] });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const connect = (user: string, password: string, resource: string) => connectClient({ port: v.ports.c2s as number, user, password, resource });

async function nativeItems(c: TestClient): Promise<Map<string, Element>> {
  const r = await sendIq(c, `<pubsub xmlns='${PUBSUB}'><items node='${B2}'/></pubsub>`, "type='get'");
  const m = new Map<string, Element>();
  for (const it of r.getChild('pubsub', PUBSUB)?.getChild('items')?.getChildren('item') ?? []) m.set(String(it.attrs.id), it.getChild('conference', B2) as Element);
  return m;
}

async function privateDoc(c: TestClient): Promise<Element | undefined> {
  const r = await sendIq(c, "<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'/></query>", "type='get'");
  return r.getChild('query')?.getChild('storage', 'storage:bookmarks');
}

async function pepLegacyDoc(c: TestClient): Promise<Element | undefined> {
  const r = await sendIq(c, `<pubsub xmlns='${PUBSUB}'><items node='storage:bookmarks'/></pubsub>`, "type='get'");
  return r.getChild('pubsub', PUBSUB)?.getChild('items')?.getChild('item')?.getChild('storage', 'storage:bookmarks');
}

/** Conversions run just after the answer; poll until `check` passes. */
async function eventually<T>(read: () => Promise<T>, check: (t: T) => boolean, what: string): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 100; i++) {
    last = await read();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: never converged (last: ${String(last)})`);
}

test('the account advertises urn:xmpp:bookmarks:1#compat', async () => {
  const c = await connect('romeo', 'r0meo', 'disco');
  try {
    const r = await sendIq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='romeo@localhost'");
    const f = r.getChild('query')?.getChildren('feature').map((e) => e.attrs.var) ?? [];
    assert.ok(f.includes(`${B2}#compat`));
    assert.ok(f.includes(`${B2}#compat-pep`));
  } finally {
    c.destroy();
  }
});

test('native bookmarks (XEP-0402) appear in private XML and on PEP storage:bookmarks, and removals follow', async () => {
  const c = await connect('romeo', 'r0meo', 'modern');
  try {
    const pub = await sendIq(c, `<pubsub xmlns='${PUBSUB}'><publish node='${B2}'><item id='verona@conference.localhost'><conference xmlns='${B2}' name='The Square' autojoin='true'><nick>romeo</nick></conference></item></publish>
      <publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>whitelist</value></field></x></publish-options></pubsub>`);
    assert.equal(pub.attrs.type, 'result', pub.toString());
    const doc = await eventually(() => privateDoc(c), (d) => d?.getChild('conference') !== undefined, 'private XML');
    const conf = doc?.getChild('conference') as Element;
    assert.equal(conf.attrs.jid, 'verona@conference.localhost');
    assert.equal(conf.attrs.name, 'The Square');
    assert.equal(conf.attrs.autojoin, 'true');
    assert.equal(conf.getChildText('nick'), 'romeo');
    const pepDoc = await eventually(() => pepLegacyDoc(c), (d) => d !== undefined, 'PEP storage:bookmarks');
    assert.equal(pepDoc?.getChild('conference')?.attrs.jid, 'verona@conference.localhost');

    const ret = await sendIq(c, `<pubsub xmlns='${PUBSUB}'><retract node='${B2}' notify='true'><item id='verona@conference.localhost'/></retract></pubsub>`);
    assert.equal(ret.attrs.type, 'result');
    await eventually(() => privateDoc(c), (d) => d !== undefined && d.getChildren('conference').length === 0, 'private XML after retract');
  } finally {
    c.destroy();
  }
});

test('a legacy client (private XML) writes bookmarks: native items follow, <url/>s stay legacy, and a modern client is notified', async () => {
  const modern = await connect('juliet', 'jul1et', 'modern');
  const legacy = await connect('juliet', 'jul1et', 'legacy');
  try {
    // The modern client announces +notify for bookmarks (caps would too); it gets the pushes as the owner.
    const set = await sendIq(legacy, `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>
      <conference jid='capulets@conference.localhost' name='Family' autojoin='true'><nick>jules</nick><password>tomb</password></conference>
      <conference jid='ball@conference.localhost' name='The Ball'/>
      <url name='Verona' url='https://verona.example/'/></storage></query>`);
    assert.equal(set.attrs.type, 'result', set.toString());
    const items = await eventually(() => nativeItems(modern), (m) => m.size === 2, 'native items');
    const fam = items.get('capulets@conference.localhost') as Element;
    assert.equal(fam.attrs.name, 'Family');
    assert.equal(fam.attrs.autojoin, 'true');
    assert.equal(fam.getChildText('nick'), 'jules');
    assert.equal(fam.getChildText('password'), 'tomb');
    assert.equal(items.get('ball@conference.localhost')?.attrs.autojoin, 'false');
    assert.equal((await pepLegacyDoc(modern))?.getChildren('conference').length, 2, 'the PEP legacy copy follows too');

    // The modern client adds one natively: the legacy document gains it and keeps its <url/>.
    await sendIq(modern, `<pubsub xmlns='${PUBSUB}'><publish node='${B2}'><item id='chapel@conference.localhost'><conference xmlns='${B2}' name='Chapel'><extensions><x xmlns='urn:example:pin'/></extensions></conference></item></publish></pubsub>`);
    const doc = await eventually(() => privateDoc(legacy), (d) => (d?.getChildren('conference').length ?? 0) === 3, 'legacy document');
    assert.equal(doc?.getChild('url')?.attrs.url, 'https://verona.example/');

    // The legacy client drops one room: it is retracted natively; the native extensions of the others survive.
    const set2 = await sendIq(legacy, `<query xmlns='jabber:iq:private'><storage xmlns='storage:bookmarks'>
      <conference jid='capulets@conference.localhost' name='Family' autojoin='true'><nick>jules</nick><password>tomb</password></conference>
      <conference jid='chapel@conference.localhost' name='Chapel (renamed)'/></storage></query>`);
    assert.equal(set2.attrs.type, 'result');
    const after2 = await eventually(() => nativeItems(modern), (m) => m.size === 2 && m.get('chapel@conference.localhost')?.attrs.name === 'Chapel (renamed)', 'native after legacy removal');
    assert.ok(!after2.has('ball@conference.localhost'));
    assert.ok(after2.get('chapel@conference.localhost')?.getChild('extensions', B2)?.getChild('x', 'urn:example:pin'), 'extensions kept');
  } finally {
    modern.destroy();
    legacy.destroy();
  }
});

test('a legacy document published on PEP storage:bookmarks converts to native items and private XML', async () => {
  const c = await connect('nurse', 'nurs3', 'old-pep');
  try {
    const pub = await sendIq(c, `<pubsub xmlns='${PUBSUB}'><publish node='storage:bookmarks'><item id='current'><storage xmlns='storage:bookmarks'><conference jid='kitchen@conference.localhost' name='Kitchen' autojoin='1'/></storage></item></publish></pubsub>`);
    assert.equal(pub.attrs.type, 'result', pub.toString());
    const items = await eventually(() => nativeItems(c), (m) => m.size === 1, 'native');
    assert.equal(items.get('kitchen@conference.localhost')?.attrs.autojoin, 'true');
    const doc = await eventually(() => privateDoc(c), (d) => d?.getChild('conference') !== undefined, 'private');
    assert.equal(doc?.getChild('conference')?.attrs.name, 'Kitchen');
  } finally {
    c.destroy();
  }
});
