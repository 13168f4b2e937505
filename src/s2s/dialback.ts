/**
 * Server Dialback keys (XEP-0220) generated per XEP-0185 §3:
 *   key = HEX( HMAC-SHA256( HEX(SHA256(secret)), receiving + ' ' + originating + ' ' + streamId ) )
 * Only this server checks its own keys (the authoritative side answers
 * <db:verify/>), so any process restart with a random secret merely makes
 * keys of half-finished handshakes invalid; `s2s.dialbackSecret` keeps them
 * valid across processes sharing the domain.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';

export function dialbackKey(secret: string | Buffer, receiving: string, originating: string, streamId: string): string {
  const k = createHash('sha256').update(secret).digest('hex');
  return createHmac('sha256', k).update(`${receiving} ${originating} ${streamId}`).digest('hex');
}

/** Constant-time comparison of a key the peer sent with the one we would make. */
export function dialbackKeyValid(secret: string | Buffer, receiving: string, originating: string, streamId: string, key: string): boolean {
  const want = Buffer.from(dialbackKey(secret, receiving, originating, streamId));
  const got = Buffer.from(key.trim());
  return got.length === want.length && timingSafeEqual(got, want);
}
