/**
 * Start the real Verona server as a child process (the same `bin/verona.js`
 * an operator runs) on ephemeral ports with a temporary data directory.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BIN = path.join(ROOT, 'bin/verona.js');

export interface VeronaOptions {
  /** Deep-merged over the test defaults; written as the YAML (JSON is valid YAML) config file. */
  config?: Record<string, unknown>;
  /** Accounts to create before start: [username, password]. */
  users?: Array<[string, string]>;
  /** Reuse a data dir (restart tests). */
  dataDir?: string;
  env?: Record<string, string>;
}

export interface Verona {
  ports: Record<string, number>;
  domain: string;
  dataDir: string;
  configFile: string;
  proc: ChildProcess;
  /** Lines the server wrote to stdout/stderr (logs). */
  output: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
  /** Remove the data dir (after stop). */
  cleanup(): void;
  adduser(user: string, password: string): Promise<void>;
  cli(args: string[]): Promise<{ stdout: string; stderr: string }>;
}

function merge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const cur = out[k];
    out[k] = v && typeof v === 'object' && !Array.isArray(v) && cur && typeof cur === 'object' && !Array.isArray(cur)
      ? merge(cur as Record<string, unknown>, v as Record<string, unknown>)
      : v;
  }
  return out;
}

export function testConfig(dataDir: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return merge(
    {
      domain: 'localhost',
      dataDir,
      log: { level: 'warn' },
      c2s: { host: '127.0.0.1', port: 0, tlsPort: 0, requireTls: false, allowPlainWithoutTls: true },
      web: { host: '127.0.0.1', port: 0, tlsPort: 0 },
      auth: { failuresPerAddress: 1000, failuresPerAccount: 1000 },
      // No s2s listeners (5269/5270 would collide between test servers); s2s tests set their own.
      s2s: { host: '127.0.0.1', port: -1, tlsPort: -1 },
    },
    extra,
  );
}

export async function runCli(args: string[], env?: Record<string, string>): Promise<{ stdout: string; stderr: string }> {
  return execFileP(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
}

/**
 * With VERONA_TEST_PG_URL (a PostgreSQL admin URL, set by test/integration/postgres-suite.test.ts)
 * every server of the run stores everything in PostgreSQL: a database of its own, created here and
 * named in the data directory so that a restart on the same data directory finds it again.
 */
async function postgresStorageFor(dataDir: string): Promise<Record<string, unknown> | undefined> {
  const admin = process.env.VERONA_TEST_PG_URL;
  if (!admin) return undefined;
  const marker = path.join(dataDir, 'pg-database');
  let name: string;
  if (existsSync(marker)) name = readFileSync(marker, 'utf8').trim();
  else {
    name = `v_${path.basename(dataDir).replace(/[^a-zA-Z0-9]/g, '_').toLowerCase()}`;
    const { default: pg } = await import('pg');
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      await c.query(`CREATE DATABASE "${name}"`);
    } finally {
      await c.end();
    }
    writeFileSync(marker, name);
  }
  const url = new URL(admin);
  url.pathname = `/${name}`;
  return { storage: { driver: 'postgres', postgres: { url: url.toString() } } };
}

export async function startVerona(opts: VeronaOptions = {}): Promise<Verona> {
  const dataDir = opts.dataDir ?? mkdtempSync(path.join(tmpdir(), 'verona-test-'));
  const configFile = path.join(dataDir, 'verona.yml');
  const pgStorage = await postgresStorageFor(dataDir);
  const cfg = testConfig(dataDir, pgStorage ? merge(pgStorage, opts.config ?? {}) : opts.config);
  writeFileSync(configFile, JSON.stringify(cfg, null, 2));
  const cli = (args: string[]) => runCli([...args, '--config', configFile], opts.env);
  for (const [u, p] of opts.users ?? []) await cli(['adduser', u, '--password', p]);

  const proc = spawn(process.execPath, [BIN, 'start', '--config', configFile], {
    env: { ...process.env, ...opts.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const output: string[] = [];
  const ports = await new Promise<Record<string, number>>((resolve, reject) => {
    let buf = '';
    const timer = setTimeout(() => reject(new Error('server did not start in 30 s:\n' + output.join('\n'))), 30000);
    const onLine = (line: string): void => {
      output.push(line);
      if (line.startsWith('READY ')) {
        clearTimeout(timer);
        resolve(JSON.parse(line.slice(6)) as Record<string, number>);
      }
    };
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        onLine(buf.slice(0, i));
        buf = buf.slice(i + 1);
      }
    });
    proc.stderr?.on('data', (d: Buffer) => output.push(...d.toString().split('\n').filter(Boolean)));
    proc.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code} before READY:\n${output.join('\n')}`));
    });
  });
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  return {
    ports,
    domain: 'localhost',
    dataDir,
    configFile,
    proc,
    output,
    stop: async (signal: NodeJS.Signals = 'SIGTERM') => {
      if (proc.exitCode !== null || proc.signalCode !== null) return proc.exitCode;
      proc.kill(signal);
      const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
      const code = await exited;
      clearTimeout(t);
      return code;
    },
    cleanup: () => rmSync(dataDir, { recursive: true, force: true }),
    adduser: async (u, p) => void (await cli(['adduser', u, '--password', p])),
    cli,
  };
}
