/**
 * What stream management remembers about sessions that ended (XEP-0198 §5):
 * the last inbound `h` of a resumable session, so that a client that tries to
 * resume it later (after the timeout, or after a clean server restart) gets
 * `<failed h='…'/>` and knows exactly which of its stanzas the server handled
 * instead of guessing and sending duplicates.
 *
 * MemorySmStateStore is the reference implementation (used when a backend has
 * no table for it and by the conformance test).
 */

export interface SmStateRecord {
  /** Owning account (prepared localpart). */
  username: string;
  /** The resumption id the server gave out in `<enabled id=…/>`. */
  id: string;
  /** Inbound stanzas handled (archived and routed) when the session ended, mod 2^32. */
  h: number;
  /** Why the session ended ('resume-expired', 'shutdown', 'sm-overflow', ...). */
  reason: string;
  /** ms since epoch. */
  endedAt: number;
}

export interface SmStateStore {
  put(rec: SmStateRecord): Promise<void>;
  get(username: string, id: string): Promise<SmStateRecord | undefined>;
  /** Forget records that ended before `before` (ms since epoch); returns how many. */
  prune(before: number): Promise<number>;
}

export class MemorySmStateStore implements SmStateStore {
  private readonly rows = new Map<string, SmStateRecord>();

  async put(rec: SmStateRecord): Promise<void> {
    this.rows.set(`${rec.username}\0${rec.id}`, { ...rec });
  }

  async get(username: string, id: string): Promise<SmStateRecord | undefined> {
    const r = this.rows.get(`${username}\0${id}`);
    return r && { ...r };
  }

  async prune(before: number): Promise<number> {
    let n = 0;
    for (const [k, r] of this.rows) {
      if (r.endedAt < before) {
        this.rows.delete(k);
        n++;
      }
    }
    return n;
  }
}
