/**
 * SASL PLAIN (RFC 4616): message = [authzid] NUL authcid NUL passwd.
 * The password is checked against the stored SCRAM-SHA-256 credential
 * (SHA-1 when that is all an account has) by re-deriving SaltedPassword on
 * the thread pool. c2s offers PLAIN only on encrypted streams.
 */
import type { CredentialLookup, SaslFailure, SaslMechanism, SaslStep } from './contract.js';
import type { ScramCredential } from '../storage/types.js';
import { prepareLocal } from '../jid/jid.js';
import { DEFAULT_ITERATIONS, SALT_BYTES, hmac, verifyPassword, type ScramHash } from './credentials.js';
import { authzidAllowed, decodeUtf8, preparedDomain } from './authzid.js';

export interface PlainServerOptions {
  domain: string;
  secret: Buffer;
  /** Iterations of the decoy derivation for unknown users (match the configured count). */
  fakeIterations?: number;
}

// RFC 4616 asks servers to accept at least 255 octets per field; a 1023-octet
// localpart plus authzid and password fits comfortably.
const MAX_MESSAGE = 4096;

export class PlainServer implements SaslMechanism {
  readonly name = 'PLAIN';
  private state: 'initial' | 'wait' | 'done' = 'initial';
  private readonly domain: string;
  claimedUser: string | undefined;

  constructor(
    private readonly lookup: CredentialLookup,
    private readonly opts: PlainServerOptions,
  ) {
    this.domain = preparedDomain(opts.domain);
  }

  async start(initial: Buffer | undefined): Promise<SaslStep> {
    if (this.state !== 'initial') return this.fail('malformed-request', 'exchange already started');
    if (initial === undefined) {
      this.state = 'wait';
      return { kind: 'challenge', data: Buffer.alloc(0) };
    }
    return this.guard(initial);
  }

  async step(response: Buffer): Promise<SaslStep> {
    if (this.state !== 'wait') return this.fail('malformed-request', 'unexpected response');
    return this.guard(response);
  }

  private async guard(data: Buffer): Promise<SaslStep> {
    try {
      const r = await this.check(data);
      this.state = 'done';
      return r;
    } catch {
      return this.fail('temporary-auth-failure');
    }
  }

  private fail(condition: SaslFailure, text?: string): SaslStep {
    this.state = 'done';
    return text === undefined ? { kind: 'failure', condition } : { kind: 'failure', condition, text };
  }

  private async check(data: Buffer): Promise<SaslStep> {
    if (data.length === 0 || data.length > MAX_MESSAGE) return this.fail('malformed-request');
    const msg = decodeUtf8(data);
    if (msg === undefined) return this.fail('malformed-request', 'invalid UTF-8');
    const parts = msg.split('\0');
    if (parts.length !== 3) return this.fail('malformed-request', 'expected authzid NUL authcid NUL password');
    const [authzid, authcid, password] = parts;
    if (authcid === '' || password === '') return this.fail('malformed-request', 'empty authcid or password');

    let username: string | undefined;
    try {
      username = prepareLocal(authcid);
    } catch {
      username = undefined;
    }
    this.claimedUser = username;
    if (!authzidAllowed(authzid, username ?? authcid, this.domain)) return this.fail('invalid-authzid');

    let cred: ScramCredential | undefined;
    let hash: ScramHash = 'SHA-256';
    let account: string | undefined;
    if (username !== undefined) {
      try {
        const rec = await this.lookup.getAccount(username);
        if (rec !== undefined) {
          account = rec.username;
          cred = rec.scram['SHA-256'];
          if (cred === undefined) {
            cred = rec.scram['SHA-1'];
            hash = 'SHA-1';
          }
        }
      } catch {
        return this.fail('temporary-auth-failure');
      }
    }
    if (cred === undefined || account === undefined) {
      // Spend the same PBKDF2 time as for a real account so that the answer's
      // latency does not tell whether the account exists.
      await verifyPassword(password, this.decoy(username ?? authcid), 'SHA-256');
      return this.fail('not-authorized');
    }
    if (!(await verifyPassword(password, cred, hash))) return this.fail('not-authorized');
    return { kind: 'success', username: account };
  }

  private decoy(user: string): ScramCredential {
    const k = hmac('SHA-256', this.opts.secret, `verona-plain-decoy\0${user}`);
    return { salt: k.subarray(0, SALT_BYTES), iterations: this.opts.fakeIterations ?? DEFAULT_ITERATIONS, storedKey: k, serverKey: k };
  }
}
