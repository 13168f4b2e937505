/**
 * What durable acks cost (issue 11): Verona with `storage.sqlite.synchronous: FULL` (the default:
 * an acked message survives power loss) and with NORMAL (survives a process crash only), beside
 * Prosody 0.12 and ejabberd 23.01, in one run, interleaved (scenario by scenario, repeat by repeat,
 * server by server) with the same driver. Archived 1-1 messages/s saturated (chat1) and p99 at a
 * fixed 100 msg/s (rate100), medians of REPEAT runs. Prints a markdown table; with OUT=file it
 * replaces the section between the durability markers of that file (docs/benchmarks.md).
 *
 *   REPEAT [3] DUR [8] PAIRS [50] SERVERS [prosody,ejabberd,verona-full,verona-normal]
 *   node dist/bench/durability.js        (bench/compare.sh's set-up: root, anchors installed)
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ensureVeronaUsers, quiesce, runDriver, startAnchor, startVerona, waitForLogin, writeVeronaConfig, type Json, type ServerHandle } from './lib.js';
import { median } from './driver/stats.js';

const env = (k: string, d: string): string => process.env[k] ?? d;
const REPEAT = Number(env('REPEAT', '3'));
const DUR = env('DUR', '8');
const PAIRS = env('PAIRS', '50');
const SERVERS = env('SERVERS', 'prosody,ejabberd,verona-full,verona-normal').split(',').filter(Boolean);
const WORK = env('BENCH_WORK', '/tmp/verona-durability');
const OUT = process.env.OUT;
const USERS = Math.max(2 * Number(PAIRS), 200);

/** The figures of one chat RESULT line (the driver's field names; see bench/driver/scenarios.ts). */
function figs(r: Json): { msgs: number; p99: number; bad: number } {
  const n = (v: unknown): number => (typeof v === 'number' ? v : NaN);
  const lat = (r['latency_primary'] ?? {}) as Json;
  return {
    msgs: n(r['delivered_msgs_per_s']),
    p99: n(lat['p99_ms']),
    bad: (n(r['lost_msgs']) || 0) + (n(r['missing_copies']) || 0) + (n(r['dup_copies']) || 0),
  };
}

const log = (s: string): void => void process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);

interface Named { key: string; label: string; h: ServerHandle }

async function start(key: string): Promise<Named> {
  if (key === 'prosody' || key === 'ejabberd') {
    const h = startAnchor(key, true);
    const r = await runDriver('ts', h, 'register', ['--count', String(USERS), '--concurrency', '20'], 'register');
    if (Number(r.result['fail']) > 0) await runDriver('ts', h, 'register', ['--count', String(USERS), '--concurrency', '20'], 'register');
    await waitForLogin(h);
    return { key, label: h.label, h };
  }
  const sync = key === 'verona-full' ? 'FULL' : 'NORMAL';
  const dataDir = join(WORK, key);
  rmSync(dataDir, { recursive: true, force: true });
  const extraYaml = `storage:\n  sqlite:\n    synchronous: ${sync}\n`;
  const cfg = writeVeronaConfig({ dataDir, extraYaml });
  await ensureVeronaUsers(cfg, USERS);
  const h = await startVerona({ dataDir, extraYaml });
  return { key, label: `${h.label}, synchronous=${sync}`, h };
}

const SCEN: Record<string, string[]> = {
  chat1: ['--pairs', PAIRS, '--resources', '1', '--duration', DUR, '--window', '5'],
  rate100: ['--pairs', PAIRS, '--resources', '1', '--duration', DUR, '--rate', '100'],
};

async function main(): Promise<void> {
  const servers: Named[] = [];
  try {
    for (const k of SERVERS) {
      log(`starting ${k}`);
      servers.push(await start(k));
    }
    const results: Record<string, Record<string, Json[]>> = {};
    for (const [scen, args] of Object.entries(SCEN)) {
      for (let i = 0; i < REPEAT; i++) {
        for (const s of servers) {
          for (const o of servers) await quiesce(o.h.pid);
          const r = await runDriver('ts', s.h, 'chat', args, `${s.key}-${scen}`);
          ((results[s.key] ??= {})[scen] ??= []).push(r.result);
          log(`${s.key} ${scen} #${i + 1}: ${JSON.stringify(figs(r.result))}`);
        }
      }
    }
    const med = (k: string, scen: string, fig: 'msgs' | 'p99'): number | undefined => {
      const xs = (results[k]?.[scen] ?? []).map((r) => figs(r)[fig]).filter((n) => Number.isFinite(n));
      return xs.length ? (median(xs) ?? undefined) : undefined;
    };
    const fmt = (n: number | undefined, d = 0): string => (n === undefined ? '-' : n.toLocaleString('en-US', { maximumFractionDigits: d, minimumFractionDigits: d }));
    const lines = [
      `Run of ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, medians of ${REPEAT}, ${PAIRS} pairs, ${DUR} s per run, the TS driver (bench/durability.ts).`,
      '',
      '| server | archived msgs/s, saturated | p99 at 100 msg/s (ms) | lost + duplicated copies |',
      '| --- | ---: | ---: | ---: |',
      ...servers.map((s) => `| ${s.label} | ${fmt(med(s.key, 'chat1', 'msgs'))} | ${fmt(med(s.key, 'rate100', 'p99'), 1)} | ${fmt((results[s.key]?.['chat1'] ?? []).concat(results[s.key]?.['rate100'] ?? []).reduce((a, r) => a + figs(r).bad, 0))} |`),
    ];
    const full = med('verona-full', 'chat1', 'msgs');
    const normal = med('verona-normal', 'chat1', 'msgs');
    if (full !== undefined && normal !== undefined) lines.push('', `Durable acks cost ${fmt(100 * (1 - full / normal), 0)}% of saturated throughput in this run (FULL ${fmt(full)} vs NORMAL ${fmt(normal)} msgs/s).`);
    const table = lines.join('\n');
    process.stdout.write(table + '\n');
    if (OUT && existsSync(OUT)) {
      const doc = readFileSync(OUT, 'utf8');
      const a = '<!-- durability:begin -->';
      const b = '<!-- durability:end -->';
      const i = doc.indexOf(a);
      const j = doc.indexOf(b);
      if (i >= 0 && j > i) writeFileSync(OUT, doc.slice(0, i + a.length) + '\n' + table + '\n' + doc.slice(j));
      else log(`no durability markers in ${OUT}: table printed only`);
    }
  } finally {
    for (const s of servers) await s.h.stop().catch(() => undefined);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? e.stack ?? e.message : String(e)}\n`);
  process.exit(1);
});
