/**
 * Federation test fixtures: a test CA with leaf certificates for test
 * domains (made with the `openssl` command line, listed in .ci/apt.d/fed),
 * and Verona servers serving one domain each with s2s on a fixed loopback
 * address from the fed range (127.0.0.20-39), pointed at each other with
 * `s2s.hosts` (there is no DNS).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startVerona, type Verona } from './server.js';

export interface TestCA {
  dir: string;
  ca: string;
  /** Certificate and key files for a domain. */
  leaf(domain: string): { cert: string; key: string };
  cleanup(): void;
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A throwaway CA; leaf certificates name their domain as DNS SAN and allow server and client use (XEP-0178 needs both). */
export function makeCA(): TestCA {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-s2s-ca-'));
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=Verona s2s test CA'], dir);
  const made = new Map<string, { cert: string; key: string }>();
  return {
    dir,
    ca: path.join(dir, 'ca.pem'),
    leaf(domain: string) {
      const have = made.get(domain);
      if (have) return have;
      const ext = path.join(dir, `${domain}.ext`);
      writeFileSync(ext, `subjectAltName=DNS:${domain}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
      openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${domain}.key`, '-out', `${domain}.csr`, '-subj', `/CN=${domain}`], dir);
      openssl(['x509', '-req', '-in', `${domain}.csr`, '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${domain}.pem`, '-days', '2', '-extfile', ext], dir);
      const r = { cert: path.join(dir, `${domain}.pem`), key: path.join(dir, `${domain}.key`) };
      made.set(domain, r);
      return r;
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

export interface FedServer extends Verona {
  /** The XMPP domain it serves. */
  xmppDomain: string;
  /** Its s2s address (host:port). */
  s2sAddress: string;
}

export interface FedServerOptions {
  domain: string;
  /** Loopback address for its s2s listener (from 127.0.0.20-39). */
  address: string;
  /** domain -> host:port of the peers. */
  peers: Record<string, string>;
  /** Certificate from the test CA (SASL EXTERNAL); without: a self-signed one (dialback). */
  ca?: TestCA;
  users?: Array<[string, string]>;
  s2s?: Record<string, unknown>;
  config?: Record<string, unknown>;
}

export async function startFedServer(o: FedServerOptions): Promise<FedServer> {
  const leaf = o.ca?.leaf(o.domain);
  const v = await startVerona({
    users: o.users,
    config: {
      domain: o.domain,
      log: { level: process.env.VERONA_TEST_LOG ?? 'warn' },
      ...(leaf ? { tls: { cert: leaf.cert, key: leaf.key, generate: false } } : {}),
      s2s: { host: o.address, port: 5269, tlsPort: -1, hosts: o.peers, ca: o.ca ? [o.ca.ca] : [], ...o.s2s },
      ...o.config,
    },
  });
  return Object.assign(v, { xmppDomain: o.domain, s2sAddress: `${o.address}:5269`, domain: o.domain });
}

/** Read one Prometheus counter/gauge sum from the server's /metrics (all label sets, or those matching `labels`). */
export async function metric(v: Verona, name: string, labels: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`http://127.0.0.1:${v.ports.http}/metrics`);
  const text = await res.text();
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z0-9_]+)(\{[^}]*\})?\s+([0-9.e+-]+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const l = m[2] ?? '';
    if (Object.entries(labels).every(([k, val]) => l.includes(`${k}="${val}"`))) sum += Number(m[3]);
  }
  return sum;
}
