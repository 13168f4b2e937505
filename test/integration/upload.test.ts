/**
 * XEP-0363 HTTP File Upload against the real server: the service is found
 * through the server's disco#items, advertises its limits in a XEP-0128 form,
 * hands a slot to xmpp.js, takes the PUT over HTTPS and serves the GET with
 * safe headers; refusals for size and quota; slots are single use and bound
 * to the requester; files expire; a removed account loses its files.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { xml } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf } from '../helpers/client.js';
import { parseSlot, request } from '../helpers/apps-http.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // xmpp.js STARTTLS against the self-signed test certificate

const NS = 'urn:xmpp:http:upload:0';
let v: Verona;

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['juliet', 'jul1et'], ['tybalt', 'tyb4lt'], ['mercutio', 'merc']],
    config: { moduleOptions: { upload: { maxFileSize: 200_000, quota: 300_000, expireAfter: 3600 } } },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const connect = (user: string, password: string, resource = 'r') => connectClient({ port: v.ports.c2s as number, user, password, resource });
const slotRequest = (name: string, size: number, type?: string) =>
  `<request xmlns='${NS}' filename='${name}' size='${size}'${type ? ` content-type='${type}'` : ''}/>`;

test('xmpp.js finds the service in disco, reads its limits, uploads over HTTPS, and anyone with the URL downloads it', async () => {
  const c = client({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username: 'romeo', password: 'r0meo', resource: 'xmppjs' });
  c.on('error', () => undefined);
  try {
    await c.start();
    const items = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }), 'localhost');
    const jids = items.getChildren('item').map((i) => i.attrs.jid as string);
    assert.ok(jids.includes('upload.localhost'), `server items: ${jids.join(', ')}`);
    assert.ok(!jids.includes('proxy.localhost'), 'the SOCKS5 proxy is off by default');
    const info = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'upload.localhost');
    assert.ok(info.getChildren('feature').some((f) => f.attrs.var === NS));
    assert.equal(info.getChild('identity')?.attrs.category, 'store');
    const form = info.getChild('x', 'jabber:x:data');
    const field = (k: string) => form?.getChildren('field').find((f) => f.attrs.var === k)?.getChildText('value');
    assert.equal(field('FORM_TYPE'), NS);
    assert.equal(field('max-file-size'), '200000');
    assert.equal(field('x-quota'), '300000');

    const png = Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), Buffer.alloc(5000, 7)]);
    // iqCaller.get returns a child named like the request; the answer is a <slot/>, so take the whole IQ.
    const res = await c.iqCaller.request(
      xml('iq', { type: 'get', to: 'upload.localhost' }, xml('request', { xmlns: NS, filename: 'balcony at night.png', size: String(png.length), 'content-type': 'image/png' })),
    );
    const slot = parseSlot(res.getChild('slot', NS));
    assert.match(slot.put, /^https:\/\//);
    assert.equal(slot.put, slot.get);
    assert.match(slot.headers.Authorization ?? '', /^Bearer /);

    const put = await request('PUT', slot.put, { ...slot.headers, 'Content-Type': 'image/png', 'Content-Length': String(png.length) }, png);
    assert.equal(put.status, 201, put.body.toString());

    const got = await request('GET', slot.get);
    assert.equal(got.status, 200);
    assert.deepEqual(got.body, png);
    assert.equal(got.headers['content-type'], 'image/png');
    assert.equal(got.headers['x-content-type-options'], 'nosniff');
    assert.match(String(got.headers['content-security-policy']), /default-src 'none'.*sandbox/);
    assert.match(String(got.headers['content-disposition']), /^inline; filename="balcony at night.png"/);
    assert.equal(got.headers['access-control-allow-origin'], '*');

    const part = await request('GET', slot.get, { Range: 'bytes=0-7' });
    assert.equal(part.status, 206);
    assert.equal(part.body.toString('hex'), '89504e470d0a1a0a');

    // Single use: the same slot takes no second PUT.
    const again = await request('PUT', slot.put, { ...slot.headers, 'Content-Type': 'image/png', 'Content-Length': String(png.length) }, png);
    assert.equal(again.status, 409);
  } finally {
    await c.stop();
  }
});

test('an HTML upload is served as an attachment of type application/octet-stream, never as a page', async () => {
  const r = await connect('juliet', 'jul1et');
  try {
    const html = Buffer.from('<script>alert(document.cookie)</script>');
    const res = await sendIq(r, slotRequest('evil.html', html.length, 'text/html'), "type='get' to='upload.localhost'");
    const slot = parseSlot(res.getChild('slot', NS));
    const put = await request('PUT', slot.put, { ...slot.headers, 'Content-Type': 'text/html', 'Content-Length': String(html.length) }, html);
    assert.equal(put.status, 201);
    const got = await request('GET', slot.get);
    assert.equal(got.headers['content-type'], 'application/octet-stream');
    assert.match(String(got.headers['content-disposition']), /^attachment;/);
    assert.equal(got.headers['x-content-type-options'], 'nosniff');
  } finally {
    r.destroy();
  }
});

test('CORS: a web page on another origin may preflight and PUT with the Authorization header', async () => {
  const r = await connect('juliet', 'jul1et');
  try {
    const res = await sendIq(r, slotRequest('note.txt', 5, 'text/plain'), "type='get' to='upload.localhost'");
    const slot = parseSlot(res.getChild('slot', NS));
    const pre = await request('OPTIONS', slot.put, { Origin: 'https://webclient.example', 'Access-Control-Request-Method': 'PUT', 'Access-Control-Request-Headers': 'authorization,content-type' });
    assert.equal(pre.status, 204);
    assert.equal(pre.headers['access-control-allow-origin'], 'https://webclient.example');
    assert.match(String(pre.headers['access-control-allow-methods']), /PUT/);
    assert.match(String(pre.headers['access-control-allow-headers']), /Authorization/);
    const put = await request('PUT', slot.put, { ...slot.headers, Origin: 'https://webclient.example', 'Content-Type': 'text/plain', 'Content-Length': '5' }, Buffer.from('hello'));
    assert.equal(put.status, 201);
    assert.equal(put.headers['access-control-allow-origin'], 'https://webclient.example');
  } finally {
    r.destroy();
  }
});

test('a slot is bound to its requester: a PUT without the token or with another slot\'s token is refused', async () => {
  const romeo = await connect('romeo', 'r0meo');
  const tybalt = await connect('tybalt', 'tyb4lt');
  try {
    const a = parseSlot((await sendIq(romeo, slotRequest('a.bin', 4), "type='get' to='upload.localhost'")).getChild('slot', NS));
    const b = parseSlot((await sendIq(tybalt, slotRequest('b.bin', 4), "type='get' to='upload.localhost'")).getChild('slot', NS));
    const body = Buffer.from('evil');
    assert.equal((await request('PUT', a.put, { 'Content-Length': '4' }, body)).status, 403);
    assert.equal((await request('PUT', a.put, { ...b.headers, 'Content-Length': '4' }, body)).status, 403);
    // Wrong size: the slot is for exactly 4 bytes.
    assert.equal((await request('PUT', a.put, { ...a.headers, 'Content-Length': '5' }, Buffer.from('evil!'))).status, 413);
    // Nothing was stored; the owner can still use the slot.
    assert.equal((await request('GET', a.get)).status, 404);
    assert.equal((await request('PUT', a.put, { ...a.headers, 'Content-Length': '4' }, Buffer.from('good'))).status, 201);
    assert.equal((await request('GET', a.get)).body.toString(), 'good');
  } finally {
    romeo.destroy();
    tybalt.destroy();
  }
});

test('size and quota refusals: file-too-large with the maximum, resource-constraint past the quota', async () => {
  const r = await connect('tybalt', 'tyb4lt', 'q');
  try {
    const big = await sendIq(r, slotRequest('huge.bin', 200_001), "type='get' to='upload.localhost'");
    assert.equal(big.attrs.type, 'error');
    assert.equal(stanzaErrorOf(big), 'not-acceptable');
    assert.equal(big.getChild('error')?.getChild('file-too-large', NS)?.getChildText('max-file-size'), '200000');

    const bad = await sendIq(r, `<request xmlns='${NS}' filename='x'/>`, "type='get' to='upload.localhost'");
    assert.equal(stanzaErrorOf(bad), 'bad-request');

    // 300,000 bytes of quota: two slots of 150,000 fit (one already used 4 bytes above: this one does not).
    const first = await sendIq(r, slotRequest('one.bin', 150_000), "type='get' to='upload.localhost'");
    assert.equal(first.attrs.type, 'result');
    const second = await sendIq(r, slotRequest('two.bin', 150_000), "type='get' to='upload.localhost'");
    assert.equal(second.attrs.type, 'error');
    assert.equal(stanzaErrorOf(second), 'resource-constraint');
    const small = await sendIq(r, slotRequest('three.bin', 1000), "type='get' to='upload.localhost'");
    assert.equal(small.attrs.type, 'result');
  } finally {
    r.destroy();
  }
});

test('removing the account (XEP-0077) removes its uploads from disk and from the web', async () => {
  const r = await connect('mercutio', 'merc');
  const slot = parseSlot((await sendIq(r, slotRequest('queen mab.txt', 3, 'text/plain'), "type='get' to='upload.localhost'")).getChild('slot', NS));
  assert.equal((await request('PUT', slot.put, { ...slot.headers, 'Content-Length': '3', 'Content-Type': 'text/plain' }, Buffer.from('mab'))).status, 201);
  const dir = path.join(v.dataDir, 'upload', Buffer.from('mercutio').toString('hex'));
  assert.ok(existsSync(dir) && readdirSync(dir).length === 1);
  const removed = await sendIq(r, "<query xmlns='jabber:iq:register'><remove/></query>");
  assert.equal(removed.attrs.type, 'result');
  r.destroy();
  for (let i = 0; i < 100 && existsSync(dir); i++) await new Promise((res) => setTimeout(res, 100));
  assert.ok(!existsSync(dir), 'the account directory is gone');
  assert.equal((await request('GET', slot.get)).status, 404);
});

test('files expire: after expireAfter the URL answers 404 and the cleanup sweep deletes the file', async () => {
  const w = await startVerona({ users: [['romeo', 'r0meo']], config: { moduleOptions: { upload: { expireAfter: 2, cleanupInterval: 1 } } } });
  try {
    const r = await connectClient({ port: w.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'e' });
    const slot = parseSlot((await sendIq(r, slotRequest('brief.txt', 2), "type='get' to='upload.localhost'")).getChild('slot', NS));
    assert.equal((await request('PUT', slot.put, { ...slot.headers, 'Content-Length': '2' }, Buffer.from('hi'))).status, 201);
    assert.equal((await request('GET', slot.get)).status, 200);
    const dir = path.join(w.dataDir, 'upload', Buffer.from('romeo').toString('hex'));
    for (let i = 0; i < 200 && existsSync(dir) && readdirSync(dir).length > 0; i++) await new Promise((res) => setTimeout(res, 100));
    assert.equal(readdirSync(dir).length, 0, 'the sweep removed the expired file');
    assert.equal((await request('GET', slot.get)).status, 404);
    r.destroy();
  } finally {
    await w.stop();
    w.cleanup();
  }
});

test('stored files survive a restart', async () => {
  const r = await connect('romeo', 'r0meo', 'restart');
  const slot = parseSlot((await sendIq(r, slotRequest('keep.txt', 4), "type='get' to='upload.localhost'")).getChild('slot', NS));
  assert.equal((await request('PUT', slot.put, { ...slot.headers, 'Content-Length': '4' }, Buffer.from('kept'))).status, 201);
  r.destroy();
  await v.stop();
  v = await startVerona({ dataDir: v.dataDir, config: { moduleOptions: { upload: { maxFileSize: 200_000, quota: 300_000 } } } });
  const url = new URL(slot.get);
  url.port = String(v.ports.https);
  const got = await request('GET', url.toString());
  assert.equal(got.status, 200);
  assert.equal(got.body.toString(), 'kept');
});
