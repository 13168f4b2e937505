/**
 * Server side of SCRAM-SHA-1 (RFC 5802) and SCRAM-SHA-256 (RFC 7677),
 * without channel binding (the -PLUS variants come later).
 *
 * The exchange costs the server only HMACs: the stored StoredKey/ServerKey
 * are all it needs. Unknown users get a fake exchange with a salt derived
 * from the server secret, so the server-first-message looks the same for
 * an existing and a missing account, and both end in not-authorized.
 */
import { randomBytes } from 'node:crypto';
import type { CredentialLookup, SaslFailure, SaslMechanism, SaslStep } from './contract.js';
import type { ScramCredential } from '../storage/types.js';
import { prepareLocal } from '../jid/jid.js';
import { DEFAULT_ITERATIONS, SALT_BYTES, digest, hashInfo, hmac, safeEqual, type ScramHash } from './credentials.js';
import { authzidAllowed, decodeUtf8, preparedDomain } from './authzid.js';

export interface ScramServerOptions {
  /** The served domain, for authzid checks. */
  domain: string;
  /** Server secret; keys the fake salts of unknown users. */
  secret: Buffer;
  /** Iteration count shown for unknown users; set it to the configured count. */
  fakeIterations?: number;
  /** Server nonce generator (tests inject the RFC vectors' nonces). */
  nonce?: () => string;
  /** True once -PLUS is offered: then a 'y' flag signals a downgrade (RFC 5802 §6). */
  channelBindingOffered?: boolean;
  /** For the -PLUS variants: channel-binding data of the connection by type (XEP-0440). */
  channelBinding?: (type: 'tls-exporter' | 'tls-server-end-point') => Buffer | undefined;
}

// Large enough for a 1023-octet localpart escaped three times over, an
// authzid and a nonce; anything bigger is not a SCRAM message.
const MAX_MESSAGE = 8192;
const RE_BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
// printable = %x21-2B / %x2D-7E (RFC 5802 §7)
const RE_NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
// attr-val for extensions: ALPHA "=" value
const RE_EXTENSION = /^[A-Za-z]=/;

/** Decode a saslname (RFC 5802 §5.1): '=2C' -> ',', '=3D' -> '='; undefined if malformed. */
export function decodeSaslName(s: string): string | undefined {
  if (s.length === 0 || s.includes(',')) return undefined;
  let bad = false;
  const out = s.replace(/=(..)?/gs, (_m, code: string | undefined) => {
    const c = code?.toUpperCase();
    if (c === '2C') return ',';
    if (c === '3D') return '=';
    bad = true;
    return '';
  });
  return bad ? undefined : out;
}

/** Encode a saslname (for clients and tests). */
export function encodeSaslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

function strictBase64(s: string): Buffer | undefined {
  return RE_BASE64.test(s) ? Buffer.from(s, 'base64') : undefined;
}

type State = 'initial' | 'wait-first' | 'wait-final' | 'done';

interface Pending {
  gs2Header: string;
  /** Channel-binding data the client bound to (-PLUS), empty otherwise. */
  cbData: Buffer;
  clientFirstBare: string;
  serverFirst: string;
  nonce: string;
  username: string; // prepared (or the raw name for the fake exchange)
  cred: ScramCredential;
  fake: boolean;
}

export class ScramServer implements SaslMechanism {
  readonly name: string;
  private state: State = 'initial';
  private pending: Pending | undefined;
  private readonly domain: string;

  get claimedUser(): string | undefined {
    return this.pending?.fake ? undefined : this.pending?.username;
  }

  constructor(
    private readonly hash: ScramHash,
    private readonly lookup: CredentialLookup,
    private readonly opts: ScramServerOptions,
    private readonly plus = false,
  ) {
    this.name = `SCRAM-${hash}${plus ? '-PLUS' : ''}`;
    this.domain = preparedDomain(opts.domain);
  }

  async start(initial: Buffer | undefined): Promise<SaslStep> {
    if (this.state !== 'initial') return this.fail('malformed-request', 'exchange already started');
    if (initial === undefined) {
      // No initial response: ask for the client-first-message with an empty challenge.
      this.state = 'wait-first';
      return { kind: 'challenge', data: Buffer.alloc(0) };
    }
    return this.guard(() => this.clientFirst(initial));
  }

  async step(response: Buffer): Promise<SaslStep> {
    if (this.state === 'wait-first') return this.guard(() => this.clientFirst(response));
    if (this.state === 'wait-final') return this.guard(() => this.clientFinal(response));
    return this.fail('malformed-request', 'unexpected response');
  }

  /** Nothing may throw out of a mechanism: an unexpected error becomes a failure. */
  private async guard(f: () => Promise<SaslStep>): Promise<SaslStep> {
    try {
      const r = await f();
      if (r.kind !== 'challenge') this.done();
      return r;
    } catch {
      return this.fail('temporary-auth-failure');
    }
  }

  private done(): void {
    this.state = 'done';
    this.pending = undefined;
  }

  private fail(condition: SaslFailure, text?: string): SaslStep {
    this.done();
    return text === undefined ? { kind: 'failure', condition } : { kind: 'failure', condition, text };
  }

  private async clientFirst(data: Buffer): Promise<SaslStep> {
    if (data.length === 0 || data.length > MAX_MESSAGE) return this.fail('malformed-request');
    const msg = decodeUtf8(data);
    if (msg === undefined) return this.fail('malformed-request', 'invalid UTF-8');

    // gs2-header = gs2-cbind-flag "," [ authzid ] ","
    const c1 = msg.indexOf(',');
    const c2 = c1 === -1 ? -1 : msg.indexOf(',', c1 + 1);
    if (c2 === -1) return this.fail('malformed-request', 'bad GS2 header');
    const flag = msg.slice(0, c1);
    let cbData: Buffer = Buffer.alloc(0);
    if (flag.startsWith('p=')) {
      // RFC 5802 §6: 'p' only with a -PLUS mechanism, for a type this connection has.
      if (!this.plus) return this.fail('malformed-request', 'channel binding needs a -PLUS mechanism');
      const type = flag.slice(2);
      const data = type === 'tls-exporter' || type === 'tls-server-end-point' ? this.opts.channelBinding?.(type) : undefined;
      if (data === undefined) return this.fail('not-authorized', `unsupported channel binding type ${type}`);
      cbData = data;
    } else if (this.plus) {
      return this.fail('malformed-request', 'a -PLUS mechanism needs channel binding');
    } else if (flag !== 'n' && flag !== 'y') return this.fail('malformed-request', 'bad GS2 header');
    if (flag === 'y' && this.opts.channelBindingOffered === true) {
      return this.fail('not-authorized', 'channel binding downgrade');
    }
    const authzField = msg.slice(c1 + 1, c2);
    let authzid = '';
    if (authzField !== '') {
      if (!authzField.startsWith('a=')) return this.fail('malformed-request', 'bad authzid');
      const a = decodeSaslName(authzField.slice(2));
      if (a === undefined) return this.fail('malformed-request', 'bad authzid');
      authzid = a;
    }
    const gs2Header = msg.slice(0, c2 + 1);
    const clientFirstBare = msg.slice(c2 + 1);

    // client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
    const attrs = clientFirstBare.split(',');
    if (attrs[0]?.startsWith('m=')) return this.fail('malformed-request', 'unsupported mandatory extension');
    if (attrs.length < 2 || !attrs[0].startsWith('n=') || !attrs[1].startsWith('r=')) {
      return this.fail('malformed-request', 'bad client-first-message');
    }
    if (!attrs.slice(2).every((a) => RE_EXTENSION.test(a))) return this.fail('malformed-request', 'bad extension');
    const rawUser = decodeSaslName(attrs[0].slice(2));
    if (rawUser === undefined) return this.fail('malformed-request', 'bad username');
    const clientNonce = attrs[1].slice(2);
    if (!RE_NONCE.test(clientNonce)) return this.fail('malformed-request', 'bad nonce');

    let username: string | undefined;
    try {
      username = prepareLocal(rawUser);
    } catch {
      username = undefined; // cannot exist: same path as an unknown user
    }
    if (!authzidAllowed(authzid, username ?? rawUser, this.domain)) return this.fail('invalid-authzid');

    let cred: ScramCredential | undefined;
    if (username !== undefined) {
      try {
        cred = (await this.lookup.getAccount(username))?.scram[this.hash];
      } catch {
        return this.fail('temporary-auth-failure');
      }
    }
    const fake = cred === undefined;
    if (cred === undefined) cred = this.fakeCredential(username ?? rawUser);

    const nonce = clientNonce + (this.opts.nonce?.() ?? randomBytes(24).toString('base64'));
    const serverFirst = `r=${nonce},s=${cred.salt.toString('base64')},i=${cred.iterations}`;
    this.pending = { gs2Header, cbData, clientFirstBare, serverFirst, nonce, username: username ?? rawUser, cred, fake };
    this.state = 'wait-final';
    return { kind: 'challenge', data: Buffer.from(serverFirst, 'utf8') };
  }

  /**
   * Deterministic per user, so repeated probes see a stable salt just as for
   * a real account; the keys are never derivable from any password.
   */
  private fakeCredential(user: string): ScramCredential {
    const key = (label: string): Buffer => hmac('SHA-256', this.opts.secret, `verona-scram-fake\0${label}\0${this.hash}\0${user}`);
    const len = hashInfo(this.hash).length;
    return {
      salt: key('salt').subarray(0, SALT_BYTES),
      iterations: this.opts.fakeIterations ?? DEFAULT_ITERATIONS,
      storedKey: key('stored').subarray(0, len),
      serverKey: key('server').subarray(0, len),
    };
  }

  private async clientFinal(data: Buffer): Promise<SaslStep> {
    const p = this.pending;
    if (p === undefined) return this.fail('malformed-request');
    if (data.length === 0 || data.length > MAX_MESSAGE) return this.fail('malformed-request');
    const msg = decodeUtf8(data);
    if (msg === undefined) return this.fail('malformed-request', 'invalid UTF-8');

    // client-final-message = channel-binding "," nonce ["," extensions] "," proof
    const pi = msg.lastIndexOf(',p=');
    if (pi === -1) return this.fail('malformed-request', 'missing proof');
    const withoutProof = msg.slice(0, pi);
    const proof = strictBase64(msg.slice(pi + 3));
    const attrs = withoutProof.split(',');
    if (attrs.length < 2 || !attrs[0].startsWith('c=') || !attrs[1].startsWith('r=')) {
      return this.fail('malformed-request', 'bad client-final-message');
    }
    if (!attrs.slice(2).every((a) => RE_EXTENSION.test(a))) return this.fail('malformed-request', 'bad extension');
    const cbind = strictBase64(attrs[0].slice(2));
    if (cbind === undefined || !cbind.equals(Buffer.concat([Buffer.from(p.gs2Header, 'utf8'), p.cbData]))) {
      // With -PLUS this is the check that the client saw the same TLS channel (no man in the middle).
      return this.fail(p.cbData.length > 0 ? 'not-authorized' : 'malformed-request', 'channel binding does not match');
    }
    if (attrs[1].slice(2) !== p.nonce) return this.fail('malformed-request', 'nonce mismatch');
    const len = hashInfo(this.hash).length;
    if (proof === undefined || proof.length !== len) return this.fail('malformed-request', 'bad proof');

    const authMessage = `${p.clientFirstBare},${p.serverFirst},${withoutProof}`;
    const clientSignature = hmac(this.hash, p.cred.storedKey, authMessage);
    const clientKey = Buffer.alloc(len);
    for (let i = 0; i < len; i++) clientKey[i] = proof[i] ^ clientSignature[i];
    // Compare before looking at `fake` so both paths do the same work.
    const match = safeEqual(digest(this.hash, clientKey), p.cred.storedKey);
    if (!match || p.fake) return this.fail('not-authorized');
    const serverSignature = hmac(this.hash, p.cred.serverKey, authMessage);
    return { kind: 'success', username: p.username, data: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8') };
  }
}
