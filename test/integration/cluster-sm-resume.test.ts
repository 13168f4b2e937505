/**
 * Stream management resumption on another cluster node (issue 16): the
 * resumption state is taken wherever the client reconnects.
 *
 * - A session live on node 0 is resumed on node 1: node 1 asks node 0 to hand it over
 *   (cluster inbox), node 0's stream gets <conflict/>, node 1 answers <resumed/>.
 * - Node 0 stops gracefully (SIGTERM): its resumable sessions are written to PostgreSQL, and a
 *   client resumes on node 1.
 *
 * Two real Verona nodes, real PostgreSQL and Redis, on this test's own loopback addresses.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { startRedis, type TestRedis } from '../helpers/cluster-redis.js';
import { startNodes, type ClusterNodeHandle } from '../helpers/cluster-nodes.js';
import { SmClient, tryResume, mamAll, type SmConnectOptions } from './sm-client.js';

const HOST = (i: number): string => `127.0.60.${2 + i}`;
const PW = 'pw';
let pg: TestPostgres;
let redis: TestRedis;
let nodes: ClusterNodeHandle[] = [];
const clients: SmClient[] = [];
let rosalineId = '';

before(async () => {
  pg = await startPostgres({ host: '127.0.60.1' });
  redis = await startRedis('127.0.60.20');
  nodes = await startNodes({
    count: 2,
    redisUrl: redis.url,
    pgUrl: await pg.createDatabase('smresume'),
    users: [['romeo', PW], ['julia', PW], ['tybalt', PW], ['benvolio', PW], ['rosaline', PW]],
    host: HOST,
    config: { log: { level: 'info' }, moduleOptions: { sm: { requestEvery: 100000, requestAfter: 100000 } } },
  });
});

after(async () => {
  // SMDEBUG=1: the nodes' stream-management and cluster log lines, for a failure in CI.
  if (process.env.SMDEBUG) for (const n of nodes) console.log(n.name, n.v.output.filter((l) => /sm|cluster|error/i.test(l)).slice(-30).join('\n'));
  for (const c of clients) c.kill();
  for (const n of nodes) await n.v.stop().catch(() => undefined);
  for (const n of nodes) n.v.cleanup();
  await redis?.stop();
  await pg?.stop();
});

function opts(i: number, user: string, resource: string, extra: Partial<SmConnectOptions> = {}): SmConnectOptions {
  const n = nodes[i] as ClusterNodeHandle;
  return { port: n.v.ports.c2s as number, host: n.host, user, password: PW, resource, ...extra };
}
async function connect(i: number, user: string, resource: string, extra: Partial<SmConnectOptions> = {}): Promise<SmClient> {
  const c = await SmClient.connect(opts(i, user, resource, extra));
  clients.push(c);
  return c;
}
const chat = (to: string, id: string, text: string) => `<message to='${to}' type='chat' id='${id}'><body>${text}</body></message>`;
const bodyOf = (el: Element) => el.getChildText('body');
const isChat = (el: Element) => el.name === 'message' && bodyOf(el) !== null;

/** Send from `from` until `to` gets one live (the other node's registry is eventually consistent). */
async function untilLive(from: SmClient, to: SmClient, target: string, tag: string): Promise<string> {
  const end = Date.now() + 30000;
  for (let i = 0; ; i++) {
    const body = `${tag}-${i}`;
    from.send(chat(target, body, body));
    try {
      await to.next((el) => isChat(el) && bodyOf(el) === body, 700);
      return body;
    } catch (err) {
      if (Date.now() > end) throw err;
    }
  }
}

test('a session live on node 0 resumes on node 1: the old stream gets <conflict/>, nothing lost or doubled', async () => {
  const romeo = await connect(0, 'romeo', 'phone', { presence: true, mr2: true });
  romeo.autoAck = false;
  const julia = await connect(1, 'julia', 'desk', { sm: 'plain', presence: true });
  await untilLive(julia, romeo, 'romeo@localhost', 'warmup');
  julia.send(chat('romeo@localhost', 'a1', 'a1'));
  assert.equal(bodyOf(await romeo.next((el) => isChat(el) && bodyOf(el) === 'a1', 15000)), 'a1');
  romeo.sendStanza(chat('julia@localhost', 'r1', 'r1'), 'r1');
  await julia.next((el) => isChat(el) && bodyOf(el) === 'r1', 15000);
  await julia.requestAck(15000);
  const { client: back, result } = await tryResume(opts(1, 'romeo', 'phone', { resume: { previd: romeo.smId as string, h: romeo.h } }));
  clients.push(back);
  assert.equal(result.name, 'resumed', result.toString());
  await romeo.waitClose(15000);
  assert.equal(romeo.streamError, 'conflict', 'the old stream on node 0 got <conflict/>');
  assert.deepEqual(back.settle(Number(result.attrs.h)).map((o) => o.tag), [], 'r1 was handled: not sent again');
  // Node 0 delivered nothing more after the handover; what comes now reaches node 1's session once.
  julia.send(chat('romeo@localhost', 'a2', 'a2'));
  assert.equal(bodyOf(await back.next(isChat, 15000)), 'a2');
  await back.nothing(isChat, 500);
  const mine = (await mamAll(back)).map((r) => bodyOf(r.msg)).filter((b) => b === 'a1' || b === 'a2' || b === 'r1').sort();
  assert.deepEqual(mine, ['a1', 'a2', 'r1'], 'each once in his archive');
  back.kill();
  julia.kill();
});

test('a session waiting for resumption on node 0 (its connection dropped) resumes on node 1 with its queue', async () => {
  const ben = await connect(0, 'benvolio', 'tab', { presence: true });
  ben.autoAck = false;
  const julia = await connect(1, 'julia', 'desk3', { sm: 'plain', presence: true });
  await untilLive(julia, ben, 'benvolio@localhost', 'warm');
  const h = ben.h;
  ben.kill();
  // c1 goes to the waiting session on node 0: queued there.
  julia.send(chat('benvolio@localhost/tab', 'c1', 'c1'));
  await julia.requestAck(15000);
  const { client: back, result } = await tryResume(opts(1, 'benvolio', 'tab', { resume: { previd: ben.smId as string, h } }));
  clients.push(back);
  assert.equal(result.name, 'resumed', result.toString());
  assert.equal(bodyOf(await back.next(isChat, 15000)), 'c1', 'node 0\'s queue came along');
  julia.send(chat('benvolio@localhost', 'c2', 'c2'));
  assert.equal(bodyOf(await back.next(isChat, 15000)), 'c2');
  await back.nothing(isChat, 500);
  back.kill();
  julia.kill();
});

test('node 0 stops gracefully: its client resumes on node 1 with <resumed/>, unacked messages sent again once', async () => {
  const tybalt = await connect(0, 'tybalt', 'sword', { presence: true });
  tybalt.autoAck = false;
  const julia = await connect(1, 'julia', 'desk2', { sm: 'plain', presence: true });
  await untilLive(julia, tybalt, 'tybalt@localhost', 'warm');
  julia.send(chat('tybalt@localhost', 'b1', 'b1'));
  assert.equal(bodyOf(await tybalt.next((el) => isChat(el) && bodyOf(el) === 'b1', 15000)), 'b1');
  const hSeen = tybalt.h;
  // Rosaline asks for a 1 s resumption timeout and never comes back (next test).
  const rosaline = await connect(0, 'rosaline', 'away', { presence: true, max: 1 });
  rosaline.sendStanza("<iq type='get' id='rp' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>");
  assert.equal(await rosaline.requestAck(15000), 2, 'her presence and her ping handled');
  rosalineId = rosaline.smId as string;
  // b2 reaches node 0's session but not Tybalt (his connection is gone): unacked, queued.
  tybalt.kill();
  julia.send(chat('tybalt@localhost/sword', 'b2', 'b2'));
  await julia.requestAck(15000);

  assert.equal(await (nodes[0] as ClusterNodeHandle).v.stop(), 0, 'node 0 exits cleanly');
  const { client: back, result } = await tryResume(opts(1, 'tybalt', 'sword', { resume: { previd: tybalt.smId as string, h: hSeen } }));
  clients.push(back);
  assert.equal(result.name, 'resumed', result.toString());
  assert.equal(bodyOf(await back.next(isChat, 15000)), 'b2', 'the unacked message, sent again');
  julia.send(chat('tybalt@localhost', 'b3', 'b3'));
  assert.equal(bodyOf(await back.next(isChat, 15000)), 'b3');
  await back.nothing(isChat, 500);
  back.kill();
  julia.kill();
});

test('a session written down by a node that never comes back ends on another node once its time is over', async () => {
  const n1 = nodes[1] as ClusterNodeHandle;
  const expired = async (): Promise<number> => {
    const text = await (await fetch(`http://${n1.host}:${n1.v.ports.http}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith('verona_sm_restored_total{outcome="expired"} '));
    return line ? Number(line.split(' ')[1]) : 0;
  };
  // Node 1 looks for hibernated sessions past their deadline every 30 s.
  const end = Date.now() + 90000;
  while ((await expired()) < 1) {
    assert.ok(Date.now() < end, 'node 1 ended the orphaned session');
    await new Promise((r) => setTimeout(r, 500));
  }
  const { client, result } = await tryResume(opts(1, 'rosaline', 'away', { resume: { previd: rosalineId, h: 0 } }));
  clients.push(client);
  assert.equal(result.name, 'failed');
  assert.equal(result.attrs.h, '2', 'the final h of the ended session');
});
