/**
 * Checks of the `web` config section that the generic schema cannot express
 * (list entries that must be addresses or origins, ports that must not
 * collide), plus the parsers the HTTP listener uses for the same values. One
 * parser for both, so a value that passes the check is a value that works.
 */
import net from 'node:net';
import type { Config } from '../../config/types.js';
import type { Fail } from '../../config/schema.js';

/** Parse '10.0.0.0/8', '::1', '192.168.1.7' into a BlockList; throws Error naming the bad entry. */
export function addressList(entries: readonly string[]): net.BlockList {
  const list = new net.BlockList();
  for (const raw of entries) addEntry(list, raw);
  return list;
}

function addEntry(list: net.BlockList, raw: string): void {
  const entry = raw.trim();
  const slash = entry.indexOf('/');
  const addr = slash < 0 ? entry : entry.slice(0, slash);
  const family = net.isIP(addr);
  if (family === 0) throw new Error(`expected an IP address or CIDR range (10.0.0.0/8), got ${JSON.stringify(raw)}`);
  const type = family === 4 ? 'ipv4' : 'ipv6';
  if (slash < 0) {
    list.addAddress(addr, type);
    // An IPv4 entry also matches the IPv4-mapped IPv6 form a dual-stack socket reports.
    if (family === 4) list.addAddress(`::ffff:${addr}`, 'ipv6');
    return;
  }
  const bitsText = entry.slice(slash + 1);
  const bits = Number(bitsText);
  const max = family === 4 ? 32 : 128;
  if (!/^\d+$/.test(bitsText) || bits > max) throw new Error(`bad prefix length in ${JSON.stringify(raw)} (0 to ${max})`);
  list.addSubnet(addr, bits, type);
}

/** True when `address` (as normalizeAddress returns it) is in the list. */
export function inList(list: net.BlockList, address: string): boolean {
  const family = net.isIP(address);
  if (family === 0) return false;
  return list.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/**
 * The ASCII serialization of a browser origin ('https://chat.example.org',
 * 'http://localhost:5280'); '*' and 'null' pass through. Throws on anything
 * that is not an origin (a path, a query, a missing scheme).
 */
export function normalizeOrigin(raw: string): string {
  if (raw === '*' || raw === 'null') return raw;
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`expected an origin like "https://chat.example.org", got ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`origin ${JSON.stringify(raw)} must start with http:// or https://`);
  if ((u.pathname !== '/' && u.pathname !== '') || u.search !== '' || u.hash !== '' || u.username !== '') {
    throw new Error(`origin ${JSON.stringify(raw)} must be scheme://host[:port] without a path`);
  }
  return u.origin;
}

/** publicUrl without a trailing slash; throws unless it is an absolute http(s) URL. */
export function normalizePublicUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`expected an absolute URL like "https://chat.example.org", got ${JSON.stringify(raw)}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`must start with http:// or https://, got ${JSON.stringify(raw)}`);
  if (u.search !== '' || u.hash !== '' || u.username !== '') throw new Error(`must not contain a query, fragment or user name: ${JSON.stringify(raw)}`);
  return u.href.replace(/\/+$/, '');
}

/** Called by loadConfig after the schema pass; reports through `fail` with the key path. */
export function checkWebConfig(config: Config, fail: Fail): void {
  const w = config.web;
  if (w.port > 0 && w.port === w.tlsPort) fail(['web', 'tlsPort'], `same port as web.port (${w.port})`);
  for (const key of ['port', 'tlsPort'] as const) {
    const p = w[key];
    if (p > 0 && (p === config.c2s.port || p === config.c2s.tlsPort)) fail(['web', key], `port ${p} is already used by the c2s listeners`);
  }
  if (w.publicUrl !== '') {
    try {
      w.publicUrl = normalizePublicUrl(w.publicUrl);
    } catch (err) {
      fail(['web', 'publicUrl'], (err as Error).message);
    }
  }
  const lists = [
    ['trustedProxies', w.trustedProxies],
    ['allowFrom', w.metrics.allowFrom],
  ] as const;
  for (const [name, list] of lists) {
    list.forEach((entry, i) => {
      try {
        addressList([entry]);
      } catch (err) {
        fail(name === 'allowFrom' ? ['web', 'metrics', 'allowFrom', String(i)] : ['web', name, String(i)], (err as Error).message);
      }
    });
  }
  w.allowedOrigins = w.allowedOrigins.map((o, i) => {
    try {
      return normalizeOrigin(o.trim());
    } catch (err) {
      return fail(['web', 'allowedOrigins', String(i)], (err as Error).message);
    }
  });
}
