/**
 * XEP-0114 components on the real server with a raw component client:
 * handshake (right and wrong secret, unknown domain, second connection),
 * stanzas both ways through the router, `from` checked, disco#items lists
 * the connected component, and a stanza to a gone component bounces.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf, type TestClient } from '../helpers/client.js';
import { ComponentClient, connectComponent } from '../helpers/component-client.js';

let v: Verona;
let romeo: TestClient;
const SECRET = 'b0t-s3cret-value';

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo']],
    config: { moduleOptions: { component: { port: 0, components: { 'bot.localhost': { secret: SECRET }, 'gw.localhost': { secret: 'gw-secret-value' } } } } },
  });
  romeo = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'desk', presence: true });
});
after(async () => {
  romeo?.close();
  await v.stop();
  v.cleanup();
});

async function rawComponent(): Promise<ComponentClient> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port: v.ports.component as number, host: '127.0.0.1' }, () => resolve(new ComponentClient(s)));
    s.once('error', reject);
  });
}

test('a wrong secret is refused with not-authorized; an unknown domain with host-unknown', async () => {
  const c = await rawComponent();
  await c.open('bot.localhost');
  const r = await c.handshake('wrong-secret');
  assert.equal(r.name, 'stream:error');
  assert.ok(r.getChild('not-authorized'));
  await c.waitClose();

  const u = await rawComponent();
  await u.open('nobody.localhost');
  const e = await u.next((el) => el.name === 'stream:error');
  assert.ok(e.getChild('host-unknown'));
  await u.waitClose();
});

test('stanzas flow both ways; disco#items lists the component; a second connection is refused', async () => {
  const bot = await connectComponent(v.ports.component as number, 'bot.localhost', SECRET);
  try {
    const items = await sendIq(romeo, `<query xmlns='http://jabber.org/protocol/disco#items'/>`, "type='get' to='localhost'");
    assert.ok(items.getChild('query')?.getChildren('item').some((i) => i.attrs.jid === 'bot.localhost'), items.toString());

    const dup = await rawComponent();
    await dup.open('bot.localhost');
    const r = await dup.handshake(SECRET);
    assert.equal(r.name, 'stream:error');
    assert.ok(r.getChild('conflict'));

    // Client -> component: the component sees the stanza in its own namespace with the client's full JID.
    romeo.send(`<message to='echo@bot.localhost' type='chat' id='c1'><body>hello bot</body></message>`);
    const got = await bot.next((el) => el.name === 'message');
    assert.equal(got.getNS(), 'jabber:component:accept');
    assert.equal(got.attrs.from, romeo.jid);
    assert.equal(got.getChildText('body'), 'hello bot');

    // Component -> client: routed (and archived, with the recipient's stanza-id).
    bot.send(`<message from='echo@bot.localhost' to='${romeo.jid}' type='chat' id='c2'><body>hello human</body></message>`);
    const back = await romeo.next((el) => el.name === 'message' && el.attrs.id === 'c2');
    assert.equal(back.getChildText('body'), 'hello human');
    assert.equal(back.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.by, 'romeo@localhost');

    // IQ from the client answered by the component.
    const ping = sendIq(romeo, `<ping xmlns='urn:xmpp:ping'/>`, "type='get' to='bot.localhost'");
    const q = await bot.next((el) => el.name === 'iq');
    bot.send(`<iq type='result' id='${String(q.attrs.id)}' from='bot.localhost' to='${String(q.attrs.from)}'/>`);
    assert.equal((await ping).attrs.type, 'result');

    // A stanza claiming another domain ends the component's stream (invalid-from).
    bot.send(`<message from='mallory@localhost' to='${romeo.jid}'><body>spoof</body></message>`);
    const err = await bot.next((el) => el.name === 'stream:error');
    assert.ok(err.getChild('invalid-from'));
    await bot.waitClose();
    await romeo.nothing((el) => el.name === 'message' && el.getChildText('body') === 'spoof', 500);
  } finally {
    bot.close();
  }
});

test('once the component is gone its domain is unreachable and disco#items no longer lists it', async () => {
  // Wait until the server has processed the previous disconnect.
  let listed = true;
  for (let i = 0; i < 50 && listed; i++) {
    const items = await sendIq(romeo, `<query xmlns='http://jabber.org/protocol/disco#items'/>`, "type='get' to='localhost'");
    listed = items.getChild('query')?.getChildren('item').some((it) => it.attrs.jid === 'bot.localhost') ?? false;
    if (listed) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(listed, false);
  const r = await sendIq(romeo, `<ping xmlns='urn:xmpp:ping'/>`, "type='get' to='bot.localhost'");
  assert.equal(r.attrs.type, 'error');
  assert.equal(stanzaErrorOf(r), 'remote-server-not-found');
  // And a fresh connection with the right secret works again.
  const again = await connectComponent(v.ports.component as number, 'bot.localhost', SECRET);
  again.close();
});
