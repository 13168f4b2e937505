/**
 * Where the memory of an idle TLS session goes. Each variant runs in a fresh server process
 * (`--expose-gc`, so the heap can be measured after a full collection): N clients connect (and,
 * for Verona, log in: SASL, bind, presence) and stay idle; the server process then reports its
 * RSS and V8 figures, before and after a forced GC. Per session:
 *
 * - rss: what the operator pays (the figure the idle scenario reports);
 * - heap: V8 heap used after GC (our objects, Node's JS stream objects);
 * - slack: heap allocated but unused after GC, plus what a GC gave back (GC slack);
 * - native: the rest of RSS (OpenSSL per-connection state and buffers, TLSWrap and its BIOs,
 *   libuv handles, malloc fragmentation).
 *
 * Variants without "verona" are bare Node servers that do nothing with the bytes: they isolate
 * the cost of Node's socket and TLS layers from our per-session objects.
 *
 *   node dist/bench/tls-memory.js [--n 2000] [--variants a,b] [--json]
 *   MALLOC_ARENA_MAX=2 node dist/bench/tls-memory.js ...   (the server processes inherit env)
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import * as cp from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { XmppConn, type TlsMode } from './driver/conn.js';

export interface MemSample {
  rss: number;
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
  /** RSS before the forced GC */
  rssBeforeGc: number;
}

/** Per-session cost from two samples (bytes -> KiB per session), as the table shows it. */
export function perSession(base: MemSample, loaded: MemSample, n: number): Record<string, number> {
  const k = (b: number): number => Math.round((b / 1024 / Math.max(1, n)) * 10) / 10;
  const d = (f: keyof MemSample): number => loaded[f] - base[f];
  const heap = d('heapUsed');
  const slack = d('heapTotal') - d('heapUsed') + Math.max(0, d('rssBeforeGc') - d('rss'));
  const buffers = d('arrayBuffers');
  return {
    rss_kib: k(d('rss')),
    rss_before_gc_kib: k(d('rssBeforeGc')),
    heap_kib: k(heap),
    buffers_kib: k(buffers),
    gc_slack_kib: k(slack),
    native_kib: k(d('rss') - d('heapTotal') - buffers),
  };
}

const VARIANTS = ['node-tcp', 'node-tls-direct', 'node-tls-wrap', 'verona-plain', 'verona-starttls', 'verona-direct', 'haproxy-direct'] as const;
type Variant = (typeof VARIANTS)[number];

// ---------------------------------------------------------------- server side (child process)

function sample(): MemSample {
  const before = process.memoryUsage().rss;
  const g = (globalThis as { gc?: () => void }).gc;
  g?.();
  g?.();
  const m = process.memoryUsage();
  return { rss: m.rss, heapUsed: m.heapUsed, heapTotal: m.heapTotal, external: m.external, arrayBuffers: m.arrayBuffers, rssBeforeGc: before };
}

async function child(variant: Variant, certFile: string, keyFile: string, dataDir: string): Promise<void> {
  const send = (m: unknown): void => void process.send?.(m);
  const keep: net.Socket[] = [];
  let ports: { port: number; tlsPort: number };
  const cert = readFileSync(certFile, 'utf8');
  const key = readFileSync(keyFile, 'utf8');
  if (variant.startsWith('node-')) {
    // TLSMEM_MAXVER=TLSv1.2, TLSMEM_NOTICKET=1: knobs to see what TLS 1.3 and tickets cost per connection.
    const ctx = tls.createSecureContext({
      cert, key, minVersion: 'TLSv1.2',
      ...(process.env.TLSMEM_MAXVER ? { maxVersion: process.env.TLSMEM_MAXVER as tls.SecureVersion } : {}),
      ...(process.env.TLSMEM_NOTICKET === '1' ? { secureOptions: (await import('node:crypto')).constants.SSL_OP_NO_TICKET } : {}),
    });
    const hold = (s: net.Socket): void => {
      keep.push(s);
      s.on('data', () => undefined);
      s.on('error', () => undefined);
    };
    let srv: net.Server;
    if (variant === 'node-tls-direct') srv = tls.createServer({ cert, key, minVersion: 'TLSv1.2' }, hold);
    else if (variant === 'node-tls-wrap') {
      // TLSMEM_MAXFRAG: TLS record size for what the server sends (OpenSSL sizes its write buffer by it).
      const frag = Number(process.env.TLSMEM_MAXFRAG ?? 0);
      srv = net.createServer((s) => {
        const t = new tls.TLSSocket(s, { isServer: true, secureContext: ctx });
        if (frag > 0) t.setMaxSendFragment(frag);
        hold(t);
      });
    }
    else srv = net.createServer(hold);
    await new Promise<void>((r) => srv.listen({ host: '127.0.0.1', port: 0, backlog: 1024 }, r));
    const port = (srv.address() as net.AddressInfo).port;
    ports = { port, tlsPort: port };
  } else {
    const { loadConfig } = await import('../src/config/load.js');
    const { startServer } = await import('../src/core/server.js');
    const { writeVeronaConfig } = await import('./lib.js');
    const file = writeVeronaConfig({ dataDir, tls: { cert: certFile, key: keyFile } });
    const config = loadConfig({ file });
    const server = await startServer(config);
    ports = { port: server.ports['c2s'] as number, tlsPort: server.ports['c2s-tls'] as number };
  }
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'sample') send({ sample: sample() });
    if (m.cmd === 'exit') process.exit(0);
  });
  send({ ready: ports });
}

// ---------------------------------------------------------------- client side (parent)

/** A self-signed P-256 certificate for the bench domain, made with the openssl CLI. */
export function makeCert(dir: string, domain = 'bench.localhost'): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '365',
    '-subj', `/CN=${domain}`, '-addext', `subjectAltName=DNS:${domain}`, '-keyout', key, '-out', cert,
  ], { stdio: 'ignore' });
  return { cert, key };
}

function ask<T>(c: ChildProcess, cmd: string, field: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: Record<string, unknown>): void => {
      if (field in m) {
        c.off('message', on);
        resolve(m[field] as T);
      }
    };
    c.on('message', on);
    if (cmd) c.send({ cmd });
  });
}

async function openBare(variant: Variant, port: number, n: number): Promise<Array<net.Socket>> {
  const out: net.Socket[] = [];
  const one = (): Promise<void> =>
    new Promise((resolve, reject) => {
      if (variant === 'node-tcp') {
        const s = net.connect({ host: '127.0.0.1', port }, () => resolve());
        s.on('error', reject);
        out.push(s);
      } else {
        const s = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, servername: 'bench.localhost' }, () => {
          // One byte each way would make no difference to an idle server; the handshake is done.
          resolve();
        });
        s.on('error', reject);
        out.push(s);
      }
    });
  for (let i = 0; i < n; i += 50) await Promise.all(Array.from({ length: Math.min(50, n - i) }, one));
  return out;
}

async function openVerona(variant: Variant, ports: { port: number; tlsPort: number }, n: number): Promise<XmppConn[]> {
  const mode: TlsMode = variant === 'verona-plain' ? 'none' : variant === 'verona-starttls' ? 'starttls' : 'direct';
  const port = mode === 'direct' ? ports.tlsPort : ports.port;
  const out: XmppConn[] = [];
  let next = 1;
  const worker = async (): Promise<void> => {
    while (next <= n) {
      const i = next++;
      const c = new XmppConn({ host: '127.0.0.1', port, domain: 'bench.localhost', user: `user${i}`, password: `pass${i}`, resource: 'idle', tls: mode });
      await c.login({});
      out.push(c);
    }
  };
  await Promise.all(Array.from({ length: 50 }, worker));
  return out;
}

/**
 * TLS terminated outside Node: HAProxy (direct TLS only; it cannot speak XMPP's STARTTLS) in front
 * of Verona's plaintext port. The cost per session is both processes' RSS growth.
 */
async function startHaproxy(work: string, cert: { cert: string; key: string }, backend: number): Promise<{ pid: number; port: number; stop: () => void }> {
  const pem = join(work, 'haproxy.pem');
  writeFileSync(pem, readFileSync(cert.cert, 'utf8') + readFileSync(cert.key, 'utf8'));
  const port = await new Promise<number>((r) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => r(p));
    });
  });
  const cfg = join(work, 'haproxy.cfg');
  writeFileSync(cfg, [
    'global', '  maxconn 9000', '  nbthread 1', 'defaults', '  mode tcp', '  timeout connect 5s', '  timeout client 1h', '  timeout server 1h',
    'frontend xmpp_tls', `  bind 127.0.0.1:${port} ssl crt ${pem} alpn xmpp-client`, '  default_backend verona',
    'backend verona', `  server v 127.0.0.1:${backend}`, '',
  ].join('\n'));
  const c = cp.spawn('haproxy', ['-f', cfg, '-db'], { stdio: ['ignore', 'ignore', 'inherit'] });
  for (let i = 0; i < 100; i++) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ host: '127.0.0.1', port }, () => {
        s.destroy();
        r(true);
      });
      s.on('error', () => r(false));
    });
    if (ok) break;
    await sleep(100);
  }
  return { pid: c.pid ?? 0, port, stop: () => void c.kill('SIGTERM') };
}

function rssOf(pid: number): number {
  const m = /^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

export async function measure(variant: Variant, n: number, cert: { cert: string; key: string }, work: string): Promise<Record<string, number | string>> {
  const dataDir = join(work, variant);
  if (variant === 'haproxy-direct') return measureHaproxy(n, cert, work);
  if (variant.startsWith('verona-')) {
    const { writeVeronaConfig, ensureVeronaUsers } = await import('./lib.js');
    await ensureVeronaUsers(writeVeronaConfig({ dataDir, tls: cert }), n);
  }
  const self = fileURLToPath(import.meta.url);
  const c = fork(self, ['--child', variant, cert.cert, cert.key, dataDir], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  try {
    const ports = await ask<{ port: number; tlsPort: number }>(c, '', 'ready');
    // One warm-up session, so that code loaded on first use is not charged to the sessions.
    const warm = variant.startsWith('verona-') ? await openVerona(variant, ports, 1) : await openBare(variant, ports.port, 1);
    await sleep(1000);
    const base = await ask<MemSample>(c, 'sample', 'sample');
    const conns = variant.startsWith('verona-') ? await openVerona(variant, ports, n) : await openBare(variant, ports.port, n);
    await sleep(3000);
    const loaded = await ask<MemSample>(c, 'sample', 'sample');
    for (const x of [...warm, ...conns]) (x as { destroy(): void }).destroy();
    return { variant, n, ...perSession(base, loaded, n) };
  } finally {
    c.send({ cmd: 'exit' });
    await new Promise((r) => c.once('exit', r));
  }
}

async function measureHaproxy(n: number, cert: { cert: string; key: string }, work: string): Promise<Record<string, number | string>> {
  const dataDir = join(work, 'haproxy-direct');
  const { writeVeronaConfig, ensureVeronaUsers } = await import('./lib.js');
  await ensureVeronaUsers(writeVeronaConfig({ dataDir, tls: cert }), n);
  const self = fileURLToPath(import.meta.url);
  const c = fork(self, ['--child', 'verona-plain', cert.cert, cert.key, dataDir], { execArgv: ['--expose-gc'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const ports = await ask<{ port: number; tlsPort: number }>(c, '', 'ready');
  const hp = await startHaproxy(work, cert, ports.port);
  try {
    const via = { port: hp.port, tlsPort: hp.port };
    const warm = await openVerona('verona-direct', via, 1);
    await sleep(1000);
    const base = await ask<MemSample>(c, 'sample', 'sample');
    const hBase = rssOf(hp.pid);
    const conns = await openVerona('verona-direct', via, n);
    await sleep(3000);
    const loaded = await ask<MemSample>(c, 'sample', 'sample');
    const hLoaded = rssOf(hp.pid);
    for (const x of [...warm, ...conns]) x.destroy();
    const v = perSession(base, loaded, n);
    const h = Math.round(((hLoaded - hBase) / 1024 / n) * 10) / 10;
    return { variant: 'haproxy-direct', n, ...v, rss_kib: Math.round((v['rss_kib'] as number + h) * 10) / 10, haproxy_kib: h, verona_rss_kib: v['rss_kib'] as number };
  } finally {
    hp.stop();
    c.send({ cmd: 'exit' });
    await new Promise((r) => c.once('exit', r));
  }
}

async function main(): Promise<void> {
  if (process.argv[2] === '--child') {
    await child(process.argv[3] as Variant, process.argv[4] as string, process.argv[5] as string, process.argv[6] as string);
    return;
  }
  const { values: a } = parseArgs({ options: { n: { type: 'string', default: '2000' }, variants: { type: 'string', default: VARIANTS.join(',') }, json: { type: 'boolean', default: false } } });
  const n = Number(a.n);
  const work = mkdtempSync(join(tmpdir(), 'verona-tlsmem-'));
  try {
    const cert = makeCert(work);
    const rows: Array<Record<string, number | string>> = [];
    for (const v of a.variants.split(',') as Variant[]) {
      if (!VARIANTS.includes(v)) throw new Error(`unknown variant ${v} (${VARIANTS.join(', ')})`);
      const r = await measure(v, n, cert, work);
      rows.push(r);
      process.stderr.write(JSON.stringify(r) + '\n');
    }
    if (a.json) for (const r of rows) process.stdout.write('RESULT ' + JSON.stringify(r) + '\n');
    else {
      const cols = ['variant', 'rss_kib', 'heap_kib', 'buffers_kib', 'gc_slack_kib', 'native_kib', 'rss_before_gc_kib', 'haproxy_kib'];
      process.stdout.write(`sessions: ${n}; KiB per session (after a forced GC unless noted)\n| ${cols.join(' | ')} |\n|${cols.map(() => ' --- ').join('|')}|\n`);
      for (const r of rows) process.stdout.write(`| ${cols.map((k) => String(r[k])).join(' | ')} |\n`);
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main().then(
    // The server process lives until the parent tells it to exit.
    () => (process.argv[2] === '--child' ? undefined : process.exit(0)),
    (e: unknown) => {
      process.stderr.write(`tls-memory: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
