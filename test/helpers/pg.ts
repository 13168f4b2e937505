/**
 * A throwaway PostgreSQL server for tests: Debian's PostgreSQL 15 binaries,
 * a fresh cluster in a temporary directory (initdb), listening on 127.0.0.80
 * at a free port, stopped by PID when the test ends.
 *
 * PostgreSQL refuses to run as root, so as root (CI, this machine) the server
 * runs as the `postgres` user the Debian package creates, through `setpriv`
 * (which execs: the PID we hold is the postmaster's own).
 *
 * A missing binary is an error, never a skip: `.ci/apt.d/pg` lists the
 * package, and a test that silently did not run would hide a broken backend.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';

export const PG_HOST = '127.0.0.80';

export interface TestPostgres {
  host: string;
  port: number;
  /** URL of the `postgres` maintenance database (superuser `verona`, trust auth). */
  adminUrl: string;
  /** A new, empty database; returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** Stop the server (fast shutdown), keeping its data directory (restart() brings it back). */
  pause(): Promise<void>;
  /** Start it again on the same port and data directory. */
  restart(): Promise<void>;
  /** Stop the server and remove its data directory. */
  stop(): Promise<void>;
  pid(): number | undefined;
}

/** Directory of the PostgreSQL binaries (highest version installed), or throws saying what to install. */
export function pgBinDir(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(path.join(root, v, 'bin', 'postgres'))) : [];
  versions.sort((a, b) => Number(b) - Number(a));
  const v = versions[0];
  if (v === undefined) throw new Error('PostgreSQL is not installed: apt-get install -y postgresql (listed in .ci/apt.d/pg)');
  return path.join(root, v, 'bin');
}

export async function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const a = s.address();
      const port = typeof a === 'object' && a ? a.port : 0;
      s.close(() => resolve(port));
    });
  });
}

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** argv that runs `bin` as the postgres user when we are root. */
function asPostgres(bin: string, args: string[]): [string, string[]] {
  if (!isRoot) return [bin, args];
  return ['setpriv', ['--reuid=postgres', '--regid=postgres', '--init-groups', '--', bin, ...args]];
}

const running = new Set<ChildProcess>();
// A test process that dies on an assertion still takes its server with it.
process.once('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

async function waitReady(url: string, proc: ChildProcess, log: string[]): Promise<void> {
  const deadline = Date.now() + 60000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`postgres exited (${proc.exitCode ?? proc.signalCode}):\n${log.join('')}`);
    const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    try {
      await c.connect();
      await c.query('SELECT 1');
      await c.end();
      return;
    } catch {
      await c.end().catch(() => undefined);
      if (Date.now() > deadline) throw new Error(`postgres not ready in 60 s:\n${log.join('')}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

export interface StartPostgresOptions {
  /** Loopback address to listen on (default PG_HOST); tests of one area use their own range. */
  host?: string;
  /** Extra `-c name=value` settings. */
  settings?: Record<string, string>;
  /**
   * fsync off (default true for tests: nothing here survives the machine; the
   * benchmark passes false to measure real commits).
   */
  noFsync?: boolean;
}

export async function startPostgres(opts: StartPostgresOptions = {}): Promise<TestPostgres> {
  const bin = pgBinDir();
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-pg-'));
  const data = path.join(dir, 'data');
  if (isRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(dir, uid, gid);
  }
  const [cmd, args] = asPostgres(path.join(bin, 'initdb'), ['-D', data, '-U', 'verona', '--auth=trust', '-E', 'UTF8', '--locale=C', '--no-sync']);
  execFileSync(cmd, args, { stdio: 'pipe' });

  const host = opts.host ?? PG_HOST;
  const port = await freePort(host);
  const settings: Record<string, string> = {
    listen_addresses: host,
    port: String(port),
    unix_socket_directories: dir,
    max_connections: '200',
    ...(opts.noFsync === false ? {} : { fsync: 'off', full_page_writes: 'off' }),
    ...opts.settings,
  };
  const adminUrl = `postgres://verona@${host}:${port}/postgres`;
  let proc: ChildProcess | undefined;
  let log: string[] = [];

  const launch = async (): Promise<void> => {
    const pgArgs = ['-D', data, ...Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`])];
    const [c, a] = asPostgres(path.join(bin, 'postgres'), pgArgs);
    log = [];
    const p = spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'] });
    p.stdout?.on('data', (d: Buffer) => log.push(d.toString()));
    p.stderr?.on('data', (d: Buffer) => log.push(d.toString()));
    running.add(p);
    p.once('exit', () => running.delete(p));
    proc = p;
    await waitReady(adminUrl, p, log);
  };

  const halt = async (): Promise<void> => {
    const p = proc;
    proc = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const exited = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGINT'); // fast shutdown: roll back open transactions, close connections
    const t = setTimeout(() => p.kill('SIGKILL'), 15000);
    await exited;
    clearTimeout(t);
  };

  await launch();
  let n = 0;
  return {
    host,
    port,
    adminUrl,
    async createDatabase(name?: string): Promise<string> {
      const db = name ?? `t${process.pid}_${++n}`;
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`CREATE DATABASE "${db.replace(/"/g, '""')}"`);
      } finally {
        await c.end();
      }
      return `postgres://verona@${host}:${port}/${db}`;
    },
    pause: halt,
    restart: launch,
    async stop(): Promise<void> {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
    pid: () => proc?.pid,
  };
}
