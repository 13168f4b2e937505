/**
 * A throwaway Prosody (Debian's 0.12) for federation tests: its own config,
 * data directory and log under os.tmpdir(), listening only on one loopback
 * address of the fed range, started as a child process and stopped by PID.
 *
 * There is no DNS here: Prosody resolves through libunbound, which reads a
 * hosts file we write (`unbound = { hoststxt = ... }`), so the peer's domain
 * leads to its loopback address and Prosody connects to port 5269 there.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, readFileSync, rmSync, existsSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import net from 'node:net';

export interface Prosody {
  domain: string;
  address: string;
  c2sPort: number;
  dir: string;
  proc: ChildProcess;
  log(): string;
  register(user: string, password: string): void;
  stop(): Promise<void>;
}

export interface ProsodyOptions {
  domain: string;
  /** Loopback address it listens on (c2s on 5222, s2s on 5269). */
  address: string;
  /** domain -> IP for its resolver (the peers). */
  hosts: Record<string, string>;
  /** Certificate and key for its domain; without, a self-signed one made here. */
  cert?: { cert: string; key: string };
  /** CA file it trusts for peer certificates. */
  cafile?: string;
  /** Extra lines of global config. */
  extra?: string;
  /** Load Prosody's own mod_s2s_bidi (XEP-0288, in Prosody 0.12 itself); off by default. */
  bidi?: boolean;
}

export function prosodyBinary(): string | undefined {
  for (const p of ['/usr/bin/prosody', '/usr/local/bin/prosody']) if (existsSync(p)) return p;
  return undefined;
}

function waitPort(host: string, port: number, timeoutMs: number, log: () => string): Promise<void> {
  const until = Date.now() + timeoutMs;
  return new Promise((resolve, reject) => {
    const attempt = (): void => {
      const s = net.connect({ host, port }, () => {
        s.destroy();
        resolve();
      });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > until) reject(new Error(`Prosody did not listen on ${host}:${port}:\n${log()}`));
        else setTimeout(attempt, 200);
      });
    };
    attempt();
  });
}

export async function startProsody(o: ProsodyOptions): Promise<Prosody> {
  const bin = prosodyBinary();
  if (!bin) throw new Error('prosody is not installed (apt-get install -y prosody)');
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-prosody-'));
  chmodSync(dir, 0o755);
  let cert = o.cert;
  if (!cert) {
    const c = path.join(dir, `${o.domain}.crt`);
    const k = path.join(dir, `${o.domain}.key`);
    execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', k, '-out', c, '-days', '2', '-subj', `/CN=${o.domain}`, '-addext', `subjectAltName=DNS:${o.domain}`], { stdio: 'ignore' });
    cert = { cert: c, key: k };
  }
  writeFileSync(path.join(dir, 'hosts'), Object.entries(o.hosts).map(([d, ip]) => `${ip} ${d}\n`).join(''));
  const logFile = path.join(dir, 'prosody.log');
  const cfg = `
run_as_root = true
daemonize = false
pidfile = "${dir}/prosody.pid"
data_path = "${dir}/data"
plugin_paths = {}
log = { { levels = { min = "debug" }, to = "file", filename = "${logFile}" } }
interfaces = { "${o.address}" }
c2s_ports = { 5222 }
s2s_ports = { 5269 }
c2s_direct_tls_ports = {}
s2s_direct_tls_ports = {}
http_ports = {}
https_ports = {}
modules_enabled = { "roster"; "saslauth"; "tls"; "dialback"; "disco"; "ping"; "carbons"; "mam"; "s2s_auth_certs"${o.bidi ? '; "s2s_bidi"' : ''} }
modules_disabled = { ${o.bidi ? '' : '"s2s_bidi"; '}"admin_shell"; "admin_socket"; "posix" }
authentication = "internal_plain"
storage = "internal"
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
s2s_require_encryption = true
s2s_secure_auth = false
unbound = { hoststxt = "${dir}/hosts" }
ssl = { certificate = "${cert.cert}"; key = "${cert.key}"${o.cafile ? `; cafile = "${o.cafile}"` : ''} }
${o.extra ?? ''}
VirtualHost "${o.domain}"
`;
  const cfgFile = path.join(dir, 'prosody.cfg.lua');
  writeFileSync(cfgFile, cfg);
  execFileSync('mkdir', ['-p', path.join(dir, 'data')]);
  const register = (user: string, password: string): void => {
    execFileSync('prosodyctl', ['--config', cfgFile, 'register', user, o.domain, password], { stdio: 'ignore' });
  };
  const proc = spawn(bin, ['--config', cfgFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  proc.stdout?.on('data', (d: Buffer) => out.push(d.toString()));
  proc.stderr?.on('data', (d: Buffer) => out.push(d.toString()));
  const log = (): string => {
    let f = '';
    try {
      f = readFileSync(logFile, 'utf8');
    } catch {
      // no log yet
    }
    return out.join('') + f;
  };
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  await waitPort(o.address, 5222, 30000, log);
  return {
    domain: o.domain,
    address: o.address,
    c2sPort: 5222,
    dir,
    proc,
    log,
    register,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 10000);
        await exited;
        clearTimeout(t);
      }
      if (!process.env.KEEP_PROSODY) rmSync(dir, { recursive: true, force: true });
    },
  };
}
