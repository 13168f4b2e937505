/**
 * Virtual hosts: the domains this server serves accounts for (`domain:` plus
 * `domains:` in the config, docs/virtual-hosts.md).
 *
 * Accounts and everything stored per user are keyed by one string, the
 * account key. For the primary domain (`config.domain`) it is the bare
 * username, exactly as before virtual hosts existed, so existing data needs
 * no migration; for every other hosted domain it is `user@domain`. A
 * localpart never contains '@' (RFC 7622 §3.3.1), so the two forms cannot
 * collide and a key always tells its domain. Storage, the session registry
 * and modules keep one string key per account and need no domain column.
 */
import { JID } from '../jid/jid.js';

/**
 * The account key of `local` on `domain` (pure; table-tested). Given a key already (it contains
 * '@', which no localpart does), it returns it unchanged: SASL mechanisms report the username of
 * the account record they found, which is the key.
 */
export function accountKey(primary: string, local: string, domain: string): string {
  if (local.includes('@')) return local;
  return domain === primary ? local : `${local}@${domain}`;
}

/** The localpart and domain an account key stands for (pure; table-tested). */
export function splitAccountKey(primary: string, key: string): { local: string; domain: string } {
  const at = key.indexOf('@');
  return at < 0 ? { local: key, domain: primary } : { local: key.slice(0, at), domain: key.slice(at + 1) };
}

/**
 * Which hosted domain a TLS server name (SNI) selects (pure; table-tested): the domain itself,
 * else the hosted domain it is a subdomain of (conference.b.example gets b.example's certificate,
 * whose generated form covers *.b.example), else the primary domain (no SNI, an IP address, an
 * unknown name: the client gets the primary's certificate and decides).
 */
export function domainForServerName(primary: string, hosted: ReadonlySet<string>, serverName: string | undefined): string {
  const name = (serverName ?? '').toLowerCase().replace(/\.$/, '');
  if (hosted.has(name)) return name;
  let best: string | undefined;
  for (const d of hosted) if (name.endsWith(`.${d}`) && (best === undefined || d.length > best.length)) best = d;
  return best ?? primary;
}

export class HostedDomains {
  private readonly set: ReadonlySet<string>;

  constructor(
    readonly primary: string,
    others: Iterable<string> = [],
  ) {
    this.set = new Set([primary, ...others]);
  }

  /** Every hosted domain, the primary first. */
  list(): string[] {
    return [...this.set];
  }

  get size(): number {
    return this.set.size;
  }

  /** Is `domain` one of ours (accounts live there)? */
  has(domain: string): boolean {
    return this.set.has(domain);
  }

  /** A JID of an account here (non-empty localpart on a hosted domain). */
  isAccount(jid: JID): boolean {
    return jid.local !== '' && this.set.has(jid.domain);
  }

  /** The account key of a JID on a hosted domain (see the file comment). */
  keyOf(jid: JID): string {
    return accountKey(this.primary, jid.local, jid.domain);
  }

  keyFor(local: string, domain: string): string {
    return accountKey(this.primary, local, domain);
  }

  /** The bare JID (string) of an account key. */
  bareOf(key: string): string {
    return key.includes('@') ? key : `${key}@${this.primary}`;
  }

  /** The bare JID of an account key. */
  jidOf(key: string): JID {
    const { local, domain } = splitAccountKey(this.primary, key);
    return new JID(local, domain);
  }

  /** The domain an account key belongs to. */
  domainOf(key: string): string {
    return splitAccountKey(this.primary, key).domain;
  }

  /** The localpart of an account key. */
  localOf(key: string): string {
    return splitAccountKey(this.primary, key).local;
  }

  /** The hosted domain whose certificate answers a TLS server name. */
  forServerName(serverName: string | undefined): string {
    return domainForServerName(this.primary, this.set, serverName);
  }
}
