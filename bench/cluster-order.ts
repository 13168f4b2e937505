/**
 * Delivery latency in a 3-node cluster on this host (one PostgreSQL, one Redis, all started here
 * on 127.0.7.x), open loop at a fixed rate, for the archive-id order across nodes
 * (docs/cluster.md): every archived copy waits until every node's order mark is at its id.
 *
 *   nice -n 15 node dist/bench/cluster-order.js
 * Environment [defaults]: DUR [10] seconds, RATE [50] messages/s per flow, PAIRS [5] per flow.
 *
 * Three flows run at once, each PAIRS sender/recipient pairs of their own accounts:
 *   local  sender and recipient on node 0 (the copy still waits for nodes 1 and 2's marks);
 *   cross  sender on node 1, recipient on node 0 (the copy crosses Redis);
 *   mixed  senders on nodes 1 and 2, recipient on node 0 (two sources to one recipient).
 * Latency is from the sender's write to the recipient's read of the copy (one process, one
 * clock). Prints a Markdown table with the load average; figures on a shared machine are
 * indicative only. To compare with the code before the ordering, build this script in a tree of
 * that commit and run it there (docs/benchmarks.md says how).
 */
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { startPostgres } from '../test/helpers/pg.js';
import { startRedis } from '../test/helpers/cluster-redis.js';
import { startNodes, type ClusterNodeHandle } from '../test/helpers/cluster-nodes.js';
import { connectClient, type TestClient } from '../test/helpers/client.js';

const env = (k: string, d: string): number => Number(process.env[k] ?? d);
const DUR = env('DUR', '10');
const RATE = env('RATE', '50');
const PAIRS = env('PAIRS', '5');
const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

interface Flow {
  name: string;
  /** Node of each pair's sender (cycled) and of the recipients. */
  senderNodes: number[];
  recipientNode: number;
}
const FLOWS: Flow[] = [
  { name: 'local', senderNodes: [0], recipientNode: 0 },
  { name: 'cross', senderNodes: [1], recipientNode: 0 },
  { name: 'mixed', senderNodes: [1, 2], recipientNode: 0 },
];

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

async function main(): Promise<void> {
  const users: Array<[string, string]> = [];
  for (const f of FLOWS) for (let i = 0; i < PAIRS; i++) users.push([`${f.name}s${i}`, 'pw'], [`${f.name}r${i}`, 'pw']);
  const pg = await startPostgres({ host: '127.0.7.1' });
  const redis = await startRedis('127.0.7.1');
  let nodes: ClusterNodeHandle[] = [];
  const clients: TestClient[] = [];
  try {
    nodes = await startNodes({ count: 3, redisUrl: redis.url, pgUrl: await pg.createDatabase('bench'), users, host: (i) => `127.0.7.${2 + i}` });
    const connect = async (node: number, user: string): Promise<TestClient> => {
      const n = nodes[node] as ClusterNodeHandle;
      const c = await connectClient({ port: n.v.ports.c2s as number, host: n.host, user, password: 'pw', resource: 'b', presence: true });
      clients.push(c);
      return c;
    };
    const lat = new Map<string, number[]>(FLOWS.map((f) => [f.name, []]));
    const senders: Array<{ flow: string; c: TestClient; to: string }> = [];
    const receivers: Array<{ flow: string; c: TestClient }> = [];
    for (const f of FLOWS) {
      for (let i = 0; i < PAIRS; i++) {
        const r = await connect(f.recipientNode, `${f.name}r${i}`);
        const s = await connect(f.senderNodes[i % f.senderNodes.length] as number, `${f.name}s${i}`);
        senders.push({ flow: f.name, c: s, to: `${f.name}r${i}@localhost` });
        receivers.push({ flow: f.name, c: r });
      }
    }
    // Until every node routes to every recipient (the registry is eventually consistent).
    for (const s of senders) {
      for (;;) {
        s.c.send(`<message to='${s.to}' type='chat'><body>warm</body></message>`);
        const r = receivers.find((x) => `${x.c.jid.split('/')[0]}` === s.to) as { c: TestClient };
        try {
          await r.c.next((el) => el.name === 'message' && el.getChildText('body') === 'warm', 1000);
          break;
        } catch {
          /* not yet */
        }
      }
    }
    let stop = false;
    const reading = receivers.map(async (r) => {
      while (!stop) {
        try {
          const el = await r.c.next((e) => e.name === 'message' && (e.getChildText('body') ?? '').startsWith('t='), 1000);
          const t0 = Number((el.getChildText('body') as string).slice(2));
          (lat.get(r.flow) as number[]).push(performance.now() - t0);
        } catch {
          /* a quiet second */
        }
      }
    });
    const loadBefore = loadavg();
    const started = performance.now();
    const tick = 1000 / RATE;
    const sent = new Map<string, number>(FLOWS.map((f) => [f.name, 0]));
    const timers = FLOWS.map((f) => {
      const mine = senders.filter((s) => s.flow === f.name);
      let k = 0;
      return setInterval(() => {
        const s = mine[k++ % mine.length] as (typeof mine)[number];
        s.c.send(`<message to='${s.to}' type='chat'><body>t=${performance.now()}</body></message>`);
        sent.set(f.name, (sent.get(f.name) as number) + 1);
      }, tick);
    });
    await new Promise((r) => setTimeout(r, DUR * 1000));
    for (const t of timers) clearInterval(t);
    await new Promise((r) => setTimeout(r, 2000));
    stop = true;
    await Promise.all(reading);
    const secs = (performance.now() - started) / 1000;
    process.stdout.write(`cluster-order bench: 3 nodes, DUR=${DUR} RATE=${RATE}/flow PAIRS=${PAIRS}, load average ${loadBefore} before, ${loadavg()} after, ${secs.toFixed(0)} s\n\n`);
    process.stdout.write('| flow | sent | copies | p50 ms | p90 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- | --- | --- |\n');
    for (const f of FLOWS) {
      const l = (lat.get(f.name) as number[]).sort((a, b) => a - b);
      process.stdout.write(`| ${f.name} | ${sent.get(f.name) as number} | ${l.length} | ${pct(l, 50).toFixed(1)} | ${pct(l, 90).toFixed(1)} | ${pct(l, 99).toFixed(1)} | ${(l.at(-1) ?? NaN).toFixed(1)} |\n`);
    }
  } finally {
    for (const c of clients) c.destroy();
    for (const n of nodes) await n.v.stop().catch(() => undefined);
    for (const n of nodes) n.v.cleanup();
    await redis.stop();
    await pg.stop();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${String(err instanceof Error ? err.stack : err)}\n`);
    process.exit(1);
  },
);
