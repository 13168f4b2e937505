/**
 * Two nodes: a resource bound again on the other node (conflict), a PEP notification across
 * nodes, and a node killed with SIGKILL under stream-management load: the client resumes its
 * stream on the surviving node (<resumed/>, from the live checkpoint in PostgreSQL; the reaper keeps
 * the session), and every message is in the sender's and the recipient's archive exactly once and
 * reached each client exactly once (docs/stream-management.md, "After a crash").
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { startRedis, type TestRedis } from '../helpers/cluster-redis.js';
import { startNodes, type ClusterNodeHandle } from '../helpers/cluster-nodes.js';
import { createHash } from 'node:crypto';
import { sendIq } from '../helpers/client.js';
import { device, type Dev } from './mr2-helpers.js';
import { chatLoad, checkExactlyOnce, connectTalker, resumeTalker, until, warmUp, type Talker } from '../helpers/sm-kill.js';

let pg: TestPostgres;
let redis: TestRedis;
let nodes: ClusterNodeHandle[] = [];
const clients: Dev[] = [];
const talkers: Talker[] = [];

before(async () => {
  pg = await startPostgres();
  redis = await startRedis();
  nodes = await startNodes({ count: 2, redisUrl: redis.url, pgUrl: await pg.createDatabase('clustersm'), users: [['romeo', 'r0meo'], ['julia', 'ju1ia'], ['lord', 'l0rd'], ['lady', 'l4dy']] });
});

after(async () => {
  for (const c of clients) c.destroy();
  for (const t of talkers) for (const c of t.streams) c.kill();
  for (const n of nodes) await n.v.stop().catch(() => undefined);
  for (const n of nodes) n.v.cleanup();
  await redis?.stop();
  await pg?.stop();
});

async function dev(i: number, user: string, pw: string, resource: string): Promise<Dev> {
  const n = nodes[i] as ClusterNodeHandle;
  const d = await device({ port: n.v.ports.c2s as number, host: n.host, user, password: pw, resource, kind: 'plain' });
  clients.push(d);
  return d;
}

test('binding a resource that is bound on another node: the old stream gets <conflict/>, the new one gets the messages', async () => {
  const old = await dev(0, 'romeo', 'r0meo', 'dup');
  const conflict = old.next((el) => el.name === 'stream:error' && el.getChild('conflict', 'urn:ietf:params:xml:ns:xmpp-streams') !== undefined, 20000);
  // Node 1 must know the node-0 session first (the registry is eventually consistent).
  await new Promise((r) => setTimeout(r, 1500));
  const fresh = await dev(1, 'romeo', 'r0meo', 'dup');
  await conflict;
  const julia = await dev(0, 'julia', 'ju1ia', 'probe');
  const end = Date.now() + 20000;
  for (;;) {
    const body = `to dup ${Date.now()}`;
    julia.send(`<message to='romeo@localhost/dup' type='chat'><body>${body}</body></message>`);
    try {
      await fresh.next((el) => el.name === 'message' && el.getChildText('body') === body, 700);
      break;
    } catch {
      if (Date.now() > end) assert.fail('the new session on node 1 never got the message');
    }
  }
  fresh.destroy();
  julia.destroy();
});

test('a PEP notification from one node reaches a subscriber on the other whose caps ask for it', async () => {
  const DISCO = 'http://jabber.org/protocol/disco#info';
  const NODE = 'urn:verona:test:mood';
  const features = [DISCO, 'http://jabber.org/protocol/caps', `${NODE}+notify`];
  const ver = createHash('sha1').update('client/pc//Cluster test<' + [...features].sort().map((f) => f + '<').join(''), 'utf8').digest('base64');
  const lord = await dev(0, 'lord', 'l0rd', 'r');
  const lady = await dev(1, 'lady', 'l4dy', 'r');
  // lady subscribes to lord's presence across nodes; lord approves.
  lady.send(`<presence to='lord@localhost' type='subscribe'/>`);
  await lord.next((el) => el.name === 'presence' && el.attrs.type === 'subscribe', 15000);
  lord.send(`<presence to='lady@localhost' type='subscribed'/>`);
  // lady's caps say +notify for NODE; her node asks her disco#info and learns it.
  lady.send(`<presence><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='urn:verona:cluster' ver='${ver}'/></presence>`);
  const q = await lady.next((el) => el.name === 'iq' && el.attrs.type === 'get' && el.getChild('query', DISCO) !== undefined, 15000);
  lady.send(`<iq type='result' id='${q.attrs.id}' to='${q.attrs.from}'><query xmlns='${DISCO}' node='urn:verona:cluster#${ver}'><identity category='client' type='pc' name='Cluster test'/>${features.map((f) => `<feature var='${f}'/>`).join('')}</query></iq>`);
  // Lord publishes on node 0 until lady's notification interest has reached node 0 (eventual).
  const end = Date.now() + 30000;
  for (let i = 0; ; i++) {
    const res = await sendIq(lord, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='${NODE}'><item id='i${i}'><mood xmlns='urn:verona:test'>${i}</mood></item></publish></pubsub>`);
    assert.equal(res.attrs.type, 'result', res.toString());
    try {
      const ev = await lady.next((el) => el.name === 'message' && el.attrs.from === 'lord@localhost' && el.getChild('event', 'http://jabber.org/protocol/pubsub#event') !== undefined, 1000);
      assert.equal(ev.getChild('event')?.getChild('items')?.attrs.node, NODE);
      break;
    } catch (err) {
      if (Date.now() > end) throw err;
    }
  }
  lord.destroy();
  lady.destroy();
});

test('SIGKILL of the sender\'s node under SM load: the client resumes on the other node, every message in both archives once and received once', async () => {
  const n0 = nodes[0] as ClusterNodeHandle;
  const n1 = nodes[1] as ClusterNodeHandle;
  // Julia (MR2) on node 0, Romeo (a legacy client: SM, presence) on node 1; they talk both ways.
  const julia = await connectTalker({ port: n0.v.ports.c2s as number, host: n0.host, user: 'julia', password: 'ju1ia', resource: 'desk', mr2: true }, 'j', 'romeo@localhost');
  const romeo = await connectTalker({ port: n1.v.ports.c2s as number, host: n1.host, user: 'romeo', password: 'r0meo', resource: 'phone' }, 'r', 'julia@localhost');
  talkers.push(julia, romeo);
  await warmUp([julia, romeo]);
  const load = chatLoad([julia, romeo]);
  await until(() => romeo.c.acked.length >= 60 && julia.c.acked.length >= 60 && romeo.c.h > 30 && julia.c.h > 30, 'acks under load', 90000);
  await n1.v.stop('SIGKILL');
  await until(() => romeo.c.closed, 'romeo\'s connection to the killed node closes');
  // Julia goes on sending to Romeo while his node is dead (archived; his session is kept by the reaper).
  await new Promise((r) => setTimeout(r, 300));
  await load.stop();
  // Romeo resumes on the surviving node: <resumed/>, not a new login.
  await resumeTalker(romeo, { port: n0.v.ports.c2s as number, host: n0.host });
  const more = chatLoad([julia, romeo]);
  await until(() => romeo.sent >= romeo.c.acked.length + 10 || romeo.sent > 600, 'more messages');
  await more.stop();
  try {
    // Julia's node did not die: what node 1 archived and had not yet published to her node reaches her through MAM, not live.
    await checkExactlyOnce(julia, romeo, 'julia@localhost', 'romeo@localhost', [julia]);
  } catch (err) {
    console.log(n0.v.output.filter((l) => /"module":"(sm|cluster)"|cluster/.test(l)).slice(-40).join('\n'));
    console.log('NODE1', n1.v.output.filter((l) => !l.includes('"level":30')).slice(-40).join('\n'));
    throw err;
  }
  // The reaper (node 0) kept the dead node's resumable session instead of ending it.
  assert.ok(n0.v.output.some((l) => l.includes('node is dead') && l.includes('"kept":1')), 'the reaper kept the session');
  const metrics = await (await fetch(`http://${n0.host}:${n0.v.ports.http}/metrics`)).text();
  assert.match(metrics, /^verona_sm_restored_total\{outcome="crashed"\} 1$/m, 'restored from its live checkpoint');
});
