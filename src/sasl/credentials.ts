/**
 * SCRAM credential derivation (RFC 5802 §3) and password checks against the
 * stored keys. PBKDF2 runs on libuv's thread pool (crypto.pbkdf2), never on
 * the event loop: one Hi() at 4096+ iterations costs milliseconds.
 */
import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import type { AccountRecord, ScramCredential } from '../storage/types.js';
import { saslprep } from './saslprep.js';

export type ScramHash = 'SHA-1' | 'SHA-256';

export const SALT_BYTES = 16;
/** RFC 7677 §4 asks for at least 4096. */
export const DEFAULT_ITERATIONS = 4096;
const MAX_ITERATIONS = 10_000_000; // bounds the work a bad config or record can ask for

/** Node's digest name and output length for a SCRAM hash. */
export function hashInfo(hash: ScramHash): { name: 'sha1' | 'sha256'; length: number } {
  return hash === 'SHA-1' ? { name: 'sha1', length: 20 } : { name: 'sha256', length: 32 };
}

export function hmac(hash: ScramHash, key: Buffer, data: Buffer | string): Buffer {
  return createHmac(hashInfo(hash).name, key).update(data).digest();
}

export function digest(hash: ScramHash, data: Buffer): Buffer {
  return createHash(hashInfo(hash).name).update(data).digest();
}

/** Hi() of RFC 5802 §2.2, off the event loop. */
export function saltedPassword(prepared: string, salt: Buffer, iterations: number, hash: ScramHash): Promise<Buffer> {
  if (!Number.isInteger(iterations) || iterations < 1 || iterations > MAX_ITERATIONS) {
    return Promise.reject(new RangeError(`bad iteration count ${iterations}`));
  }
  const { name, length } = hashInfo(hash);
  return new Promise((resolve, reject) => {
    pbkdf2(Buffer.from(prepared, 'utf8'), salt, iterations, length, name, (err, key) => (err ? reject(err) : resolve(key)));
  });
}

/** StoredKey and ServerKey from a SaltedPassword (RFC 5802 §3). */
export function keysFromSalted(salted: Buffer, hash: ScramHash): { storedKey: Buffer; serverKey: Buffer } {
  const clientKey = hmac(hash, salted, 'Client Key');
  return { storedKey: digest(hash, clientKey), serverKey: hmac(hash, salted, 'Server Key') };
}

/** Derive one credential. Throws SaslPrepError for a password SASLprep refuses. */
export async function deriveScram(
  password: string,
  hash: ScramHash,
  iterations: number,
  salt?: Buffer,
): Promise<ScramCredential> {
  const prepared = saslprep(password);
  const s = salt ?? randomBytes(SALT_BYTES);
  const salted = await saltedPassword(prepared, s, iterations, hash);
  return { salt: Buffer.from(s), iterations, ...keysFromSalted(salted, hash) };
}

/** Both credentials an account stores, each with its own random salt. */
export async function deriveAllScram(password: string, iterations: number): Promise<AccountRecord['scram']> {
  const [sha1, sha256] = await Promise.all([
    deriveScram(password, 'SHA-1', iterations),
    deriveScram(password, 'SHA-256', iterations),
  ]);
  return { 'SHA-1': sha1, 'SHA-256': sha256 };
}

/** Constant-time equality that is also safe for different lengths. */
export function safeEqual(a: Buffer, b: Buffer): boolean {
  if (a.length !== b.length) return false;
  return timingSafeEqual(a, b);
}

/**
 * Check a plaintext password (PLAIN) against a stored credential. Returns
 * false, never throws, for passwords SASLprep refuses or unusable records.
 */
export async function verifyPassword(password: string, cred: ScramCredential, hash: ScramHash): Promise<boolean> {
  let prepared: string;
  try {
    prepared = saslprep(password);
  } catch {
    return false;
  }
  try {
    const salted = await saltedPassword(prepared, cred.salt, cred.iterations, hash);
    return safeEqual(keysFromSalted(salted, hash).storedKey, cred.storedKey);
  } catch {
    return false;
  }
}
