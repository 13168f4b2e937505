/**
 * XEP-0484 FAST tokens. The token itself is never stored, only SHA-256 of
 * it. Tokens are longer than the HMAC block size (64 bytes), so by RFC 2104
 * the HMAC key a client's token yields *is* SHA-256(token): the server checks
 * HT-* proofs with the stored hash alone. Honest limit: whoever reads the
 * database can still answer an HT challenge with that hash (any verifier for
 * an HMAC mechanism must hold its key); what the hash does not give away is
 * the token a client holds (usable elsewhere) or the password, and tokens are
 * short-lived, bound to one user agent and mechanism, and revoked by a
 * password change (credStamp) or account deletion (the username column).
 *
 * MemoryFastTokenStore is the reference implementation.
 */

export interface FastToken {
  username: string;
  /** The SASL2 user-agent id the token was issued to (XEP-0388). */
  agent: string;
  /** The mechanism the token is bound to (HT-SHA-256-NONE, -ENDP, -EXPR). */
  mechanism: string;
  /** SHA-256 of the token's UTF-8 bytes (the HMAC key). */
  keyHash: Buffer;
  /** Digest of the account's credentials at issue time: a password change revokes the token. */
  credStamp: string;
  createdAt: number;
  expiresAt: number;
  /** Highest `count` the client used (replay protection); 0 = none yet. */
  count: number;
}

export interface FastTokenStore {
  /** The account's unexpired tokens (expired ones are removed). */
  list(username: string): Promise<FastToken[]>;
  add(t: FastToken): Promise<void>;
  remove(username: string, keyHash: Buffer): Promise<void>;
  /** Remove the agent's tokens except `keep` (after a rotation was used, or on invalidation). */
  removeForAgent(username: string, agent: string, keep?: Buffer): Promise<void>;
  setCount(username: string, keyHash: Buffer, count: number): Promise<void>;
}

export class MemoryFastTokenStore implements FastTokenStore {
  private readonly rows = new Map<string, FastToken[]>();

  async list(username: string): Promise<FastToken[]> {
    // Expired tokens are dropped when read, as the database stores do (one semantics for all).
    const now = Date.now();
    const live = (this.rows.get(username) ?? []).filter((t) => t.expiresAt > now);
    this.rows.set(username, live);
    return live.map((t) => ({ ...t }));
  }
  async add(t: FastToken): Promise<void> {
    this.rows.set(t.username, [...(this.rows.get(t.username) ?? []), { ...t }]);
  }
  async remove(username: string, keyHash: Buffer): Promise<void> {
    this.rows.set(username, (this.rows.get(username) ?? []).filter((t) => !t.keyHash.equals(keyHash)));
  }
  async removeForAgent(username: string, agent: string, keep?: Buffer): Promise<void> {
    this.rows.set(username, (this.rows.get(username) ?? []).filter((t) => t.agent !== agent || (keep !== undefined && t.keyHash.equals(keep))));
  }
  async setCount(username: string, keyHash: Buffer, count: number): Promise<void> {
    for (const t of this.rows.get(username) ?? []) if (t.keyHash.equals(keyHash)) t.count = count;
  }
}
