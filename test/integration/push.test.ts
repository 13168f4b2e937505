/**
 * XEP-0357 push on the real server, with a test app server connected as a
 * real XEP-0114 component (test/helpers/push-app.ts) and raw SM clients:
 * - a hibernated phone gets one push (further messages coalesced), then
 *   resumes and has every message exactly once;
 * - a CSI-inactive phone gets a push for a body, none for a chat state;
 * - an offline device with a registration gets a push and finds the message
 *   once in MAM;
 * - a device that got the message live gets none;
 * - the client's secret reaches the app server and never the log;
 * - a registration is dropped after repeated non-wait errors;
 * - a conversation read on another device (MDS server assist, or a plain
 *   XEP-0333 marker the server maps to the archive id) is published to the
 *   MDS node and clears the phone's pending push.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, type TestClient } from '../helpers/client.js';
import { PushApp } from '../helpers/push-app.js';
import { SmClient, mamAll, tryResume } from './sm-client.js';

let v: Verona;
let app: PushApp;
let julia: TestClient;
const APP = 'push.localhost';
const SECRET = 'app-component-secret';
const PW = 'r0meo';

before(async () => {
  v = await startVerona({
    users: [['romeo', PW], ['julia', 'ju1ia']],
    config: {
      log: { level: 'info' },
      moduleOptions: { component: { port: 0, components: { [APP]: { secret: SECRET } } }, push: { maxErrors: 2 } },
    },
  });
  app = await PushApp.connect(v.ports.component as number, APP, SECRET);
  julia = await connectClient({ port: v.ports.c2s as number, user: 'julia', password: 'ju1ia', resource: 'balcony', presence: true });
});
after(async () => {
  julia?.close();
  app?.close();
  await v.stop();
  v.cleanup();
});

const romeo = (resource: string, extra: Partial<Parameters<typeof SmClient.connect>[0]> = {}): Promise<SmClient> =>
  SmClient.connect({ port: v.ports.c2s as number, user: 'romeo', password: PW, resource, mr2: true, presence: true, ...extra });

async function enablePush(c: SmClient, node: string, secret: string): Promise<void> {
  c.sendStanza(
    `<iq type='set' id='push-${node}'><enable xmlns='urn:xmpp:push:0' jid='${APP}' node='${node}'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='FORM_TYPE'><value>http://jabber.org/protocol/pubsub#publish-options</value></field><field var='secret'><value>${secret}</value></field></x></enable></iq>`,
  );
  const r = await c.next((el) => el.name === 'iq' && el.attrs.id === `push-${node}`);
  assert.equal(r.attrs.type, 'result', r.toString());
}

/** A round trip on the stream: everything sent before it is processed. */
async function sync(c: SmClient, tag: string): Promise<void> {
  c.sendStanza(`<iq type='get' id='sync-${tag}'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.next((el) => el.name === 'iq' && el.attrs.id === `sync-${tag}`);
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
  return Number(text.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1] ?? 0);
}

async function until(what: string, f: () => Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await f()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

function say(body: string, id: string): void {
  julia.send(`<message to='romeo@localhost' type='chat' id='${id}'><body>${body}</body></message>`);
}
const bodies = (els: Element[]): string[] => els.map((m) => m.getChildText('body') ?? '').filter(Boolean);

test('hibernated phone: one push (then coalesced), none for the live desk; resumption brings each message exactly once', async () => {
  const desk = await romeo('desk');
  await enablePush(desk, 'n-desk', 'desk-secret');
  const phone = await romeo('phone');
  await enablePush(phone, 'n-phone', 'phone-secret-42');
  const previd = phone.smId as string;
  phone.kill();
  await until('the phone to hibernate', async () => (await metric('verona_sm_hibernating')) === 1);

  say('wherefore art thou', 'h1');
  const p = await app.next('n-phone');
  assert.equal(p.summary.FORM_TYPE, 'urn:xmpp:push:summary');
  assert.equal(p.summary['message-count'], '1');
  assert.equal(p.summary['last-message-sender'], 'julia@localhost/balcony');
  assert.equal(p.summary['last-message-body'], undefined, 'no body unless the operator turns it on');
  assert.equal(p.options.secret, 'phone-secret-42', 'the client secret is passed on');
  assert.equal(p.iq.attrs.from, 'romeo@localhost');

  say('it is the east', 'h2');
  julia.send(`<message to='romeo@localhost' type='chat' id='h3'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
  await app.none(undefined, 1000); // coalesced for the phone, nothing for the desk that got them live
  assert.deepEqual(bodies([await desk.next((el) => el.attrs.id === 'h1'), await desk.next((el) => el.attrs.id === 'h2')]), ['wherefore art thou', 'it is the east']);

  const { client, result } = await tryResume({ port: v.ports.c2s as number, user: 'romeo', password: PW, resume: { previd, h: phone.h } });
  assert.equal(result.name, 'resumed');
  const h2 = await client.next((el) => el.attrs.id === 'h2');
  await sync(client, 'resumed');
  const got = bodies([...phone.drain((el) => el.name === 'message'), ...client.drain((el) => el.name === 'message'), h2]);
  assert.deepEqual(got.filter((b) => b === 'wherefore art thou' || b === 'it is the east'), ['wherefore art thou', 'it is the east']);
  assert.equal(await metric('verona_push_coalesced_total'), 1);

  // Back and live: nothing more for the phone while it is active.
  say('live now', 'h4');
  await client.next((el) => el.attrs.id === 'h4');
  await app.none('n-phone', 600);
  await client.close();
  await desk.close();
});

test('CSI-inactive phone: a push for a body, none for a chat state', async () => {
  const tab = await romeo('tab');
  await enablePush(tab, 'n-tab', 'tab-secret');
  tab.send(`<inactive xmlns='urn:xmpp:csi:0'/>`);
  await sync(tab, 'inactive');
  julia.send(`<message to='romeo@localhost' type='chat' id='c1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
  await app.none('n-tab', 800);
  say('urgent words', 'c2');
  const p = await app.next('n-tab');
  assert.equal(p.summary['message-count'], '1');
  await tab.close();
});

test('offline device with a registration: a push, and the message is in MAM exactly once', async () => {
  const watch = await romeo('watch');
  await enablePush(watch, 'n-watch', 'watch-secret');
  await watch.close();
  await until('the watch session to end', async () => (await metric('verona_sessions')) === 1); // julia only
  say('to the watch', 'w1');
  const p = await app.next('n-watch');
  assert.equal(p.summary['last-message-sender'], 'julia@localhost/balcony');
  const again = await romeo('watch', { presence: false });
  const archived = (await mamAll(again)).filter((r) => r.msg.getChildText('body') === 'to the watch');
  assert.equal(archived.length, 1);
  await again.close();
});

test('a registration is dropped after repeated non-wait errors; wait errors do not count', async () => {
  const old = await romeo('old');
  await enablePush(old, 'n-old', 'old-secret');
  await old.close();
  await until('the old session to end', async () => (await metric('verona_sessions')) === 1);
  const round = async (id: string, type: string): Promise<void> => {
    app.failWith = { type, condition: type === 'wait' ? 'resource-constraint' : 'item-not-found' };
    say(`drop test ${id}`, id);
    await app.next('n-old');
    // The device coming back ends the outstanding push, so the next message pushes again.
    const back = await romeo('old', { presence: false, sm: false });
    await back.close();
    await until('the old session to end', async () => (await metric('verona_sessions')) === 1);
  };
  await round('e1', 'wait');
  await round('e2', 'cancel');
  await round('e3', 'cancel');
  app.failWith = undefined;
  say('after drop', 'e4');
  await app.none('n-old', 1000);
  assert.ok((await metric('verona_push_registrations_dropped_total')) >= 1);
});

test('read on another device (MDS server assist): published to PEP, and the phone\'s pending push is cleared; nothing when nothing was pending', async () => {
  const desk = await romeo('desk2');
  const phone = await romeo('phone2');
  await enablePush(phone, 'n-phone2', 'phone2-secret');
  phone.kill();
  await until('the phone to hibernate', async () => (await metric('verona_sm_hibernating')) === 1);
  say('read me elsewhere', 'r1');
  const first = await app.next('n-phone2');
  assert.equal(first.summary['message-count'], '1');
  const m = await desk.next((el) => el.attrs.id === 'r1');
  const sid = m.getChild('stanza-id', 'urn:xmpp:sid:0');
  // The desk shows it and says so, with the MDS element for the server to publish.
  desk.sendStanza(
    `<message to='julia@localhost' type='chat' id='d1'><displayed xmlns='urn:xmpp:chat-markers:0' id='r1'/>` +
      `<displayed xmlns='urn:xmpp:mds:displayed:0'><stanza-id xmlns='urn:xmpp:sid:0' by='romeo@localhost' id='${String(sid?.attrs.id)}'/></displayed></message>`,
  );
  const cleared = await app.next('n-phone2');
  assert.equal(cleared.summary['message-count'], '0');
  assert.equal(cleared.summary['last-message-sender'], undefined);
  desk.sendStanza(`<iq type='get' id='mds-items'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:mds:displayed:0'/></pubsub></iq>`);
  const items = await desk.next((el) => el.attrs.id === 'mds-items');
  const item = items.getChild('pubsub')?.getChild('items')?.getChild('item');
  assert.equal(item?.attrs.id, 'julia@localhost');
  assert.equal(item?.getChild('displayed', 'urn:xmpp:mds:displayed:0')?.getChild('stanza-id')?.attrs.id, sid?.attrs.id);
  // Read came first: a marker for a conversation with nothing pending raises no push.
  desk.sendStanza(
    `<message to='julia@localhost' type='chat' id='d2'><displayed xmlns='urn:xmpp:chat-markers:0' id='r1'/>` +
      `<displayed xmlns='urn:xmpp:mds:displayed:0'><stanza-id xmlns='urn:xmpp:sid:0' by='romeo@localhost' id='${String(sid?.attrs.id)}'/></displayed></message>`,
  );
  await app.none('n-phone2', 800);
  await desk.close();
});

test('a plain XEP-0333 marker (no MDS element) is published too, with the archive id of the message it names; an unknown id publishes nothing', async () => {
  const desk = await romeo('desk3');
  const phone = await romeo('phone3');
  await enablePush(phone, 'n-phone3', 'phone3-secret');
  const hibernating = await metric('verona_sm_hibernating');
  phone.kill();
  await until('the phone to hibernate', async () => (await metric('verona_sm_hibernating')) === hibernating + 1);
  say('read me with a plain marker', 'p1');
  const first = await app.next('n-phone3');
  assert.equal(first.summary['message-count'], '1');
  const m = await desk.next((el) => el.attrs.id === 'p1');
  const sid = m.getChild('stanza-id', 'urn:xmpp:sid:0');
  assert.equal(sid?.attrs.by, 'romeo@localhost');
  // A client that knows chat markers but not MDS.
  desk.sendStanza(`<message to='julia@localhost' type='chat' id='d3'><displayed xmlns='urn:xmpp:chat-markers:0' id='p1'/></message>`);
  const marker = await julia.next((el) => el.attrs.id === 'd3');
  assert.ok(marker.getChild('displayed', 'urn:xmpp:chat-markers:0'), 'the marker still reaches the contact');
  const cleared = await app.next('n-phone3');
  assert.equal(cleared.summary['message-count'], '0', 'the phone\'s pending state is cleared');
  const itemId = async (tag: string): Promise<string | undefined> => {
    desk.sendStanza(`<iq type='get' id='${tag}'><pubsub xmlns='http://jabber.org/protocol/pubsub'><items node='urn:xmpp:mds:displayed:0' item='julia@localhost'/></pubsub></iq>`);
    const items = await desk.next((el) => el.attrs.id === tag);
    const item = items.getChild('pubsub')?.getChildren('items')[0]?.getChildren('item').find((i) => i.attrs.id === 'julia@localhost');
    const s = item?.getChild('displayed', 'urn:xmpp:mds:displayed:0')?.getChild('stanza-id', 'urn:xmpp:sid:0');
    assert.equal(s?.attrs.by, 'romeo@localhost');
    return s?.attrs.id;
  };
  assert.equal(await itemId('mds-p1'), sid?.attrs.id, 'the published stanza-id is the archived message\'s');
  // A marker for a message the archive does not have: nothing published, no push, the marker still goes out.
  const notFound = async (): Promise<number> => {
    const text = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
    return Number(/^verona_mds_published_total\{outcome="marker-not-found"\} (\d+)/m.exec(text)?.[1] ?? 0);
  };
  const before = await notFound();
  desk.sendStanza(`<message to='julia@localhost' type='chat' id='d4'><displayed xmlns='urn:xmpp:chat-markers:0' id='never-sent'/></message>`);
  await julia.next((el) => el.attrs.id === 'd4');
  assert.equal(await notFound(), before + 1);
  await app.none('n-phone3', 800);
  assert.equal(await itemId('mds-p2'), sid?.attrs.id, 'the node is unchanged');
  // Everything was read elsewhere: the next message is news again, pushed (not folded into the cleared push).
  say('and one more', 'p3');
  const again = await app.next('n-phone3');
  assert.equal(again.summary['message-count'], '1');
  await desk.close();
});

test('the client secret never reaches the log', () => {
  const log = v.output.join('\n');
  assert.ok(log.includes('push enabled'), 'push logs at info level');
  // Push-enabled phones hibernate for 72 h (until their first push), not the 300 s SM default.
  assert.match(log, /"max":259200[^\n]*sm: waiting for resumption|sm: waiting for resumption[^\n]*"max":259200/);
  for (const s of ['phone-secret-42', 'desk-secret', 'tab-secret', 'watch-secret']) assert.ok(!log.includes(s), `${s} in the log`);
});
