/**
 * Client side of SASL PLAIN and SCRAM-SHA-1/-256 (RFC 5802 / RFC 7677) for the load driver.
 * No channel binding (also over TLS: the -PLUS variants are not used), so the GS2 header is always "n,,".
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';

/** 'SCRAM': the strongest SCRAM the server offers (SHA-256, else SHA-1). */
export type Mechanism = 'PLAIN' | 'SCRAM-SHA-1' | 'SCRAM-SHA-256' | 'SCRAM';

/** The mechanism to use given what the server offers (null: none fits). */
export function pickMechanism(wanted: Mechanism, offered: string[]): Exclude<Mechanism, 'SCRAM'> | null {
  if (wanted === 'SCRAM') return offered.includes('SCRAM-SHA-256') ? 'SCRAM-SHA-256' : offered.includes('SCRAM-SHA-1') ? 'SCRAM-SHA-1' : null;
  return offered.includes(wanted) ? wanted : null;
}

export function plainPayload(user: string, password: string): string {
  return Buffer.from(`\0${user}\0${password}`, 'utf8').toString('base64');
}

/** RFC 5802 §5.1: ',' and '=' in a username are escaped. */
function saslName(user: string): string {
  return user.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** SaltedPassword by hash, password, salt and iterations (see final()). */
const saltedCache = new Map<string, Buffer>();

export class ScramClient {
  readonly hash: 'sha1' | 'sha256';
  private readonly firstBare: string;
  private serverSignature: Buffer | null = null;

  constructor(
    mech: 'SCRAM-SHA-1' | 'SCRAM-SHA-256',
    private readonly user: string,
    private readonly password: string,
    private readonly cnonce: string = randomBytes(18).toString('base64'),
  ) {
    this.hash = mech === 'SCRAM-SHA-1' ? 'sha1' : 'sha256';
    this.firstBare = `n=${saslName(user)},r=${this.cnonce}`;
  }

  /** The client-first-message, base64. */
  first(): string {
    return Buffer.from('n,,' + this.firstBare, 'utf8').toString('base64');
  }

  /** Given the server-first-message (base64), the client-final-message (base64). */
  async final(serverFirstB64: string): Promise<string> {
    const sfirst = Buffer.from(serverFirstB64, 'base64').toString('utf8');
    const attrs = new Map<string, string>();
    for (const kv of sfirst.split(',')) {
      const eq = kv.indexOf('=');
      if (eq > 0) attrs.set(kv.slice(0, eq), kv.slice(eq + 1));
    }
    const nonce = attrs.get('r');
    const saltB64 = attrs.get('s');
    const iters = Number(attrs.get('i'));
    if (!nonce || !saltB64 || !Number.isInteger(iters) || !nonce.startsWith(this.cnonce)) {
      throw new Error('SCRAM: bad server-first-message: ' + sfirst);
    }
    // Clients may keep SaltedPassword for a salt and iteration count (RFC 5802 §5.1), and phones
    // do: a reconnecting driver then spends its CPU on the connection, not on PBKDF2, which
    // leaves the machine's cores to the server under test. The first login of a user pays it.
    const ck = `${this.hash}\0${this.password}\0${saltB64}\0${iters}`;
    let salted = saltedCache.get(ck);
    if (salted === undefined) {
      // The thread pool does the PBKDF2, so many logins in flight do not block the event loop.
      salted = await new Promise<Buffer>((resolve, reject) =>
        pbkdf2(this.password, Buffer.from(saltB64, 'base64'), iters, this.hash === 'sha1' ? 20 : 32, this.hash, (e, k) =>
          e ? reject(e) : resolve(k),
        ),
      );
      saltedCache.set(ck, salted);
    }
    const clientKey = createHmac(this.hash, salted).update('Client Key').digest();
    const storedKey = createHash(this.hash).update(clientKey).digest();
    const finalWo = `c=biws,r=${nonce}`;
    const authMsg = `${this.firstBare},${sfirst},${finalWo}`;
    const sig = createHmac(this.hash, storedKey).update(authMsg).digest();
    const proof = Buffer.alloc(clientKey.length);
    for (let i = 0; i < proof.length; i++) proof[i] = (clientKey[i] as number) ^ (sig[i] as number);
    const serverKey = createHmac(this.hash, salted).update('Server Key').digest();
    this.serverSignature = createHmac(this.hash, serverKey).update(authMsg).digest();
    return Buffer.from(`${finalWo},p=${proof.toString('base64')}`, 'utf8').toString('base64');
  }

  /** Check the server's v= in the success payload (base64); an empty payload is accepted. */
  verify(successB64: string): boolean {
    if (!successB64 || this.serverSignature === null) return successB64 === '' ;
    const s = Buffer.from(successB64, 'base64').toString('utf8');
    if (!s.startsWith('v=')) return false;
    const v = Buffer.from(s.slice(2), 'base64');
    return v.length === this.serverSignature.length && timingSafeEqual(v, this.serverSignature);
  }

  get username(): string {
    return this.user;
  }
}
