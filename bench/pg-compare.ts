/**
 * Archived messages per second and p99 at a fixed rate, one run, one driver (bench/driver, the
 * TS driver of bench/compare.ts), for:
 *   - Verona, one node, SQLite (storage.sqlite.synchronous FULL, the default);
 *   - Verona, one node, PostgreSQL (storage.driver postgres);
 *   - ejabberd 23.01 (Debian) with its PostgreSQL backend (mod_mam db_type sql, ejabberd's own
 *     schema from /usr/share/ejabberd/sql/pg.sql), the anchor for an SQL-backed server;
 * both PostgreSQL servers are one throwaway PostgreSQL (test/helpers/pg.ts) with fsync and
 * synchronous_commit on (its defaults: a commit is on disk), one database each.
 * Interleaved repeat by repeat, server by server, so a change in the shared machine's load hits
 * all three alike. SERVERS may add pg2 and pg3: Verona as a cluster of 2 or 3 nodes on this host
 * (`verona start --nodes N`, one port shared by the nodes, so the pairs' two ends land on
 * different nodes and most deliveries cross Redis), each cluster with its own database and its
 * own throwaway Redis (test/helpers/cluster-redis.ts).
 *
 *   bench/pg-compare.sh            (builds, installs the anchor's packages, runs this)
 * Environment [defaults]: REPEAT [2] DUR [10] PAIRS [50] WINDOW [5] RATE [100] SERVERS [sqlite,pg,ejabberd]
 *   OUT [docs/benchmarks.md] (the table goes between the pg-compare markers; OUT=- prints only)
 *
 * Per server and repeat: `chat --window 5` (saturation, closed loop: 50 pairs, 5 messages in
 * flight each) gives delivered msgs/s and the share of deliveries that carried a <stanza-id/>
 * (archived: both servers stamp a message with its archive id only once it is archived);
 * archived msgs/s = delivered msgs/s x that share. `chat --rate RATE` (open loop) gives the
 * latency percentiles from send to delivery. After the run the archive tables are counted.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startPostgres, type TestPostgres } from '../test/helpers/pg.js';
import { startRedis, type TestRedis } from '../test/helpers/cluster-redis.js';
import { ROOT, ensureVeronaUsers, machineInfo, quiesce, runDriver, startVerona, waitForLogin, writeVeronaConfig, type Json, type ServerHandle } from './lib.js';
import { median } from './driver/stats.js';

const env = (k: string, d: string): string => process.env[k] ?? d;
const REPEAT = Number(env('REPEAT', '2'));
const DUR = env('DUR', '10');
const PAIRS = env('PAIRS', '50');
const RATE = env('RATE', '100');
/** Messages in flight per pair in the saturation run: 5 is latency-bound on a fast disk-backed commit; raise it to saturate. */
const WINDOW = env('WINDOW', '5');
const SERVERS = env('SERVERS', 'sqlite,pg,ejabberd').split(',').filter(Boolean);
const OUT = env('OUT', join(ROOT, 'docs', 'benchmarks.md'));
const WORK = '/tmp/pgstores-bench';
const PG_HOST = '127.0.80.1';
const EJ = join(ROOT, 'bench', 'anchors', 'pg', 'ejabberd.sh');
const RAW = join(ROOT, 'bench', 'results', `pg-compare-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.jsonl`);

interface Target {
  key: string;
  label: string;
  handle: ServerHandle;
  /** Archive rows of the run, counted at the end. */
  archiveRows(): Promise<number>;
  /** Verona cluster nodes (1 for a single server). */
  nodes?: number;
  /** Stop what the target needs besides its server (a cluster's Redis). */
  stopExtra?: () => Promise<void>;
}

function log(s: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

const loadavg = (): string => readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');

async function query(url: string, sql: string): Promise<pg.QueryResult> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return await c.query(sql);
  } finally {
    await c.end();
  }
}

type VeronaKey = 'sqlite' | 'pg' | 'pg2' | 'pg3';
const NODES: Record<VeronaKey, number> = { sqlite: 1, pg: 1, pg2: 2, pg3: 3 };

async function startVeronaTarget(key: VeronaKey, pgUrl: string, redis?: TestRedis): Promise<Target> {
  const dataDir = join(WORK, `verona-${key}`);
  rmSync(dataDir, { recursive: true, force: true });
  const nodes = NODES[key];
  const extraYaml = [
    ...(key === 'sqlite' ? [] : ['storage:', '  driver: postgres', '  postgres:', `    url: ${pgUrl}`]),
    ...(redis ? ['cluster:', `  redis: ${redis.url}`, `  node: bench-${key}`] : []),
  ].join('\n');
  const cfg = writeVeronaConfig({ dataDir, extraYaml });
  log(`verona-${key}: ${await ensureVeronaUsers(cfg, 2 * Number(PAIRS))}`);
  const handle = await startVerona({ dataDir, extraYaml, args: nodes > 1 ? ['--nodes', String(nodes)] : [], startTimeoutMs: 120_000 });
  await waitForLogin(handle);
  return {
    key,
    label: `${handle.label} ${key === 'sqlite' ? 'SQLite' : 'PostgreSQL'}`,
    nodes,
    stopExtra: async () => redis?.stop(),
    handle,
    archiveRows: async () => {
      if (key !== 'sqlite') return Number((await query(pgUrl, 'SELECT count(*) AS n FROM archive')).rows[0].n);
      const d = new Database(join(dataDir, 'verona.sqlite'), { readonly: true });
      try {
        return (d.prepare('SELECT count(*) AS n FROM archive').get() as { n: number }).n;
      } finally {
        d.close();
      }
    },
  };
}

async function startEjabberd(db: TestPostgres): Promise<Target> {
  const url = await db.createDatabase('ejabberd');
  // ejabberd's own PostgreSQL schema, as Debian ships it (the old schema: new_sql_schema false).
  await query(url, readFileSync('/usr/share/ejabberd/sql/pg.sql', 'utf8'));
  const out = execFileSync('bash', [EJ, 'start', String(db.port)], { encoding: 'utf8', timeout: 180_000 });
  const pid = Number(/pid (\d+)/.exec(out)?.[1] ?? 0);
  if (!pid) throw new Error(`ejabberd did not start: ${out}`);
  const v = execFileSync('dpkg-query', ['-W', '-f', '${Version}', 'ejabberd'], { encoding: 'utf8' }).replace(/-.*/, '');
  const handle: ServerHandle = {
    name: 'ejabberd', label: `ejabberd ${v}`, host: '127.0.80.2', port: 5222, domain: 'bench.localhost', pid, mech: 'PLAIN', tlsPort: 0,
    restart: async () => {
      throw new Error('not used');
    },
    stop: async () => {
      execFileSync('bash', [EJ, 'stop'], { stdio: 'ignore', timeout: 60_000 });
    },
  };
  // XEP-0077 registration now and then fails under load (a timeout): register again until every
  // account exists (an existing one answers conflict, which counts as done).
  const want = 2 * Number(PAIRS);
  for (let attempt = 1; ; attempt++) {
    const reg = await runDriver('ts', handle, 'register', ['--count', String(want), '--concurrency', '10'], `register-${attempt}`);
    const done = (num(reg.result['ok']) ?? 0) + (num(reg.result['already']) ?? 0);
    log(`ejabberd: registration ${attempt}: ${JSON.stringify(reg.result)}`);
    if (done >= want) break;
    if (attempt === 5) throw new Error(`ejabberd: only ${done} of ${want} accounts after 5 registration rounds`);
  }
  await waitForLogin(handle);
  return {
    key: 'ejabberd',
    label: `ejabberd ${v} PostgreSQL`,
    handle,
    archiveRows: async () => Number((await query(url, 'SELECT count(*) AS n FROM archive')).rows[0].n),
  };
}

type Rec = { server: string; rep: number; kind: 'sat' | 'rate'; result: Json; load: string };

const num = (x: unknown): number | undefined => (typeof x === 'number' && Number.isFinite(x) ? x : undefined);

function archivedShare(r: Json): number {
  const c = r['counters'] as Record<string, number> | undefined;
  if (!c || !c['delivered_copies']) return 0;
  return (c['with_stanza_id'] ?? 0) / c['delivered_copies'];
}

function fmt(x: number | null | undefined, digits = 0): string {
  return x === null || x === undefined ? 'n/a' : x.toFixed(digits);
}

async function main(): Promise<void> {
  mkdirSync(WORK, { recursive: true });
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const machine = machineInfo();
  log(`machine ${JSON.stringify(machine)}`);
  const db = await startPostgres({ host: PG_HOST, noFsync: false });
  const targets: Target[] = [];
  const records: Rec[] = [];
  const rows = new Map<string, number>();
  try {
    const veronaUrl = await db.createDatabase('verona');
    for (const s of SERVERS) {
      if (s === 'sqlite' || s === 'pg') targets.push(await startVeronaTarget(s, veronaUrl));
      else if (s === 'pg2' || s === 'pg3') targets.push(await startVeronaTarget(s, await db.createDatabase(`verona_${s}`), await startRedis()));
      else if (s === 'ejabberd') targets.push(await startEjabberd(db));
      else throw new Error(`unknown server ${s} (sqlite, pg, pg2, pg3, ejabberd)`);
    }
    for (let rep = 1; rep <= REPEAT; rep++) {
      for (const t of targets) {
        await quiesce(t.handle.pid);
        for (const [kind, args] of [
          ['sat', ['--pairs', PAIRS, '--resources', '1', '--duration', DUR, '--window', WINDOW]],
          ['rate', ['--pairs', PAIRS, '--resources', '1', '--duration', DUR, '--rate', RATE]],
        ] as const) {
          const load = loadavg();
          const { result } = await runDriver('ts', t.handle, 'chat', [...args], `${t.key}-${kind}-${rep}`);
          const rec: Rec = { server: t.key, rep, kind, result, load };
          records.push(rec);
          appendFileSync(RAW, `${JSON.stringify({ ...rec, label: t.label })}\n`);
          log(`${t.key} ${kind} rep ${rep}: ${num(result['delivered_msgs_per_s'])} msgs/s, archived ${(archivedShare(result) * 100).toFixed(1)}%, p99 ${num((result['latency_primary'] as Json | undefined)?.['p99_ms'])} ms, load ${load}`);
        }
      }
    }
    for (const t of targets) rows.set(t.key, await t.archiveRows());
  } finally {
    for (const t of targets) {
      await t.handle.stop().catch((e: unknown) => log(`stop ${t.key}: ${String(e)}`));
      await t.stopExtra?.().catch((e: unknown) => log(`stop ${t.key} extras: ${String(e)}`));
    }
    await db.stop();
  }

  // ---- report ----
  const loadEnd = loadavg();
  const med = (server: string, kind: Rec['kind'], f: (r: Json) => number | undefined): number | null =>
    median(records.filter((r) => r.server === server && r.kind === kind).map((r) => f(r.result)).filter((x): x is number => x !== undefined));
  const archivedPerS = (r: Json): number | undefined => {
    const d = num(r['delivered_msgs_per_s']);
    return d === undefined ? undefined : d * archivedShare(r);
  };
  const p = (k: string) => (r: Json): number | undefined => num((r['latency_primary'] as Json | undefined)?.[k]);
  const lines: string[] = [];
  const loads = records.map((r) => r.load.split(' ')[0]).join(', ');
  lines.push(
    `Run ${new Date().toISOString().slice(0, 16)}Z, \`bench/pg-compare.sh\` (REPEAT=${REPEAT} DUR=${DUR} PAIRS=${PAIRS} WINDOW=${WINDOW} RATE=${RATE}), ${String(machine['cpu'])}, ${String(machine['cores'])} cores.`,
    `1-minute load average at each driver run (the machine has 2 cores; the servers under test and the driver account for about 2, more means other work competed): ${loads} (at the end ${loadEnd}).`,
    '',
    `| server | storage | archived msgs/s (saturation, median) | deliveries with stanza-id | p50 / p99 ms at ${RATE} msg/s | lost | archive rows after the run |`,
    '| --- | --- | --- | --- | --- | --- | --- |',
  );
  for (const t of targets) {
    const share = med(t.key, 'sat', (r) => archivedShare(r));
    const lost = records.filter((r) => r.server === t.key).reduce((a, r) => a + (num(r.result['lost_msgs']) ?? 0), 0);
    lines.push(
      `| ${t.label.replace(/ (SQLite|PostgreSQL)$/, '')}${(t.nodes ?? 1) > 1 ? `, ${t.nodes} nodes (cluster)` : ''} | ${t.key === 'sqlite' ? 'SQLite (synchronous FULL)' : `PostgreSQL 15 (fsync on)${(t.nodes ?? 1) > 1 ? ' + Redis 7' : ''}`} | ${fmt(med(t.key, 'sat', archivedPerS))} | ${share === null ? 'n/a' : `${(share * 100).toFixed(1)}%`} | ${fmt(med(t.key, 'rate', p('p50_ms')), 1)} / ${fmt(med(t.key, 'rate', p('p99_ms')), 1)} | ${lost} | ${rows.get(t.key) ?? 'n/a'} |`,
    );
  }
  const vpg = med('pg', 'sat', archivedPerS);
  const ej = med('ejabberd', 'sat', archivedPerS);
  lines.push('');
  if (vpg !== null && ej !== null && ej > 0) {
    const ratio = vpg / ej;
    lines.push(
      `Goal (issue 16): Verona on PostgreSQL at least 10x ejabberd on PostgreSQL in archived msgs/s. Measured: ${ratio.toFixed(1)}x ` +
        `(${fmt(vpg)} / ${fmt(ej)}): ${ratio >= 10 ? 'met in this run' : 'not met in this run'}.`,
    );
  } else {
    lines.push('Goal (issue 16): Verona on PostgreSQL at least 10x ejabberd on PostgreSQL in archived msgs/s; this run did not measure both.');
  }
  for (const k of ['pg2', 'pg3']) {
    const c = med(k, 'sat', archivedPerS);
    if (vpg !== null && c !== null && c > 0) {
      lines.push(
        `Cluster of ${NODES[k as VeronaKey]} nodes on this one host vs one node on PostgreSQL: ${fmt(c)} vs ${fmt(vpg)} archived msgs/s (${(c / vpg).toFixed(2)}x); ` +
          `p99 at ${RATE} msg/s ${fmt(med(k, 'rate', p('p99_ms')), 1)} vs ${fmt(med('pg', 'rate', p('p99_ms')), 1)} ms.`,
      );
    }
  }
  lines.push(`Raw driver results: \`${RAW.slice(ROOT.length + 1)}\`.`);
  const section = lines.join('\n');
  process.stdout.write(`${section}\n`);
  if (OUT !== '-') {
    const begin = '<!-- pg-compare:begin -->';
    const end = '<!-- pg-compare:end -->';
    const doc = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '';
    const i = doc.indexOf(begin);
    const j = doc.indexOf(end);
    const block = `${begin}\n${section}\n${end}`;
    writeFileSync(OUT, i >= 0 && j > i ? doc.slice(0, i) + block + doc.slice(j + end.length) : `${doc.trimEnd()}\n\n## Storage: SQLite, PostgreSQL and ejabberd on PostgreSQL\n\n${block}\n`);
    log(`table written to ${OUT}`);
  }
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
