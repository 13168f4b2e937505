/**
 * XEP-0398 avatar conversion against the real server: a PEP avatar (XEP-0084)
 * becomes the vCard PHOTO, a vCard PHOTO becomes a PEP avatar that a contact
 * is notified of, and the account's available presence carries the XEP-0153
 * hash the server knows, whatever the client wrote.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, type TestClient } from '../helpers/client.js';

const PUBSUB = 'http://jabber.org/protocol/pubsub';
const DATA = 'urn:xmpp:avatar:data';
const META = 'urn:xmpp:avatar:metadata';
let v: Verona;

before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et'], ['benvolio', 'b3n']] });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const connect = (user: string, password: string, resource: string) => connectClient({ port: v.ports.c2s as number, user, password, resource });
const png = (seed: number): Buffer => Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(300, seed)]);
const sha1 = (b: Buffer): string => createHash('sha1').update(b).digest('hex');

async function vcardPhoto(c: TestClient, of?: string): Promise<Element | undefined> {
  const r = await sendIq(c, "<vCard xmlns='vcard-temp'/>", `type='get'${of ? ` to='${of}'` : ''}`);
  return r.getChild('vCard', 'vcard-temp')?.getChild('PHOTO');
}

async function eventually<T>(read: () => Promise<T>, check: (t: T) => boolean, what: string): Promise<T> {
  let last: T | undefined;
  for (let i = 0; i < 100; i++) {
    last = await read();
    if (check(last)) return last;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.fail(`${what}: never converged`);
}

test('the account advertises urn:xmpp:pep-vcard-conversion:0', async () => {
  const c = await connect('romeo', 'r0meo', 'd');
  try {
    const r = await sendIq(c, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='romeo@localhost'");
    assert.ok(r.getChild('query')?.getChildren('feature').some((f) => f.attrs.var === 'urn:xmpp:pep-vcard-conversion:0'));
  } finally {
    c.destroy();
  }
});

test('a PEP avatar becomes the vCard PHOTO (anyone reading the vCard sees it), and presence carries its hash', async () => {
  const romeo = await connect('romeo', 'r0meo', 'modern');
  const ben = await connect('benvolio', 'b3n', 'old');
  try {
    const img = png(1);
    const id = sha1(img);
    const d = await sendIq(romeo, `<pubsub xmlns='${PUBSUB}'><publish node='${DATA}'><item id='${id}'><data xmlns='${DATA}'>${img.toString('base64')}</data></item></publish></pubsub>`);
    assert.equal(d.attrs.type, 'result', d.toString());
    const m = await sendIq(romeo, `<pubsub xmlns='${PUBSUB}'><publish node='${META}'><item id='${id}'><metadata xmlns='${META}'><info id='${id}' bytes='${img.length}' type='image/png' width='10' height='10'/></metadata></item></publish></pubsub>`);
    assert.equal(m.attrs.type, 'result', m.toString());
    const photo = await eventually(() => vcardPhoto(ben, 'romeo@localhost'), (p) => p !== undefined, 'vCard PHOTO');
    assert.equal(photo?.getChildText('TYPE'), 'image/png');
    assert.deepEqual(Buffer.from(String(photo?.getChildText('BINVAL')), 'base64'), img);

    // The client claims another hash; the server's own goes out (to itself, as the broadcast does).
    romeo.send("<presence><x xmlns='vcard-temp:x:update'><photo>0000</photo></x></presence>");
    const p = await romeo.next((el) => el.name === 'presence' && el.attrs.from === romeo.jid, 10000);
    assert.equal(p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo'), id);

    // An empty <metadata/> switches the avatar off: the PHOTO goes too.
    await sendIq(romeo, `<pubsub xmlns='${PUBSUB}'><publish node='${META}'><item id='off'><metadata xmlns='${META}'/></item></publish></pubsub>`);
    await eventually(() => vcardPhoto(ben, 'romeo@localhost'), (ph) => ph === undefined, 'PHOTO removed');
  } finally {
    romeo.destroy();
    ben.destroy();
  }
});

test('a vCard PHOTO becomes a PEP avatar (data and metadata with the SHA-1 id) that the owner\'s other client is notified of', async () => {
  const legacy = await connect('juliet', 'jul1et', 'legacy');
  const modern = await connect('juliet', 'jul1et', 'modern');
  try {
    // The modern client wants metadata notifications (XEP-0115 +notify): here it simply reads the node.
    const img = png(2);
    const set = await sendIq(legacy, `<vCard xmlns='vcard-temp'><FN>Juliet</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>${img.toString('base64').replace(/(.{76})/g, '$1\n')}</BINVAL></PHOTO></vCard>`);
    assert.equal(set.attrs.type, 'result', set.toString());
    const meta = await eventually(
      async () => (await sendIq(modern, `<pubsub xmlns='${PUBSUB}'><items node='${META}'/></pubsub>`, "type='get'")).getChild('pubsub')?.getChild('items')?.getChild('item'),
      (it) => it !== undefined,
      'metadata item',
    );
    const info = meta?.getChild('metadata', META)?.getChild('info');
    assert.equal(info?.attrs.id, sha1(img));
    assert.equal(info?.attrs.bytes, String(img.length));
    assert.equal(info?.attrs.type, 'image/png');
    const data = await sendIq(modern, `<pubsub xmlns='${PUBSUB}'><items node='${DATA}'><item id='${sha1(img)}'/></items></pubsub>`, "type='get'");
    const b64 = data.getChild('pubsub')?.getChild('items')?.getChild('item')?.getChildText('data');
    assert.deepEqual(Buffer.from(String(b64), 'base64'), img);

    legacy.send('<presence/>');
    const p = await legacy.next((el) => el.name === 'presence' && el.attrs.from === legacy.jid, 10000);
    assert.equal(p.getChild('x', 'vcard-temp:x:update')?.getChildText('photo'), sha1(img));
  } finally {
    legacy.destroy();
    modern.destroy();
  }
});
