/**
 * xmppbench in TypeScript: `node dist/bench/driver/cli.js [global options] MODE [mode options]`.
 * Options and output mirror /work/shared/bench/driver/xmppbench.py; the last line is
 * `RESULT {json}`. Run with `--help` for the list.
 */
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { TlsSessionStore, tlsCounters, type LoginOptions, type TlsMode } from './conn.js';
import type { Mechanism } from './sasl.js';
import { chat, idle, loginRate, mamfill, mamquery, register, type Result, type Target } from './scenarios.js';
import { storm } from './storm.js';

const HELP = `usage: cli.js [--host H] [--port P] [--domain D] [--prefix user] [--pwprefix pass]
              [--users-file F] [--mech PLAIN|SCRAM-SHA-1|SCRAM-SHA-256|SCRAM] [--label L] [--pid PID]
              [--tls none|starttls|direct] [--resume]   (--resume: keep TLS tickets per user, resume them)
              [--local-addrs 127.0.0.1-4]   (source addresses in turn: >28k connections need several)
              MODE [options]
modes:
  register  --start 1 --count 100 --concurrency 20          XEP-0077 bulk registration
  idle      --checkpoints 1000,5000 --concurrency 50 --settle 5 --hold 0
            [--sm] [--carbons] [--mr2] [--roster] [--csi active|inactive]
  login     --count 1000 --users 1000 --concurrency 50 [--sm] [--carbons] [--mr2]
  chat      --pairs 50 --resources 1 [--carbons] [--mr2] [--sm] --rate 0 --window 5 --size 100
            --warmup 3 --duration 20 --drain 15 --concurrency 50
  mamfill   --src mamsrc --dst mamdst --count 100000 --window 200 --size 100 --ids-file F
  mamquery  --src mamsrc --dst mamdst --iterations 30 --warmup-queries 10 --ids-file F
  storm     --count 10000 --concurrency 10000 --pairs 10 --rate 100 --baseline 10 [--threads 1] [--sm]
            N clients online, all dropped at once and reconnecting at once, while --pairs other
            users exchange --rate msg/s; reports logins/s, time to ready, RSS peak, stream p99
users are <prefix><i> with password <pwprefix><i>, or line i of --users-file ("name password").
--src/--dst passwords default to the user name (--src-password/--dst-password to override).`;

const options = {
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '5222' },
  domain: { type: 'string', default: 'bench.localhost' },
  prefix: { type: 'string', default: 'user' },
  pwprefix: { type: 'string', default: 'pass' },
  'users-file': { type: 'string' },
  'local-addrs': { type: 'string', default: '' },
  mech: { type: 'string', default: 'PLAIN' },
  tls: { type: 'string', default: 'none' },
  resume: { type: 'boolean', default: false },
  baseline: { type: 'string', default: '10' },
  label: { type: 'string', default: '' },
  pid: { type: 'string', default: '0' },
  start: { type: 'string', default: '1' },
  count: { type: 'string' },
  users: { type: 'string' },
  concurrency: { type: 'string' },
  threads: { type: 'string' },
  checkpoints: { type: 'string', default: '1000,5000' },
  settle: { type: 'string', default: '5' },
  hold: { type: 'string', default: '0' },
  sm: { type: 'boolean', default: false },
  carbons: { type: 'boolean', default: false },
  mr2: { type: 'boolean', default: false },
  roster: { type: 'boolean', default: false },
  csi: { type: 'string' },
  pairs: { type: 'string', default: '50' },
  resources: { type: 'string', default: '1' },
  rate: { type: 'string', default: '0' },
  window: { type: 'string' },
  size: { type: 'string', default: '100' },
  warmup: { type: 'string', default: '3' },
  duration: { type: 'string', default: '20' },
  drain: { type: 'string', default: '15' },
  src: { type: 'string', default: 'mamsrc' },
  dst: { type: 'string', default: 'mamdst' },
  'src-password': { type: 'string' },
  'dst-password': { type: 'string' },
  'ids-file': { type: 'string', default: '/tmp/xmppbench-mam-ids.json' },
  iterations: { type: 'string', default: '30' },
  'warmup-queries': { type: 'string', default: '10' },
  help: { type: 'boolean', short: 'h', default: false },
} as const;

/** "127.0.0.1-4" -> 127.0.0.1 .. 127.0.0.4; or a comma list. */
export function expandAddrs(spec: string): string[] {
  const out: string[] = [];
  for (const part of spec.split(',').filter(Boolean)) {
    const m = /^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/.exec(part);
    if (m) for (let i = Number(m[2]); i <= Number(m[3]); i++) out.push(`${m[1]}${i}`);
    else out.push(part);
  }
  return out;
}

function num(v: string | undefined, dflt: number, name: string): number {
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name}: not a number: ${v}`);
  return n;
}

export async function main(argv: string[]): Promise<Result> {
  const { values: a, positionals } = parseArgs({ args: argv, options, allowPositionals: true, strict: true });
  const mode = positionals[0];
  if (a.help || !mode) {
    process.stdout.write(HELP + '\n');
    process.exit(mode ? 0 : 2);
  }
  const mech = a.mech as Mechanism;
  if (!['PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM'].includes(mech)) throw new Error('bad --mech ' + mech);
  const tlsMode = a.tls as TlsMode;
  if (!['none', 'starttls', 'direct'].includes(tlsMode)) throw new Error('bad --tls ' + tlsMode);
  let list: Array<[string, string]> | null = null;
  if (a['users-file']) {
    list = readFileSync(a['users-file'], 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l.length > 0 && !l.startsWith('#'))
      .map((l) => {
        const [u, p] = l.split(/\s+/);
        return [u as string, p ?? ''] as [string, string];
      });
  }
  const t: Target = {
    host: a.host,
    port: num(a.port, 5222, 'port'),
    domain: a.domain,
    mech,
    pid: num(a.pid, 0, 'pid'),
    localAddrs: expandAddrs(a['local-addrs']),
    tls: tlsMode,
    ...(a.resume ? { tlsSessions: new TlsSessionStore() } : {}),
    user: (i) => {
      if (list !== null) {
        const e = list[i - 1];
        if (!e) throw new Error(`user ${i} not in --users-file (${list.length} lines)`);
        return e;
      }
      return [a.prefix + i, a.pwprefix + i];
    },
  };
  const start = num(a.start, 1, 'start');
  const csi: 'active' | 'inactive' | undefined = a.csi === 'active' || a.csi === 'inactive' ? a.csi : undefined;
  const login: LoginOptions = { sm: a.sm, carbons: a.carbons, mr2: a.mr2, roster: a.roster, csi };
  const src: [string, string] = [a.src, a['src-password'] ?? a.src];
  const dst: [string, string] = [a.dst, a['dst-password'] ?? a.dst];
  const started = new Date();
  let res: Result;
  switch (mode) {
    case 'register':
      res = await register(t, { start, count: num(a.count, 100, 'count'), concurrency: num(a.concurrency, 20, 'concurrency') });
      break;
    case 'idle':
      res = await idle(t, {
        ...login, start, checkpoints: a.checkpoints.split(',').map((x) => num(x, 0, 'checkpoints')),
        concurrency: num(a.concurrency, 50, 'concurrency'), settle: num(a.settle, 5, 'settle'), hold: num(a.hold, 0, 'hold'),
      });
      break;
    case 'login': {
      const count = num(a.count, 1000, 'count');
      res = await loginRate(t, {
        ...login, start, count, users: num(a.users, count, 'users'), concurrency: num(a.concurrency, 50, 'concurrency'),
      });
      break;
    }
    case 'chat':
      res = await chat(t, {
        start, pairs: num(a.pairs, 50, 'pairs'), resources: num(a.resources, 1, 'resources'), carbons: a.carbons,
        mr2: a.mr2, sm: a.sm, rate: num(a.rate, 0, 'rate'), window: num(a.window, 5, 'window'), size: num(a.size, 100, 'size'),
        warmup: num(a.warmup, 3, 'warmup'), duration: num(a.duration, 20, 'duration'), drain: num(a.drain, 15, 'drain'),
        concurrency: num(a.concurrency, 50, 'concurrency'),
      });
      break;
    case 'mamfill':
      res = await mamfill(t, {
        src, dst, idsFile: a['ids-file'], count: num(a.count, 100000, 'count'), window: num(a.window, 200, 'window'),
        size: num(a.size, 100, 'size'),
      });
      break;
    case 'storm': {
      const count = num(a.count, 10000, 'count');
      res = await storm(t, {
        ...login, start, count, concurrency: num(a.concurrency, count, 'concurrency'), pairs: num(a.pairs, 10, 'pairs'),
        rate: num(a.rate, 100, 'rate'), baseline: num(a.baseline, 10, 'baseline'), settle: num(a.settle, 5, 'settle'),
        threads: num(a.threads, 1, 'threads'),
      });
      break;
    }
    case 'mamquery':
      res = await mamquery(t, { src, dst, idsFile: a['ids-file'], iterations: num(a.iterations, 30, 'iterations'), warmup: num(a['warmup-queries'], 10, 'warmup-queries') });
      break;
    default:
      throw new Error(`unknown mode ${mode}\n${HELP}`);
  }
  return {
    ...res, transport: tlsMode === 'none' ? 'plain' : tlsMode, tls_resume: a.resume,
    ...(tlsMode !== 'none' ? { tls_handshakes: { ...tlsCounters } } : {}), label: a.label, target: `${t.host}:${t.port}`, domain: t.domain, driver: 'ts',
    started: started.toISOString().slice(0, 19) + 'Z',
  };
}

// Run only as a program (scenarios are also imported by bench/run.ts).
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  main(process.argv.slice(2)).then(
    (res) => {
      process.stdout.write('RESULT ' + JSON.stringify(res) + '\n');
      // Open sockets of a failed server must not keep the driver alive.
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`xmppbench: ${(e as Error).stack ?? String(e)}\n`);
      process.exit(1);
    },
  );
}
