/**
 * Certificates per hosted domain (virtual hosts): every TLS listener (c2s STARTTLS and direct
 * TLS, HTTPS, s2s) answers the SNI server name with that domain's certificate. Each domain's pair
 * is loaded or generated exactly like the primary's (src/config/cert.ts, on a per-domain view of
 * the config), and a SIGHUP reload (src/config/reload.ts) reads them all again.
 */
import tls from 'node:tls';
import type { Config } from '../config/types.js';
import { ensureCertificate, type CertificateFiles } from '../config/cert.js';
import type { HostedDomains } from '../core/vhosts.js';
import { tlsOptions } from './tcp.js';

/** The config as seen by one hosted domain: its name and certificate paths (the primary: the config itself). */
export function domainConfig(config: Config, domain: string): Config {
  const d = config.domains[domain];
  if (domain === config.domain || d === undefined) return config;
  return { ...config, domain, tls: { ...config.tls, cert: d.tls.cert, key: d.tls.key } };
}

export class VhostCertificates {
  private readonly contexts = new Map<string, tls.SecureContext>();
  private readonly pairs = new Map<string, { cert: string; key: string }>();

  constructor(private readonly hosts: HostedDomains) {}

  /** Load (or generate) the certificate of every hosted domain; returns each domain's files. */
  async load(config: Config): Promise<Map<string, CertificateFiles>> {
    const out = new Map<string, CertificateFiles>();
    for (const d of this.hosts.list()) {
      const files = await ensureCertificate(domainConfig(config, d));
      out.set(d, files);
    }
    // Swapped in only once every pair loaded: a bad file leaves the running certificates in place.
    for (const [d, f] of out) {
      this.pairs.set(d, { cert: f.cert, key: f.key });
      this.contexts.set(d, tls.createSecureContext(tlsOptions(f.cert, f.key)));
    }
    return out;
  }

  /** The PEM pair of a hosted domain (s2s uses it as its client certificate). */
  pair(domain: string): { cert: string; key: string } | undefined {
    return this.pairs.get(domain);
  }

  contextFor(serverName: string | undefined): tls.SecureContext | undefined {
    return this.contexts.get(this.hosts.forServerName(serverName));
  }

  /** For tls.createServer / new tls.TLSSocket: the hosted domain's context for the client's SNI. */
  readonly sniCallback = (serverName: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, this.contextFor(serverName));
  };
}
