/**
 * PEP (XEP-0163) against the real server over real sockets: caps-filtered
 * notifications (the server asks the client's disco#info for an unknown ver,
 * the client answers, then notifications flow), access models, publish
 * options, retract/delete/purge notifications, last items on coming online,
 * persistence across a restart, and tests shaped like the real users of PEP
 * (OMEMO device lists, avatars, bookmarks, displayed markers), one of them
 * with a real client library (@xmpp/client).
 *
 * Each test uses its own accounts, so the tests of one server do not see
 * each other's presence or subscriptions.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { xml } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import type { Element as XElement } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, nextId, type TestClient } from '../helpers/client.js';

const PW = 'secret';
const USERS = [
  'juliet', 'romeo', 'nurse', 'benvolio', // notify
  'rosaline', 'paris', // lying caps
  'capulet', 'montague', // access (benvolio is the stranger)
  'tybalt', 'mercutio', // options
  'friar', 'balthasar', // retract/delete
  'lady', 'lord', // last item
  'peter', 'sampson', // roster approval
  'gregory', 'abram', // @xmpp/client
  'apothecary', // bookmarks + mds
  'watchman', 'citizen', // avatar
];
const PEP = 'http://jabber.org/protocol/pubsub';
const NS_EVENT = 'http://jabber.org/protocol/pubsub#event';
const NS_OWNER = 'http://jabber.org/protocol/pubsub#owner';
const NS_ERRORS = 'http://jabber.org/protocol/pubsub#errors';
const DISCO_INFO = 'http://jabber.org/protocol/disco#info';
const CAPS_NODE = 'https://verona.test/client';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // @xmpp/client upgrades with STARTTLS; the test server's certificate is self-signed

let v: Verona;

before(async () => {
  v = await startVerona({ users: USERS.map((u) => [u, PW] as [string, string]) });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

async function login(user: string, resource = 'r', port = v.ports.c2s as number): Promise<TestClient> {
  return connectClient({ port, user, password: PW, resource });
}

/** Send an IQ and wait for its answer (result or error). */
async function iq(c: TestClient, type: 'get' | 'set', payload: string, to?: string): Promise<XElement> {
  const id = nextId();
  c.send(`<iq type='${type}' id='${id}'${to ? ` to='${to}'` : ''}>${payload}</iq>`);
  return c.next((el) => el.name === 'iq' && el.attrs.id === id && (el.attrs.type === 'result' || el.attrs.type === 'error'));
}

async function ok(c: TestClient, type: 'get' | 'set', payload: string, to?: string): Promise<XElement> {
  const r = await iq(c, type, payload, to);
  assert.equal(r.attrs.type, 'result', `expected a result, got ${r.toString()}`);
  return r;
}

/** The error condition and pubsub#errors condition of an error reply. */
async function fails(c: TestClient, type: 'get' | 'set', payload: string, to?: string): Promise<[string, string | undefined]> {
  const r = await iq(c, type, payload, to);
  assert.equal(r.attrs.type, 'error', `expected an error, got ${r.toString()}`);
  const err = r.getChild('error');
  const cond = err?.children.find((e) => typeof e !== 'string' && e.attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas') as XElement | undefined;
  const app = err?.children.find((e) => typeof e !== 'string' && e.attrs.xmlns === NS_ERRORS) as XElement | undefined;
  return [cond?.name ?? '?', app?.name];
}

/** XEP-0115 §5.1 for one identity and a list of features, written here independently of the server's code. */
function ver(features: string[]): string {
  const s = 'client/pc//Verona test<' + [...new Set(features)].sort().map((f) => f + '<').join('');
  return createHash('sha1').update(s, 'utf8').digest('base64');
}

function discoAnswer(features: string[]): string {
  return `<identity category='client' type='pc' name='Verona test'/>` + [...new Set(features)].map((f) => `<feature var='${f}'/>`).join('');
}

/**
 * Send available presence with caps for `notify` (+ a per-client feature, so each client
 * has its own ver and gets asked), answer the server's disco#info query, and wait until
 * the server has taken the answer (a ping round trip after it).
 */
async function online(c: TestClient, notify: string[], how: 'answer' | 'lie' | 'cached' = 'answer'): Promise<string> {
  const features = [DISCO_INFO, 'http://jabber.org/protocol/caps', `urn:verona:test:${c.jid}`, ...notify.map((n) => n + '+notify')];
  const v1 = ver(features);
  c.send(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='${CAPS_NODE}' ver='${v1}'/></presence>`);
  if (how !== 'cached') {
    const q = await c.next((el) => el.name === 'iq' && el.attrs.type === 'get' && el.getChild('query', DISCO_INFO) !== undefined);
    assert.equal(q.attrs.from, 'localhost');
    assert.equal(q.getChild('query')?.attrs.node, `${CAPS_NODE}#${v1}`);
    // A lying client claims +notify for a node its ver does not cover.
    const answered = how === 'lie' ? [...features, 'urn:xmpp:avatar:metadata+notify', 'eu.siacs.conversations.axolotl.devicelist+notify'] : features;
    c.send(`<iq type='result' id='${q.attrs.id}' to='${q.attrs.from}'><query xmlns='${DISCO_INFO}' node='${CAPS_NODE}#${v1}'>${discoAnswer(answered)}</query></iq>`);
  }
  await ok(c, 'get', `<ping xmlns='urn:xmpp:ping'/>`, 'localhost');
  return v1;
}

/** `a` subscribes to `b`'s presence and `b` approves (both online). */
async function subscribe(a: TestClient, b: TestClient): Promise<void> {
  const bBare = b.jid.split('/')[0] as string;
  const aBare = a.jid.split('/')[0] as string;
  a.send(`<presence to='${bBare}' type='subscribe'/>`);
  await b.next((el) => el.name === 'presence' && el.attrs.type === 'subscribe' && el.attrs.from === aBare);
  b.send(`<presence to='${aBare}' type='subscribed'/>`);
  await a.next((el) => el.name === 'presence' && el.attrs.type === 'subscribed' && el.attrs.from === bBare);
}

const isEvent = (from: string, node?: string) => (el: XElement): boolean => {
  if (el.name !== 'message' || el.attrs.from !== from) return false;
  const ev = el.getChild('event', NS_EVENT);
  if (!ev) return false;
  return node === undefined || ev.getChildElements().some((c) => c.attrs.node === node);
};

function eventChild(el: XElement): XElement {
  const ev = el.getChild('event', NS_EVENT);
  assert.ok(ev, 'has event');
  const c = ev.getChildElements()[0];
  assert.ok(c);
  return c;
}

function publish(node: string, id: string, payload: string, options?: Record<string, string>): string {
  let opts = '';
  if (options) {
    opts = `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
      Object.entries(options).map(([k, val]) => `<field var='${k}'><value>${val}</value></field>`).join('') + `</x></publish-options>`;
  }
  return `<pubsub xmlns='${PEP}'><publish node='${node}'><item${id ? ` id='${id}'` : ''}>${payload}</item></publish>${opts}</pubsub>`;
}

const AVATAR_META = 'urn:xmpp:avatar:metadata';
const DEVICELIST = 'eu.siacs.conversations.axolotl.devicelist';
const BOOKMARKS = 'urn:xmpp:bookmarks:1';
const MDS = 'urn:xmpp:mds:displayed:0';

describe('PEP on the real server', () => {
  test('disco: the account is a pubsub/pep service, and disco#items lists the nodes the asker may see', async () => {
    const cap = await login('capulet');
    const mon = await login('montague');
    const stranger = await login('benvolio', 'disco');
    try {
      cap.send('<presence/>');
      mon.send('<presence/>');
      stranger.send('<presence/>');
      await subscribe(mon, cap); // Montague sees Capulet's presence
      const info = await ok(cap, 'get', `<query xmlns='${DISCO_INFO}'/>`, 'capulet@localhost');
      const q = info.getChild('query');
      assert.ok(q?.getChildren('identity').some((i) => i.attrs.category === 'pubsub' && i.attrs.type === 'pep'));
      const features = q?.getChildren('feature').map((f) => f.attrs.var) ?? [];
      for (const f of ['publish', 'auto-create', 'publish-options', 'retrieve-items', 'retract-items', 'delete-nodes', 'last-published',
        'access-presence', 'access-open', 'access-whitelist', 'persistent-items', 'config-node', 'item-ids']) {
        assert.ok(features.includes(`${PEP}#${f}`), f);
      }
      await ok(cap, 'set', publish('urn:test:presence-node', 'a', `<x xmlns='urn:test'/>`));
      await ok(cap, 'set', publish('urn:test:open-node', 'b', `<x xmlns='urn:test'/>`, { 'pubsub#access_model': 'open' }));
      await ok(cap, 'set', publish('urn:test:private-node', 'c', `<x xmlns='urn:test'/>`, { 'pubsub#access_model': 'whitelist' }));
      const nodesOf = async (c: TestClient): Promise<string[]> => {
        const r = await ok(c, 'get', `<query xmlns='http://jabber.org/protocol/disco#items'/>`, 'capulet@localhost');
        return (r.getChild('query')?.getChildren('item') ?? []).map((i) => { assert.equal(i.attrs.jid, 'capulet@localhost'); return i.attrs.node as string; }).sort();
      };
      assert.deepEqual(await nodesOf(cap), ['urn:test:open-node', 'urn:test:presence-node', 'urn:test:private-node']);
      assert.deepEqual(await nodesOf(mon), ['urn:test:open-node', 'urn:test:presence-node']);
      assert.deepEqual(await nodesOf(stranger), ['urn:test:open-node']);
      // Item ids of one node (XEP-0060 §5.5).
      const items = await ok(mon, 'get', `<query xmlns='http://jabber.org/protocol/disco#items' node='urn:test:presence-node'/>`, 'capulet@localhost');
      assert.deepEqual(items.getChild('query')?.getChildren('item').map((i) => i.attrs.name), ['a']);

      // Access models on items retrieval (XEP-0060 §6.5.9).
      const get = (node: string) => `<pubsub xmlns='${PEP}'><items node='${node}'/></pubsub>`;
      assert.equal((await ok(mon, 'get', get('urn:test:presence-node'), 'capulet@localhost')).getChild('pubsub')?.getChild('items')?.getChildren('item').length, 1);
      assert.deepEqual(await fails(stranger, 'get', get('urn:test:presence-node'), 'capulet@localhost'), ['not-authorized', 'presence-subscription-required']);
      assert.equal((await ok(stranger, 'get', get('urn:test:open-node'), 'capulet@localhost')).getChild('pubsub')?.getChild('items')?.getChildren('item').length, 1);
      assert.deepEqual(await fails(mon, 'get', get('urn:test:private-node'), 'capulet@localhost'), ['not-allowed', 'closed-node']);
      assert.deepEqual(await fails(stranger, 'get', get('urn:test:private-node'), 'capulet@localhost'), ['not-allowed', 'closed-node']);
      assert.equal((await ok(cap, 'get', get('urn:test:private-node'))).getChild('pubsub')?.getChild('items')?.getChildren('item').length, 1);
      assert.deepEqual(await fails(stranger, 'get', get('urn:test:nothing-here'), 'capulet@localhost'), ['item-not-found', undefined]);
      // Only the owner publishes.
      assert.deepEqual(await fails(mon, 'set', publish('urn:test:presence-node', 'x', `<x xmlns='urn:test'/>`), 'capulet@localhost'), ['forbidden', undefined]);
      // The owner puts Prince on the whitelist (affiliation member): now he may read.
      await ok(cap, 'set', `<pubsub xmlns='${NS_OWNER}'><affiliations node='urn:test:private-node'><affiliation jid='benvolio@localhost' affiliation='member'/></affiliations></pubsub>`);
      assert.equal((await ok(stranger, 'get', get('urn:test:private-node'), 'capulet@localhost')).getChild('pubsub')?.getChild('items')?.getChildren('item').length, 1);
      const affs = await ok(cap, 'get', `<pubsub xmlns='${NS_OWNER}'><affiliations node='urn:test:private-node'/></pubsub>`);
      assert.deepEqual(
        affs.getChild('pubsub')?.getChild('affiliations')?.getChildren('affiliation').map((a) => `${a.attrs.jid}=${a.attrs.affiliation}`),
        ['capulet@localhost=owner', 'benvolio@localhost=member'],
      );
      // A contact the owner blocks (XEP-0191) reads nothing any more.
      await ok(cap, 'set', `<block xmlns='urn:xmpp:blocking'><item jid='montague@localhost'/></block>`);
      const blocked = await iq(mon, 'get', get('urn:test:presence-node'), 'capulet@localhost');
      assert.equal(blocked.attrs.type, 'error');
    } finally {
      cap.close();
      mon.close();
      stranger.close();
    }
  });

  test('a publish reaches the owner and contacts whose caps ask +notify (after the server learnt their caps); not the others', async () => {
    const juliet = await login('juliet', 'balcony');
    const julietPhone = await login('juliet', 'phone');
    const romeo = await login('romeo', 'orchard');
    const nurse = await login('nurse', 'kitchen');
    const benvolio = await login('benvolio', 'street');
    try {
      await online(juliet, [AVATAR_META]);
      await online(julietPhone, []);
      await online(romeo, [AVATAR_META]);
      await online(nurse, ['urn:xmpp:something-else']);
      await online(benvolio, [AVATAR_META]); // +notify, but no presence subscription
      await subscribe(romeo, juliet);
      await subscribe(nurse, juliet);

      const meta = `<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='12345' width='64' height='64' id='111f4b3c50d7b0df729d299bc6f8e9ef9066971f' type='image/png'/></metadata>`;
      const r = await ok(juliet, 'set', publish(AVATAR_META, '111f4b3c50d7b0df729d299bc6f8e9ef9066971f', meta));
      assert.equal(r.getChild('pubsub')?.getChild('publish')?.getChild('item')?.attrs.id, '111f4b3c50d7b0df729d299bc6f8e9ef9066971f');

      for (const c of [romeo, juliet]) {
        const m = await c.next(isEvent('juliet@localhost', AVATAR_META));
        assert.equal(m.attrs.to, c.jid);
        assert.equal(m.attrs.type, 'headline');
        const items = eventChild(m);
        assert.equal(items.name, 'items');
        assert.equal(items.attrs.node, AVATAR_META);
        const item = items.getChild('item');
        assert.equal(item?.attrs.id, '111f4b3c50d7b0df729d299bc6f8e9ef9066971f');
        assert.equal(item?.getChild('metadata', AVATAR_META)?.getChild('info')?.attrs.bytes, '12345');
      }
      await Promise.all([
        julietPhone.nothing((el) => el.name === 'message', 300),
        nurse.nothing((el) => el.name === 'message', 300),
        benvolio.nothing((el) => el.name === 'message', 300),
      ]);

      // Romeo goes unavailable: no more notifications for him; back online, he gets the last item again.
      romeo.send(`<presence type='unavailable'/>`);
      await ok(romeo, 'get', `<ping xmlns='urn:xmpp:ping'/>`, 'localhost');
      await ok(juliet, 'set', publish(AVATAR_META, 'second', `<metadata xmlns='urn:xmpp:avatar:metadata'/>`));
      await juliet.next(isEvent('juliet@localhost', AVATAR_META));
      await romeo.nothing((el) => el.name === 'message', 300);
      await online(romeo, [AVATAR_META], 'cached'); // the same ver: the server knows it, no query
      const again = await romeo.next(isEvent('juliet@localhost', AVATAR_META));
      assert.equal(eventChild(again).getChild('item')?.attrs.id, 'second');
      assert.ok(again.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp, 'last item carries a delay stamp');
    } finally {
      for (const c of [juliet, julietPhone, romeo, nurse, benvolio]) c.close();
    }
  });

  test('caps whose disco#info does not hash to the announced ver are not believed', async () => {
    const rosaline = await login('rosaline');
    const paris = await login('paris');
    try {
      await online(rosaline, []);
      await online(paris, [], 'lie');
      await subscribe(paris, rosaline);
      await ok(rosaline, 'set', publish(AVATAR_META, 'x', `<metadata xmlns='urn:xmpp:avatar:metadata'/>`));
      await paris.nothing((el) => el.name === 'message', 400);
    } finally {
      rosaline.close();
      paris.close();
    }
  });

  test('publish-options: max_items, persist_items false, precondition-not-met; configuration get/set', async () => {
    const tybalt = await login('tybalt');
    const mercutio = await login('mercutio');
    try {
      await online(tybalt, []);
      await online(mercutio, ['urn:test:transient']);
      await subscribe(mercutio, tybalt);
      const get = (node: string, attrs = '') => `<pubsub xmlns='${PEP}'><items node='${node}'${attrs}/></pubsub>`;
      const ids = async (c: TestClient, node: string, attrs = '', to?: string): Promise<string[]> =>
        ((await ok(c, 'get', get(node, attrs), to)).getChild('pubsub')?.getChild('items')?.getChildren('item') ?? []).map((i) => i.attrs.id as string);

      // max_items 2: the third publish pushes the first out.
      for (const id of ['1', '2', '3']) await ok(tybalt, 'set', publish('urn:test:max', id, `<n xmlns='urn:test'>${id}</n>`, { 'pubsub#max_items': '2' }));
      assert.deepEqual(await ids(tybalt, 'urn:test:max'), ['2', '3']);
      assert.deepEqual(await ids(tybalt, 'urn:test:max', ` max_items='1'`), ['3']);
      const byId = await ok(mercutio, 'get', `<pubsub xmlns='${PEP}'><items node='urn:test:max'><item id='2'/></items></pubsub>`, 'tybalt@localhost');
      assert.equal(byId.getChild('pubsub')?.getChild('items')?.getChild('item')?.getChild('n')?.text(), '2');
      assert.deepEqual(await fails(mercutio, 'get', `<pubsub xmlns='${PEP}'><items node='urn:test:max'><item id='1'/></items></pubsub>`, 'tybalt@localhost'), ['item-not-found', undefined]);
      // Default max_items is 1.
      for (const id of ['a', 'b']) await ok(tybalt, 'set', publish('urn:test:default', id, `<n xmlns='urn:test'/>`));
      assert.deepEqual(await ids(tybalt, 'urn:test:default'), ['b']);

      // Options that differ from the existing node's configuration (XEP-0060 §7.1.5).
      assert.deepEqual(await fails(tybalt, 'set', publish('urn:test:max', '4', `<n xmlns='urn:test'/>`, { 'pubsub#max_items': '5' })), ['conflict', 'precondition-not-met']);
      assert.deepEqual(await fails(tybalt, 'set', publish('urn:test:max', '4', `<n xmlns='urn:test'/>`, { 'pubsub#access_model': 'open' })), ['conflict', 'precondition-not-met']);
      assert.deepEqual(await ids(tybalt, 'urn:test:max'), ['2', '3'], 'a refused publish stores nothing');
      // A field this server does not know can never be met (XEP-0060 §7.1.5: reject unknown fields), and no node is made.
      assert.deepEqual(await fails(tybalt, 'set', publish('urn:test:fresh', '1', `<n xmlns='urn:test'/>`, { 'pubsub#made_up': '1' })), ['conflict', 'precondition-not-met']);
      assert.deepEqual(await fails(tybalt, 'get', get('urn:test:fresh')), ['item-not-found', undefined]);
      // The owner reconfigures; then the same options are met.
      const conf = await ok(tybalt, 'get', `<pubsub xmlns='${NS_OWNER}'><configure node='urn:test:max'/></pubsub>`);
      const fields = conf.getChild('pubsub')?.getChild('configure')?.getChild('x')?.getChildren('field') ?? [];
      const val = (name: string) => fields.find((f) => f.attrs.var === name)?.getChildText('value');
      assert.equal(val('FORM_TYPE'), 'http://jabber.org/protocol/pubsub#node_config');
      assert.equal(val('pubsub#max_items'), '2');
      assert.equal(val('pubsub#access_model'), 'presence');
      assert.equal(val('pubsub#persist_items'), '1');
      await ok(tybalt, 'set', `<pubsub xmlns='${NS_OWNER}'><configure node='urn:test:max'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>` +
        `<field var='pubsub#access_model'><value>open</value></field><field var='pubsub#max_items'><value>1</value></field></x></configure></pubsub>`);
      assert.deepEqual(await ids(tybalt, 'urn:test:max'), ['3'], 'lowering max_items drops the oldest');
      await ok(tybalt, 'set', publish('urn:test:max', '4', `<n xmlns='urn:test'/>`, { 'pubsub#access_model': 'open', 'pubsub#max_items': '1' }));
      assert.deepEqual(await fails(tybalt, 'set', `<pubsub xmlns='${NS_OWNER}'><configure node='urn:test:max'><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='pubsub#access_model'><value>authorize</value></field></x></configure></pubsub>`), ['not-acceptable', undefined]);

      // persist_items false: the notification carries the item, nothing is stored.
      await ok(tybalt, 'set', publish('urn:test:transient', 't1', `<n xmlns='urn:test'>now</n>`, { 'pubsub#persist_items': 'false' }));
      const m = await mercutio.next(isEvent('tybalt@localhost', 'urn:test:transient'));
      assert.equal(eventChild(m).getChild('item')?.getChild('n')?.text(), 'now');
      assert.deepEqual(await ids(mercutio, 'urn:test:transient', '', 'tybalt@localhost'), []);

      // Explicit create with a configuration (XEP-0060 §8.1.3), a second create conflicts; the default configuration.
      await ok(tybalt, 'set', `<pubsub xmlns='${PEP}'><create node='urn:test:made'/><configure><x xmlns='jabber:x:data' type='submit'>` +
        `<field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#node_config</value></field>` +
        `<field var='pubsub#access_model'><value>whitelist</value></field></x></configure></pubsub>`);
      assert.deepEqual(await fails(tybalt, 'set', `<pubsub xmlns='${PEP}'><create node='urn:test:made'/></pubsub>`), ['conflict', undefined]);
      assert.deepEqual(await fails(mercutio, 'get', get('urn:test:made'), 'tybalt@localhost'), ['not-allowed', 'closed-node']);
      const dflt = await ok(tybalt, 'get', `<pubsub xmlns='${NS_OWNER}'><default/></pubsub>`);
      const dfields = dflt.getChild('pubsub')?.getChild('default')?.getChild('x')?.getChildren('field') ?? [];
      assert.equal(dfields.find((f) => f.attrs.var === 'pubsub#max_items')?.getChildText('value'), '1');
      assert.equal(dfields.find((f) => f.attrs.var === 'pubsub#access_model')?.getChildText('value'), 'presence');

      // Errors of the publish request itself.
      assert.deepEqual(await fails(tybalt, 'set', `<pubsub xmlns='${PEP}'><publish><item><n xmlns='urn:test'/></item></publish></pubsub>`), ['bad-request', 'nodeid-required']);
      assert.deepEqual(await fails(tybalt, 'set', `<pubsub xmlns='${PEP}'><publish node='urn:test:x'><item id='1'/></publish></pubsub>`), ['bad-request', 'payload-required']);
      assert.deepEqual(await fails(tybalt, 'set', `<pubsub xmlns='${PEP}'><publish node='urn:test:x'><item><a xmlns='urn:a'/><b xmlns='urn:b'/></item></publish></pubsub>`), ['bad-request', 'invalid-payload']);
      // Without an id the server makes one.
      const gen = await ok(tybalt, 'set', publish('urn:test:noid', '', `<n xmlns='urn:test'/>`));
      assert.ok(gen.getChild('pubsub')?.getChild('publish')?.getChild('item')?.attrs.id);
    } finally {
      tybalt.close();
      mercutio.close();
    }
  });

  test('retract and delete are notified; purge empties the node', async () => {
    const friar = await login('friar');
    const balthasar = await login('balthasar');
    try {
      await online(friar, []);
      await online(balthasar, ['urn:test:letters']);
      await subscribe(balthasar, friar);
      await ok(friar, 'set', publish('urn:test:letters', 'letter-1', `<letter xmlns='urn:test'>Romeo, she sleeps</letter>`, { 'pubsub#max_items': '10' }));
      await ok(friar, 'set', publish('urn:test:letters', 'letter-2', `<letter xmlns='urn:test'>second</letter>`, { 'pubsub#max_items': '10' }));
      await balthasar.next(isEvent('friar@localhost', 'urn:test:letters'));
      await balthasar.next(isEvent('friar@localhost', 'urn:test:letters'));

      await ok(friar, 'set', `<pubsub xmlns='${PEP}'><retract node='urn:test:letters' notify='true'><item id='letter-1'/></retract></pubsub>`);
      const r = eventChild(await balthasar.next(isEvent('friar@localhost', 'urn:test:letters')));
      assert.equal(r.name, 'items');
      assert.equal(r.getChild('retract')?.attrs.id, 'letter-1');
      assert.deepEqual(await fails(friar, 'set', `<pubsub xmlns='${PEP}'><retract node='urn:test:letters'><item id='letter-1'/></retract></pubsub>`), ['item-not-found', undefined]);
      // notify='false' overrides the node's notify_retract.
      await ok(friar, 'set', publish('urn:test:letters', 'letter-3', `<letter xmlns='urn:test'/>`, { 'pubsub#max_items': '10' }));
      await balthasar.next(isEvent('friar@localhost', 'urn:test:letters'));
      await ok(friar, 'set', `<pubsub xmlns='${PEP}'><retract node='urn:test:letters' notify='false'><item id='letter-3'/></retract></pubsub>`);
      await balthasar.nothing((el) => el.name === 'message', 300);

      await ok(friar, 'set', `<pubsub xmlns='${NS_OWNER}'><purge node='urn:test:letters'/></pubsub>`);
      assert.equal(eventChild(await balthasar.next(isEvent('friar@localhost', 'urn:test:letters'))).name, 'purge');
      const after = await ok(friar, 'get', `<pubsub xmlns='${PEP}'><items node='urn:test:letters'/></pubsub>`);
      assert.equal(after.getChild('pubsub')?.getChild('items')?.getChildren('item').length, 0);

      await ok(friar, 'set', `<pubsub xmlns='${NS_OWNER}'><delete node='urn:test:letters'/></pubsub>`);
      const d = eventChild(await balthasar.next(isEvent('friar@localhost', 'urn:test:letters')));
      assert.equal(d.name, 'delete');
      assert.deepEqual(await fails(balthasar, 'get', `<pubsub xmlns='${PEP}'><items node='urn:test:letters'/></pubsub>`, 'friar@localhost'), ['item-not-found', undefined]);
      assert.deepEqual(await fails(friar, 'set', `<pubsub xmlns='${NS_OWNER}'><delete node='urn:test:letters'/></pubsub>`), ['item-not-found', undefined]);
      assert.deepEqual(await fails(balthasar, 'set', `<pubsub xmlns='${NS_OWNER}'><delete node='urn:test:anything'/></pubsub>`, 'friar@localhost'), ['forbidden', undefined]);
    } finally {
      friar.close();
      balthasar.close();
    }
  });

  test('a contact coming online with +notify gets the last item of each node (XEP-0163 §6.2)', async () => {
    const setup = await login('lady', 'setup');
    const lord0 = await login('lord', 'setup');
    try {
      setup.send('<presence/>');
      lord0.send('<presence/>');
      await subscribe(lord0, setup);
    } finally {
      lord0.close();
    }
    try {
      await ok(setup, 'set', publish('urn:test:mood', 'm1', `<mood xmlns='urn:test'>calm</mood>`));
      await ok(setup, 'set', publish('urn:test:mood', 'm2', `<mood xmlns='urn:test'>stormy</mood>`));
      await ok(setup, 'set', publish('urn:test:quiet', 'q1', `<q xmlns='urn:test'/>`, { 'pubsub#send_last_published_item': 'never' }));
      await ok(setup, 'set', publish('urn:test:secret', 's1', `<s xmlns='urn:test'/>`, { 'pubsub#access_model': 'whitelist' }));
      const lord = await login('lord', 'castle');
      try {
        await online(lord, ['urn:test:mood', 'urn:test:quiet', 'urn:test:secret']);
        const m = await lord.next(isEvent('lady@localhost', 'urn:test:mood'));
        assert.equal(m.attrs.to, lord.jid);
        assert.equal(eventChild(m).getChild('item')?.attrs.id, 'm2');
        assert.equal(eventChild(m).getChild('item')?.getChild('mood')?.text(), 'stormy');
        assert.equal(m.getChild('delay', 'urn:xmpp:delay')?.attrs.from, 'lady@localhost');
        await lord.nothing((el) => el.name === 'message', 300);
      } finally {
        lord.close();
      }
    } finally {
      setup.close();
    }
  });

  test('a subscription approved while online brings the last items at once', async () => {
    const peter = await login('peter');
    const sampson = await login('sampson');
    try {
      await online(peter, []);
      await online(sampson, ['urn:test:news']);
      await ok(peter, 'set', publish('urn:test:news', 'n1', `<news xmlns='urn:test'>hello</news>`));
      await sampson.nothing((el) => el.name === 'message', 200);
      await subscribe(sampson, peter);
      const m = await sampson.next(isEvent('peter@localhost', 'urn:test:news'));
      assert.equal(eventChild(m).getChild('item')?.attrs.id, 'n1');
    } finally {
      peter.close();
      sampson.close();
    }
  });

  test('bookmarks (XEP-0402) and displayed markers (XEP-0490): whitelist, max_items max, own resources notified', async () => {
    const desk = await login('apothecary', 'desk');
    const phone = await login('apothecary', 'phone');
    const citizen = await login('citizen');
    try {
      await online(desk, [BOOKMARKS, MDS]);
      await online(phone, [BOOKMARKS, MDS]);
      citizen.send('<presence/>');
      await subscribe(citizen, desk);
      const opts = { 'pubsub#persist_items': 'true', 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max', 'pubsub#send_last_published_item': 'never' };
      for (const room of ['a@conf.localhost', 'b@conf.localhost', 'c@conf.localhost']) {
        await ok(desk, 'set', publish(BOOKMARKS, room, `<conference xmlns='urn:xmpp:bookmarks:1' name='${room}' autojoin='true'><nick>apo</nick></conference>`, opts));
        for (const c of [desk, phone]) assert.equal(eventChild(await c.next(isEvent('apothecary@localhost', BOOKMARKS))).getChild('item')?.attrs.id, room);
      }
      const all = await ok(phone, 'get', `<pubsub xmlns='${PEP}'><items node='${BOOKMARKS}'/></pubsub>`);
      assert.deepEqual(all.getChild('pubsub')?.getChild('items')?.getChildren('item').map((i) => i.attrs.id), ['a@conf.localhost', 'b@conf.localhost', 'c@conf.localhost']);
      assert.deepEqual(await fails(citizen, 'get', `<pubsub xmlns='${PEP}'><items node='${BOOKMARKS}'/></pubsub>`, 'apothecary@localhost'), ['not-allowed', 'closed-node']);
      // Removing a bookmark: retract with notify, the other device learns it.
      await ok(phone, 'set', `<pubsub xmlns='${PEP}'><retract node='${BOOKMARKS}' notify='1'><item id='b@conf.localhost'/></retract></pubsub>`);
      for (const c of [desk, phone]) assert.equal(eventChild(await c.next(isEvent('apothecary@localhost', BOOKMARKS))).getChild('retract')?.attrs.id, 'b@conf.localhost');

      // XEP-0490: one item per conversation, id = the conversation's JID.
      const displayed = (sid: string) => `<displayed xmlns='${MDS}'><stanza-id xmlns='urn:xmpp:sid:0' by='apothecary@localhost' id='${sid}'/></displayed>`;
      await ok(desk, 'set', publish(MDS, 'romeo@localhost', displayed('s1'), { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max', 'pubsub#persist_items': 'true' }));
      await ok(desk, 'set', publish(MDS, 'romeo@localhost', displayed('s2'), { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max', 'pubsub#persist_items': 'true' }));
      await ok(desk, 'set', publish(MDS, 'juliet@localhost', displayed('s3'), { 'pubsub#access_model': 'whitelist', 'pubsub#max_items': 'max', 'pubsub#persist_items': 'true' }));
      const seen: string[] = [];
      for (let i = 0; i < 3; i++) {
        const m = await phone.next(isEvent('apothecary@localhost', MDS));
        seen.push(eventChild(m).getChild('item')?.getChild('displayed')?.getChild('stanza-id')?.attrs.id as string);
      }
      assert.deepEqual(seen, ['s1', 's2', 's3']);
      const one = await ok(phone, 'get', `<pubsub xmlns='${PEP}'><items node='${MDS}'><item id='romeo@localhost'/></items></pubsub>`);
      assert.equal(one.getChild('pubsub')?.getChild('items')?.getChild('item')?.getChild('displayed')?.getChild('stanza-id')?.attrs.id, 's2');
      await citizen.nothing((el) => el.name === 'message', 200);
    } finally {
      desk.close();
      phone.close();
      citizen.close();
    }
  });

  test('avatars (XEP-0084): data retrieved by id by a contact, metadata notified', async () => {
    const watchman = await login('watchman');
    const citizen = await login('citizen', 'avatar');
    try {
      await online(watchman, []);
      await online(citizen, [AVATAR_META]);
      await subscribe(citizen, watchman);
      const png = Buffer.from('not really a png').toString('base64');
      const hash = createHash('sha1').update(Buffer.from(png, 'base64')).digest('hex');
      await ok(watchman, 'set', publish('urn:xmpp:avatar:data', hash, `<data xmlns='urn:xmpp:avatar:data'>${png}</data>`));
      await ok(watchman, 'set', publish(AVATAR_META, hash, `<metadata xmlns='urn:xmpp:avatar:metadata'><info id='${hash}' bytes='16' type='image/png'/></metadata>`));
      const m = await citizen.next(isEvent('watchman@localhost', AVATAR_META));
      const id = eventChild(m).getChild('item')?.getChild('metadata')?.getChild('info')?.attrs.id;
      assert.equal(id, hash);
      const data = await ok(citizen, 'get', `<pubsub xmlns='${PEP}'><items node='urn:xmpp:avatar:data'><item id='${id}'/></items></pubsub>`, 'watchman@localhost');
      assert.equal(data.getChild('pubsub')?.getChild('items')?.getChild('item')?.getChildText('data'), png);
    } finally {
      watchman.close();
      citizen.close();
    }
  });
});

describe('@xmpp/client: OMEMO device list (open access) between two real client-library sessions', () => {
  test('publish with publish-options, caps query answered by the library, notification received, open retrieval', async () => {
    const mk = (username: string) => {
      const c = client({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username, password: PW, resource: 'lib' });
      c.on('error', () => undefined);
      return c;
    };
    const gregory = mk('gregory');
    const abram = mk('abram');
    const features = [DISCO_INFO, 'http://jabber.org/protocol/caps', 'eu.siacs.conversations.axolotl.devicelist+notify', 'urn:verona:test:abram'];
    const abramVer = ver(features);
    let asked = '';
    // test/types/xmpp.d.ts does not declare iqCallee (the library's IQ responder) yet.
    const callee = (abram as unknown as { iqCallee: { get(ns: string, name: string, fn: (ctx: { element: XElement }) => XElement): void } }).iqCallee;
    callee.get(DISCO_INFO, 'query', (ctx) => {
      asked = ctx.element.attrs.node as string;
      return xml('query', { xmlns: DISCO_INFO, node: ctx.element.attrs.node },
        xml('identity', { category: 'client', type: 'pc', name: 'Verona test' }),
        ...features.map((f) => xml('feature', { var: f })));
    });
    const events: XElement[] = [];
    const presences: XElement[] = [];
    abram.on('stanza', (s: XElement) => {
      if (s.is('message') && s.getChild('event', NS_EVENT)) events.push(s);
      if (s.is('presence')) presences.push(s);
    });
    gregory.on('stanza', (s: XElement) => {
      if (s.is('presence') && s.attrs.type === 'subscribe') void gregory.send(xml('presence', { to: s.attrs.from, type: 'subscribed' }));
    });
    const waitFor = async (pred: () => boolean, what: string): Promise<void> => {
      const end = Date.now() + 5000;
      while (!pred()) {
        if (Date.now() > end) throw new Error(`timeout waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    try {
      await Promise.all([gregory.start(), abram.start()]);
      await gregory.send(xml('presence'));
      await abram.send(xml('presence', {}, xml('c', { xmlns: 'http://jabber.org/protocol/caps', hash: 'sha-1', node: CAPS_NODE, ver: abramVer })));
      await waitFor(() => asked !== '', 'the caps query');
      assert.equal(asked, `${CAPS_NODE}#${abramVer}`);
      await abram.send(xml('presence', { to: 'gregory@localhost', type: 'subscribe' }));
      await waitFor(() => presences.some((p) => p.attrs.type === 'subscribed'), 'subscribed');

      const devicelist = xml('list', { xmlns: 'eu.siacs.conversations.axolotl' }, xml('device', { id: '12345' }), xml('device', { id: '4223' }));
      const res = await gregory.iqCaller.set(
        xml('pubsub', { xmlns: PEP },
          xml('publish', { node: DEVICELIST }, xml('item', { id: 'current' }, devicelist)),
          xml('publish-options', {}, xml('x', { xmlns: 'jabber:x:data', type: 'submit' },
            xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, 'http://jabber.org/protocol/pubsub#publish-options')),
            xml('field', { var: 'pubsub#access_model' }, xml('value', {}, 'open'))))),
      );
      assert.equal(res.getChild('publish')?.getChild('item')?.attrs.id, 'current');
      await waitFor(() => events.length > 0, 'the device list notification');
      const ev = events[0] as XElement;
      assert.equal(ev.attrs.from, 'gregory@localhost');
      const item = ev.getChild('event', NS_EVENT)?.getChild('items')?.getChild('item');
      assert.equal(item?.attrs.id, 'current');
      assert.deepEqual(item?.getChild('list', 'eu.siacs.conversations.axolotl')?.getChildren('device').map((d) => d.attrs.id), ['12345', '4223']);

      // Open access: a stranger (a raw client without any subscription) reads the device list.
      const stranger = await login('benvolio', 'omemo');
      try {
        const r = await ok(stranger, 'get', `<pubsub xmlns='${PEP}'><items node='${DEVICELIST}' max_items='1'/></pubsub>`, 'gregory@localhost');
        assert.equal(r.getChild('pubsub')?.getChild('items')?.getChild('item')?.attrs.id, 'current');
      } finally {
        stranger.close();
      }
    } finally {
      await Promise.allSettled([gregory.stop(), abram.stop()]);
    }
  });
});

test('nodes, items and the caps cache survive a restart', async () => {
  const s1 = await startVerona({ users: [['juliet', PW], ['romeo', PW]] });
  let caps = '';
  try {
    const j = await login('juliet', 'r', s1.ports.c2s as number);
    const r = await login('romeo', 'r', s1.ports.c2s as number);
    await online(j, []);
    caps = await online(r, ['urn:test:kept']);
    await subscribe(r, j);
    await ok(j, 'set', publish('urn:test:kept', 'k1', `<k xmlns='urn:test'>kept</k>`, { 'pubsub#access_model': 'open', 'pubsub#max_items': '5' }));
    await r.next(isEvent('juliet@localhost', 'urn:test:kept'));
    j.close();
    r.close();
  } finally {
    await s1.stop();
  }
  const s2 = await startVerona({ dataDir: s1.dataDir });
  try {
    const r = await login('romeo', 'r', s2.ports.c2s as number);
    try {
      // Same ver as before the restart: no disco#info query this time, and the last item comes at once.
      assert.equal(await online(r, ['urn:test:kept'], 'cached'), caps);
      const m = await r.next(isEvent('juliet@localhost', 'urn:test:kept'));
      assert.equal(eventChild(m).getChild('item')?.getChild('k')?.text(), 'kept');
      await r.nothing((el) => el.name === 'iq' && el.attrs.type === 'get', 200);
      const conf = await ok(r, 'get', `<pubsub xmlns='${PEP}'><items node='urn:test:kept'/></pubsub>`, 'juliet@localhost');
      assert.equal(conf.getChild('pubsub')?.getChild('items')?.getChild('item')?.attrs.id, 'k1');
    } finally {
      r.close();
    }
  } finally {
    await s2.stop();
    s2.cleanup();
  }
});
