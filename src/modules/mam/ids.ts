/**
 * Archive order keys and ids.
 *
 * The clock hands out `seq` values: microseconds since the epoch, strictly
 * increasing within the process and never below the highest seq already
 * stored (so a system clock that steps back after a restart cannot reorder
 * or collide). At most 1000 per millisecond keep the true time; beyond that
 * the clock runs a little ahead until the rate drops, which keeps seq unique
 * and the stored time within a few milliseconds of the truth.
 *
 * Recipient archive ids are ULID-like: the seq in 11 Crockford base32
 * characters (so they sort by time as strings too) plus 5 random characters.
 * The sender's id on an MR2 stream is `<stream id>-<message id>` instead,
 * computable by the client (see the MAM module).
 */
import { randomBytes } from 'node:crypto';

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

export class ArchiveClock {
  private last: number;

  constructor(highWater = 0, private readonly now: () => number = Date.now) {
    this.last = highWater;
  }

  /** Cluster lane (src/cluster): this node's seqs are ≡ laneIndex (mod laneCount), never another node's. */
  private laneIndex = 0;
  private laneCount = 1;

  /** Told every seq handed out (a cluster node's order marks, src/cluster/order-gate.ts). */
  onNext: ((seq: number) => void) | undefined;

  next(): number {
    const t = this.now() * 1000;
    let v = t > this.last ? t : this.last + 1;
    if (this.laneCount > 1) v += (this.laneIndex - (v % this.laneCount) + this.laneCount) % this.laneCount;
    this.last = v;
    this.onNext?.(v);
    return v;
  }

  /**
   * In a cluster every node writes to every archive, and (username, seq) is the archive's key:
   * each node takes a lane of its own so that two nodes never hand out the same seq.
   */
  setLane(index: number, count: number): void {
    if (!Number.isInteger(count) || count < 1 || !Number.isInteger(index) || index < 0 || index >= count) throw new Error(`bad archive clock lane ${index}/${count}`);
    this.laneIndex = index;
    this.laneCount = count;
  }

  /**
   * A bound on every seq handed out so far, at least now: every later seq is above it (cluster
   * order marks, src/cluster/order.ts). Raises the clock to now so that the bound holds even when
   * the system clock later steps back.
   */
  floor(): number {
    const t = this.now() * 1000;
    if (t > this.last) this.last = t;
    return this.last;
  }

  /** Never hand out a seq at or below `seq` (after loading the stored high-water mark). */
  atLeast(seq: number): void {
    if (seq > this.last) this.last = seq;
  }
}

/** Encode a non-negative integer below 2^55 in `width` Crockford base32 characters. */
export function base32(n: number, width: number): string {
  let s = '';
  let v = n;
  for (let i = 0; i < width; i++) {
    s = CROCKFORD[v % 32] + s;
    v = Math.floor(v / 32);
  }
  return s;
}

let pool = randomBytes(0);
let poolPos = 0;
function randomChars(k: number): string {
  if (poolPos + k > pool.length) {
    pool = randomBytes(4096);
    poolPos = 0;
  }
  let s = '';
  for (let i = 0; i < k; i++) s += CROCKFORD[(pool[poolPos++] as number) & 31];
  return s;
}

/** A server-made archive id for this seq: time-ordered, unique in the archive. */
export function archiveIdFor(seq: number): string {
  return base32(seq, 11) + randomChars(5);
}

const SERVER_ID = /^[0-9A-HJKMNP-TV-Z]{16}$/;

/** The seq of a server-made archive id (archiveIdFor); undefined for anything else (MR2's computable ids). */
export function seqOfArchiveId(id: string): number | undefined {
  if (!SERVER_ID.test(id)) return undefined;
  let v = 0;
  for (let i = 0; i < 11; i++) v = v * 32 + CROCKFORD.indexOf(id[i] as string);
  return Number.isSafeInteger(v) ? v : undefined;
}

/** The sender's computable archive id for a message sent on an MR2 stream. */
export function computableId(streamId: string, messageId: string): string {
  return `${streamId}-${messageId}`;
}

/** Milliseconds since the epoch of a seq. */
export function seqToMs(seq: number): number {
  return Math.floor(seq / 1000);
}

/** XEP-0082 DateTime (UTC, milliseconds when not whole seconds). */
export function stampOf(ms: number): string {
  const iso = new Date(ms).toISOString();
  return iso.endsWith('.000Z') ? iso.slice(0, -5) + 'Z' : iso;
}

const DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

/** Parse a XEP-0082 DateTime; undefined when it is not one. */
export function parseDateTime(s: string): number | undefined {
  const t = s.trim();
  if (!DATETIME.test(t)) return undefined;
  const ms = Date.parse(t);
  return Number.isFinite(ms) ? ms : undefined;
}
