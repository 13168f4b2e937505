/**
 * SASL on a hosted domain (virtual hosts, src/core/vhosts.ts): mechanisms see the localpart the
 * client typed; these wrappers turn it into the account key of the stream's domain on the way
 * to storage, so romeo on a.example and romeo on b.example are two accounts with two passwords
 * and two sets of FAST tokens.
 */
import type { CredentialLookup } from '../sasl/contract.js';
import type { FastToken, FastTokenStore } from '../storage/fast.js';
import type { HostedDomains } from '../core/vhosts.js';

/** Credentials of the accounts of `domain`. The primary domain gets `lookup` itself. */
export function domainCredentials(lookup: CredentialLookup, hosts: HostedDomains, domain: string): CredentialLookup {
  if (domain === hosts.primary) return lookup;
  return { getAccount: (u) => lookup.getAccount(hosts.keyFor(u, domain)) };
}

/** FAST tokens of the accounts of `domain` (XEP-0484), for the HT mechanisms. */
export function domainFastTokens(tokens: FastTokenStore, hosts: HostedDomains, domain: string): FastTokenStore {
  if (domain === hosts.primary) return tokens;
  const k = (u: string): string => (u.includes('@') ? u : hosts.keyFor(u, domain));
  return {
    list: (u) => tokens.list(k(u)),
    add: (t: FastToken) => tokens.add({ ...t, username: k(t.username) }),
    remove: (u, h) => tokens.remove(k(u), h),
    removeForAgent: (u, a, keep) => tokens.removeForAgent(k(u), a, keep),
    setCount: (u, h, c) => tokens.setCount(k(u), h, c),
  };
}
