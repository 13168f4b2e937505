/**
 * The `verona` command (bin/verona.js calls main()).
 *
 * Exit codes: 0 success, 1 runtime failure (account exists, no such account,
 * the server failed), 2 usage or configuration error. Errors go to stderr as
 * one line; results to stdout. `start` prints `READY {"c2s":5222,...}` on
 * stdout once every listener is up (tests and supervisors wait for it).
 */
import { domainConfig } from '../net/vhost-tls.js';
import { certDomains } from './cert.js';
import { existsSync, readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { checkConfig, ConfigError, loadConfig, type CliOverrides } from '../config/load.js';
import { suggest } from '../config/schema.js';
import type { Config } from '../config/types.js';
import { inspectCertificate } from '../config/cert.js';
import { assertStorageSupported } from '../storage/index.js';
import { addUser, changePassword, deleteUser } from './accounts.js';
import { storageCommand } from './storage-migrate.js';
import { checkCertificate, newCertificate, showCertificate } from './cert.js';
import { CliError, usageError } from './errors.js';
import { announce, kick, listSessions, setDisabled } from './admin.js';

const USAGE = `Usage: verona <command> [options]

Commands:
  start [--nodes N]             run the server (--nodes N: N cluster nodes on this
                                host; needs cluster.redis and PostgreSQL)
  adduser JID [--password PW]   create an account (JID: user or user@domain)
  passwd JID [--password PW]    change an account's password
  deluser JID                   delete an account and all its data
                                (on a running server: its sessions end first)
  disable JID | enable JID      refuse / allow the account's logins
  sessions [JID]                list the running server's sessions
  kick JID                      end one session (full JID) or all of an
                                account's (bare JID) on the running server
  announce MESSAGE              send MESSAGE to every online session
  check-config                  validate the configuration and exit
  cert [show] [DOMAIN]          show the TLS certificate (of every hosted domain)
  cert generate [DOMAIN] [--force]  generate a self-signed certificate
  storage migrate SRC DST       copy all data between SQLite and PostgreSQL
                                (a SQLite file, a postgres:// URL, or "config";
                                resumable, verified; see docs/storage.md)
  cert check [DOMAIN] [--days N]  warn (exit 1) when the certificate expires within
                                N days (default 14), expired, or misses the domain
  import FILE|DIR [--ejabberd-mam DB]
                                import XEP-0227 data (Prosody, ejabberd exports);
                                DB: ejabberd's SQLite database, for its archive
  export DIR                    export every account as XEP-0227 files
  backup DIR                    consistent copy of the SQLite database (server may run)
  help                          show this text

passwd ends the account's live sessions when the server runs. The commands
reach a running server through its admin socket (admin.socket, in the data
directory); sessions, kick and announce need one.

Without --password, adduser and passwd ask on a terminal (twice, hidden) or
read one line from stdin when it is not a terminal.

Options (any command):
  -c, --config FILE      configuration file (default: $VERONA_CONFIG, else
                         ./verona.yml when it exists, else built-in defaults)
      --domain D         XMPP domain served
      --host H           listen address
      --c2s-port P       client port with STARTTLS (-1 off, 0 any free port)
      --tls-port P       client port with direct TLS (-1 off, 0 any free port)
      --data-dir DIR     data directory
      --log-level L      fatal, error, warn, info, debug, trace or silent
  -h, --help             show this text
  -V, --version          show the version

Exit codes: 0 ok, 1 runtime error, 2 usage or configuration error.
See docs/configuration.md for every option.`;

const COMMANDS = ['start', 'adduser', 'passwd', 'deluser', 'disable', 'enable', 'sessions', 'kick', 'announce', 'check-config', 'cert', 'storage', 'import', 'export', 'backup', 'help'] as const;
type Command = (typeof COMMANDS)[number];

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  domain: { type: 'string' },
  host: { type: 'string' },
  'c2s-port': { type: 'string' },
  'tls-port': { type: 'string' },
  'data-dir': { type: 'string' },
  'log-level': { type: 'string' },
  password: { type: 'string', short: 'p' },
  force: { type: 'boolean' },
  days: { type: 'string' },
  'ejabberd-mam': { type: 'string' },
  nodes: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const;

/** Where a result line goes; replaceable so that main() can be driven in-process. */
export interface Output {
  out(line: string): void;
  err(line: string): void;
}

const stdio: Output = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

export function version(): string {
  // dist/src/cli/main.js -> package root; the same from src/ under a TS runner.
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/**
 * `--tls-port -1`: node's parseArgs takes "-1" for an option, yet -1 is how a
 * port is turned off. A negative number right after an option that takes a
 * value becomes that option's value (`--tls-port=-1`, `-p=-1`). Pure; tested.
 */
export function joinNegativeValues(argv: readonly string[], options: Readonly<Record<string, { type: string; short?: string }>>): string[] {
  const takesValue = new Set<string>();
  for (const [name, o] of Object.entries(options)) {
    if (o.type !== 'string') continue;
    takesValue.add(`--${name}`);
    if (o.short !== undefined) takesValue.add(`-${o.short}`);
  }
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const next = argv[i + 1];
    if (a === '--') {
      out.push(...argv.slice(i));
      break;
    }
    if (takesValue.has(a) && next !== undefined && /^-\d+(\.\d+)?$/.test(next)) {
      out.push(a.startsWith('--') ? `${a}=${next}` : `${a}${next}`);
      i++;
    } else {
      out.push(a);
    }
  }
  return out;
}

function parse(argv: string[]): ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true; strict: true }>> {
  try {
    return parseArgs({ args: joinNegativeValues(argv, OPTIONS), options: OPTIONS, allowPositionals: true, strict: true });
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') {
      const name = /'(-[^']*)'/.exec(e.message)?.[1] ?? '?';
      const known = Object.keys(OPTIONS).map((k) => `--${k}`);
      const s = suggest(name, known);
      throw usageError(`unknown option ${name}${s === undefined ? '' : ` (did you mean ${s}?)`}`);
    }
    if (e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') {
      const name = /'(-[^' ]*)/.exec(e.message)?.[1] ?? 'an option';
      throw usageError(`${name} needs a value`);
    }
    throw usageError(e.message.split('\n')[0]);
  }
}

function configFile(given: string | undefined): string | undefined {
  if (given !== undefined) return given;
  const env = process.env.VERONA_CONFIG;
  if (env !== undefined && env !== '') return env;
  return existsSync('verona.yml') ? 'verona.yml' : undefined;
}

/** Run the CLI; resolves with the exit code (for `start`, once the server has stopped). */
export async function main(argv: string[], io: Output = stdio): Promise<number> {
  let command: string | undefined;
  try {
    const { values, positionals } = parse(argv);
    if (values.version === true) {
      io.out(`verona ${version()}`);
      return 0;
    }
    const first = positionals[0];
    if (values.help === true || first === 'help') {
      io.out(USAGE);
      return 0;
    }
    if (first === undefined) {
      io.err(USAGE);
      return 2;
    }
    if (!(COMMANDS as readonly string[]).includes(first)) {
      const s = suggest(first, COMMANDS);
      throw usageError(`unknown command "${first}"${s === undefined ? '' : ` (did you mean "${s}"?)`}; see verona --help`);
    }
    const cmd = first as Command;
    command = cmd;
    const args = positionals.slice(1);
    if (values.password !== undefined && cmd !== 'adduser' && cmd !== 'passwd') {
      throw usageError('--password only goes with adduser and passwd');
    }
    if (values.days !== undefined && !(cmd === 'cert' && args[0] === 'check')) throw usageError('--days only goes with "cert check"');
    if (values['ejabberd-mam'] !== undefined && cmd !== 'import') throw usageError('--ejabberd-mam only goes with import');
    if (values.nodes !== undefined && cmd !== 'start') throw usageError('--nodes only goes with start');
    if (values.force === true && !(cmd === 'cert' && args[0] === 'generate')) {
      throw usageError('--force only goes with "cert generate"');
    }

    const overrides: CliOverrides = {
      domain: values.domain,
      host: values.host,
      c2sPort: values['c2s-port'],
      tlsPort: values['tls-port'],
      dataDir: values['data-dir'],
      logLevel: values['log-level'],
    };
    const file = configFile(values.config);
    // `cert generate` is how a missing certificate gets made, so it must not
    // insist that the certificate exists.
    const load = (checkFiles = true): Config => loadConfig({ file, overrides, checkFiles });

    switch (cmd) {
      case 'start': {
        expectArgs(cmd, args, 0);
        const nodes = values.nodes === undefined ? 1 : Number(values.nodes);
        if (nodes !== 1 || values.nodes !== undefined) {
          // N cluster nodes on this host (src/cluster/multi.ts); loaded only here.
          const { runNodes, checkNodesConfig } = await import('../cluster/multi.js');
          try {
            checkNodesConfig(load(), nodes);
          } catch (err) {
            throw usageError((err as Error).message);
          }
          // A worker runs the same command line: it is one of the nodes, not another supervisor.
          if (nodes > 1 && process.env.VERONA_NODE_INDEX === undefined) return await runNodes(load(), nodes, io);
        }
        return await start(load(), io, () => load());
      }
      case 'adduser':
      case 'passwd':
      case 'deluser': {
        expectArgs(cmd, args, 1, 'JID (user or user@domain)');
        const config = load();
        const line =
          cmd === 'adduser'
            ? await addUser(config, args[0], values.password)
            : cmd === 'passwd'
              ? await changePassword(config, args[0], values.password)
              : await deleteUser(config, args[0]);
        io.out(line);
        return 0;
      }
      case 'disable':
      case 'enable': {
        expectArgs(cmd, args, 1, 'JID (user or user@domain)');
        io.out(await setDisabled(load(), args[0], cmd === 'disable'));
        return 0;
      }
      case 'sessions': {
        if (args.length > 1) throw usageError(`unexpected argument "${args[1]}" for sessions`);
        for (const l of await listSessions(load(), args[0])) io.out(l);
        return 0;
      }
      case 'kick':
        expectArgs(cmd, args, 1, 'JID (user@domain/resource, or a bare JID for all its sessions)');
        io.out(await kick(load(), args[0]));
        return 0;
      case 'announce':
        expectArgs(cmd, args, 1, 'MESSAGE (quote it)');
        io.out(await announce(load(), args[0]));
        return 0;
      case 'check-config': {
        expectArgs(cmd, args, 0);
        // Every problem at once, in file order, rather than one per run.
        const { config, errors } = checkConfig({ file, overrides });
        if (config === undefined) {
          for (const e of errors) io.err(`verona check-config: config error: ${e.message}`);
          if (errors.length > 1) io.err(`verona check-config: ${errors.length} errors`);
          return 2;
        }
        assertStorageSupported(config);
        checkConfigReport(config, file, io);
        return 0;
      }
      case 'cert': {
        const sub = args[0] ?? 'show';
        if (sub !== 'show' && sub !== 'generate' && sub !== 'check') throw usageError(`unknown cert action "${sub}" (use "show", "check" or "generate")`);
        if (args.length > 2) throw usageError(`unexpected argument "${args[2]}" for cert ${sub}`);
        // Virtual hosts: one domain (DOMAIN argument), else every hosted domain (generate: the primary).
        const cfg = load(sub === 'show');
        const domains = certDomains(cfg, args[1], sub === 'generate');
        if (sub === 'check') {
          const days = values.days === undefined ? 14 : Number(values.days);
          if (!Number.isInteger(days) || days < 0) throw usageError(`--days needs a whole number of days, got "${values.days}"`);
          let ok = true;
          for (const d of domains) {
            const r = checkCertificate(domainConfig(cfg, d), days);
            ok &&= r.ok;
            (r.ok ? io.out : io.err)(domains.length > 1 ? `${d}: ${r.line}` : r.line);
          }
          return ok ? 0 : 1;
        }
        for (const d of domains) {
          if (domains.length > 1) io.out(`== ${d}`);
          const lines = sub === 'show' ? showCertificate(domainConfig(cfg, d)) : await newCertificate(domainConfig(cfg, d), values.force === true);
          for (const l of lines) io.out(l);
        }
        return 0;
      }
      case 'storage':
        await storageCommand(load(false), args, (l) => io.out(l));
        return 0;
      case 'import': {
        expectArgs(cmd, args, 1, 'FILE or DIR (XEP-0227)');
        const { runImport } = await import('./portable.js');
        for (const l of await runImport(load(), args[0], values['ejabberd-mam'])) io.out(l);
        return 0;
      }
      case 'export': {
        expectArgs(cmd, args, 1, 'DIR');
        const { runExport } = await import('./portable.js');
        for (const l of await runExport(load(), args[0])) io.out(l);
        return 0;
      }
      case 'backup': {
        expectArgs(cmd, args, 1, 'DIR');
        const { backup } = await import('./backup.js');
        for (const l of await backup(load(), args[0])) io.out(l);
        return 0;
      }
      case 'help':
        io.out(USAGE);
        return 0;
    }
  } catch (err) {
    const prefix = command === undefined ? 'verona' : `verona ${command}`;
    if (err instanceof CliError) {
      io.err(`${prefix}: ${err.message}`);
      return err.exitCode;
    }
    if (err instanceof ConfigError) {
      io.err(`${prefix}: config error: ${err.message}`);
      return 2;
    }
    const e = err as Error;
    io.err(`${prefix}: ${e.message ?? String(err)}`);
    if (process.env.VERONA_DEBUG) io.err(e.stack ?? '');
    return 1;
  }
}

function expectArgs(cmd: string, args: string[], n: number, what = ''): void {
  if (args.length < n) throw usageError(`missing argument ${what} (see verona --help)`);
  if (args.length > n) throw usageError(`unexpected argument "${args[n]}" for ${cmd}`);
}

function listener(port: number, name: string): string {
  return port < 0 ? `${name} off` : `${name} ${port === 0 ? 'any free port' : port}`;
}

function checkConfigReport(config: Config, file: string | undefined, io: Output): void {
  io.out(`config OK (${file ?? 'built-in defaults'})`);
  io.out(`domain:   ${config.domain}`);
  io.out(`data dir: ${config.dataDir}`);
  io.out(`c2s:      ${config.c2s.host}: ${listener(config.c2s.port, 'STARTTLS')}, ${listener(config.c2s.tlsPort, 'direct TLS')}`);
  io.out(`storage:  ${config.storage.driver === 'sqlite' ? `sqlite ${config.storage.sqlite.path}` : `postgres (pool ${config.storage.postgres.poolSize})`}`);
  const info = inspectCertificate(config);
  if (info === undefined) {
    io.out(`tls:      no certificate yet; a self-signed one for ${config.domain} is generated at first start`);
  } else {
    io.out(`tls:      ${info.path.cert}, valid until ${info.validTo.toISOString()}`);
    if (!info.coversDomain) io.err(`warning: tls.cert: the certificate is not valid for ${config.domain} (${info.altNames.join(', ') || info.subject})`);
    if (info.validTo.getTime() < Date.now()) io.err(`warning: tls.cert: the certificate expired on ${info.validTo.toISOString()}`);
  }
}

/** `verona start`: run until SIGTERM/SIGINT, then shut down cleanly. */
async function start(config: Config, io: Output, reloadConfig: () => Config): Promise<number> {
  let onHup: (() => void) | undefined;
  let certWatcher: { close(): void } | undefined;
  // Loaded only here so that account and cert commands do not pull in the whole server.
  const { startServer } = await import('../core/server.js');
  // A worker of `verona start --nodes N` (src/cluster/multi.ts): its own node name, READY over IPC.
  const worker = process.env.VERONA_NODE_INDEX;
  if (worker !== undefined && process.send !== undefined) {
    const { workerConfig } = await import('../cluster/multi.js');
    config = workerConfig(config, Number(worker), process.env.VERONA_NODE_GENERATION ?? '0');
  }
  let stop: (signal: string) => void = () => undefined;
  let signalled: string | undefined;
  const onSignal = (signal: string): void => {
    if (signalled !== undefined) {
      // A second signal while shutting down: stop waiting.
      io.err(`verona: ${signal} again, exiting now`);
      process.exit(1);
    }
    signalled = signal;
    stop(signal);
  };
  // Installed before start-up so that a signal during it still shuts down cleanly.
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  try {
    const server = await startServer(config);
    // SIGHUP: reload the config file and certificates (docs/operations.md, "Reload").
    onHup = () => {
      void (async () => {
        try {
          const { reloadServer } = await import('../config/reload.js');
          const r = await reloadServer(server, reloadConfig());
          server.log.info({ applied: r.applied, needRestart: r.needRestart, cert: r.certificate }, 'reloaded configuration and certificates');
          if (r.needRestart.length > 0) server.log.warn({ keys: r.needRestart }, 'these changes need a restart to take effect');
        } catch (err) {
          server.log.error({ err: (err as Error).message }, 'reload failed; the running configuration is unchanged');
        }
      })();
    };
    process.on('SIGHUP', onHup);
    // Certificate files rewritten by certbot/acme.sh: reload without a signal (docs/operations.md, "Certificates").
    if (config.certWatch.enabled) {
      const { watchCertificates } = await import('../config/cert-watch.js');
      const { applyCertificate } = await import('../config/reload.js');
      certWatcher = watchCertificates(server, (pair) => applyCertificate(server, pair), config.certWatch.debounceMs);
    }
    if (worker !== undefined && process.send !== undefined) process.send({ verona: 'ready', ports: server.ports });
    else io.out(`READY ${JSON.stringify(server.ports)}`);
    if (signalled === undefined) await new Promise<string>((resolve) => (stop = resolve));
    const timer = setTimeout(() => {
      io.err('verona: shutdown took longer than 10 s, exiting');
      process.exit(1);
    }, 10_000);
    timer.unref();
    await server.close();
    clearTimeout(timer);
    return 0;
  } finally {
    process.removeListener('SIGTERM', onSignal);
    process.removeListener('SIGINT', onSignal);
    if (onHup !== undefined) process.removeListener('SIGHUP', onHup);
    certWatcher?.close();
  }
}
