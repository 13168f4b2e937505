/**
 * CSI (XEP-0352) limits and its interplay with stream management, against
 * the real server. The hold/pass rules themselves are the scripted
 * conversations test/scripts/csi-*.scs and the table in test/unit/csi.test.ts.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { SmClient, SM, tryResume } from './sm-client.js';

const PW = 'pw';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const isMsg = (el: Element) => el.name === 'message';
let v: Verona;

before(async () => {
  v = await startVerona({
    users: ['romeo', 'juliet', 'nurse', 'paris'].map((u): [string, string] => [u, PW]),
    config: { moduleOptions: { csi: { maxHeld: 3, maxHeldBytes: 1500 }, sm: { requestEvery: 100000, requestAfter: 100000 } } },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const connect = (user: string, resource: string, sm: 'resume' | false = false) =>
  SmClient.connect({ port: v.ports.c2s as number, user, password: PW, resource, sm });
const state = (to: string, id: string, extra = '') =>
  `<message to='${to}' type='chat' id='${id}'><composing xmlns='http://jabber.org/protocol/chatstates'/>${extra}</message>`;

async function inactive(c: SmClient): Promise<void> {
  c.send("<inactive xmlns='urn:xmpp:csi:0'/>");
  await sleep(150); // the nonza is read before the other client's stanzas
}

test('the held queue is bounded by count: one too many flushes all of them, in order', async () => {
  const r = await connect('romeo', 'c1');
  const j = await connect('juliet', 'c1');
  try {
    await inactive(r);
    for (let i = 1; i <= 3; i++) j.send(state(r.jid, `s${i}`));
    await r.nothing(isMsg, 400);
    j.send(state(r.jid, 's4'));
    const got = await r.collect(4, isMsg);
    assert.deepEqual(got.map((e) => e.attrs.id), ['s1', 's2', 's3', 's4']);
    // Still inactive afterwards: holding starts again.
    j.send(state(r.jid, 's5'));
    await r.nothing(isMsg, 400);
  } finally {
    r.kill();
    j.kill();
  }
});

test('the held queue is bounded by bytes', async () => {
  const r = await connect('romeo', 'c2');
  const j = await connect('juliet', 'c2');
  try {
    await inactive(r);
    const big = `<thread>${'x'.repeat(900)}</thread>`;
    j.send(state(r.jid, 'b1', big));
    await r.nothing(isMsg, 400);
    j.send(state(r.jid, 'b2', big));
    const got = await r.collect(2, isMsg);
    assert.deepEqual(got.map((e) => e.attrs.id), ['b1', 'b2']);
  } finally {
    r.kill();
    j.kill();
  }
});

test('held stanzas count for stream management only once sent; the held queue survives resumption', async () => {
  const r = await connect('nurse', 'c3', 'resume');
  const j = await connect('juliet', 'c3');
  try {
    r.autoAck = false;
    await inactive(r);
    j.send(state(r.jid, 'h1'));
    j.send(state(r.jid, 'h2'));
    await r.nothing(isMsg, 400);
    // Nothing was sent, so nothing is unacked: resuming with h=0 resends nothing, and the two stay held.
    r.kill();
    await sleep(150);
    const { client: r2, result } = await tryResume({ port: v.ports.c2s as number, user: 'nurse', password: PW, resume: { previd: r.smId as string, h: 0 } });
    try {
      assert.equal(result.name, 'resumed');
      assert.equal(result.attrs.h, '0');
      await r2.nothing(isMsg, 400);
      r2.autoAck = false;
      // <active/> sends them: now they count (h=2 is a valid ack, h=3 would not be).
      r2.send("<active xmlns='urn:xmpp:csi:0'/>");
      assert.deepEqual((await r2.collect(2, isMsg)).map((e) => e.attrs.id), ['h1', 'h2']);
      r2.send(`<a xmlns='${SM}' h='2'/>`);
      await sleep(100);
      assert.equal(r2.closed, false);
      r2.send(`<a xmlns='${SM}' h='3'/>`);
      const err = await r2.next('stream:error');
      assert.match(err.getChildText('text') ?? '', /only sent you 2 so far/);
    } finally {
      r2.kill();
    }
  } finally {
    r.kill();
    j.kill();
  }
});

test('CSI nonzas before binding are ignored, not a stream error', async () => {
  const { client } = await tryResume({ port: v.ports.c2s as number, user: 'paris', password: PW, resume: { previd: 'none', h: 0 } });
  try {
    client.send("<inactive xmlns='urn:xmpp:csi:0'/>");
    assert.equal(await client.bind('c4'), 'paris@localhost/c4');
    assert.equal(client.streamError, undefined);
  } finally {
    client.kill();
  }
});
