/**
 * Group chat fan-out benchmark (not a test): one room with N occupants (20, 100), S of them
 * sending groupchat messages with W each in flight (a sender's own echo from the room completes
 * a message), for DUR seconds after a warm-up. Reports messages/s, copies/s (groupchat copies
 * received by all occupants), echo latency, lost copies, and CPU of server and driver.
 * Verona, Prosody 0.12 (mod_muc + mod_muc_mam) and ejabberd 23.01 (mod_muc + mod_mam) under the
 * same driver in the same run, interleaved repeat by repeat. Every server archives the room.
 *
 * Anchors: our own configs in bench/anchors/ (MUC on, own ports on 127.0.40.51/.52, own data
 * dirs, ejabberd node mucbench@localhost), started here and stopped by PID.
 *
 *   npm run bench:muc        (= npx tsc -p tsconfig.json && node dist/bench/muc-fanout.js)
 * Environment: SERVERS [verona,prosody,ejabberd] SIZES [20,100] REPEAT [3] DUR [10] WARM [2]
 *   SENDERS [5] WINDOW [10]
 * Writes every result line to bench/results/muc-fanout-<time>.jsonl and prints a table.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, ensureVeronaUsers, startVerona, waitForPort, type ServerHandle } from './lib.js';
import { NS, XmppConn, now } from './driver/conn.js';
import { CpuMeter } from './driver/proc.js';
import { latSummary } from './driver/stats.js';
import { child, childrenOf, type XElement } from './driver/xml.js';
import { register, type Target } from './driver/scenarios.js';
import { median } from './driver/stats.js';

const env = (k: string, d: string): string => process.env[k] ?? d;
const SERVERS = env('SERVERS', 'verona,prosody,ejabberd').split(',').filter(Boolean);
const SIZES = env('SIZES', '20,100').split(',').map(Number);
const REPEAT = Number(env('REPEAT', '3'));
const DUR = Number(env('DUR', '10'));
const WARM = Number(env('WARM', '2'));
const SENDERS = Number(env('SENDERS', '5'));
const WINDOW = Number(env('WINDOW', '10'));
const DOMAIN = 'bench.localhost';
const MUC = `conference.${DOMAIN}`;
const NS_MUC = 'http://jabber.org/protocol/muc';
const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
const ANCHORS = join(ROOT, 'bench', 'anchors');

function log(s: string): void {
  process.stderr.write(`${new Date().toISOString().slice(11, 19)} ${s}\n`);
}

// ---- servers -------------------------------------------------------------------

function pidOf(file: string): number {
  try {
    return Number(readFileSync(file, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function sh(script: string): string {
  return execFileSync('bash', [join(ANCHORS, script)], { encoding: 'utf8', timeout: 180_000 });
}

async function startProsody(): Promise<ServerHandle> {
  sh('prosody-start.sh');
  const pid = pidOf('/tmp/muc-bench-prosody/prosody.pid');
  if (!pid || !(await waitForPort('127.0.40.51', 5222, 30_000))) throw new Error('prosody did not start (see /tmp/muc-bench-prosody)');
  return { name: 'prosody', label: 'Prosody 0.12', host: '127.0.40.51', port: 5222, tlsPort: 0, domain: DOMAIN, pid, mech: 'PLAIN', restart: async () => undefined, stop: async () => void sh('prosody-stop.sh') };
}

async function startEjabberd(): Promise<ServerHandle> {
  sh('ejabberd-start.sh');
  const pid = pidOf('/tmp/muc-bench-ejabberd/ejabberd.pid');
  if (!pid) throw new Error('ejabberd did not start (see /tmp/muc-bench-ejabberd/logs)');
  return { name: 'ejabberd', label: 'ejabberd 23.01', host: '127.0.40.52', port: 5222, tlsPort: 0, domain: DOMAIN, pid, mech: 'PLAIN', restart: async () => undefined, stop: async () => void sh('ejabberd-stop.sh') };
}

async function startVeronaBench(users: number): Promise<ServerHandle> {
  const dataDir = '/tmp/muc-bench-verona';
  rmSync(dataDir, { recursive: true, force: true });
  // The anchors have no per-occupant rate limit: lift Verona's for the same load.
  const extraYaml = ['moduleOptions:', '  muc:', '    messageRate: 100000', '    messageBurst: 100000'].join('\n');
  const h = await startVerona({ dataDir, domain: DOMAIN, extraYaml });
  h.host = '127.0.0.1';
  await ensureVeronaUsers(join(dataDir, 'bench.yml'), users, []);
  return h;
}

// ---- the room ---------------------------------------------------------------------

interface Occupant {
  conn: XmppConn;
  nick: string;
  copies: number;
  /** ids of the benchmark messages received (lost-copy check). */
  got: Set<string>;
}

function statusCodes(el: XElement): string[] {
  const x = child(el, 'x', NS_MUC_USER);
  return x ? childrenOf(x, 'status').map((s) => s.attrs['code'] ?? '') : [];
}

async function joinAll(t: Target, room: string, n: number): Promise<Occupant[]> {
  const occ: Occupant[] = [];
  for (let i = 1; i <= n; i++) {
    const [u, p] = t.user(i);
    const conn = new XmppConn({ host: t.host, port: t.port, domain: t.domain, user: u, password: p, resource: 'muc', mech: t.mech });
    await conn.login({ presence: false });
    const o: Occupant = { conn, nick: `n${i}`, copies: 0, got: new Set() };
    const full = `${room}/${o.nick}`;
    const joined = new Promise<string[]>((resolve, reject) => {
      conn.onStanza = (el) => {
        if (el.local === 'presence' && el.attrs['from'] === full) {
          if (el.attrs['type'] === 'error') reject(new Error(`join refused for ${u}`));
          else if (statusCodes(el).includes('110')) resolve(statusCodes(el));
        }
      };
    });
    conn.send(`<presence to='${full}'><x xmlns='${NS_MUC}'><history maxstanzas='0'/></x></presence>`);
    const codes = await joined;
    if (codes.includes('201')) {
      // A new room: accept the defaults (instant room), as every client does.
      await conn.iq(`<query xmlns='http://jabber.org/protocol/muc#owner'><x xmlns='jabber:x:data' type='submit'/></query>`, 'set', room);
    }
    occ.push(o);
  }
  return occ;
}

interface RunResult {
  server: string;
  occupants: number;
  msgs_per_s: number;
  copies_per_s: number;
  lat: ReturnType<typeof latSummary>;
  lost_copies: number;
  sent: number;
  server_cpu_pct: number | null;
  driver_cpu_pct: number;
  load1: number;
}

async function fanout(t: Target, server: string, n: number, rep: number): Promise<RunResult> {
  const room = `fan${n}r${rep}@${MUC}`;
  const occ = await joinAll(t, room, n);
  let measuring = false;
  let stopSending = false;
  let done = 0;
  let copies = 0;
  const lat: number[] = [];
  const sentAt = new Map<string, number>();
  const measured = new Set<string>();
  let seq = 0;
  const senders = occ.slice(0, SENDERS);
  const inflight = new Map<Occupant, number>();
  const sendOne = (o: Occupant): void => {
    const id = `m${rep}-${++seq}`;
    sentAt.set(id, now());
    if (measuring) measured.add(id);
    o.conn.send(`<message to='${room}' type='groupchat' id='${id}'><body>fan-out benchmark message ${id} with about a hundred bytes of body text, as in chat</body></message>`);
    inflight.set(o, (inflight.get(o) ?? 0) + 1);
  };
  for (const o of occ) {
    const mine = `${room}/${o.nick}`;
    o.conn.onStanza = (el) => {
      if (el.local !== 'message' || el.attrs['type'] !== 'groupchat') return;
      const id = el.attrs['id'];
      if (id === undefined || !child(el, 'body')) return;
      o.got.add(id);
      if (measuring) {
        copies++;
        o.copies++;
      }
      if (el.attrs['from'] === mine && inflight.has(o)) {
        inflight.set(o, (inflight.get(o) ?? 1) - 1);
        const t0 = sentAt.get(id);
        if (measuring && t0 !== undefined && measured.has(id)) {
          done++;
          lat.push(now() - t0);
        }
        if (!stopSending) sendOne(o);
      }
    };
  }
  for (const s of senders) for (let k = 0; k < WINDOW; k++) sendOne(s);
  await sleep(WARM * 1000);
  const cpu = new CpuMeter(t.pid);
  measuring = true;
  copies = 0;
  cpu.start();
  const load1 = loadavg()[0] ?? 0;
  const t0 = now();
  await sleep(DUR * 1000);
  const secs = (now() - t0) / 1000;
  measuring = false;
  const c = cpu.stop();
  const measuredCopies = copies;
  stopSending = true;
  // Let what is in flight arrive, then count copies missing anywhere.
  const deadline = now() + 20_000;
  while (now() < deadline && [...inflight.values()].some((v) => v > 0)) await sleep(100);
  await sleep(500);
  let lost = 0;
  const all = [...sentAt.keys()];
  for (const o of occ) for (const id of all) if (!o.got.has(id)) lost++;
  for (const o of occ) await o.conn.close();
  return {
    server,
    occupants: n,
    msgs_per_s: Math.round(done / secs),
    copies_per_s: Math.round(measuredCopies / secs),
    lat: latSummary(lat),
    lost_copies: lost,
    sent: all.length,
    server_cpu_pct: c.server_cpu_pct,
    driver_cpu_pct: c.driver_cpu_pct,
    // The machine's 1-minute load average when the measured window began (the figures are indicative on a shared machine).
    load1: Math.round(load1 * 10) / 10,
  };
}

// ---- main --------------------------------------------------------------------------

async function main(): Promise<void> {
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  const out = join(ROOT, 'bench', 'results', `muc-fanout-${new Date().toISOString().replace(/[:.]/g, '-')}.jsonl`);
  const users = Math.max(...SIZES);
  const handles: ServerHandle[] = [];
  try {
    for (const s of SERVERS) {
      log(`starting ${s}`);
      const h = s === 'verona' ? await startVeronaBench(users) : s === 'prosody' ? await startProsody() : await startEjabberd();
      if (s !== 'verona') {
        const r = await register({ host: h.host, port: h.port, domain: h.domain, mech: 'PLAIN', user: (i) => [`user${i}`, `pass${i}`], pid: h.pid }, { start: 1, count: users, concurrency: 10 });
        log(`${s}: registered ${JSON.stringify(r)}`);
      }
      handles.push(h);
    }
    const results: RunResult[] = [];
    for (let rep = 1; rep <= REPEAT; rep++) {
      for (const n of SIZES) {
        for (const h of handles) {
          const t: Target = { host: h.host, port: h.port, domain: h.domain, mech: 'PLAIN', user: (i) => [`user${i}`, `pass${i}`], pid: h.pid };
          log(`${h.name} n=${n} repeat ${rep}`);
          try {
            const r = await fanout(t, h.name, n, rep);
            results.push(r);
            appendFileSync(out, JSON.stringify({ rep, ...r, senders: SENDERS, window: WINDOW, dur: DUR }) + '\n');
            log(`  ${JSON.stringify(r)}`);
          } catch (e) {
            log(`  failed: ${(e as Error).message}`);
            appendFileSync(out, JSON.stringify({ rep, server: h.name, occupants: n, error: (e as Error).message }) + '\n');
          }
          await sleep(1000);
        }
      }
    }
    process.stdout.write(`\n| server | occupants | msgs/s | copies/s | echo p50 / p99 ms | lost copies | server CPU % | driver CPU % |\n|---|---|---|---|---|---|---|---|\n`);
    for (const h of handles) {
      for (const n of SIZES) {
        const rs = results.filter((r) => r.server === h.name && r.occupants === n);
        if (rs.length === 0) continue;
        const m = (f: (r: RunResult) => number): number => Math.round(median(rs.map(f)) ?? 0);
        process.stdout.write(
          `| ${h.label} | ${n} | ${m((r) => r.msgs_per_s)} | ${m((r) => r.copies_per_s)} | ${m((r) => r.lat.p50_ms ?? 0)} / ${m((r) => r.lat.p99_ms ?? 0)} | ${rs.map((r) => r.lost_copies).join(', ')} | ${m((r) => r.server_cpu_pct ?? 0)} | ${m((r) => r.driver_cpu_pct)} |\n`,
        );
      }
    }
    const loads = results.map((r) => r.load1);
    process.stdout.write(`\nload average (1 min) during the measured windows: ${Math.min(...loads)}-${Math.max(...loads)}\nraw: ${out}\n`);
  } finally {
    for (const h of handles) await h.stop().catch((e: unknown) => log(`stop ${h.name}: ${String(e)}`));
  }
}

void NS;
main().catch((e: unknown) => {
  log(String((e as Error).stack ?? e));
  process.exitCode = 1;
});
