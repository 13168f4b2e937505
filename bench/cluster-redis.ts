/**
 * How a stanza for a session on another node should travel: Redis pub/sub (PUBLISH to the
 * node's channel) or a Redis stream per node (XADD, read with XREAD BLOCK). Starts its own
 * redis-server (test/helpers/cluster-redis.ts), sends messages the size of a cluster delivery
 * (a chat message with stanza-id, JSON-wrapped, about 600 bytes) from one connection, receives
 * them on another, and reports throughput saturated and latency at a fixed rate.
 *
 *   node dist/bench/cluster-redis.js [--messages 50000] [--rate 2000] [--seconds 5]
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { Redis } from 'ioredis';
import { startRedis } from '../test/helpers/cluster-redis.js';

const { values } = parseArgs({
  options: { messages: { type: 'string', default: '50000' }, rate: { type: 'string', default: '2000' }, seconds: { type: 'string', default: '5' } },
});
const MESSAGES = Number(values.messages);
const RATE = Number(values.rate);
const SECONDS = Number(values.seconds);

const STANZA =
  '<message xmlns="jabber:client" to="romeo@localhost/phone" from="julia@localhost/laptop" type="chat" id="a1b2c3d4">' +
  '<body>' + 'x'.repeat(300) + '</body><stanza-id xmlns="urn:xmpp:sid:0" by="romeo@localhost" id="01JABCDEFGHJKMNPQRS"/></message>';

function payload(t: number): string {
  return JSON.stringify({ t: 'send', u: 'romeo', r: 'phone', x: STANZA, ts: t });
}

function pct(xs: number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] as number;
}

interface Transport {
  name: string;
  start(onMessage: (text: string) => void): Promise<void>;
  send(text: string): void;
  stop(): Promise<void>;
}

function pubsub(url: string): Transport {
  const pub = new Redis(url);
  const sub = new Redis(url);
  return {
    name: 'pub/sub',
    async start(on) {
      sub.on('message', (_c: string, m: string) => on(m));
      await sub.subscribe('bench:node');
    },
    send: (text) => void pub.publish('bench:node', text),
    async stop() {
      pub.disconnect();
      sub.disconnect();
    },
  };
}

function streams(url: string): Transport {
  const pub = new Redis(url);
  const sub = new Redis(url);
  let running = true;
  return {
    name: 'streams',
    async start(on) {
      await pub.del('bench:stream');
      let last = '$';
      void (async () => {
        while (running) {
          const r = (await sub.xread('COUNT', 500, 'BLOCK', 1000, 'STREAMS', 'bench:stream', last).catch(() => null)) as Array<[string, Array<[string, string[]]>]> | null;
          if (!r) continue;
          for (const [, entries] of r) {
            for (const [id, fields] of entries) {
              last = id;
              on(fields[1] as string);
            }
          }
        }
      })();
      await new Promise((r) => setTimeout(r, 100));
    },
    // Trimmed approximately, as a node's inbox would have to be.
    send: (text) => void pub.xadd('bench:stream', 'MAXLEN', '~', '100000', '*', 'm', text),
    async stop() {
      running = false;
      pub.disconnect();
      sub.disconnect();
    },
  };
}

async function saturated(t: Transport): Promise<{ perSec: number }> {
  let got = 0;
  let done: () => void = () => undefined;
  const all = new Promise<void>((r) => (done = r));
  await t.start(() => {
    if (++got === MESSAGES) done();
  });
  const t0 = performance.now();
  for (let i = 0; i < MESSAGES; i++) {
    t.send(payload(performance.now()));
    if (i % 1000 === 999) await new Promise((r) => setImmediate(r));
  }
  await all;
  const secs = (performance.now() - t0) / 1000;
  await t.stop();
  return { perSec: Math.round(MESSAGES / secs) };
}

async function fixedRate(t: Transport): Promise<{ p50: number; p99: number; n: number }> {
  const lat: number[] = [];
  await t.start((m) => lat.push(performance.now() - (JSON.parse(m) as { ts: number }).ts));
  const total = RATE * SECONDS;
  const t0 = performance.now();
  for (let i = 0; i < total; i++) {
    const due = t0 + (i * 1000) / RATE;
    const wait = due - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    t.send(payload(performance.now()));
  }
  const end = Date.now() + 5000;
  while (lat.length < total && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await t.stop();
  return { p50: Number(pct(lat, 50).toFixed(2)), p99: Number(pct(lat, 99).toFixed(2)), n: lat.length };
}

const redis = await startRedis();
try {
  const load = loadavg()[0]?.toFixed(1);
  console.log(`Redis delivery between nodes: ${MESSAGES} saturated, ${RATE}/s for ${SECONDS} s; load average ${load}`);
  console.log('| transport | saturated msgs/s | p50 ms at fixed rate | p99 ms at fixed rate | received |');
  console.log('| --- | ---: | ---: | ---: | ---: |');
  for (const mk of [pubsub, streams]) {
    const first = mk(redis.url);
    const s = await saturated(first);
    const f = await fixedRate(mk(redis.url));
    console.log(`| ${first.name} | ${s.perSec} | ${f.p50} | ${f.p99} | ${f.n}/${RATE * SECONDS} |`);
  }
} finally {
  await redis.stop();
}
process.exit(0);
