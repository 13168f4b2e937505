/**
 * The stanza limits (src/limits/stanza-limits.ts) and the web read rate
 * against a real server process, with small limits so that a test reaches
 * them: IQ floods from a raw client, the MAM page cap and row budget,
 * presence broadcasts held and coalesced, subscription requests per account,
 * directed presences per session, and limits.readRate on WebSocket (xmpp.js)
 * and BOSH (StanzaJS) streams. Loopback is not exempt on this server.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as XMPP from 'stanza';
import { xml } from '@xmpp/client';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, nextId, stanzaErrorOf, type TestClient } from '../helpers/client.js';
import { client } from '../helpers/xmppjs.js';
import { WebSocket } from 'ws';
import type { Element } from '@xmpp/xml';

// xmpp.js's WebSocket transport expects a browser-like global (Node 20 has none).
const g = globalThis as unknown as { WebSocket?: unknown };
g.WebSocket ??= WebSocket;

const USERS: Array<[string, string]> = ['romeo', 'juliet', 'tybalt', 'benvolio', 'mercutio', 'nurse', 'friar', 'paris', 'webby'].map((u) => [u, `${u}-pw`]);

let v: Verona;

async function metric(name: string, labels = ''): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && !line.startsWith('#') && line.includes(labels)) sum += Number(line.split(' ').pop());
  return sum;
}

function login(user: string, resource = 'r', presence = false): Promise<TestClient> {
  return connectClient({ port: v.ports.c2s as number, user, password: `${user}-pw`, resource, presence });
}

/** Mutual subscription between two online raw clients (RFC 6121 §3), waiting for each step. */
async function befriend(a: TestClient, aUser: string, b: TestClient, bUser: string): Promise<void> {
  const step = async (from: TestClient, to: TestClient, fromUser: string, toUser: string): Promise<void> => {
    from.send(`<presence to='${toUser}@localhost' type='subscribe'/>`);
    await to.next((el) => el.is('presence') && el.attrs.type === 'subscribe' && String(el.attrs.from).startsWith(`${fromUser}@`), 20000);
    to.send(`<presence to='${fromUser}@localhost' type='subscribed'/>`);
    await from.next((el) => el.is('presence') && el.attrs.type === 'subscribed' && String(el.attrs.from).startsWith(`${toUser}@`), 20000);
  };
  await step(a, b, aUser, bUser);
  await step(b, a, bUser, aUser);
}

before(async () => {
  v = await startVerona({
    users: USERS,
    config: {
      c2s: { maxStanzaSize: 10000 },
      moduleOptions: { mam: { defaultPageSize: 5, maxPageSize: 10 } },
      limits: {
        exemptAddresses: [],
        iqPerSecond: 1,
        iqBurst: 10,
        mamRowsPerSecond: 1,
        mamRowsBurst: 20,
        presencePerMinute: 30,
        presenceBurst: 2,
        subscriptionsPerMinute: 1,
        subscriptionBurst: 3,
        directedPresences: 3,
        readRate: 4000,
        readBurst: 0,
      },
    },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

describe('stanza limits on a real server', () => {
  test('IQ flood: past the burst, requests get resource-constraint (wait); the session lives on and is served again later', async () => {
    const c = await login('mercutio');
    const ids = Array.from({ length: 40 }, () => nextId());
    c.send(ids.map((id) => `<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`).join(''));
    let ok = 0;
    let refused = 0;
    for (const id of ids) {
      const r = await c.next((el) => el.is('iq') && el.attrs.id === id, 30000);
      if (r.attrs.type === 'result') ok++;
      else {
        assert.equal(stanzaErrorOf(r), 'resource-constraint');
        assert.equal(r.getChild('error')?.attrs.type, 'wait');
        refused++;
      }
    }
    assert.ok(ok >= 10, `the burst is served (${ok})`);
    assert.ok(refused >= 10, `the flood is refused (${refused} of 40)`);
    assert.ok((await metric('verona_stanza_limited_total', 'limit="iq"')) >= refused);
    // Not a stream error: the stream is open, messages still flow, and a later IQ is answered.
    c.send(`<message to='${c.jid}' type='chat' id='still'><body>still here</body></message>`);
    await c.next((el) => el.is('message') && el.attrs.id === 'still', 20000);
    let answered = false;
    for (let i = 0; i < 60 && !answered; i++) {
      const id = nextId();
      c.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      answered = (await c.next((el) => el.is('iq') && el.attrs.id === id, 20000)).attrs.type === 'result';
      if (!answered) await new Promise((r) => setTimeout(r, 500));
    }
    assert.ok(answered);
    assert.equal(c.closed, false);
    c.destroy();
  });

  test('MAM: a page never exceeds maxPageSize; queries past the account budget get resource-constraint, on every resource', async () => {
    const nurse = await login('nurse', 'a', true);
    const friar = await login('friar');
    for (let i = 0; i < 12; i++) friar.send(`<message to='nurse@localhost' type='chat' id='m${i}'><body>${i}</body></message>`);
    for (let i = 0; i < 12; i++) await nurse.next((el) => el.is('message') && el.attrs.id === `m${i}`, 30000);
    const query = async (c: TestClient, max: number): Promise<{ rows: number; reply: Element }> => {
      const id = nextId();
      c.send(`<iq type='set' id='${id}'><query xmlns='urn:xmpp:mam:2' queryid='${id}'><set xmlns='http://jabber.org/protocol/rsm'><max>${max}</max></set></query></iq>`);
      const reply = await c.next((el) => el.is('iq') && el.attrs.id === id, 30000);
      let rows = 0;
      for (let i = c.received.length - 1; i >= 0; i--) {
        const el = c.received[i] as Element;
        if (el.is('message') && el.getChild('result', 'urn:xmpp:mam:2')?.attrs.queryid === id) {
          rows++;
          c.received.splice(i, 1);
        }
      }
      return { rows, reply };
    };
    // Asks for 1000, gets the largest page (10) and complete='false': the page cap holds. Costs 10 rows.
    const first = await query(nurse, 1000);
    assert.equal(first.reply.attrs.type, 'result');
    assert.equal(first.rows, 10);
    assert.equal(first.reply.getChild('fin', 'urn:xmpp:mam:2')?.attrs.complete, undefined);
    // Another 10 rows: the budget (burst 20) is spent now.
    assert.equal((await query(nurse, 10)).reply.attrs.type, 'result');
    const refused = await query(nurse, 10);
    assert.equal(refused.reply.attrs.type, 'error');
    assert.equal(stanzaErrorOf(refused.reply), 'resource-constraint');
    assert.equal(refused.reply.getChild('error')?.attrs.type, 'wait');
    assert.equal(refused.rows, 0);
    // The budget is the account's: a second resource does not get a fresh one.
    const nurse2 = await login('nurse', 'b');
    const other = await query(nurse2, 10);
    assert.equal(stanzaErrorOf(other.reply), 'resource-constraint');
    // Another account is not affected.
    assert.equal((await query(friar, 5)).reply.attrs.type, 'result');
    assert.ok((await metric('verona_stanza_limited_total', 'limit="mam"')) >= 2);
    for (const c of [nurse, nurse2, friar]) c.destroy();
  });

  test('presence broadcasts: past the burst they are held, the newest replaces a held one, and contacts end on the last state', async () => {
    const romeo = await login('romeo', 'r', true);
    const juliet = await login('juliet', 'r', true);
    await befriend(romeo, 'romeo', juliet, 'juliet');
    // Let the subscription's own presences arrive first, then only count the statuses.
    const seen: string[] = [];
    const heldBefore = await metric('verona_stanza_limited_total', 'limit="presence-broadcast"');
    await new Promise((r) => setTimeout(r, 4500));
    juliet.received.splice(0);
    romeo.send(Array.from({ length: 10 }, (_, i) => `<presence><status>s${i + 1}</status></presence>`).join(''));
    while (!seen.includes('s10')) {
      const p = await juliet.next((el) => el.is('presence') && String(el.attrs.from).startsWith('romeo@') && el.getChildText('status') !== null, 60000);
      seen.push(String(p.getChildText('status')));
    }
    assert.ok(seen.length < 10, `coalesced: juliet saw ${seen.join(',')}`);
    assert.equal(seen[seen.length - 1], 's10');
    assert.ok((await metric('verona_stanza_limited_total', 'limit="presence-broadcast"')) > heldBefore);
    romeo.destroy();
    juliet.destroy();
  });

  test('subscription requests: past the burst, policy-violation (wait) per account', async () => {
    const tybalt = await login('tybalt');
    const results: Array<string | undefined> = [];
    for (let i = 0; i < 5; i++) {
      const id = nextId();
      tybalt.send(`<presence to='stranger${i}@localhost' type='subscribe' id='${id}'/>`);
      // A ping after each: its answer proves the request was handled (an error comes before it).
      const ping = nextId();
      tybalt.send(`<iq type='get' id='${ping}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      const r = await tybalt.next((el) => (el.is('presence') && el.attrs.id === id && el.attrs.type === 'error') || (el.is('iq') && el.attrs.id === ping), 20000);
      if (r.is('presence')) {
        assert.equal(r.getChild('error')?.attrs.type, 'wait');
        results.push(stanzaErrorOf(r));
        await tybalt.next((el) => el.is('iq') && el.attrs.id === ping, 20000);
      } else results.push(undefined);
    }
    assert.deepEqual(results, [undefined, undefined, undefined, 'policy-violation', 'policy-violation']);
    tybalt.destroy();
  });

  test('directed presences: a fourth target gets policy-violation; known targets are fine', async () => {
    const b = await login('benvolio', 'r', true);
    const directed = async (to: string): Promise<string | undefined> => {
      const id = nextId();
      b.send(`<presence to='${to}' id='${id}'/>`);
      const ping = nextId();
      b.send(`<iq type='get' id='${ping}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      const r = await b.next((el) => (el.is('presence') && el.attrs.id === id && el.attrs.type === 'error') || (el.is('iq') && el.attrs.id === ping), 20000);
      if (r.is('iq')) return undefined;
      await b.next((el) => el.is('iq') && el.attrs.id === ping, 20000);
      return stanzaErrorOf(r);
    };
    assert.equal(await directed('paris@localhost/x1'), undefined);
    assert.equal(await directed('paris@localhost/x2'), undefined);
    assert.equal(await directed('paris@localhost/x3'), undefined);
    assert.equal(await directed('paris@localhost/x4'), 'policy-violation');
    assert.equal(await directed('paris@localhost/x1'), undefined, 'a known target');
    assert.ok((await metric('verona_stanza_limited_total', 'limit="directed-presence"')) >= 1);
    b.destroy();
  });
});

describe('read rate on the web transports', () => {
  const body = 'x'.repeat(900);

  test('WebSocket (xmpp.js): a fast sender is paused, nothing is lost', async () => {
    const juliet = await login('juliet', 'ws-reader', true);
    const before = await metric('verona_read_throttled_total');
    const ws = client({ service: `ws://127.0.0.1:${v.ports.http}/xmpp-websocket`, domain: 'localhost', username: 'webby', password: 'webby-pw', resource: 'ws' });
    ws.on('error', () => undefined);
    await ws.start();
    // 30 frames of ~1 kB against 4000 B/s with a 10 kB burst.
    for (let i = 0; i < 30; i++) void ws.send(xml('message', { to: 'juliet@localhost/ws-reader', type: 'chat', id: `w${i}` }, xml('body', {}, `${i} ${body}`)));
    for (let i = 0; i < 30; i++) await juliet.next((el) => el.is('message') && el.attrs.id === `w${i}`, 60000);
    assert.ok((await metric('verona_read_throttled_total')) > before);
    await ws.stop();
    juliet.destroy();
  });

  test('BOSH (StanzaJS): bodies over the rate are held, nothing is lost', async () => {
    const juliet = await login('juliet', 'bosh-reader', true);
    const before = await metric('verona_read_throttled_total');
    const c = XMPP.createClient({ jid: 'webby@localhost', password: 'webby-pw', resource: 'bosh', transports: { websocket: false, bosh: `http://127.0.0.1:${v.ports.http}/http-bind` } });
    try {
      await new Promise<void>((resolve, reject) => {
        c.once('disconnected', () => reject(new Error('disconnected before stream management was enabled')));
        // Wait for <enabled/>, not only 'session:started' (which StanzaJS emits after bind,
        // before it sends <enable/>): otherwise <enable/> queues behind the 30 messages the
        // rate limiter releases one by one, and is still unsent when disconnect() below posts
        // its terminate body out of turn. StanzaJS 12.22 then never completes that write, its
        // outgoing queue never drains and 'disconnected' never comes, although the server
        // answered every request, the terminate included.
        const onSm = (sm: { type: string }): void => {
          if (sm.type !== 'enabled') return;
          c.off('sm', onSm);
          resolve();
        };
        c.on('sm', onSm);
        c.connect();
      });
      for (let i = 0; i < 30; i++) c.sendMessage({ to: 'juliet@localhost/bosh-reader', type: 'chat', id: `b${i}`, body: `${i} ${body}` });
      for (let i = 0; i < 30; i++) await juliet.next((el) => el.is('message') && el.attrs.id === `b${i}`, 60000);
      assert.ok((await metric('verona_read_throttled_total')) > before);
    } finally {
      const ended = new Promise((r) => c.once('disconnected', r));
      c.disconnect();
      await ended;
      juliet.destroy();
    }
  });
});

describe('web sessions per address (BOSH), behind a trusted proxy', () => {
  let w: Verona;
  before(async () => {
    w = await startVerona({ config: { web: { trustedProxies: ['127.0.0.1'], maxConnectionsPerAddress: 2 } } });
  });
  after(async () => {
    await w.stop();
    w.cleanup();
  });

  let rid = 5000;
  /** Create a BOSH session as seen from `client` (X-Forwarded-For); the sid, or the terminate condition. */
  const create = async (client: string): Promise<{ sid?: string; condition?: string }> => {
    const body = `<body xmlns='http://jabber.org/protocol/httpbind' xmlns:xmpp='urn:xmpp:xbosh' rid='${++rid}' wait='10' hold='1' to='localhost' ver='1.6' xmpp:version='1.0'/>`;
    const res = await fetch(`http://127.0.0.1:${w.ports.http}/http-bind`, { method: 'POST', body, headers: { 'Content-Type': 'text/xml; charset=utf-8', 'X-Forwarded-For': client } });
    const text = await res.text();
    const sid = /\bsid=['"]([^'"]+)['"]/.exec(text)?.[1];
    const condition = /\bcondition=['"]([^'"]+)['"]/.exec(text)?.[1];
    return { ...(sid ? { sid } : {}), ...(condition ? { condition } : {}) };
  };
  const terminate = async (sid: string, client: string): Promise<void> => {
    const body = `<body xmlns='http://jabber.org/protocol/httpbind' rid='${++rid}' sid='${sid}' type='terminate'/>`;
    await (await fetch(`http://127.0.0.1:${w.ports.http}/http-bind`, { method: 'POST', body, headers: { 'Content-Type': 'text/xml; charset=utf-8', 'X-Forwarded-For': client } })).text();
  };

  test('a third BOSH session from one address gets policy-violation; IPv6 counts per /64; a terminated session frees its slot', async () => {
    const a = await create('198.51.100.20');
    const b = await create('198.51.100.20');
    assert.ok(a.sid && b.sid);
    assert.equal((await create('198.51.100.20')).condition, 'policy-violation');
    assert.ok((await create('198.51.100.21')).sid, 'another address has its own allowance');
    // Two addresses of one /64 share the allowance; the next /64 does not.
    assert.ok((await create('2001:db8:5:6::1')).sid);
    assert.ok((await create('2001:db8:5:6::2')).sid);
    assert.equal((await create('2001:db8:5:6::3')).condition, 'policy-violation');
    assert.ok((await create('2001:db8:5:7::1')).sid);
    await terminate(a.sid, '198.51.100.20');
    let again: { sid?: string; condition?: string } = {};
    for (let i = 0; i < 50 && again.sid === undefined; i++) {
      again = await create('198.51.100.20');
      if (again.sid === undefined) await new Promise((r) => setTimeout(r, 200));
    }
    assert.ok(again.sid, 'the slot is free again');
  });
});
