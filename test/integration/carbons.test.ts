/**
 * XEP-0280 Message Carbons with a real client library (StanzaJS over
 * WebSocket) next to raw clients: received and sent carbons, <private/>,
 * disable, and a session with both carbons and MR2 getting one copy only.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as XMPP from 'stanza';
import { startVerona, type Verona } from '../helpers/server.js';
import { nextId } from '../helpers/client.js';
import { copyWithBody, device, shapeOf, stanzaId, bodyOf, type Dev } from './mr2-helpers.js';

let v: Verona;
let lib: XMPP.Agent;
let other: Dev;
let julia: Dev;
const carbons: Array<{ kind: 'sent' | 'received'; body: string | undefined; stanzaIdBy: string | undefined }> = [];

before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['julia', 'ju1ia']] });
  lib = XMPP.createClient({
    jid: 'romeo@localhost',
    password: 'r0meo',
    resource: 'stanzajs',
    transports: { websocket: `ws://127.0.0.1:${v.ports.http}/xmpp-websocket`, bosh: false },
  });
  await new Promise<void>((resolve, reject) => {
    lib.once('session:started', () => resolve());
    lib.once('disconnected', () => reject(new Error('disconnected before session start')));
    lib.connect();
  });
  const record = (kind: 'sent' | 'received') => (m: XMPP.Stanzas.ReceivedMessage) => {
    const fwd = m.carbon?.forward.message;
    carbons.push({ kind, body: fwd?.body, stanzaIdBy: fwd?.stanzaIds?.[0]?.by });
  };
  lib.on('carbon:sent', record('sent'));
  lib.on('carbon:received', record('received'));
  await lib.enableCarbons();
  lib.sendPresence();
  other = await device({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'other', kind: 'plain', priority: 5 });
  julia = await device({ port: v.ports.c2s as number, user: 'julia', password: 'ju1ia', resource: 'raw', kind: 'plain' });
});
after(async () => {
  other?.close();
  julia?.close();
  const ended = new Promise((r) => lib.once('disconnected', r));
  lib.disconnect();
  await ended;
  await v.stop();
  v.cleanup();
});

async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('StanzaJS gets a received carbon for a message to another resource, with the archive id inside', async () => {
  julia.send(`<message to='romeo@localhost/other' type='chat' id='c1'><body>to other</body></message>`);
  await copyWithBody(other, 'to other');
  await until(() => carbons.some((c) => c.body === 'to other'));
  assert.deepEqual(carbons.find((c) => c.body === 'to other'), { kind: 'received', body: 'to other', stanzaIdBy: 'romeo@localhost' });
});

test('StanzaJS gets a sent carbon for what another resource sends', async () => {
  other.send(`<message to='julia@localhost' type='chat' id='c2'><body>from other</body></message>`);
  await copyWithBody(julia, 'from other');
  await until(() => carbons.some((c) => c.body === 'from other'));
  assert.equal(carbons.find((c) => c.body === 'from other')?.kind, 'sent');
});

test('StanzaJS sends; the plain resource gets nothing (no carbons), julia gets it', async () => {
  lib.sendMessage({ to: 'julia@localhost', type: 'chat', body: 'from lib', id: 'lib-1' });
  await copyWithBody(julia, 'from lib');
  await other.nothing((el) => bodyOf(el) === 'from lib', 250);
});

test('<private/> and <no-copy/> suppress carbons', async () => {
  julia.send(`<message to='romeo@localhost/other' type='chat' id='c3'><body>private one</body><private xmlns='urn:xmpp:carbons:2'/></message>`);
  julia.send(`<message to='romeo@localhost/other' type='chat' id='c4'><body>no-copy one</body><no-copy xmlns='urn:xmpp:hints'/></message>`);
  await copyWithBody(other, 'private one');
  await copyWithBody(other, 'no-copy one');
  // A marker message that does produce a carbon, to know the previous ones would have arrived by now.
  julia.send(`<message to='romeo@localhost/other' type='chat' id='c5'><body>marker</body></message>`);
  await until(() => carbons.some((c) => c.body === 'marker'));
  assert.ok(!carbons.some((c) => c.body === 'private one' || c.body === 'no-copy one'));
});

test('after disabling carbons no copies come', async () => {
  await lib.disableCarbons();
  julia.send(`<message to='romeo@localhost/other' type='chat' id='c6'><body>after disable</body></message>`);
  await copyWithBody(other, 'after disable');
  await new Promise((r) => setTimeout(r, 250));
  assert.ok(!carbons.some((c) => c.body === 'after disable'));
  await lib.enableCarbons();
});

test('a session with carbons and MR2 gets exactly one copy, in the MR2 shape', async () => {
  const both = await device({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'both', kind: 'mr2' });
  try {
    const id = nextId();
    both.send(`<iq type='set' id='${id}'><enable xmlns='urn:xmpp:carbons:2'/></iq>`);
    await both.next((el) => el.attrs.id === id);
    julia.send(`<message to='romeo@localhost/other' type='normal' id='c7'><body>one copy</body></message>`);
    const el = await copyWithBody(both, 'one copy');
    assert.equal(shapeOf(el), 'received');
    assert.equal(stanzaId(el)?.by, 'romeo@localhost');
    await both.nothing((e) => bodyOf(e) === 'one copy', 250);
    // A headline is not a carbon (not eligible) and not an MR2 fork either.
    julia.send(`<message to='romeo@localhost/other' type='headline' id='c8'><body>headline</body></message>`);
    await copyWithBody(other, 'headline');
    await both.nothing((e) => bodyOf(e) === 'headline', 250);
  } finally {
    both.close();
  }
});

test('carbons can only be switched by the session itself', async () => {
  const id = nextId();
  julia.send(`<iq type='set' id='${id}' to='romeo@localhost'><enable xmlns='urn:xmpp:carbons:2'/></iq>`);
  const r = await julia.next((el) => el.attrs.id === id);
  assert.equal(r.attrs.type, 'error');
});
