/**
 * Server side of the HT-* SASL mechanisms (draft-schmaus-kitten-sasl-ht, as
 * profiled by XEP-0484 FAST): HT-SHA-256-NONE, and with TLS channel binding
 * HT-SHA-256-ENDP (tls-server-end-point) and HT-SHA-256-EXPR (tls-exporter).
 *
 *   client: authcid NUL HMAC-SHA-256(token, "Initiator" || cb-data)
 *   server: HMAC-SHA-256(token, "Responder" || cb-data)
 *
 * No PBKDF2 anywhere: one HMAC per candidate token of the account. The
 * stored key is SHA-256(token) (see src/storage/fast.ts for why that is the
 * same HMAC key).
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { CredentialLookup, SaslMechanism, SaslStep } from './contract.js';
import type { FastToken, FastTokenStore } from '../storage/fast.js';
import type { AccountRecord } from '../storage/types.js';
import { prepareLocal } from '../jid/jid.js';

export const HT_MECHANISMS = ['HT-SHA-256-EXPR', 'HT-SHA-256-ENDP', 'HT-SHA-256-NONE'] as const;
export type HtMechanism = (typeof HT_MECHANISMS)[number];

export function htChannelBinding(name: HtMechanism): 'tls-exporter' | 'tls-server-end-point' | undefined {
  return name === 'HT-SHA-256-EXPR' ? 'tls-exporter' : name === 'HT-SHA-256-ENDP' ? 'tls-server-end-point' : undefined;
}

/** SHA-256 of a token's UTF-8 bytes: what is stored, and the HMAC key. */
export function tokenKey(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

/** A digest of the account's current credentials; tokens issued under other credentials are void. */
export function credStamp(acct: AccountRecord): string {
  return createHash('sha256').update(acct.scram['SHA-256'].storedKey).update(acct.scram['SHA-1'].storedKey).digest('hex').slice(0, 32);
}

export interface HtOptions {
  tokens: FastTokenStore;
  lookup: CredentialLookup;
  /** The SASL2 user-agent id of this attempt (tokens are bound to it). */
  agent: string;
  /** Channel-binding data for -ENDP/-EXPR (undefined: the mechanism cannot be used). */
  cbData: Buffer | undefined;
  /** XEP-0484 `count` from <fast count=…/> (replay protection), when the client sent one. */
  count: number | undefined;
}

export class HtServer implements SaslMechanism {
  /** The token that matched, once authentication succeeded. */
  matched: FastToken | undefined;
  private user: string | undefined;
  private done = false;

  constructor(
    readonly name: HtMechanism,
    private readonly o: HtOptions,
  ) {}

  get claimedUser(): string | undefined {
    return this.user;
  }

  async start(initial: Buffer | undefined): Promise<SaslStep> {
    if (this.done) return { kind: 'failure', condition: 'malformed-request' };
    this.done = true;
    if (initial === undefined || initial.length === 0) return { kind: 'failure', condition: 'malformed-request', text: 'HT needs an initial response' };
    const nul = initial.indexOf(0);
    if (nul <= 0 || initial.length - nul - 1 !== 32) return { kind: 'failure', condition: 'malformed-request' };
    if (htChannelBinding(this.name) !== undefined && this.o.cbData === undefined) {
      return { kind: 'failure', condition: 'mechanism-too-weak', text: 'No channel binding on this connection' };
    }
    let username: string;
    try {
      username = prepareLocal(initial.subarray(0, nul).toString('utf8'));
    } catch {
      return { kind: 'failure', condition: 'not-authorized' };
    }
    this.user = username;
    const proof = initial.subarray(nul + 1);
    const cb = this.o.cbData ?? Buffer.alloc(0);
    const now = Date.now();
    let acct: AccountRecord | undefined;
    let candidates: FastToken[];
    try {
      [acct, candidates] = await Promise.all([this.o.lookup.getAccount(username), this.o.tokens.list(username)]);
    } catch {
      return { kind: 'failure', condition: 'temporary-auth-failure' };
    }
    if (!acct) return { kind: 'failure', condition: 'not-authorized' };
    const stamp = credStamp(acct);
    for (const t of candidates) {
      const want = createHmac('sha256', t.keyHash).update('Initiator').update(cb).digest();
      if (!timingSafeEqual(want, proof)) continue;
      // Bound to mechanism and user agent (XEP-0484 §3.3); void after a password change or expiry.
      if (t.mechanism !== this.name || t.agent !== this.o.agent || t.credStamp !== stamp || t.expiresAt <= now) {
        return { kind: 'failure', condition: 'credentials-expired' };
      }
      if (this.o.count !== undefined) {
        if (this.o.count <= t.count) return { kind: 'failure', condition: 'not-authorized', text: 'count replayed' };
        await this.o.tokens.setCount(username, t.keyHash, this.o.count);
      }
      this.matched = t;
      return { kind: 'success', username, data: createHmac('sha256', t.keyHash).update('Responder').update(cb).digest() };
    }
    return { kind: 'failure', condition: 'not-authorized' };
  }

  async step(): Promise<SaslStep> {
    return { kind: 'failure', condition: 'malformed-request' };
  }
}
