/**
 * Debian's ejabberd 23.01 as an anchor for the import test
 * (test/integration/portable-ejabberd.test.ts): a node of its own
 * (`opsimport<pid>@localhost`) with a throwaway config, spool (Mnesia) and log
 * directory under os.tmpdir(), c2s on 127.0.60.1 and a free port, started
 * with `ejabberdctl start` as the ejabberd user and stopped with `ejabberdctl
 * stop`, then by its PID if it lingers. Debian's package starts a system
 * ejabberd (node ejabberd@localhost) on install: .ci/run stops it; this node
 * has another name and its own ports, so it neither uses nor touches it.
 * Every ejabberdctl call boots an Erlang VM (seconds on a loaded machine), so
 * readiness is polled on the c2s port, not with `ejabberdctl status`.
 */
import { execFile, spawn } from 'node:child_process';
import { chmodSync, chownSync, closeSync, openSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const execFileP = promisify(execFile);
export const EJABBERDCTL = '/usr/sbin/ejabberdctl';
export const EJABBERD_HOST = '127.0.60.1';

export interface EjabberdAnchor {
  dir: string;
  /** ejabberd's SQLite database (the message archive). */
  database: string;
  port: number;
  ctl(args: string[]): Promise<string>;
  stop(): Promise<void>;
  cleanup(): void;
}

async function freePort(host: string): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function config(port: number, dir: string): string {
  // Mnesia (the default store) for everything export_piefxis exports; the archive in SQLite
  // (mod_mam db_type sql, as ejabberd's docs advise for MAM), the database the import reads
  // with --ejabberd-mam. ejabberd creates the schema in a new SQLite file itself.
  // auth_password_format scram: passwords are kept as SCRAM-SHA-1 credentials, as on most servers.
  return `loglevel: info
sql_type: sqlite
sql_database: "${dir}/spool/ejabberd.db"

log_rotate_count: 0
hosts:
  - localhost
auth_method: internal
auth_password_format: scram
listen:
  -
    port: ${port}
    ip: "${EJABBERD_HOST}"
    module: ejabberd_c2s
    starttls: false
    shaper: none
    access: c2s
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  c2s:
    allow: all
shaper_rules:
  max_user_sessions: 10
  max_user_offline_messages: 5000
  c2s_shaper: none
modules:
  mod_blocking: {}
  mod_caps: {}
  mod_carboncopy: {}
  mod_disco: {}
  mod_mam:
    db_type: sql
    default: always
    assume_mam_usage: true
  mod_offline:
    access_max_user_messages: max_user_offline_messages
  mod_ping: {}
  mod_privacy: {}
  mod_private: {}
  mod_pubsub:
    access_createnode: local
    plugins:
      - flat
      - pep
  mod_roster:
    versioning: true
  mod_vcard: {}
  mod_admin_extra: {}
`;
}

/** Start ejabberd with fresh data, then register `users` with ejabberdctl. */
export async function startEjabberd(users: Array<[string, string]>): Promise<EjabberdAnchor> {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-ejabberd-'));
  for (const d of ['etc', 'logs', 'spool', 'export']) mkdirSync(path.join(dir, d));
  const port = await freePort(EJABBERD_HOST);
  const pidFile = path.join(dir, 'ejabberd.pid');
  writeFileSync(path.join(dir, 'etc', 'ejabberd.yml'), config(port, dir));
  writeFileSync(
    path.join(dir, 'etc', 'ejabberdctl.cfg'),
    `ERLANG_NODE=opsimport${process.pid}@localhost\nINET_DIST_INTERFACE=127.0.0.1\nERL_EPMD_ADDRESS=127.0.0.1\nEJABBERD_PID_PATH=${pidFile}\nEJABBERD_BYPASS_WARNINGS=true\n`,
  );
  writeFileSync(path.join(dir, 'etc', 'inetrc'), '{lookup,["file","native"]}.\n{host,{127,0,0,1}, ["localhost"]}.\n');
  // ejabberdctl runs the node as the ejabberd user (Debian's package makes it): give it the directory.
  const asRoot = userInfo().uid === 0;
  let owner: { uid: number; gid: number } | undefined;
  if (asRoot) {
    const { stdout } = await execFileP('id', ['-u', 'ejabberd']);
    const { stdout: g } = await execFileP('id', ['-g', 'ejabberd']);
    owner = { uid: Number(stdout.trim()), gid: Number(g.trim()) };
    chmodSync(dir, 0o755);
    for (const p of [dir, ...['etc', 'logs', 'spool', 'export'].map((d) => path.join(dir, d))]) chownSync(p, owner.uid, owner.gid);
    for (const f of readdirSync(path.join(dir, 'etc'))) chownSync(path.join(dir, 'etc', f), owner.uid, owner.gid);
  }
  let ctlRuns = 0;
  const ctl = async (args: string[]): Promise<string> => {
    const base = [
      '--config-dir', path.join(dir, 'etc'),
      '--config', path.join(dir, 'etc', 'ejabberd.yml'),
      '--ctl-config', path.join(dir, 'etc', 'ejabberdctl.cfg'),
      '--logs', path.join(dir, 'logs'),
      '--spool', path.join(dir, 'spool'),
      ...args,
    ];
    const cmd = asRoot ? 'setpriv' : EJABBERDCTL;
    const argv = asRoot ? ['--reuid=ejabberd', '--regid=ejabberd', '--init-groups', 'env', 'HOME=/var/lib/ejabberd', EJABBERDCTL, ...base] : base;
    // Output to a file, not a pipe: `ejabberdctl start` leaves a detached VM (and epmd) behind
    // that would inherit a pipe and hold it open, so that neither the call nor the test process
    // could end. 'exit' is the direct child's own end.
    const out = path.join(dir, `ctl-${++ctlRuns}.out`);
    const fd = openSync(out, 'w');
    try {
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(cmd, argv, { cwd: dir, stdio: ['ignore', fd, fd] });
        const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
        child.on('error', (e) => (clearTimeout(timer), reject(e)));
        child.on('exit', (c) => (clearTimeout(timer), resolve(c)));
      });
      const text = readFileSync(out, 'utf8');
      if (code !== 0) throw new Error(`ejabberdctl ${args.join(' ')} exited with ${code}: ${text}`);
      return text;
    } finally {
      closeSync(fd);
    }
  };
  const logs = (): string => {
    const f = path.join(dir, 'logs', 'ejabberd.log');
    return existsSync(f) ? readFileSync(f, 'utf8').slice(-4000) : '';
  };
  const pid = (): number | undefined => (existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8').trim()) || undefined : undefined);
  const alive = (p: number): boolean => {
    try {
      process.kill(p, 0);
      return true;
    } catch (e) {
      // EPERM: it exists but belongs to the ejabberd user (a test run without root).
      return (e as NodeJS.ErrnoException).code === 'EPERM';
    }
  };
  // The Erlang port mapper first, with no pipes of ours: started by ejabberdctl it would inherit
  // execFile's stdout and, as a daemon that outlives the test, keep this test process from exiting.
  await new Promise<void>((resolve) => {
    const epmd = spawn('epmd', ['-daemon', '-address', '127.0.0.1'], { stdio: 'ignore' });
    epmd.on('error', () => resolve());
    epmd.on('exit', () => resolve());
  });
  await ctl(['start']);
  // The c2s listener opens once the node's applications have started.
  const deadline = Date.now() + 180_000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const sock = net.connect({ host: EJABBERD_HOST, port }, () => {
        sock.destroy();
        r(true);
      });
      sock.once('error', () => r(false));
    });
    if (ok) break;
    const p = pid();
    if (Date.now() > deadline || (p !== undefined && !alive(p))) throw new Error(`ejabberd did not start:\n${logs()}`);
    await new Promise((r) => setTimeout(r, 300));
  }
  let stopped = false;
  const anchor: EjabberdAnchor = {
    dir,
    database: path.join(dir, 'spool', 'ejabberd.db'),
    port,
    ctl,
    stop: async () => {
      // Once: a second `ejabberdctl stop` on a stopped node boots an Erlang VM that outlives
      // execFile's timeout and holds its pipes, so the test process would never exit.
      if (stopped) return;
      stopped = true;
      const p = pid();
      if (p === undefined) {
        await ctl(['stop']).catch(() => undefined);
        return;
      }
      // SIGTERM: the VM stops its applications in order (as `ejabberdctl stop`, without booting another VM).
      try {
        process.kill(p, 'SIGTERM');
      } catch {
        await ctl(['stop']).catch(() => undefined);
      }
      const until = Date.now() + 60_000;
      while (alive(p) && Date.now() < until) await new Promise((r) => setTimeout(r, 300));
      if (alive(p)) process.kill(p, 'SIGKILL');
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
  try {
    for (const [u, pw] of users) await ctl(['register', u, 'localhost', pw]);
  } catch (e) {
    await anchor.stop();
    throw new Error(`ejabberdctl register failed: ${String(e)}\n${logs()}`);
  }
  return anchor;
}

/** `ejabberdctl export_piefxis DIR` as an operator runs it; returns the directory of XEP-0227 files. */
export async function exportEjabberd(a: EjabberdAnchor): Promise<string> {
  const out = path.join(a.dir, 'export');
  await a.ctl(['export_piefxis', out]);
  const files = readdirSync(out).filter((f) => f.endsWith('.xml'));
  if (files.length === 0) throw new Error(`export_piefxis wrote nothing in ${out}`);
  // The export is written by the ejabberd user with mode 0600; the importer runs as whoever runs the test.
  for (const f of files) if (statSync(path.join(out, f)).uid !== userInfo().uid) chmodSync(path.join(out, f), 0o644);
  return out;
}
