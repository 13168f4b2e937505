/**
 * The cost of live stream-management checkpoints (docs/stream-management.md, "After a crash"):
 * the chat scenario with resumable SM on every connection, saturated (closed loop), against a
 * Verona with live checkpoints (the default, moduleOptions.sm.checkpointLag 200) and one without
 * (checkpointLag 0: no resumption after kill -9), alternating, on SQLite (synchronous FULL).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/sm-checkpoint.js [rounds] [pairs] [seconds]
 *
 * Prints delivered msgs/s and p50/p99 latency per run and the median per configuration; fails when
 * any run lost, missed or duplicated a copy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureVeronaUsers, startVerona, waitForLogin, writeVeronaConfig } from './lib.js';
import { chat, type Target } from './driver/scenarios.js';

const rounds = Number(process.argv[2] ?? '3');
const pairs = Number(process.argv[3] ?? '20');
const seconds = Number(process.argv[4] ?? '5');

interface Run {
  cfg: string;
  msgs: number;
  p50: number;
  p99: number;
}

async function once(cfg: 'checkpoints' | 'off'): Promise<Run> {
  const dataDir = mkdtempSync(join(tmpdir(), 'verona-smcp-'));
  const extraYaml = cfg === 'off' ? 'moduleOptions:\n  sm:\n    checkpointLag: 0\n' : '';
  try {
    await ensureVeronaUsers(writeVeronaConfig({ dataDir, extraYaml }), 2 * pairs);
    const server = await startVerona({ dataDir, extraYaml });
    try {
      await waitForLogin(server, 20_000);
      const target: Target = { host: server.host, port: server.port, domain: server.domain, mech: 'PLAIN', pid: server.pid, user: (i) => [`user${i}`, `pass${i}`] };
      const r = await chat(target, { start: 1, pairs, resources: 1, carbons: false, mr2: true, sm: true, rate: 0, window: 5, size: 100, warmup: 1, duration: seconds, drain: 10, concurrency: 50 });
      const bad = Number(r['lost_msgs']) + Number(r['missing_copies']) + Number(r['dup_copies']);
      if (bad > 0) throw new Error(`${cfg}: ${r['lost_msgs']} lost, ${r['missing_copies']} missing, ${r['dup_copies']} duplicated`);
      const lat = r['latency_primary'] as Record<string, number> | undefined;
      return { cfg, msgs: Number(r['delivered_msgs_per_s']), p50: lat?.['p50_ms'] ?? NaN, p99: lat?.['p99_ms'] ?? NaN };
    } finally {
      await server.stop();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

async function main(): Promise<void> {
  const runs: Run[] = [];
  process.stdout.write(`sm-checkpoint: ${rounds} rounds, ${pairs} pairs (MR2 + resumable SM), ${seconds} s each; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
  for (let i = 0; i < rounds; i++) {
    for (const cfg of ['checkpoints', 'off'] as const) {
      const r = await once(cfg);
      runs.push(r);
      process.stdout.write(`  ${cfg.padEnd(12)} ${r.msgs.toFixed(0).padStart(7)} msgs/s  p50 ${r.p50} ms  p99 ${r.p99} ms\n`);
    }
  }
  for (const cfg of ['checkpoints', 'off']) {
    const rs = runs.filter((r) => r.cfg === cfg);
    process.stdout.write(`median ${cfg.padEnd(12)} ${median(rs.map((r) => r.msgs)).toFixed(0)} msgs/s  p50 ${median(rs.map((r) => r.p50))} ms  p99 ${median(rs.map((r) => r.p99))} ms\n`);
  }
  process.stdout.write(`load average at the end ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`sm-checkpoint: ${(err as Error).stack ?? String(err)}\n`);
  process.exit(1);
});
