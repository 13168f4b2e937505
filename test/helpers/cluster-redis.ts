/**
 * A throwaway Redis server for cluster tests: Debian's redis-server, no
 * persistence (a restart comes back empty, the hardest case for the cluster),
 * a temporary working directory, on the cluster tests' loopback address
 * (127.0.70.1) at a free port, stopped by PID when the test ends.
 *
 * A missing binary is an error, never a skip (`.ci/apt.d/cluster` lists it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { freePort } from './pg.js';

export const REDIS_HOST = '127.0.70.1';
/** Addresses for cluster nodes in tests: 127.0.70.2, .3, ... */
export const nodeHost = (i: number): string => `127.0.70.${2 + i}`;

export interface TestRedis {
  url: string;
  pid(): number | undefined;
  /** Stop (SIGTERM, no save) and start again on the same port: it comes back empty. */
  restart(): Promise<void>;
  /** Stop it and keep it stopped until start(). */
  halt(): Promise<void>;
  start(): Promise<void>;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

function redisBinary(): string {
  for (const p of ['/usr/bin/redis-server', '/usr/local/bin/redis-server']) if (existsSync(p)) return p;
  throw new Error('redis-server is not installed: apt-get install -y redis-server (listed in .ci/apt.d/cluster)');
}

async function waitReady(url: string, proc: ChildProcess, log: string[]): Promise<void> {
  const deadline = Date.now() + 30000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`redis-server exited:\n${log.join('')}`);
    const c = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    c.on('error', () => undefined);
    try {
      await c.connect();
      await c.ping();
      c.disconnect();
      return;
    } catch {
      c.disconnect();
      if (Date.now() > deadline) throw new Error(`redis-server not ready in 30 s:\n${log.join('')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** `host`: another loopback address (tests that run beside the cluster tests use their own range). */
export async function startRedis(host = REDIS_HOST): Promise<TestRedis> {
  const bin = redisBinary();
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-redis-'));
  const port = await freePort(host);
  const url = `redis://${host}:${port}`;
  let proc: ChildProcess | undefined;
  const launch = async (): Promise<void> => {
    const log: string[] = [];
    const p = spawn(bin, ['--bind', host, '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'no', '--protected-mode', 'no', '--daemonize', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    p.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
    p.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
    running.add(p);
    p.once('exit', () => running.delete(p));
    proc = p;
    await waitReady(url, p, log);
  };
  const halt = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const t = setTimeout(() => p.kill('SIGKILL'), 10000);
    await exited;
    clearTimeout(t);
  };
  await launch();
  return {
    url,
    pid: () => proc?.pid,
    restart: async () => {
      await halt();
      await launch();
    },
    halt,
    start: launch,
    stop: async () => {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
