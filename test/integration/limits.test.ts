/**
 * Limits against a real server process: c2s connections per address, bound
 * sessions per account, the read rate per stream (nothing lost, the sender
 * slowed, the metric counts it), the stanza size before authentication. The
 * slowloris check (10,000 connections) is a benchmark: bench/slowloris.ts.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import net from 'node:net';
import { connectClient, connectRaw, nextId, stanzaErrorOf, RawConnection } from '../helpers/client.js';

/** A raw connection from one of this area's loopback addresses (127.0.0.1 is exempt from the per-address limit here). */
function connectFrom(port: number, localAddress: string): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', localAddress }, () => resolve(new RawConnection(s)));
    s.once('error', reject);
  });
}

async function metric(v: Verona, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(name) && !line.startsWith('#')) sum += Number(line.split(' ').pop());
  return sum;
}

describe('limits on a real server', () => {
  let v: Verona;
  before(async () => {
    v = await startVerona({
      users: [['romeo', 'r0meo'], ['juliet', 'jul1et'], ['tybalt', 'tyb4lt']],
      config: {
        c2s: { maxStanzaSize: 10000 },
        auth: { failuresPerAddress: 3, failuresPerAccount: 3 },
        limits: { c2sConnectionsPerAddress: 4, exemptAddresses: ['127.0.0.1'], sessionsPerAccount: 2, readRate: 4000, readBurst: 0 },
      },
    });
  });
  after(async () => {
    await v.stop();
    v.cleanup();
  });

  test('connections per address: past the limit a connection is closed before anything is read; a freed slot is reused', async () => {
    const open = await Promise.all([1, 2, 3, 4].map(() => connectFrom(v.ports.c2s, '127.0.0.94')));
    for (const c of open) await c.open();
    const fifth = await connectFrom(v.ports.c2s, '127.0.0.94');
    await fifth.waitClose(10000);
    assert.equal(fifth.raw, '');
    assert.ok((await metric(v, 'verona_connections_refused_total')) >= 1);
    open[0]?.destroy();
    await open[0]?.waitClose();
    // The slot comes back once the server saw the close: retry until it does.
    let features;
    for (let i = 0; i < 50 && features === undefined; i++) {
      const c = await connectFrom(v.ports.c2s, '127.0.0.94');
      try {
        features = await c.open();
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      } finally {
        c.destroy();
      }
    }
    assert.ok(features);
    for (const c of open) c.destroy();
  });

  test('sessions per account: a third resource gets resource-constraint; replacing one still works', async () => {
    const a = await connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'a' });
    const b = await connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'b' });
    await assert.rejects(connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'c' }), /bind failed.*resource-constraint/s);
    const a2 = await connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'a' });
    await a.waitClose(10000);
    assert.ok((await metric(v, 'verona_bind_refused_total')) >= 1);
    for (const c of [b, a2]) c.destroy();
  });

  test('read rate: a fast sender is paused, nothing is lost', async () => {
    const before = await metric(v, 'verona_read_throttled_total');
    const juliet = await connectClient({ port: v.ports.c2s, user: 'juliet', password: 'jul1et', resource: 'r', presence: true });
    const romeo = await connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'fast' });
    const body = 'x'.repeat(900);
    // 30 kB at once against 4000 B/s with a 10 kB burst.
    let batch = '';
    for (let i = 0; i < 30; i++) batch += `<message to='juliet@localhost' type='chat' id='rr${i}'><body>${i} ${body}</body></message>`;
    romeo.send(batch);
    for (let i = 0; i < 30; i++) {
      const m = await juliet.next((el) => el.is('message') && el.attrs.id === `rr${i}`, 60000);
      assert.ok(m.getChildText('body')?.startsWith(`${i} `));
    }
    assert.ok((await metric(v, 'verona_read_throttled_total')) > before);
    juliet.destroy();
    romeo.destroy();
  });

  test('stanza size before authentication: more than c2s.maxStanzaSizePreAuth ends the stream with policy-violation', async () => {
    const c = await connectRaw(v.ports.c2s);
    await c.open();
    c.send(`<iq type='get' id='${nextId()}'><query xmlns='jabber:iq:register'><x>${'a'.repeat(12000)}</x></query></iq>`);
    const err = await c.next((el) => el.name === 'stream:error', 10000);
    assert.ok(err.getChild('policy-violation'));
    assert.equal(stanzaErrorOf(err), undefined);
    c.destroy();
  });

  // Last: it uses up this address's allowance of failures.
  test('failed authentication is throttled: after 3 failures even the right password gets temporary-auth-failure', async () => {
    const attempt = async (password: string): Promise<string> => {
      const c = await connectRaw(v.ports.c2s);
      try {
        await c.open();
        c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0tybalt\0${password}`).toString('base64')}</auth>`);
        const r = await c.next((el) => el.name === 'success' || el.name === 'failure');
        return r.name === 'success' ? 'success' : (r.getChildElements().find((e) => e.getName() !== 'text')?.getName() ?? '');
      } finally {
        c.destroy();
      }
    };
    for (let i = 0; i < 3; i++) assert.equal(await attempt('wrong'), 'not-authorized');
    assert.equal(await attempt('tyb4lt'), 'temporary-auth-failure');
    assert.ok((await metric(v, 'verona_auth_failures_total')) >= 3);
  });
});

// Found by the login-storm benchmark (docs/benchmarks.md, "Login storm"): a connection refused by
// the per-address limit was refused after it had been given a login admission slot, and the slot
// was never given back. c2s.maxPendingLogins refusals later no login was admitted again.
describe('per-address refusals and login admission', () => {
  let v: Verona;
  before(async () => {
    v = await startVerona({
      users: [['romeo', 'r0meo']],
      config: { c2s: { maxPendingLogins: 2 }, limits: { c2sConnectionsPerAddress: 1, exemptAddresses: ['127.0.0.1'] } },
    });
  });
  after(async () => {
    await v.stop();
    v.cleanup();
  });

  test('refused connections hold no login slot: logins from elsewhere still get in', async () => {
    // One connection of 127.0.0.96 sits before authentication: it holds one of the two slots.
    const held = await connectFrom(v.ports.c2s, '127.0.0.96');
    await held.open();
    // Four more from that address are refused by the per-address limit.
    for (let i = 0; i < 4; i++) {
      const c = await connectFrom(v.ports.c2s, '127.0.0.96');
      await c.waitClose(10000);
      assert.equal(c.raw, '');
    }
    assert.ok((await metric(v, 'verona_connections_refused_total')) >= 4);
    // Two logins at once from another address: both need a slot, one of them the second slot.
    const [a, b] = await Promise.all([
      connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'a' }),
      connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'b' }),
    ]);
    assert.match(a.jid, /^romeo@.*\/a$/);
    assert.match(b.jid, /^romeo@.*\/b$/);
    a.destroy();
    b.destroy();
    held.destroy();
  });
});
