/**
 * The cost of the read-rate limiter (limits.readRate, src/limits/limits.ts)
 * on saturated 1-1 chat: the `npm run bench` chat scenario against the same
 * data directory, alternating a server with the limiter off and one with the
 * default (65536 B/s, burst 512 KiB), several rounds, in one run so that both
 * see the same machine.
 *
 *   node dist/bench/read-rate.js [--rounds 3] [--pairs 10] [--duration 5]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ensureVeronaUsers, startVerona, waitForLogin, writeVeronaConfig } from './lib.js';
import { chat, type Target } from './driver/scenarios.js';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, pairs: { type: 'string', default: '10' }, duration: { type: 'string', default: '5' } } });

const MODES: Array<[string, string]> = [
  ['off', 'limits:\n  readRate: 0\n'],
  ['on (default 65536 B/s)', ''],
];

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'verona-readrate-'));
  const pairs = Number(values.pairs);
  try {
    await ensureVeronaUsers(writeVeronaConfig({ dataDir }), 2 * pairs);
    const rows: Array<Record<string, unknown>> = [];
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const [mode, extraYaml] of MODES) {
        const server = await startVerona({ dataDir, extraYaml });
        try {
          await waitForLogin(server, 20_000);
          const target: Target = { host: server.host, port: server.port, domain: server.domain, mech: 'PLAIN', pid: server.pid, user: (i) => [`user${i}`, `pass${i}`] };
          const r = await chat(target, { start: 1, pairs, carbons: false, mr2: false, sm: false, window: 5, size: 100, warmup: 1, duration: Number(values.duration), drain: 10, concurrency: 50, resources: 1, rate: 0 });
          const lp = r['latency_primary'] as Record<string, number>;
          const row = { round, readRate: mode, msgsPerS: r['delivered_msgs_per_s'], p50ms: lp['p50_ms'], p99ms: lp['p99_ms'], serverCpuPct: r['server_cpu_pct'], lost: r['lost_msgs'] };
          rows.push(row);
          process.stdout.write(`${JSON.stringify(row)}\n`);
        } finally {
          await server.stop();
        }
      }
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

await main();
