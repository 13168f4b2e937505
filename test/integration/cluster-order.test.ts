/**
 * Per-recipient archive-id order across cluster nodes (docs/cluster.md, "Archive-id order across
 * nodes"): three real nodes on one PostgreSQL and one Redis (both real, started here). Two senders
 * on two nodes send tight bursts to one account at the same moment; the account has a session on a
 * third node and one on the first sender's node. Every session must see strictly ascending
 * stanza-ids, and a MAM catch-up "after" any id it saw must return exactly what it saw after
 * that id (nothing skipped: the promise a client relies on when it disconnects mid-stream).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { startRedis, type TestRedis } from '../helpers/cluster-redis.js';
import { startNodes, type ClusterNodeHandle, type ClusterNodesOptions } from '../helpers/cluster-nodes.js';
import { bodyOf, device, mamQuery, stanzaId, type Dev, type Kind } from './mr2-helpers.js';

/** This test's loopback range (127.0.7.0/24): Redis on .1, node i on .(2+i). */
const HOST = (i: number): string => `127.0.7.${2 + i}`;

let pg: TestPostgres;
let redis: TestRedis;
let nodes: ClusterNodeHandle[] = [];
const clients: Dev[] = [];

const USERS: Array<[string, string]> = [['alice', 'al1ce'], ['bob', 'b0bby'], ['carol', 'car0l']];
const PW: Record<string, string> = Object.fromEntries(USERS);

before(async () => {
  pg = await startPostgres();
  redis = await startRedis('127.0.7.1');
  const opts: ClusterNodesOptions = { count: 3, redisUrl: redis.url, pgUrl: await pg.createDatabase('order'), users: USERS, host: HOST };
  nodes = await startNodes(opts);
});

after(async () => {
  for (const c of clients) c.destroy();
  for (const n of nodes) await n.v.stop().catch(() => undefined);
  for (const n of nodes) n.v.cleanup();
  await redis?.stop();
  await pg?.stop();
});

async function on(i: number, user: string, resource: string, kind: Kind): Promise<Dev> {
  const n = nodes[i] as ClusterNodeHandle;
  const d = await device({ port: n.v.ports.c2s as number, host: n.host, user, password: PW[user] as string, resource, kind });
  clients.push(d);
  return d;
}

const TEST_BODY = /^[ab]\d+-\d+$/;

/** The test's messages `c` received so far, in arrival order (taken out of its buffer). */
function drain(c: Dev, into: Element[]): void {
  for (let i = 0; i < c.received.length; ) {
    const el = c.received[i] as Element;
    if (el.name === 'message' && TEST_BODY.test(bodyOf(el) ?? '')) {
      into.push(el);
      c.received.splice(i, 1);
    } else i++;
  }
}

async function waitFor(c: Dev, into: Element[], n: number, what: string): Promise<void> {
  const end = Date.now() + 60000;
  for (;;) {
    drain(c, into);
    if (into.length >= n) return;
    if (Date.now() > end) throw new Error(`${what}: ${into.length} of ${n} messages in 60 s`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One metric of a node (0 when it has no sample yet). */
async function metric(n: ClusterNodeHandle, name: string): Promise<number> {
  const text = await (await fetch(`http://${n.host}:${n.v.ports.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

/** Every id of the account's archive, in archive order (paged). */
async function archiveIds(c: Dev, after?: string): Promise<string[]> {
  const out: string[] = [];
  let cursor = after;
  for (;;) {
    const page = await mamQuery(c, { rsm: `<max>250</max>${cursor ? `<after>${cursor}</after>` : ''}`, timeoutMs: 30000 });
    out.push(...page.items.filter((i) => TEST_BODY.test(i.body ?? '')).map((i) => i.id));
    if (page.complete || !page.last) return out;
    cursor = page.last;
  }
}

test('two senders on two nodes, bursts at once: every session of the recipient sees ascending ids, and MAM after any of them misses nothing', async () => {
  const alice = await on(0, 'alice', 'a', 'plain');
  const bob = await on(1, 'bob', 'b', 'plain');
  // Carbons: both of carol's sessions get every message (one as a received carbon).
  const far = await on(2, 'carol', 'far', 'carbons');
  const near = await on(0, 'carol', 'near', 'carbons');
  // Until node 0 and node 1 see both of carol's sessions (the registry is eventually consistent).
  for (let k = 0; ; k++) {
    alice.send(`<message to='carol@localhost' type='chat' id='pa${k}'><body>probe</body></message>`);
    bob.send(`<message to='carol@localhost' type='chat' id='pb${k}'><body>probe</body></message>`);
    await new Promise((r) => setTimeout(r, 300));
    const seen = (c: Dev): number => c.received.filter((el) => bodyOf(el) === 'probe').length;
    if (seen(far) >= 2 * (k + 1) && seen(near) >= 2 * (k + 1)) break;
    if (k > 100) throw new Error('carol\'s sessions are not seen by every node');
  }
  const ROUNDS = 30;
  const BURST = 15;
  const streams = new Map<Dev, Element[]>([[far, []], [near, []]]);
  for (let r = 0; r < ROUNDS; r++) {
    // One write per burst, both senders in the same turn: their nodes archive at the same moment.
    let a = '';
    let b = '';
    for (let i = 0; i < BURST; i++) {
      a += `<message to='carol@localhost' type='chat' id='a${r}-${i}'><body>a${r}-${i}</body></message>`;
      b += `<message to='carol@localhost' type='chat' id='b${r}-${i}'><body>b${r}-${i}</body></message>`;
    }
    alice.send(a);
    bob.send(b);
    for (const [c, list] of streams) await waitFor(c, list, 2 * BURST * (r + 1), `round ${r}, ${c.jid}`);
  }
  // The order gate did hold copies, and never had to leave a silent node out (all three answered).
  let held = 0;
  for (const n of nodes) {
    held += await metric(n, 'verona_cluster_order_held_total');
    assert.equal(await metric(n, 'verona_cluster_order_released_total{reason="silent"}'), 0, `${n.name}: no node was left out`);
  }
  assert.ok(held > 0, 'copies were held for order');
  const archive = await archiveIds(near);
  assert.equal(archive.length, 2 * BURST * ROUNDS, 'every message is archived once');
  const rank = new Map(archive.map((id, i) => [id, i]));
  for (const [c, list] of streams) {
    assert.equal(list.length, 2 * BURST * ROUNDS, `${c.jid}: one copy of each message`);
    const ids = list.map((el) => stanzaId(el)?.id as string);
    const inversions: string[] = [];
    for (let i = 1; i < ids.length; i++) {
      const prev = rank.get(ids[i - 1] as string) as number;
      const cur = rank.get(ids[i] as string) as number;
      assert.ok(cur !== undefined && prev !== undefined, `${c.jid}: delivered ids are archive ids`);
      if (cur <= prev) inversions.push(`${ids[i - 1]} then ${ids[i]} (${bodyOf(list[i - 1] as Element)}, ${bodyOf(list[i] as Element)})`);
    }
    assert.deepEqual(inversions, [], `${c.jid} saw stanza-ids out of archive order`);
    // Catch-up from the stream: what the archive holds after the k-th id is exactly what came after it.
    for (const k of [0, Math.floor(ids.length / 3), Math.floor(ids.length / 2), ids.length - 2]) {
      const after = await archiveIds(c, ids[k]);
      assert.deepEqual(after, ids.slice(k + 1), `${c.jid}: MAM after ${ids[k]} returns everything seen after it`);
    }
  }
});

test('a node killed with SIGKILL does not hold deliveries for long: copies wait until it is left out or reaped, still in order', async () => {
  const alice = clients.find((c) => c.jid === 'alice@localhost/a') as Dev;
  const far = clients.find((c) => c.jid === 'carol@localhost/far') as Dev;
  const near = clients.find((c) => c.jid === 'carol@localhost/near') as Dev;
  await (nodes[1] as ClusterNodeHandle).v.stop('SIGKILL');
  // Node 1 can no longer answer asks for its mark: the copies are held until it is silent
  // (2 s without an answer) or reaped (cluster.nodeTimeout 3 s), then delivered.
  const N = 10;
  let burst = '';
  for (let i = 0; i < N; i++) burst += `<message to='carol@localhost' type='chat' id='k${i}'><body>a99-${i}</body></message>`;
  alice.send(burst);
  for (const c of [far, near]) {
    const got: Element[] = [];
    await waitFor(c, got, N, `after the kill, ${c.jid}`);
    assert.deepEqual(got.map((el) => bodyOf(el)), Array.from({ length: N }, (_, i) => `a99-${i}`), `${c.jid}: every copy, in order`);
  }
});
