/**
 * Side-by-side benchmark: Prosody, ejabberd and Verona under the same driver, in one run,
 * interleaved (scenario by scenario, repeat by repeat, server by server) so that a change in the
 * machine's background load hits every server alike. Writes the medians, the ratios and the
 * targets of issue 6 into docs/benchmarks.md (between the compare markers) and every raw
 * RESULT line to bench/results/. Started by bench/compare.sh, which builds and installs first.
 *
 * Environment (defaults in brackets):
 *   SERVERS [prosody,ejabberd,verona]  DRIVERS [ts] (ts,py = agreement check of the two drivers)
 *   SCEN [idle,login,chat1,chat2,rate100,rate2000,mam]  (add idle50k for 50,000 Verona sessions)
 *   REPEAT [3]  DUR [10]  PAIRS [50]  IDLE_CP [1000,5000]  MAM_N [20000]  VERONA_MAM_N [1000000]
 *   MAM_ITER [30]  OUT [docs/benchmarks.md]  KEEP [0: fresh data dirs]  SECTION [compare|agreement]
 *   REPORT_ONLY=bench/results/compare-X.jsonl: only rewrite the section from those raw results
 * TLS (issue 15; the TLS table goes between the compare-tls markers):
 *   TRANSPORTS [plain,starttls]: every scenario over each (starttls, direct: the TS driver only)
 *   TLS_MECH [SCRAM]: SASL over TLS (SCRAM-SHA-256 where offered, else SCRAM-SHA-1)
 *   ANCHORS [tls]: the anchors of bench/anchors (STARTTLS + direct TLS, own ports); shared: /work/shared/bench
 *   TLS-only scenarios: loginresume (login churn resuming TLS sessions), storm (STORM_N [10000]
 *   clients for Verona, STORM_N_ANCHORS [2000] for the anchors, reconnecting at once while 100
 *   msg/s flow), idlemax (idle TLS sessions up to the descriptor limit, Verona; the anchors'
 *   sessions per GiB come from their idle figure)
 */
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  ROOT, anchorVersions, ensureBenchCert, ensureVeronaUsers, waitForLogin, quiesce, machineInfo, runDriver, startAnchor, startTlsAnchor, startVerona,
  writeVeronaConfig, type DriverKind, type Json, type ServerHandle, type Transport,
} from './lib.js';
import { median } from './driver/stats.js';

const env = (k: string, d: string): string => process.env[k] ?? d;
/** Run settings; REPORT_ONLY replaces them with the ones recorded in the raw file. */
const S = {
  SERVERS: env('SERVERS', 'prosody,ejabberd,verona').split(',').filter(Boolean),
  DRIVERS: env('DRIVERS', 'ts').split(',').filter(Boolean) as DriverKind[],
  SCEN: env('SCEN', 'idle,login,chat1,chat2,rate100,rate2000,mam').split(/[ ,]+/).filter(Boolean),
  REPEAT: Number(env('REPEAT', '3')),
  DUR: env('DUR', '10'),
  PAIRS: env('PAIRS', '50'),
  IDLE_CP: env('IDLE_CP', '1000,5000'),
  MAM_N: env('MAM_N', '20000'),
  VERONA_MAM_N: env('VERONA_MAM_N', '1000000'),
  TRANSPORTS: env('TRANSPORTS', 'plain,starttls').split(',').filter(Boolean),
  TLS_MECH: env('TLS_MECH', 'SCRAM'),
  STORM_N: env('STORM_N', '10000'),
  STORM_N_ANCHORS: env('STORM_N_ANCHORS', '2000'),
  SECTION: '',
};
const ANCHORS = env('ANCHORS', 'tls');
S.SECTION = env('SECTION', S.DRIVERS.length > 1 ? 'agreement' : 'compare');
const MAM_ITER = env('MAM_ITER', '30');
/** Logins per `login` / `loginresume` run. */
const LOGIN_N = env('LOGIN_N', '1000');
const OUT = env('OUT', join(ROOT, 'docs', 'benchmarks.md'));
const KEEP = env('KEEP', '0') === '1';
const WORK = env('BENCH_WORK', '/tmp/verona-bench');
const idleMax = (): number => Math.max(...S.IDLE_CP.split(',').map(Number));
const idleFirst = (): string => S.IDLE_CP.split(',')[0] as string;
/**
 * Sessions for idle50k: 50,000, unless the descriptor limit is lower. Every session is a socket
 * in the server and one in the driver, and neither process may pass RLIMIT_NOFILE (compare.sh
 * raises the soft limit to the hard one; where the hard limit is 20,000, as on our CI machines,
 * nothing unprivileged can lift it).
 */
function bigIdleCount(): number {
  let soft = Infinity;
  try {
    const m = /Max open files\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (m && m[1] !== 'unlimited') soft = Number(m[1]);
  } catch {
    // not Linux: assume the operator raised it
  }
  return Math.min(50000, Math.floor((soft - 1000) / 1000) * 1000);
}
const IDLE_BIG = bigIdleCount();
const STORM_PAIRS = 10;
const stormN = (s: ServerHandle): number => Number(s.name === 'verona' ? S.STORM_N : S.STORM_N_ANCHORS);
const USERS = Math.max(idleMax(), 2 * Number(S.PAIRS), 1000, S.SCEN.includes('storm') ? Number(S.STORM_N_ANCHORS) + 2 * STORM_PAIRS : 0);
/** idle50k, idlemax and the full storm run against Verona only: the anchors need not register that many users. */
const VERONA_USERS = Math.max(
  USERS,
  S.SCEN.includes('idle50k') || S.SCEN.includes('idlemax') ? IDLE_BIG : 0,
  S.SCEN.includes('storm') ? Number(S.STORM_N) + 2 * STORM_PAIRS : 0,
);
/** Scenarios that only make sense over TLS. */
const TLS_ONLY = new Set(['loginresume', 'storm', 'idlemax']);

interface Scenario {
  key: string;
  mode: string;
  args: (s: ServerHandle) => string[];
  only?: Array<ServerHandle['name']>;
  /** restart the server first (clean RSS baseline for the idle figures) */
  restart?: boolean;
  /** drivers that have this mode (the Python driver has no `login`) */
  drivers?: DriverKind[];
  /** resume TLS sessions (tickets) on reconnect */
  resume?: boolean;
}

const ids = (s: ServerHandle): string => join(WORK, `${s.name}-mam-ids.json`);
const SCENARIOS: Record<string, Scenario> = {
  idle: { key: 'idle', mode: 'idle', restart: true, args: () => ['--checkpoints', S.IDLE_CP, '--concurrency', '50', '--settle', '5'] },
  idle50k: {
    key: 'idle50k', mode: 'idle', restart: true, only: ['verona'], drivers: ['ts'],
    args: () => ['--checkpoints', `10000,${IDLE_BIG}`, '--concurrency', '100', '--settle', '10', '--local-addrs', '127.0.0.1-4'],
  },
  login: { key: 'login', mode: 'login', drivers: ['ts'], args: () => ['--count', LOGIN_N, '--concurrency', '50'] },
  // 250 users logging in 4 times each: every login after a user's first can resume its session.
  loginresume: { key: 'loginresume', mode: 'login', drivers: ['ts'], resume: true, args: () => ['--count', LOGIN_N, '--users', String(Math.max(1, Number(LOGIN_N) / 4)), '--concurrency', '50'] },
  storm: {
    key: 'storm', mode: 'storm', drivers: ['ts'], resume: true, restart: true,
    args: (s) => ['--count', String(stormN(s)), '--pairs', String(STORM_PAIRS), '--rate', '100', '--baseline', '10', '--settle', '5', '--local-addrs', '127.0.0.1-4'],
  },
  idlemax: {
    key: 'idlemax', mode: 'idle', restart: true, only: ['verona'], drivers: ['ts'],
    args: () => ['--checkpoints', `5000,${IDLE_BIG}`, '--concurrency', '100', '--settle', '10', '--local-addrs', '127.0.0.1-4'],
  },
  chat1: { key: 'chat1', mode: 'chat', args: () => ['--pairs', S.PAIRS, '--resources', '1', '--duration', S.DUR, '--window', '5'] },
  chat2: { key: 'chat2', mode: 'chat', args: () => ['--pairs', S.PAIRS, '--resources', '2', '--duration', S.DUR, '--window', '5'] },
  rate100: { key: 'rate100', mode: 'chat', args: () => ['--pairs', S.PAIRS, '--resources', '1', '--duration', S.DUR, '--rate', '100'] },
  // The anchors saturate near 300 msg/s; 2,000 msg/s is a Verona-only target.
  rate2000: {
    key: 'rate2000', mode: 'chat', only: ['verona'],
    args: () => ['--pairs', S.PAIRS, '--resources', '1', '--duration', S.DUR, '--rate', '2000'],
  },
  mamquery: { key: 'mamquery', mode: 'mamquery', args: (s) => ['--iterations', MAM_ITER, '--ids-file', ids(s)] },
};

type Rec = { server: string; driver: DriverKind; scen: string; rep: number; result: Json; cmd: string[] };
const records: Rec[] = [];
const skipped: string[] = [];
let veronaConfig = '';
const RAW = join(ROOT, 'bench', 'results', `compare-${new Date().toISOString().replace(/[:.]/g, '-').slice(0, 19)}.jsonl`);

function log(s: string): void {
  process.stderr.write(`[${new Date().toISOString().slice(11, 19)}] ${s}\n`);
}

async function startServers(): Promise<ServerHandle[]> {
  const out: ServerHandle[] = [];
  for (const name of S.SERVERS) {
    if (name === 'prosody' || name === 'ejabberd') {
      log(`starting ${name}${KEEP ? '' : ' (fresh)'}`);
      const s = ANCHORS === 'shared' ? startAnchor(name, !KEEP) : startTlsAnchor(name, !KEEP);
      out.push(s);
      const usersFile = join(WORK, 'mam-users.txt');
      writeFileSync(usersFile, 'mamsrc mamsrc\nmamdst mamdst\n');
      // A fresh ejabberd crashes registrations that arrive before its SQL pool exists: retry
      // (accounts made in an earlier pass count as "already").
      let r1 = await runDriver('ts', s, 'register', ['--count', String(USERS), '--concurrency', '20'], 'register');
      for (let k = 0; k < 3 && Number(r1.result['fail']) > 0; k++) {
        await new Promise((r) => setTimeout(r, 3000));
        r1 = await runDriver('ts', s, 'register', ['--count', String(USERS), '--concurrency', '20'], 'register');
      }
      const r2 = await runDriverWith(s, ['--users-file', usersFile], 'register', ['--count', '2']);
      await waitForLogin(s);
      log(`${name}: users ${JSON.stringify(r1.result['ok'])} new, ${JSON.stringify(r1.result['already'])} existing; mam users ${JSON.stringify(r2['ok'])}`);
    } else if (name === 'verona') {
      const dataDir = join(WORK, 'verona');
      if (!KEEP) await import('node:fs').then((fs) => fs.rmSync(dataDir, { recursive: true, force: true }));
      try {
        // The same certificate as the anchors (self-signed P-256), not one of Verona's making.
        const tlsFiles = ensureBenchCert();
        const cfg = writeVeronaConfig({ dataDir, tls: tlsFiles });
        veronaConfig = readFileSync(cfg, 'utf8');
        log(`verona: creating ${VERONA_USERS} users`);
        log(`verona: ${await ensureVeronaUsers(cfg, VERONA_USERS)}`);
        out.push(await startVerona({ dataDir, tls: tlsFiles }));
      } catch (e) {
        // The anchors still get measured; the table says Verona was not run and why.
        skipped.push(`Verona: ${(e as Error).message.slice(0, 300)}`);
        log(`verona skipped: ${(e as Error).message}`);
      }
    } else {
      throw new Error(`unknown server ${name}`);
    }
  }
  return out;
}

/** The TS driver with extra global options (e.g. a users file), for registration of named users. */
async function runDriverWith(s: ServerHandle, globals: string[], mode: string, args: string[]): Promise<Json> {
  const { runProcess, DRIVER_JS } = await import('./lib.js');
  const r = await runProcess(process.execPath, [DRIVER_JS, '--host', s.host, '--port', String(s.port), '--domain', s.domain, ...globals, mode, ...args], 120_000);
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`driver ${mode} failed: ${r.stderr.slice(-500)}`);
  return JSON.parse(line.slice(7)) as Json;
}

const driverOrder = (rep: number): DriverKind[] => (rep % 2 === 1 ? S.DRIVERS : [...S.DRIVERS].reverse());

/** Every server of this run: all of them must be idle before any one is measured. */
let allServers: ServerHandle[] = [];

/** The key results are filed under: `idle` over plaintext, `idle@starttls` over STARTTLS. */
const keyOf = (key: string, tp: string): string => (tp === 'plain' ? key : `${key}@${tp}`);
const transportOf = (tp: string, sc: Scenario): Transport =>
  tp === 'plain' ? { tls: 'none' } : { tls: tp as Transport['tls'], mech: S.TLS_MECH, resume: sc.resume === true };

async function run(s: ServerHandle, driver: DriverKind, sc: Scenario, rep: number, tp = 'plain'): Promise<void> {
  if (sc.restart) {
    await s.restart();
    await new Promise((r) => setTimeout(r, 3000));
  }
  // Not only the server under test: an anchor that was just left with 5,000 closed sessions
  // works through them for seconds and would take CPU from the next server's run.
  for (const o of [s, ...allServers.filter((x) => x !== s)]) {
    const waited = await quiesce(o.pid);
    if (waited > 5) log(`${o.name}: waited ${waited} s for the server to go idle`);
  }
  const label = `${s.name}`;
  const key = keyOf(sc.key, tp);
  try {
    const { result, cmd } = await runDriver(driver, s, sc.mode, sc.args(s), label, 60 * 60_000, transportOf(tp, sc));
    records.push({ server: s.name, driver, scen: key, rep, result, cmd });
    appendFileSync(RAW, JSON.stringify({ server: s.name, driver, scen: key, rep, cmd, ...result }) + '\n');
    log(`${s.name} ${driver} ${key} #${rep}: ${brief(key, result)}`);
  } catch (e) {
    log(`${s.name} ${driver} ${key} #${rep}: FAILED ${(e as Error).message.slice(0, 400)}`);
  }
}

function brief(scen: string, r: Json): string {
  const f = figures(scen, r);
  return Object.entries(f).map(([k, v]) => `${k}=${v}`).join(' ');
}

/** The figures each scenario contributes to the tables (name -> value). */
function figures(_scen: string, r: Json): Record<string, number> {
  const out: Record<string, number> = {};
  const num = (v: unknown): number | undefined => (typeof v === 'number' ? v : undefined);
  const put = (k: string, v: unknown): void => {
    const n = num(v);
    if (n !== undefined) out[k] = n;
  };
  if (r['scenario'] === 'idle') {
    const cps = (r['checkpoints'] as Json[]) ?? [];
    const first = cps[0];
    const last = cps[cps.length - 1];
    if (first) put(`logins_per_s@${first['n']}`, first['logins_per_s']);
    if (last) put('login_fails', last['fails']);
    for (const cp of cps) put(`kib_per_conn@${cp['n']}`, cp['kb_per_conn']);
    if (last) put(`alive@${last['n']}`, last['alive']);
  } else if (r['scenario'] === 'login') {
    put('logins_per_s_churn', r['logins_per_s']);
    put('login_p99_ms', (r['login_latency'] as Json)?.['p99_ms']);
    put('login_fails', r['fails']);
    const h = r['tls_handshakes'] as Json | undefined;
    if (h && typeof h['handshakes'] === 'number' && h['handshakes'] > 0) put('resumed_pct', Math.round(((h['resumed'] as number) / h['handshakes']) * 1000) / 10);
  } else if (r['scenario'] === 'storm') {
    put('storm_logins_per_s', r['logins_per_s']);
    put('storm_ready_p99_ms', (r['time_to_ready'] as Json)?.['p99_ms']);
    put('storm_fails', r['fails']);
    put('storm_count', r['count']);
    put('storm_rss_peak_mib', typeof r['rss_peak_kb'] === 'number' ? Math.round(r['rss_peak_kb'] / 1024) : undefined);
    put('storm_resumed', r['tls_resumed']);
    const st = r['stream'] as Json | undefined;
    put('stream_p99_idle_ms', (st?.['baseline'] as Json)?.['p99_ms']);
    put('stream_p99_storm_ms', (st?.['storm'] as Json)?.['p99_ms']);
    put('stream_p99_ratio', st?.['p99_ratio']);
    put('stream_lost', ((st?.['baseline'] as Json)?.['lost'] as number ?? 0) + ((st?.['storm'] as Json)?.['lost'] as number ?? 0));
  } else if (r['scenario'] === 'chat') {
    put('msgs_per_s', r['delivered_msgs_per_s']);
    put('copies_per_s', r['delivered_copies_per_s']);
    const lp = r['latency_primary'] as Json;
    put('p50_ms', lp?.['p50_ms']);
    put('p99_ms', lp?.['p99_ms']);
    put('bad_copies', (num(r['lost_msgs']) ?? 0) + (num(r['missing_copies']) ?? 0) + (num(r['dup_copies']) ?? 0));
    const c = r['counters'] as Json;
    const dc = num(c?.['delivered_copies']) ?? 0;
    if (dc > 0) put('archived_pct', Math.round(((num(c?.['with_stanza_id']) ?? 0) / dc) * 1000) / 10);
    put('driver_cpu_pct', r['driver_cpu_pct']);
    put('server_cpu_pct', r['server_cpu_pct']);
  } else if (r['scenario'] === 'mamfill') {
    put('fill_msgs_per_s', r['msgs_per_s']);
    put('archive_size', r['received']);
  } else if (r['scenario'] === 'mamquery') {
    const q = (r['queries'] as Record<string, Json>)?.['last_page_50'];
    put('last_page_p50_ms', q?.['p50_ms']);
    put('last_page_p99_ms', q?.['p99_ms']);
    put('archive_size', r['archive_ids_known']);
  }
  return out;
}

function med(server: string, scen: string, fig: string, driver: DriverKind = S.DRIVERS[0] as DriverKind): { m: number | null; all: number[] } {
  const all = records
    .filter((x) => x.server === server && x.scen === scen && x.driver === driver)
    .map((x) => figures(scen, x.result)[fig])
    .filter((v): v is number => v !== undefined);
  return { m: median(all), all };
}

const fmt = (v: number | null | undefined, d = 1): string =>
  v === null || v === undefined ? 'n/a' : v >= 100 ? String(Math.round(v)) : String(Math.round(v * 10 ** d) / 10 ** d);

function lastIdleCp(): number {
  return idleMax();
}

function settingsOf(): Record<string, string | number> {
  return {
    SERVERS: S.SERVERS.join(','), DRIVERS: S.DRIVERS.join(','), SCEN: S.SCEN.join(','), REPEAT: S.REPEAT, DUR: S.DUR, PAIRS: S.PAIRS,
    IDLE_CP: S.IDLE_CP, MAM_N: S.MAM_N, VERONA_MAM_N: S.VERONA_MAM_N, TRANSPORTS: S.TRANSPORTS.join(','), TLS_MECH: S.TLS_MECH,
    STORM_N: S.STORM_N, STORM_N_ANCHORS: S.STORM_N_ANCHORS, LOGIN_N,
  };
}

function compareTable(versions: Record<string, string>): string {
  const have = (s: string): boolean => S.SERVERS.includes(s);
  const label = (s: string): string => versions[s] ?? s;
  const cols = ['prosody', 'ejabberd', 'verona'].filter(have);
  const lines: string[] = [];
  lines.push(`| figure | ${cols.map(label).join(' | ')} | Verona vs best anchor | target | met |`);
  lines.push(`| --- | ${cols.map(() => '---:').join(' | ')} | ---: | --- | --- |`);
  type Row = { name: string; scen: string; fig: string; higher: boolean; target: (v: number, best: number | null) => boolean; targetText: string; info?: boolean; extra?: (s: string) => string };
  const rows: Row[] = [
    { name: `archived 1-1 msgs/s, ${S.PAIRS} pairs, saturated`, scen: 'chat1', fig: 'msgs_per_s', higher: true, target: (v, b) => b !== null && v >= 10 * b, targetText: '>= 10x best anchor' },
    { name: 'same, 2 resources per user + forking (copies/s)', scen: 'chat2', fig: 'msgs_per_s', higher: true, target: (v, b) => b !== null && v >= 10 * b, targetText: '>= 10x', extra: (s) => ` (${fmt(med(s, 'chat2', 'copies_per_s').m)})` },
    { name: 'delivery latency p99 at a fixed 100 msg/s (ms)', scen: 'rate100', fig: 'p99_ms', higher: false, target: (v) => v <= 10, targetText: '<= 10 ms' },
    { name: 'delivery latency p99 at a fixed 2,000 msg/s (ms)', scen: 'rate2000', fig: 'p99_ms', higher: false, target: (v) => v <= 25, targetText: '<= 25 ms' },
    { name: `server memory per idle session, bind + presence, N=${lastIdleCp()} (KiB; at N=${idleFirst()})`, scen: 'idle', fig: `kib_per_conn@${lastIdleCp()}`, higher: false, target: (v) => v <= 30, targetText: '<= 30 KiB', extra: (s) => ` (${fmt(med(s, 'idle', `kib_per_conn@${idleFirst()}`).m)})` },
    { name: `idle sessions in one process, alive of ${IDLE_BIG} (KiB per session)`, scen: 'idle50k', fig: `alive@${IDLE_BIG}`, higher: true, target: (v) => v >= 50000, targetText: '50,000', extra: (s) => ` (${fmt(med(s, 'idle50k', `kib_per_conn@${IDLE_BIG}`).m)})` },
    { name: 'logins/s, PLAIN against SCRAM keys, 50 in flight (first 1000 of idle)', scen: 'idle', fig: `logins_per_s@${idleFirst()}`, higher: true, target: (v) => { const p = med('prosody', 'idle', `logins_per_s@${idleFirst()}`).m; return p !== null && v >= 3 * p; }, targetText: '>= 3x Prosody' },
    { name: 'logins/s with churn (login + close, 50 in flight)', scen: 'login', fig: 'logins_per_s_churn', higher: true, target: () => true, targetText: '(info)', info: true },
    { name: 'MAM last page of 50, p99 (ms)', scen: 'mamquery', fig: 'last_page_p99_ms', higher: false, target: (v) => v <= 5 && (med('verona', 'mamquery', 'archive_size').m ?? 0) >= 1_000_000, targetText: '<= 5 ms on 1,000,000', extra: (s) => ` (${fmt(med(s, 'mamquery', 'archive_size').m)} msgs)` },
    { name: 'lost + missing + duplicated copies, all chat runs', scen: '*chat', fig: 'bad_copies', higher: false, target: (v) => v === 0, targetText: '0' },
  ];
  for (const r of rows) {
    const vals: Record<string, number | null> = {};
    const cells: string[] = [];
    for (const s of cols) {
      let v: number | null;
      if (r.scen === '*chat') {
        const all = records.filter((x) => x.server === s && x.driver === S.DRIVERS[0] && x.result['scenario'] === 'chat');
        v = all.length ? all.reduce((a, x) => a + (figures('chat', x.result)['bad_copies'] ?? 0), 0) : null;
      } else v = med(s, r.scen, r.fig).m;
      vals[s] = v;
      cells.push(fmt(v) + (r.extra && v !== null ? r.extra(s) : ''));
    }
    const anchors = ['prosody', 'ejabberd'].map((s) => vals[s]).filter((v): v is number => v !== null && v !== undefined);
    const best = anchors.length ? (r.higher ? Math.max(...anchors) : Math.min(...anchors)) : null;
    const v = vals['verona'] ?? null;
    let ratio = 'n/a';
    if (v !== null && best !== null && r.scen !== '*chat') {
      ratio = r.higher ? `${fmt(v / best, 2)}x` : v > 0 ? `${fmt(best / v, 2)}x better` : 'inf';
    }
    const met = r.info ? '-' : v === null ? 'not run' : r.target(v, best) ? 'yes' : '**no**';
    if (Object.values(vals).every((x) => x === null)) continue;
    lines.push(`| ${r.name} | ${cells.join(' | ')} | ${ratio} | ${r.targetText} | ${have('verona') ? met : '-'} |`);
  }
  // Driver CPU: the figures only count if the driver was not the bottleneck.
  const cpu = cols.map((s) => {
    const all = records.filter((x) => x.server === s && x.result['scenario'] === 'chat').map((x) => figures('chat', x.result)['driver_cpu_pct'] ?? 0);
    return all.length ? fmt(Math.max(...all)) : 'n/a';
  });
  lines.push(`| (driver CPU, max over chat runs, % of one core) | ${cpu.join(' | ')} | | < 100 | |`);
  return lines.join('\n');
}

/**
 * The TLS table: the same figures as the plaintext table, over TLS, plus what only TLS has
 * (resumption, the login storm, sessions per GiB). "TLS / plain" is each server's own ratio in
 * this run; "Verona vs best anchor" compares the servers over TLS.
 */
function tlsTable(versions: Record<string, string>, tp: string): string {
  const cols = ['prosody', 'ejabberd', 'verona'].filter((s) => S.SERVERS.includes(s));
  const k = (scen: string): string => keyOf(scen, tp);
  const lines: string[] = [];
  lines.push(`| figure | ${cols.map((s) => versions[s] ?? s).join(' | ')} | Verona vs best anchor | target | met |`);
  lines.push(`| --- | ${cols.map(() => '---:').join(' | ')} | ---: | --- | --- |`);
  type Row = { name: string; scen: string; fig: string; higher: boolean; target?: (v: number, best: number | null) => boolean; targetText?: string; plain?: boolean; extra?: (s: string) => string };
  const last = lastIdleCp();
  const perGiB = (s: string): number | null => {
    const v = med(s, k('idle'), `kib_per_conn@${last}`).m;
    return v !== null && v > 0 ? Math.floor((1024 * 1024) / v) : null;
  };
  const rows: Row[] = [
    { name: `server memory per idle TLS session, bind + presence, N=${last} (KiB; at N=${idleFirst()}) [plaintext in this run]`, scen: k('idle'), fig: `kib_per_conn@${last}`, higher: false, plain: true,
      target: (v, b) => v <= 30 && (b === null || v < b), targetText: '<= 30 KiB and below every anchor', extra: (s) => ` (${fmt(med(s, k('idle'), `kib_per_conn@${idleFirst()}`).m)})` },
    { name: `idle TLS sessions per GiB (from N=${last})`, scen: k('idle'), fig: `kib_per_conn@${last}`, higher: true },
    { name: `idle TLS sessions in one process, alive of ${IDLE_BIG} (KiB per session; per GiB)`, scen: k('idlemax'), fig: `alive@${IDLE_BIG}`, higher: true,
      extra: (s) => { const v = med(s, k('idlemax'), `kib_per_conn@${IDLE_BIG}`).m; return ` (${fmt(v)}; ${v ? Math.floor((1024 * 1024) / v) : 'n/a'})`; } },
    { name: `logins/s, TLS + ${S.TLS_MECH}, 50 in flight (first ${idleFirst()} of idle) [plaintext + PLAIN]`, scen: k('idle'), fig: `logins_per_s@${idleFirst()}`, higher: true, plain: true },
    { name: 'logins/s with churn, full TLS handshake each (login + close, 50 in flight) [plaintext]', scen: k('login'), fig: 'logins_per_s_churn', higher: true, plain: true },
    { name: 'logins/s with churn, TLS session resumed (% of handshakes resumed)', scen: k('loginresume'), fig: 'logins_per_s_churn', higher: true, extra: (s) => ` (${fmt(med(s, k('loginresume'), 'resumed_pct').m)} %)` },
    { name: `archived 1-1 msgs/s, ${S.PAIRS} pairs, saturated [plaintext]`, scen: k('chat1'), fig: 'msgs_per_s', higher: true, plain: true },
    { name: 'same, 2 resources per user + forking (copies/s) [plaintext]', scen: k('chat2'), fig: 'msgs_per_s', higher: true, plain: true, extra: (s) => ` (${fmt(med(s, k('chat2'), 'copies_per_s').m)})` },
    { name: 'delivery latency p99 at a fixed 100 msg/s (ms) [plaintext]', scen: k('rate100'), fig: 'p99_ms', higher: false, plain: true },
    { name: 'delivery latency p99 at a fixed 2,000 msg/s (ms) [plaintext]', scen: k('rate2000'), fig: 'p99_ms', higher: false, plain: true },
    { name: 'MAM last page of 50, p99 (ms) [plaintext]', scen: k('mamquery'), fig: 'last_page_p99_ms', higher: false, plain: true },
    { name: 'login storm: clients reconnecting at once, resuming TLS (failed logins)', scen: k('storm'), fig: 'storm_count', higher: true, extra: (s) => ` (${fmt(med(s, k('storm'), 'storm_fails').m)} failed)` },
    { name: 'login storm: logins/s', scen: k('storm'), fig: 'storm_logins_per_s', higher: true },
    { name: 'login storm: time to ready, p99 (ms)', scen: k('storm'), fig: 'storm_ready_p99_ms', higher: false },
    { name: 'login storm: server RSS peak (MiB)', scen: k('storm'), fig: 'storm_rss_peak_mib', higher: false },
    { name: 'login storm: 100 msg/s stream p99 during storm / idle (ms idle)', scen: k('storm'), fig: 'stream_p99_ratio', higher: false,
      target: (v) => v <= 2, targetText: '<= 2x', extra: (s) => ` (${fmt(med(s, k('storm'), 'stream_p99_idle_ms').m)} -> ${fmt(med(s, k('storm'), 'stream_p99_storm_ms').m)})` },
  ];
  for (const r of rows) {
    const vals: Record<string, number | null> = {};
    const cells: string[] = [];
    for (const s of cols) {
      let v = med(s, r.scen, r.fig).m;
      if (r.name.startsWith('idle TLS sessions per GiB')) v = perGiB(s);
      vals[s] = v;
      let cell = fmt(v) + (r.extra && v !== null ? r.extra(s) : '');
      if (r.plain && v !== null) {
        const pv = med(s, r.scen.replace(/@.*$/, ''), r.fig).m;
        if (pv !== null) cell += ` [${fmt(pv)}]`;
      }
      cells.push(cell);
    }
    if (Object.values(vals).every((x) => x === null)) continue;
    const anchors = ['prosody', 'ejabberd'].map((s) => vals[s]).filter((v): v is number => v !== null && v !== undefined);
    const best = anchors.length ? (r.higher ? Math.max(...anchors) : Math.min(...anchors)) : null;
    const v = vals['verona'] ?? null;
    let ratio = 'n/a';
    if (v !== null && best !== null && best > 0) ratio = r.higher ? `${fmt(v / best, 2)}x` : v > 0 ? `${fmt(best / v, 2)}x better` : 'inf';
    const met = !r.target ? '-' : v === null ? 'not run' : r.target(v, best) ? 'yes' : '**no**';
    lines.push(`| ${r.name} | ${cells.join(' | ')} | ${ratio} | ${r.targetText ?? '(info)'} | ${met} |`);
  }
  return lines.join('\n');
}

function agreementTable(versions: Record<string, string>): string {
  const lines = ['| server | scenario | figure | Python driver (runs) | TS driver (runs) | TS / Python |', '| --- | --- | --- | --- | --- | ---: |'];
  const figsOf: Record<string, string[]> = {
    idle: [`logins_per_s@${idleFirst()}`, ...S.IDLE_CP.split(',').map((n) => `kib_per_conn@${n}`), 'login_fails'],
    chat1: ['msgs_per_s', 'p50_ms', 'p99_ms', 'bad_copies'],
    chat2: ['msgs_per_s', 'copies_per_s', 'p99_ms', 'bad_copies'],
    rate100: ['msgs_per_s', 'p50_ms', 'p99_ms', 'bad_copies'],
    mamquery: ['last_page_p50_ms', 'last_page_p99_ms'],
  };
  for (const s of S.SERVERS) {
    for (const scen of S.SCEN.flatMap((x) => (x === 'mam' ? ['mamquery'] : [x]))) {
      for (const fig of figsOf[scen] ?? []) {
        const py = med(s, scen, fig, 'py');
        const ts = med(s, scen, fig, 'ts');
        if (py.m === null && ts.m === null) continue;
        const ratio = py.m && ts.m !== null ? fmt(ts.m / py.m, 2) : 'n/a';
        lines.push(`| ${versions[s] ?? s} | ${scen} | ${fig} | ${fmt(py.m)} (${py.all.map((v) => fmt(v)).join(', ')}) | ${fmt(ts.m)} (${ts.all.map((v) => fmt(v)).join(', ')}) | ${ratio} |`);
      }
    }
  }
  return lines.join('\n');
}

function commandsSection(): string {
  const seen = new Set<string>();
  const out: string[] = [];
  for (const r of records) {
    const k = `${r.server}/${r.driver}/${r.scen}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(r.cmd.map((a, i) => (i === 0 && a === process.execPath ? 'node' : a.replace(ROOT + '/', ''))).join(' '));
  }
  return '```\n' + out.join('\n') + '\n```';
}

function writeSection(body: string, section = S.SECTION): void {
  const begin = `<!-- BEGIN ${section} (generated by bench/compare.sh; edits here are overwritten) -->`;
  const end = `<!-- END ${section} -->`;
  let doc = existsSync(OUT) ? readFileSync(OUT, 'utf8') : '# Benchmarks\n';
  const re = new RegExp(`<!-- BEGIN ${section} [^>]*-->[\\s\\S]*?<!-- END ${section} -->`);
  const block = `${begin}\n${body}\n${end}`;
  doc = re.test(doc) ? doc.replace(re, () => block) : `${doc.trimEnd()}\n\n${block}\n`;
  writeFileSync(OUT, doc);
}

/** What the report's head needs; stored as the last line of the raw file so REPORT_ONLY can redo it. */
interface Meta {
  started: string;
  machine: Json;
  versions: Record<string, string>;
  packages: { prosody: string; ejabberd: string };
  skipped: string[];
  raw: string;
  settings: Record<string, string | number>;
  veronaConfig: string;
}

function render(meta: Meta): string {
  const m = meta.machine;
  const st = meta.settings;
  const head = [
    `Run of ${meta.started.slice(0, 16).replace('T', ' ')} UTC, ${st['REPEAT']} runs per figure (medians), ${st['DUR']} s measured per chat run, servers interleaved.`,
    '',
    `- machine: ${m['cpu']}, ${m['cores']} cores, ${m['mem_gib']} GiB, ${m['distro']}, ${m['os']}; load average ${m['loadavg_at_start']} at start, ${m['loadavg_at_end']} at end (the machine is shared)`,
    `- versions: ${Object.values(meta.versions).join(', ')} (Debian packages prosody ${meta.packages.prosody}, ejabberd ${meta.packages.ejabberd}); Node ${m['node']}`,
    `- drivers: ${S.DRIVERS.map((d) => (d === 'ts' ? 'bench/driver (TypeScript)' : '/work/shared/bench/driver/xmppbench.py')).join(' and ')}`,
    ...meta.skipped.map((x) => `- **not run**: ${x}`),
    `- raw results: ${meta.raw}`,
    `- reproduce: \`${Object.entries(st).map(([k, v]) => `${k}=${v}`).join(' ')} bench/compare.sh\``,
    '',
  ];
  const table = S.SECTION === 'agreement' ? agreementTable(meta.versions) : S.SECTION.startsWith('compare-tls') ? '' : compareTable(meta.versions);
  const cfgText = meta.veronaConfig
    ? ['', 'Verona was started as `node bin/verona.js start --config bench.yml` with this `bench.yml` (everything else default):', '', '```yaml', meta.veronaConfig.trim(), '```']
    : [];
  const tlsModes = S.TRANSPORTS.filter((t) => t !== 'plain');
  if (S.SECTION.startsWith('compare-tls')) {
    // A TLS run of its own: only the TLS section is written (its cells show this run's plaintext
    // figures in brackets), the main plaintext table stays as it is.
    const tt = tlsModes.map((tp) => `Over ${tp === 'starttls' ? 'STARTTLS' : 'direct TLS (XEP-0368)'}:\n\n${tlsTable(meta.versions, tp)}`).join('\n\n');
    const note = `TLS 1.3, one self-signed P-256 certificate for all three servers (bench/anchors), SASL ${S.TLS_MECH === 'SCRAM' ? 'SCRAM (SCRAM-SHA-256 where offered: Verona, ejabberd; SCRAM-SHA-1: Prosody 0.12)' : S.TLS_MECH} over TLS, PLAIN over plaintext. Cells: TLS figure, [the same figure over plaintext in this run].`;
    writeSection([...head, note, '', tt, ...cfgText, '', 'Driver commands (one per server and scenario; ports and PIDs of this run):', '', commandsSection()].join('\n'), S.SECTION);
    return tt;
  }
  writeSection([...head, table, ...cfgText, '', 'Driver commands (one per server and scenario; ports and PIDs of this run):', '', commandsSection()].join('\n'));
  if (S.SECTION === 'compare' && tlsModes.length > 0) {
    const tt = tlsModes.map((tp) => `Over ${tp === 'starttls' ? 'STARTTLS' : 'direct TLS (XEP-0368)'}:\n\n${tlsTable(meta.versions, tp)}`).join('\n\n');
    writeSection([`Same run as the plaintext table above (${meta.started.slice(0, 16).replace('T', ' ')} UTC, raw results ${meta.raw}); TLS 1.3, one self-signed P-256 certificate for all three servers, SASL ${S.TLS_MECH === 'SCRAM' ? 'SCRAM (SCRAM-SHA-256 where offered: Verona, ejabberd; SCRAM-SHA-1: Prosody 0.12)' : S.TLS_MECH} over TLS.`, '', tt].join('\n'), 'compare-tls');
    return table + '\n\n' + tt;
  }
  return table;
}

/** REPORT_ONLY=bench/results/compare-X.jsonl: rewrite the section from raw results, run nothing. */
function reportOnly(file: string): string {
  let meta: Meta | null = null;
  for (const line of readFileSync(file, 'utf8').split('\n').filter(Boolean)) {
    const r = JSON.parse(line) as Json & { meta?: Meta; server: string; driver: DriverKind; scen: string; rep: number; cmd?: string[] };
    if (r.meta) meta = r.meta;
    else records.push({ server: r.server, driver: r.driver, scen: r.scen, rep: r.rep, result: r, cmd: r.cmd ?? [] });
  }
  if (meta === null) throw new Error(`${file} has no meta line (written at the end of every compare run)`);
  // The tables read the run's settings, not this process's environment.
  const st = meta.settings;
  S.SERVERS = String(st['SERVERS']).split(',');
  S.DRIVERS = String(st['DRIVERS']).split(',') as DriverKind[];
  S.SCEN = String(st['SCEN']).split(',');
  S.REPEAT = Number(st['REPEAT']);
  S.DUR = String(st['DUR']);
  S.PAIRS = String(st['PAIRS']);
  S.IDLE_CP = String(st['IDLE_CP']);
  S.MAM_N = String(st['MAM_N']);
  S.VERONA_MAM_N = String(st['VERONA_MAM_N']);
  S.TRANSPORTS = String(st['TRANSPORTS'] ?? 'plain').split(',');
  S.TLS_MECH = String(st['TLS_MECH'] ?? 'SCRAM');
  S.STORM_N = String(st['STORM_N'] ?? '10000');
  S.STORM_N_ANCHORS = String(st['STORM_N_ANCHORS'] ?? '2000');
  S.SECTION = process.env.SECTION ?? (S.DRIVERS.length > 1 ? 'agreement' : 'compare');
  return render(meta);
}

async function main(): Promise<void> {
  if (process.env.REPORT_ONLY) {
    process.stdout.write(reportOnly(process.env.REPORT_ONLY) + '\n');
    return;
  }
  mkdirSync(WORK, { recursive: true });
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const machine = machineInfo();
  const t0 = new Date();
  const av = anchorVersions();
  const servers = await startServers();
  allServers = servers;
  const versions: Record<string, string> = Object.fromEntries(servers.map((s) => [s.name, s.label]));
  try {
    for (const key of S.SCEN) {
      if (key === 'mam') {
        // Fill once per server (it is the slow part), then query REPEAT times.
        for (const s of servers) {
          const n = s.name === 'verona' ? S.VERONA_MAM_N : S.MAM_N;
          const { result, cmd } = await runDriver('ts', s, 'mamfill', ['--count', n, '--ids-file', ids(s)], s.name, 60 * 60_000);
          records.push({ server: s.name, driver: 'ts', scen: 'mamfill', rep: 1, result, cmd });
          appendFileSync(RAW, JSON.stringify({ server: s.name, driver: 'ts', scen: 'mamfill', rep: 1, cmd, ...result }) + '\n');
          log(`${s.name} mamfill: ${brief('mamfill', result)}`);
        }
        // Queries over every transport, against the archive filled once over plaintext.
        for (let rep = 1; rep <= S.REPEAT; rep++) {
          for (const s of servers) {
            for (const tp of S.TRANSPORTS) for (const d of driverOrder(rep)) if (tp === 'plain' || d === 'ts') await run(s, d, SCENARIOS['mamquery'] as Scenario, rep, tp);
          }
        }
        continue;
      }
      const sc = SCENARIOS[key];
      if (!sc) throw new Error(`unknown scenario ${key}`);
      for (let rep = 1; rep <= S.REPEAT; rep++) {
        for (const s of servers) {
          if (sc.only && !sc.only.includes(s.name)) continue;
          // Transports interleaved like servers: plaintext and TLS of one server run back to back,
          // so their ratio is measured under the same background load.
          for (const tp of S.TRANSPORTS) {
            if (TLS_ONLY.has(key) && tp === 'plain') continue;
            // Alternate which driver goes first, so that neither always meets the server just
            // after the other's run (archive growth, WAL checkpoints). TLS: the TS driver only.
            for (const d of driverOrder(rep)) if ((!sc.drivers || sc.drivers.includes(d)) && (tp === 'plain' || d === 'ts')) await run(s, d, sc, rep, tp);
          }
        }
      }
    }
  } finally {
    for (const s of servers) await s.stop().catch((e: unknown) => log(`stop ${s.name}: ${(e as Error).message}`));
  }
  machine['loadavg_at_end'] = (await import('node:os')).loadavg().map((x) => x.toFixed(2)).join(' ');
  const meta: Meta = {
    started: t0.toISOString(), machine, versions, packages: av, skipped, raw: RAW.replace(ROOT + '/', ''), settings: settingsOf(), veronaConfig,
  };
  appendFileSync(RAW, JSON.stringify({ meta }) + '\n');
  const table = render(meta);
  log(`wrote ${OUT}`);
  process.stdout.write(table + '\n');
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    log(`compare failed: ${(e as Error).stack ?? String(e)}`);
    process.exit(1);
  },
);
