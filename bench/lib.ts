/**
 * Shared plumbing of `npm run bench` (bench/run.ts) and the side-by-side comparison
 * (bench/compare.ts): start and stop the servers, create users, run a driver process and read
 * its `RESULT {json}` line.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { XmppConn } from './driver/conn.js';
import { readCpuSeconds } from './driver/proc.js';

/** Repository root (this file runs from dist/bench/). */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const DRIVER_JS = join(ROOT, 'dist', 'bench', 'driver', 'cli.js');
export const SHARED_BENCH = process.env.SHARED_BENCH ?? '/work/shared/bench';
export const PY_DRIVER = join(SHARED_BENCH, 'driver', 'xmppbench.py');

export type Json = Record<string, unknown>;

export interface ServerHandle {
  name: 'prosody' | 'ejabberd' | 'verona';
  /** e.g. "Prosody 0.12.3" */
  label: string;
  host: string;
  port: number;
  domain: string;
  pid: number;
  /** SASL mechanism the driver uses (PLAIN: the server runs one PBKDF2 per login). */
  mech: string;
  /** Direct TLS (XEP-0368) port; 0 = none. STARTTLS is offered on `port`. */
  tlsPort: number;
  /** Restart with the same data (for a clean RSS baseline); updates port and pid. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

function pkgVersion(pkg: string): string {
  try {
    return execFileSync('dpkg-query', ['-W', '-f', '${Version}', pkg], { encoding: 'utf8' }).trim();
  } catch {
    return 'not installed';
  }
}

/** Run a shell script of the shared anchors; returns the PID from its last "pid N" line. */
function runScript(script: string, args: string[] = []): number {
  const out = execFileSync('bash', [join(SHARED_BENCH, 'scripts', script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    timeout: 180_000,
  });
  const m = /pid (\d+)\s*$/m.exec(out.trim());
  return m ? Number(m[1]) : 0;
}

export function anchorVersions(): { prosody: string; ejabberd: string } {
  return { prosody: pkgVersion('prosody'), ejabberd: pkgVersion('ejabberd') };
}

/** The anchors with TLS (bench/anchors/tls/anchor.sh: copies of the shared configs on ports of their own). */
export const ANCHOR_SH = join(ROOT, 'bench', 'anchors', 'tls', 'anchor.sh');
/** The certificate anchor.sh makes (self-signed P-256 for bench.localhost), which Verona uses too. */
export const BENCH_TLS = { cert: '/tmp/verona-bench-anchors/tls/cert.pem', key: '/tmp/verona-bench-anchors/tls/key.pem' };

function runAnchorSh(args: string[]): number {
  const out = execFileSync('bash', [ANCHOR_SH, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 180_000 });
  const m = /pid (\d+)\s*$/m.exec(out.trim());
  return m ? Number(m[1]) : 0;
}

/** Make the shared benchmark certificate if it is not there yet (anchor.sh does the same). */
export function ensureBenchCert(): { cert: string; key: string } {
  if (!existsSync(BENCH_TLS.cert)) {
    mkdirSync(dirname(BENCH_TLS.cert), { recursive: true });
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365', '-subj', '/CN=bench.localhost',
      '-addext', 'subjectAltName=DNS:bench.localhost', '-keyout', BENCH_TLS.key, '-out', BENCH_TLS.cert,
    ], { stdio: 'ignore' });
  }
  return BENCH_TLS;
}

/**
 * An anchor with STARTTLS and direct TLS (bench/anchors): Prosody on 15222/15223, ejabberd on
 * 15232/15233, data under /tmp/verona-bench-anchors.
 */
export function startTlsAnchor(name: 'prosody' | 'ejabberd', fresh: boolean): ServerHandle {
  const pid = runAnchorSh([name, 'start', ...(fresh ? ['--fresh'] : [])]);
  if (!pid) throw new Error(`${name} did not start (see /tmp/verona-bench-anchors/${name})`);
  const v = pkgVersion(name).replace(/-.*/, '').replace(/\+.*/, '');
  const h: ServerHandle = {
    name,
    label: `${name === 'prosody' ? 'Prosody' : 'ejabberd'} ${v}`,
    host: '127.0.0.1',
    port: name === 'prosody' ? 15222 : 15232,
    tlsPort: name === 'prosody' ? 15223 : 15233,
    domain: 'bench.localhost',
    pid,
    mech: 'PLAIN',
    restart: async () => {
      runAnchorSh([name, 'stop']);
      h.pid = runAnchorSh([name, 'start']);
      if (!h.pid) throw new Error(`${name} did not restart`);
      await waitForLogin(h);
    },
    stop: async () => {
      runAnchorSh([name, 'stop']);
    },
  };
  return h;
}

export function startAnchor(name: 'prosody' | 'ejabberd', fresh: boolean): ServerHandle {
  const pid = runScript(`${name}-start.sh`, fresh ? ['--fresh'] : []);
  if (!pid) throw new Error(`${name} did not start (see /tmp/bench-${name})`);
  const v = pkgVersion(name).replace(/-.*/, '').replace(/\+.*/, '');
  const h: ServerHandle = {
    name,
    label: `${name === 'prosody' ? 'Prosody' : 'ejabberd'} ${v}`,
    host: '127.0.0.1',
    port: name === 'prosody' ? 5222 : 5232,
    domain: 'bench.localhost',
    pid,
    mech: 'PLAIN',
    tlsPort: 0,
    restart: async () => {
      runScript(`${name}-stop.sh`);
      h.pid = runScript(`${name}-start.sh`);
      if (!h.pid) throw new Error(`${name} did not restart`);
      await waitForLogin(h);
    },
    stop: async () => {
      runScript(`${name}-stop.sh`);
    },
  };
  return h;
}

export interface VeronaOptions {
  dataDir: string;
  domain?: string;
  /** c2s port; 0 = any free port (read back from the READY line) */
  port?: number;
  /** extra YAML appended to the generated config */
  extraYaml?: string;
  startTimeoutMs?: number;
  /** Certificate and key (PEM paths) for STARTTLS and direct TLS; absent: Verona generates its own. */
  tls?: { cert: string; key: string };
  /** Extra arguments to `verona start` (e.g. `--nodes 2`). */
  args?: string[];
}

/**
 * The driver connects from 127.0.0.1-4 (--local-addrs: more than 28,000 connections need several
 * source addresses). The anchors limit no connections per address; Verona's per-address limit
 * (limits.c2sConnectionsPerAddress, 64) exempts only 127.0.0.1 by default, so the bench exempts the
 * driver's four addresses, as an operator exempts a known load balancer.
 */
const BENCH_EXEMPT = "  exemptAddresses: ['127.0.0.1', '127.0.0.2', '127.0.0.3', '127.0.0.4', '::1']";

/** The caller's extra YAML with the driver's addresses exempted: into its own `limits:` block if it has one (YAML allows one). */
function withBenchExempt(extra: string): string {
  return /^limits:\n/m.test(extra) ? extra.replace(/^limits:\n/m, `limits:\n${BENCH_EXEMPT}\n`) : `limits:\n${BENCH_EXEMPT}\n${extra}`;
}

/** Write the benchmark config: plaintext c2s on loopback, PLAIN allowed, no web listeners. */
export function writeVeronaConfig(o: VeronaOptions): string {
  mkdirSync(o.dataDir, { recursive: true });
  const file = join(o.dataDir, 'bench.yml');
  writeFileSync(
    file,
    [
      '# written by bench/lib.ts: c2s on loopback with plaintext allowed (like the anchors in /work/shared/bench),',
      '# STARTTLS offered on the same port and direct TLS (XEP-0368) on a second one',
      `domain: ${o.domain ?? 'bench.localhost'}`,
      `dataDir: ${o.dataDir}`,
      'log:',
      '  level: warn',
      'c2s:',
      '  host: 127.0.0.1',
      `  port: ${o.port ?? 0}`,
      '  tlsPort: 0',
      '  requireTls: false',
      '  allowPlainWithoutTls: true',
      'web:',
      '  port: -1',
      '  tlsPort: -1',
      // No federation in benchmarks: several Verona processes run side by side.
      's2s:',
      '  port: -1',
      '  tlsPort: -1',
      ...(o.tls ? ['tls:', `  cert: ${o.tls.cert}`, `  key: ${o.tls.key}`, '  generate: false'] : []),
      withBenchExempt(o.extraYaml ?? ''),
    ].join('\n') + '\n',
  );
  return file;
}

export class VeronaUnavailable extends Error {}

/**
 * Start `node bin/verona.js start --config F` and wait for `READY {"c2s":port,...}` on stdout.
 * Throws VeronaUnavailable (with the reason) when the server does not exist or does not start.
 */
export async function startVerona(o: VeronaOptions): Promise<ServerHandle> {
  const bin = join(ROOT, 'bin', 'verona.js');
  if (!existsSync(bin)) throw new VeronaUnavailable(`${bin} does not exist yet`);
  if (!existsSync(join(ROOT, 'dist', 'src', 'cli', 'main.js'))) throw new VeronaUnavailable('dist/src/cli/main.js is missing (build first)');
  const config = writeVeronaConfig(o);
  let child: ChildProcess | null = null;
  const h: ServerHandle = {
    name: 'verona',
    label: `Verona ${veronaVersion()}`,
    host: '127.0.0.1',
    port: 0,
    domain: o.domain ?? 'bench.localhost',
    pid: 0,
    mech: 'PLAIN',
    tlsPort: 0,
    restart: async () => {
      await h.stop();
      await launch();
      await waitForLogin(h);
    },
    stop: async () => {
      const c = child;
      child = null;
      if (c === null || c.exitCode !== null || c.signalCode !== null) return;
      const exited = new Promise<void>((r) => c.once('exit', () => r()));
      c.kill('SIGTERM');
      const t = setTimeout(() => c.kill('SIGKILL'), 15_000);
      await exited;
      clearTimeout(t);
    },
  };
  const launch = async (): Promise<void> => {
    const c = spawn(process.execPath, [bin, 'start', '--config', config, ...(o.args ?? [])], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    child = c;
    let err = '';
    c.stderr?.setEncoding('utf8');
    c.stderr?.on('data', (d: string) => {
      err = (err + d).slice(-4000);
      if (process.env.BENCH_VERBOSE) process.stderr.write(d);
    });
    const ready = await new Promise<Json>((resolveReady, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new VeronaUnavailable(`no READY line within ${(o.startTimeoutMs ?? 30000) / 1000} s; stderr: ${err.trim().slice(-800)}`)), o.startTimeoutMs ?? 30000);
      c.stdout?.setEncoding('utf8');
      c.stdout?.on('data', (d: string) => {
        out += d;
        const m = /^READY (\{.*\})\s*$/m.exec(out);
        if (m) {
          clearTimeout(timer);
          try {
            resolveReady(JSON.parse(m[1] as string) as Json);
          } catch (e) {
            reject(new VeronaUnavailable(`bad READY line: ${m[0]} (${(e as Error).message})`));
          }
        }
      });
      c.once('exit', (code, sig) => {
        clearTimeout(timer);
        reject(new VeronaUnavailable(`verona start exited (${code ?? sig}) before READY; stderr: ${err.trim().slice(-800)}`));
      });
    }).catch(async (e: unknown) => {
      if (c.exitCode === null) c.kill('SIGKILL');
      throw e;
    });
    const port = Number(ready['c2s']);
    if (!Number.isInteger(port) || port <= 0) throw new VeronaUnavailable(`READY has no c2s port: ${JSON.stringify(ready)}`);
    h.port = port;
    h.tlsPort = Number(ready['c2s-tls'] ?? 0);
    h.pid = c.pid ?? 0;
  };
  await launch();
  return h;
}

export function veronaVersion(): string {
  try {
    return (JSON.parse(execFileSync('cat', [join(ROOT, 'package.json')], { encoding: 'utf8' })) as { version: string }).version;
  } catch {
    return '?';
  }
}

/**
 * Make sure user<start..start+count-1>/pass<i> and the MAM users exist in Verona's database.
 * Uses bench/verona-users.js (one process, thread-pool PBKDF2); falls back to `verona adduser`
 * per account when that fails (e.g. the storage API moved).
 */
export async function ensureVeronaUsers(configFile: string, count: number, extra: string[] = ['mamsrc', 'mamdst']): Promise<string> {
  const bulk = join(ROOT, 'dist', 'bench', 'verona-users.js');
  const args = [bulk, '--config', configFile, '--count', String(count), '--extra', extra.map((u) => `${u}:${u}`).join(',')];
  const r = await runProcess(process.execPath, args, 15 * 60_000);
  if (r.code === 0) return r.stdout.trim().split('\n').pop() ?? '';
  process.stderr.write(`bulk user creation failed (${r.stderr.trim().slice(-300)}); falling back to verona adduser per account\n`);
  const accounts: Array<[string, string]> = [
    ...Array.from({ length: count }, (_, k) => [`user${k + 1}`, `pass${k + 1}`] as [string, string]),
    ...extra.map((u) => [u, u] as [string, string]),
  ];
  let next = 0;
  let failed = 0;
  const worker = async (): Promise<void> => {
    while (next < accounts.length) {
      const [u, p] = accounts[next++] as [string, string];
      const a = await runProcess(process.execPath, [join(ROOT, 'bin', 'verona.js'), 'adduser', u, '--password', p, '--config', configFile], 60_000);
      if (a.code !== 0 && !/already exists/.test(a.stderr)) {
        if (++failed < 3) process.stderr.write(`adduser ${u}: ${a.stderr.trim()}\n`);
      }
    }
  };
  await Promise.all([worker(), worker()]);
  if (failed > 0) throw new Error(`${failed} accounts could not be created`);
  return `adduser x${accounts.length}`;
}

export interface ProcResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export function runProcess(cmd: string, args: string[], timeoutMs: number, env?: NodeJS.ProcessEnv): Promise<ProcResult> {
  return new Promise((resolveRun) => {
    const c = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    let stdout = '';
    let stderr = '';
    c.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    c.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr = (stderr + d).slice(-20000);
      if (process.env.BENCH_VERBOSE) process.stderr.write(d);
    });
    const t = setTimeout(() => c.kill('SIGKILL'), timeoutMs);
    c.on('close', (code) => {
      clearTimeout(t);
      resolveRun({ code, stdout, stderr });
    });
    c.on('error', (e) => {
      clearTimeout(t);
      resolveRun({ code: -1, stdout, stderr: stderr + String(e) });
    });
  });
}

export type DriverKind = 'ts' | 'py';

/** The exact command line of one driver run (recorded in docs/benchmarks.md). */
/** How the driver reaches a server: plaintext, STARTTLS or direct TLS, with which mechanism, resuming TLS sessions or not. */
export interface Transport {
  tls: 'none' | 'starttls' | 'direct';
  /** SASL mechanism (default: the server's, PLAIN) */
  mech?: string;
  resume?: boolean;
}

export function driverCommand(kind: DriverKind, s: ServerHandle, mode: string, modeArgs: string[], label: string, tr: Transport = { tls: 'none' }): string[] {
  const port = tr.tls === 'direct' ? s.tlsPort : s.port;
  const common = ['--host', s.host, '--port', String(port), '--domain', s.domain, '--mech', tr.mech ?? s.mech, '--label', label];
  if (tr.tls !== 'none') common.push('--tls', tr.tls);
  if (tr.resume) common.push('--resume');
  return kind === 'ts'
    ? [process.execPath, DRIVER_JS, ...common, ...(s.pid ? ['--pid', String(s.pid)] : []), mode, ...modeArgs]
    : ['python3', PY_DRIVER, ...common, mode, ...modeArgs];
}

export async function runDriver(kind: DriverKind, s: ServerHandle, mode: string, modeArgs: string[], label: string, timeoutMs = 15 * 60_000, tr: Transport = { tls: 'none' }): Promise<{ result: Json; cmd: string[] }> {
  // The Python driver takes --pid only in idle mode.
  const args = kind === 'py' && mode === 'idle' ? [...modeArgs, '--pid', String(s.pid)] : modeArgs;
  if (kind === 'py' && tr.tls !== 'none') throw new Error('the Python driver speaks plaintext only');
  const cmd = driverCommand(kind, s, mode, args, label, tr);
  const r = await runProcess(cmd[0] as string, cmd.slice(1), timeoutMs);
  const line = r.stdout.split('\n').find((l) => l.startsWith('RESULT '));
  if (!line) throw new Error(`${kind} driver ${mode} against ${s.label} failed (exit ${r.code}): ${r.stderr.trim().slice(-1500)}`);
  return { result: JSON.parse(line.slice(7)) as Json, cmd };
}

/**
 * Wait until user1 can log in. ejabberd accepts connections, and even reports "started", before
 * its SQL pool exists (logins then crash with badarg in ejabberd_sql:get_worker); a benchmark
 * run that starts in that window measures nothing but failures.
 */
export async function waitForLogin(s: ServerHandle, timeoutMs = 60_000, user: [string, string] = ['user1', 'pass1']): Promise<void> {
  const end = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < end) {
    const c = new XmppConn({ host: s.host, port: s.port, domain: s.domain, user: user[0], password: user[1], resource: 'probe' });
    try {
      await c.login({ presence: false });
      await c.close();
      return;
    } catch (e) {
      last = (e as Error).message;
      c.destroy();
    }
    await sleep(500);
  }
  throw new Error(`${s.label}: no successful login within ${timeoutMs / 1000} s (${last})`);
}

/**
 * Wait until the server is idle (under `maxCores` of CPU over one second), at most `timeoutMs`.
 * A saturated anchor keeps working through its backlog for many seconds after a run ends;
 * without this, the next run measures the tail of the previous one. Returns the seconds waited.
 */
export async function quiesce(pid: number, maxCores = 0.1, timeoutMs = 60_000): Promise<number> {
  const t0 = Date.now();
  if (!pid) return 0;
  while (Date.now() - t0 < timeoutMs) {
    const a = readCpuSeconds(pid);
    await sleep(1000);
    const b = readCpuSeconds(pid);
    if (a === null || b === null || b - a < maxCores) break;
  }
  return Math.round((Date.now() - t0) / 100) / 10;
}

export async function waitForPort(host: string, port: number, timeoutMs: number): Promise<boolean> {
  const { connect } = await import('node:net');
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const ok = await new Promise<boolean>((r) => {
      const s = connect({ host, port }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) return true;
    await sleep(200);
  }
  return false;
}

export function machineInfo(): Json {
  const os = process.platform === 'linux' ? execFileSync('uname', ['-srm'], { encoding: 'utf8' }).trim() : process.platform;
  let cpu = '?';
  let memGiB = 0;
  try {
    const ci = execFileSync('cat', ['/proc/cpuinfo'], { encoding: 'utf8' });
    cpu = /model name\s*:\s*(.*)/.exec(ci)?.[1] ?? '?';
    const mi = execFileSync('cat', ['/proc/meminfo'], { encoding: 'utf8' });
    memGiB = Math.round(Number(/MemTotal:\s+(\d+)/.exec(mi)?.[1] ?? 0) / 1048576);
  } catch {
    /* not Linux */
  }
  let distro = '?';
  try {
    distro = /PRETTY_NAME="([^"]*)"/.exec(execFileSync('cat', ['/etc/os-release'], { encoding: 'utf8' }))?.[1] ?? '?';
  } catch {
    /* ignore */
  }
  let load = '?';
  try {
    load = execFileSync('cat', ['/proc/loadavg'], { encoding: 'utf8' }).split(' ').slice(0, 3).join(' ');
  } catch {
    /* ignore */
  }
  const cores = Number(execFileSync('nproc', { encoding: 'utf8' }).trim());
  return { os, distro, cpu, cores, mem_gib: memGiB, node: process.version, loadavg_at_start: load };
}
