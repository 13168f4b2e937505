/**
 * SIGHUP: reload the configuration file and the certificates without dropping
 * anyone. What can change safely is applied in place (code reads these values
 * at each use: per connection, per sweep); everything else is reported as
 * needing a restart and keeps its running value.
 */
import tls from 'node:tls';
import type { Config } from './types.js';
import { ensureCertificate } from './cert.js';
import { tlsOptions } from '../net/tcp.js';
import type { Logger } from '../core/logger.js';

/** Keys applied at once. Limits apply to connections made from now on; pings and keepalives at the next sweep. */
export const RELOADABLE: ReadonlySet<string> = new Set([
  'log.level',
  'c2s.maxStanzaSize',
  'c2s.maxStanzaSizePreAuth',
  'c2s.maxDepth',
  'c2s.maxAttributes',
  'c2s.authTimeout',
  'c2s.authTimeoutPreTls',
  'c2s.pingInterval',
  'c2s.pingTimeout',
  'c2s.keepaliveInterval',
  'tls.cert',
  'tls.key',
  'tls.generate',
]);

function flatten(v: unknown, prefix: string, out: Map<string, string>): void {
  if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
    for (const [k, c] of Object.entries(v)) flatten(c, prefix === '' ? k : `${prefix}.${k}`, out);
  } else {
    out.set(prefix, JSON.stringify(v));
  }
}

/** Which changed keys apply now and which need a restart (pure; table-tested). */
export function planReload(running: Config, next: Config): { apply: string[]; restart: string[] } {
  const a = new Map<string, string>();
  const b = new Map<string, string>();
  flatten(running, '', a);
  flatten(next, '', b);
  const apply: string[] = [];
  const restart: string[] = [];
  for (const key of new Set([...a.keys(), ...b.keys()])) {
    if (a.get(key) === b.get(key)) continue;
    // moduleOptions.x.y and list items: the first two segments name the setting.
    const reloadable = RELOADABLE.has(key);
    (reloadable ? apply : restart).push(key);
  }
  return { apply: apply.sort(), restart: [...new Set(restart.map((k) => k.split('.').slice(0, 2).join('.')))].sort() };
}

function setPath(obj: Record<string, unknown>, dotted: string, value: unknown): void {
  const parts = dotted.split('.');
  let node = obj;
  for (const p of parts.slice(0, -1)) node = node[p] as Record<string, unknown>;
  node[parts[parts.length - 1]] = value;
}

function getPath(obj: unknown, dotted: string): unknown {
  return dotted.split('.').reduce<unknown>((n, p) => (n as Record<string, unknown> | undefined)?.[p], obj);
}

/** The parts of the server a reload touches. */
export interface Reloadable {
  config: Config;
  log: Logger;
  tlsCredentials: { cert: string; key: string } | undefined;
  secureContext: tls.SecureContext | undefined;
  /** Listeners that terminate TLS themselves (direct TLS, HTTPS): they get the new context for new connections. */
  readonly tlsServers: tls.Server[];
  /** Virtual hosts: every hosted domain's certificate, read again too (src/net/vhost-tls.ts). */
  readonly vhostCerts?: { load(config: Config): Promise<Map<string, { path: { cert: string }; warnings: string[] }>> };
  readonly hosts?: { readonly size: number };
}

export interface ReloadResult {
  applied: string[];
  needRestart: string[];
  certificate: string;
}

/**
 * Install a certificate pair for new connections (STARTTLS reads server.secureContext,
 * direct TLS and HTTPS listeners get the new context). Throws, changing nothing, when
 * Node's TLS cannot use the pair.
 */
export function applyCertificate(server: Reloadable, cert: { cert: string; key: string }): void {
  const opts = tlsOptions(cert.cert, cert.key);
  const ctx = tls.createSecureContext(opts);
  server.tlsCredentials = { cert: cert.cert, key: cert.key };
  server.secureContext = ctx;
  for (const srv of server.tlsServers) srv.setSecureContext(opts);
}

/** Apply `next` where safe and reload the certificate files. Sessions are not touched. */
export async function reloadServer(server: Reloadable, next: Config): Promise<ReloadResult> {
  const { apply, restart } = planReload(server.config, next);
  for (const key of apply) setPath(server.config as unknown as Record<string, unknown>, key, getPath(next, key));
  if (apply.includes('log.level')) server.log.level = server.config.log.level;
  // Certificates are read again even when their paths did not change: renewal rewrites the files.
  const cert = await ensureCertificate(server.config);
  applyCertificate(server, cert);
  for (const w of cert.warnings ?? []) server.log.warn({ cert: cert.path.cert }, w);
  if (server.vhostCerts && (server.hosts?.size ?? 1) > 1) {
    for (const [d, f] of await server.vhostCerts.load(server.config)) for (const w of f.warnings) server.log.warn({ domain: d, cert: f.path.cert }, w);
  }
  return { applied: apply, needRestart: restart, certificate: cert.path.cert };
}
