/**
 * A cluster of real Verona processes on one PostgreSQL and one Redis (both real, started by the
 * test): clients of one account spread over the nodes (MR2 + carbons + plain), chat across nodes,
 * MAM catch-up from another node, roster pushes and presence across nodes, a third node joining,
 * a node killed with SIGKILL (its sessions leave, contacts get unavailable), Redis restarted
 * under load (no crash, sessions found again).
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { startRedis, type TestRedis } from '../helpers/cluster-redis.js';
import { startNode, startNodes, type ClusterNodeHandle, type ClusterNodesOptions } from '../helpers/cluster-nodes.js';
import { sendIq } from '../helpers/client.js';
import { bodyOf, device, mamQuery, shapeOf, stanzaId, type Dev, type Kind } from './mr2-helpers.js';

let pg: TestPostgres;
let redis: TestRedis;
let opts: ClusterNodesOptions;
let nodes: ClusterNodeHandle[] = [];
const clients: Dev[] = [];

const USERS: Array<[string, string]> = [['romeo', 'r0meo'], ['julia', 'ju1ia'], ['nurse', 'nur5e']];
const PW: Record<string, string> = Object.fromEntries(USERS);

before(async () => {
  pg = await startPostgres();
  redis = await startRedis();
  opts = { count: 2, redisUrl: redis.url, pgUrl: await pg.createDatabase('cluster'), users: USERS };
  nodes = await startNodes(opts);
});

after(async () => {
  for (const c of clients) c.destroy();
  for (const n of nodes) await n.v.stop().catch(() => undefined);
  for (const n of nodes) n.v.cleanup();
  await redis?.stop();
  await pg?.stop();
});

async function on(i: number, user: string, resource: string, kind: Kind, priority?: number): Promise<Dev> {
  const n = nodes[i] as ClusterNodeHandle;
  const d = await device({ port: n.v.ports.c2s as number, host: n.host, user, password: PW[user] as string, resource, kind, priority });
  clients.push(d);
  return d;
}

/** Every copy `c` gets within `ms` that matches (to count duplicates). */
async function collect(c: Dev, pred: (el: Element) => boolean, ms: number): Promise<Element[]> {
  const got: Element[] = [];
  const end = Date.now() + ms;
  for (;;) {
    const left = end - Date.now();
    if (left <= 0) return got;
    try {
      got.push(await c.next(pred, left));
    } catch {
      return got;
    }
  }
}

/** Poll until `f` holds (the registry is eventually consistent across nodes). */
async function eventually(f: () => Promise<boolean>, what: string, ms = 30000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await f())) {
    if (Date.now() > end) throw new Error(`not in time: ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

let romeoMr2: Dev;
let romeoCarbons: Dev;
let romeoPlain: Dev;
let julia: Dev;

test('clients of one account on two nodes each get exactly one copy of a chat, with one archive id', async () => {
  romeoMr2 = await on(0, 'romeo', 'mr2', 'mr2');
  romeoCarbons = await on(1, 'romeo', 'carbons', 'carbons');
  romeoPlain = await on(1, 'romeo', 'plain', 'plain');
  julia = await on(0, 'julia', 'phone', 'plain');
  // Wait until node 0 sees romeo's node-1 sessions (published on bind and on presence).
  const body = 'across nodes 1';
  await eventually(async () => {
    julia.send(`<message to='romeo@localhost/carbons' type='chat' id='probe-${Date.now()}'><body>probe</body></message>`);
    const got = await collect(romeoCarbons, (el) => bodyOf(el) === 'probe', 500);
    return got.length > 0;
  }, 'node 0 routes to a node-1 resource');
  julia.send(`<message to='romeo@localhost' type='chat' id='x1'><body>${body}</body></message>`);
  const [a, b, c] = await Promise.all([romeoMr2, romeoCarbons, romeoPlain].map((d) => collect(d, (el) => bodyOf(el) === body, 3000)));
  assert.equal(a?.length, 1, 'MR2 device: one copy');
  assert.equal(b?.length, 1, 'carbons device: one copy');
  assert.equal(c?.length, 1, 'plain device: one copy');
  const ids = [a, b, c].map((l) => stanzaId((l as Element[])[0] as Element));
  assert.ok(ids[0] && ids[0].by === 'romeo@localhost');
  assert.deepEqual(ids[1], ids[0]);
  assert.deepEqual(ids[2], ids[0]);
});

test('what an MR2 device sends reaches the contact on another node and forks to the carbons device there', async () => {
  const body = 'reply from mr2';
  romeoMr2.send(`<message to='julia@localhost' type='chat' id='m-1'><body>${body}</body></message>`);
  const [j, cc, pl] = await Promise.all([
    collect(julia, (el) => bodyOf(el) === body, 3000),
    collect(romeoCarbons, (el) => bodyOf(el) === body, 3000),
    collect(romeoPlain, (el) => bodyOf(el) === body, 1000),
  ]);
  assert.equal(j.length, 1);
  assert.equal(cc.length, 1);
  assert.equal(shapeOf(cc[0] as Element), 'sent');
  // The computable sender id (MR2): <stream id>-<message id>, the same on the other node's carbon.
  assert.deepEqual(stanzaId(cc[0] as Element), { by: 'romeo@localhost', id: `${romeoMr2.streamId}-m-1` });
  assert.equal(pl.length, 0, 'a plain legacy device gets no sent copy');
});

test('MAM catch-up on the other node finds both messages in order, under the ids that were delivered', async () => {
  const page = await mamQuery(romeoPlain, { fields: { with: 'julia@localhost' } });
  const bodies = page.items.map((i) => i.body).filter((b) => b !== 'probe');
  assert.deepEqual(bodies, ['across nodes 1', 'reply from mr2']);
  assert.ok(page.items.some((i) => i.id === `${romeoMr2.streamId}-m-1`));
});

test('archive ids stay unique and in order when both nodes write one archive at once', async () => {
  const nurse = await on(1, 'nurse', 'n', 'plain');
  // julia on node 0 and nurse on node 1 write romeo's archive at the same time.
  const N = 40;
  for (let i = 0; i < N; i++) {
    julia.send(`<message to='romeo@localhost' type='chat' id='j${i}'><body>j${i}</body></message>`);
    nurse.send(`<message to='romeo@localhost' type='chat' id='n${i}'><body>n${i}</body></message>`);
  }
  const got = await collect(romeoPlain, (el) => /^[jn]\d+$/.test(bodyOf(el) ?? ''), 8000);
  assert.equal(got.length, 2 * N);
  const ids = got.map((el) => (stanzaId(el) as { id: string }).id);
  assert.equal(new Set(ids).size, 2 * N, 'unique ids');
  const items: string[] = [];
  let after: string | undefined;
  for (;;) {
    const page = await mamQuery(romeoPlain, { rsm: `<max>100</max>${after ? `<after>${after}</after>` : ''}` });
    items.push(...page.items.map((i) => i.id));
    if (page.complete || !page.last) break;
    after = page.last;
  }
  for (const id of ids) assert.ok(items.includes(id), `delivered id ${id} is in the archive`);
  assert.equal(new Set(items).size, items.length, 'no id twice in the archive');
  // Each sender's messages keep their order in the recipient's archive.
  const order = (p: string): number[] => items.map((id) => ids.indexOf(id)).filter((k) => k >= 0 && bodyOf(got[k] as Element)?.startsWith(p));
  const j = order('j').map((k) => Number(bodyOf(got[k] as Element)?.slice(1)));
  assert.deepEqual(j, [...j].sort((x, y) => x - y));
});

test('a roster change on one node is pushed to interested resources on the other', async () => {
  await sendIq(romeoCarbons, `<query xmlns='jabber:iq:roster'/>`, "type='get'");
  // Node 0 learns that the carbons resource is interested (replicated registry flags).
  await new Promise((r) => setTimeout(r, 1500));
  const res = await sendIq(romeoMr2, `<query xmlns='jabber:iq:roster'><item jid='nurse@localhost' name='Nurse'/></query>`);
  assert.equal(res.attrs.type, 'result');
  const push = await romeoCarbons.next((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('query', 'jabber:iq:roster') !== undefined, 10000);
  assert.equal(push.getChild('query')?.getChild('item')?.attrs.jid, 'nurse@localhost');
});

test('presence subscription and broadcast across nodes', async () => {
  // julia's device on node 1 asks romeo (node 0) for his presence; romeo approves on node 0.
  const julia2 = await on(1, 'julia', 'laptop', 'plain');
  julia2.send(`<presence to='romeo@localhost' type='subscribe'/>`);
  await romeoMr2.next((el) => el.name === 'presence' && el.attrs.type === 'subscribe' && el.attrs.from === 'julia@localhost', 10000);
  romeoMr2.send(`<presence to='julia@localhost' type='subscribed'/>`);
  // Every available resource of romeo (on both nodes) is then seen by julia's devices on both nodes.
  await julia2.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@localhost/carbons' && el.attrs.type === undefined, 10000);
  await julia.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@localhost/mr2' && el.attrs.type === undefined, 10000);
  romeoCarbons.send(`<presence><show>away</show></presence>`);
  const p = await julia.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@localhost/carbons' && el.getChildText('show') === 'away', 10000);
  assert.equal(p.attrs.type, undefined);
});

test('a blocking push from one node reaches the resource on the other that asked for the blocklist', async () => {
  const list = await sendIq(romeoPlain, `<blocklist xmlns='urn:xmpp:blocking'/>`, "type='get'");
  assert.equal(list.attrs.type, 'result');
  // Node 0 learns (replicated session state) that romeo/plain wants blocking pushes.
  await new Promise((r) => setTimeout(r, 1500));
  const res = await sendIq(romeoMr2, `<block xmlns='urn:xmpp:blocking'><item jid='spam@example.org'/></block>`);
  assert.equal(res.attrs.type, 'result');
  const push = await romeoPlain.next((el) => el.name === 'iq' && el.attrs.type === 'set' && el.getChild('block', 'urn:xmpp:blocking') !== undefined, 10000);
  assert.equal(push.getChild('block')?.getChild('item')?.attrs.jid, 'spam@example.org');
});

test('deleting an account on one node ends its session on the other', async () => {
  const nurseThere = clients.find((c) => c.jid === 'nurse@localhost/n') as Dev;
  const nurseHere = await on(0, 'nurse', 'here', 'plain');
  const closed = nurseThere.next((el) => (el.name === 'stream:error' || el.getName() === 'error') && el.getChild('not-authorized', 'urn:ietf:params:xml:ns:xmpp-streams') !== undefined, 15000);
  const res = await sendIq(nurseHere, `<query xmlns='jabber:iq:register'><remove/></query>`);
  assert.equal(res.attrs.type, 'result');
  await closed;
});

test('a third node joins; a client there is part of the same account', async () => {
  nodes.push(await startNode(2, opts));
  const romeo3 = await on(2, 'romeo', 'third', 'carbons');
  const body = 'to all three nodes';
  await eventually(async () => {
    julia.send(`<message to='romeo@localhost/third' type='chat' id='p3-${Date.now()}'><body>probe3</body></message>`);
    return (await collect(romeo3, (el) => bodyOf(el) === 'probe3', 500)).length > 0;
  }, 'node 0 routes to node 2');
  julia.send(`<message to='romeo@localhost' type='chat' id='x3'><body>${body}</body></message>`);
  const all = await Promise.all([romeoMr2, romeoCarbons, romeoPlain, romeo3].map((d) => collect(d, (el) => bodyOf(el) === body, 3000)));
  assert.deepEqual(all.map((l) => l.length), [1, 1, 1, 1]);
});

test('a node killed with SIGKILL: its sessions leave the cluster and contacts get unavailable presence', async () => {
  const n1 = nodes[1] as ClusterNodeHandle;
  await n1.v.stop('SIGKILL');
  // julia (node 0) saw romeo/carbons available (previous test): it must now hear that it is gone.
  const un = await julia.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@localhost/carbons' && el.attrs.type === 'unavailable', 30000);
  assert.equal(un.attrs.type, 'unavailable');
  // A message to romeo now reaches the live devices only, and still exactly once each.
  const body = 'after the death of node 1';
  julia.send(`<message to='romeo@localhost' type='chat' id='x4'><body>${body}</body></message>`);
  const live = await Promise.all([romeoMr2, clients.find((c) => c.jid === 'romeo@localhost/third') as Dev].map((d) => collect(d, (el) => bodyOf(el) === body, 3000)));
  assert.deepEqual(live.map((l) => l.length), [1, 1]);
});

test('Redis restarted (empty) under load: no node crashes, sessions are found again', async () => {
  const romeo3 = clients.find((c) => c.jid === 'romeo@localhost/third') as Dev;
  let sent = 0;
  let stop = false;
  const load = (async () => {
    while (!stop) {
      julia.send(`<message to='romeo@localhost' type='chat' id='l${sent}'><body>load ${sent}</body></message>`);
      sent++;
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  await new Promise((r) => setTimeout(r, 500));
  await redis.restart();
  await new Promise((r) => setTimeout(r, 500));
  stop = true;
  await load;
  for (const n of [nodes[0], nodes[2]] as ClusterNodeHandle[]) assert.equal(n.v.proc.exitCode, null, `${n.name} is still running`);
  // After the restart the nodes write their sessions again: node 0 routes to node 2 once more.
  await eventually(async () => {
    const id = `after-${Date.now()}`;
    julia.send(`<message to='romeo@localhost/third' type='chat' id='${id}'><body>${id}</body></message>`);
    return (await collect(romeo3, (el) => bodyOf(el) === id, 700)).length > 0;
  }, 'routing to node 2 after the Redis restart');
  // Everything julia sent during the outage is in romeo's archive (an ack means archived; Redis only carries live copies).
  const page = await mamQuery(romeoMr2, { fields: { with: 'julia@localhost' }, rsm: '<max>250</max>', flip: true });
  const bodies = new Set(page.items.map((i) => i.body));
  assert.ok(bodies.has(`load ${sent - 1}`), 'the last message sent under load is archived');
});
