/**
 * Where to connect for a remote domain (RFC 6120 §3.2, XEP-0368):
 * `s2s.hosts` first (tests, split horizons; `tls:host:port` for direct TLS), then DNS SRV `_xmpps-server._tcp`
 * (direct TLS) and `_xmpp-server._tcp` (STARTTLS), ordered by priority and
 * weight, then the domain itself on 5269. A SRV record with target "." means
 * the domain offers no such service.
 */
import { promises as dns, type SrvRecord } from 'node:dns';

export interface Target {
  host: string;
  port: number;
  /** Direct TLS (XEP-0368) rather than STARTTLS. */
  directTls: boolean;
}

/** `s2s.hosts` values with this prefix mean direct TLS (XEP-0368) to host:port, the others STARTTLS. */
export const DIRECT_TLS_PREFIX = 'tls:';

/** Parse "host:port" (IPv6 in brackets). */
export function parseHostPort(v: string): { host: string; port: number } {
  const i = v.lastIndexOf(':');
  return { host: v.slice(0, i).replace(/^\[(.*)\]$/, '$1'), port: Number(v.slice(i + 1)) };
}

/** RFC 2782 order: lowest priority first; within one priority, higher weight first (deterministic). Pure. */
export function orderSrv(records: readonly SrvRecord[]): SrvRecord[] {
  return [...records].sort((a, b) => a.priority - b.priority || b.weight - a.weight);
}

/** Targets from the two SRV lookups (either may be empty). Pure. */
export function srvTargets(direct: readonly SrvRecord[], starttls: readonly SrvRecord[]): Target[] | 'refused' {
  const all = [...direct, ...starttls];
  if (all.length > 0 && all.every((r) => r.name === '.' || r.name === '')) return 'refused';
  const out: Target[] = [];
  for (const r of orderSrv(direct)) if (r.name !== '.' && r.name !== '') out.push({ host: r.name, port: r.port, directTls: true });
  for (const r of orderSrv(starttls)) if (r.name !== '.' && r.name !== '') out.push({ host: r.name, port: r.port, directTls: false });
  return out;
}

async function srv(name: string): Promise<SrvRecord[]> {
  try {
    return await dns.resolveSrv(name);
  } catch {
    return [];
  }
}

/** Targets for `domain`, in the order to try them. */
export async function resolveTargets(domain: string, hosts: Readonly<Record<string, string>>): Promise<Target[]> {
  const fixed = hosts[domain];
  if (fixed !== undefined) {
    const directTls = fixed.startsWith(DIRECT_TLS_PREFIX);
    return [{ ...parseHostPort(directTls ? fixed.slice(DIRECT_TLS_PREFIX.length) : fixed), directTls }];
  }
  const [direct, starttls] = await Promise.all([srv(`_xmpps-server._tcp.${domain}`), srv(`_xmpp-server._tcp.${domain}`)]);
  const t = srvTargets(direct, starttls);
  if (t === 'refused') return [];
  if (t.length > 0) return t;
  return [{ host: domain, port: 5269, directTls: false }];
}
