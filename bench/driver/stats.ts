/**
 * Pure accounting for the load driver: percentiles and the ledger of expected message copies.
 * Kept free of I/O so that unit tests can pin down exactly what "lost", "missing" and
 * "duplicated" mean.
 */

/**
 * Nearest-rank percentile on sorted data, index = round(p/100 * (n-1)), clamped. This is the
 * rule the shared Python driver uses (`pct()` in xmppbench.py), so both drivers report the same
 * figure from the same samples.
 */
export function percentileSorted(sorted: ArrayLike<number>, p: number): number | null {
  const n = sorted.length;
  if (n === 0) return null;
  const k = Math.min(n - 1, Math.max(0, roundHalfEven((p / 100) * (n - 1))));
  return sorted[k] as number;
}

/** Python's round() rounds half to even; match it so indexes agree exactly. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d === 0.5) return f % 2 === 0 ? f : f + 1;
  return d < 0.5 ? f : f + 1;
}

export function percentile(values: ArrayLike<number>, p: number): number | null {
  const v = Float64Array.from(values as ArrayLike<number>);
  v.sort();
  return percentileSorted(v, p);
}

export interface LatencySummary {
  n: number;
  p50_ms?: number;
  p90_ms?: number;
  p99_ms?: number;
  max_ms?: number;
  mean_ms?: number;
}

const r3 = (x: number): number => Math.round(x * 1000) / 1000;

/** Summary of latencies given in milliseconds (same fields as the Python driver). */
export function latSummary(ms: ArrayLike<number>): LatencySummary {
  const n = ms.length;
  if (n === 0) return { n: 0 };
  const v = Float64Array.from(ms as ArrayLike<number>);
  v.sort();
  let sum = 0;
  for (let i = 0; i < n; i++) sum += v[i] as number;
  return {
    n,
    p50_ms: r3(percentileSorted(v, 50) as number),
    p90_ms: r3(percentileSorted(v, 90) as number),
    p99_ms: r3(percentileSorted(v, 99) as number),
    max_ms: r3(v[n - 1] as number),
    mean_ms: r3(sum / n),
  };
}

export function median(values: number[]): number | null {
  if (values.length === 0) return null;
  const v = [...values].sort((a, b) => a - b);
  const m = v.length >> 1;
  return v.length % 2 === 1 ? (v[m] as number) : ((v[m - 1] as number) + (v[m] as number)) / 2;
}

/** Growable list of doubles without per-element allocation (latencies can be millions). */
export class DoubleList {
  private data = new Float64Array(1024);
  length = 0;

  push(x: number): void {
    if (this.length === this.data.length) {
      const d = new Float64Array(this.data.length * 2);
      d.set(this.data);
      this.data = d;
    }
    this.data[this.length++] = x;
  }

  clear(): void {
    this.length = 0;
  }

  view(): Float64Array {
    return this.data.subarray(0, this.length);
  }
}

/** What one received copy turned out to be. */
export type CopyVerdict =
  /** the first copy of this message at any recipient slot: it is delivered */
  | 'first'
  /** another expected copy (another resource, or a carbon) */
  | 'copy'
  /** this slot already had this message */
  | 'dup'
  /** a copy at a slot that should not have received this message at all */
  | 'unexpected'
  /** an id the ledger never sent */
  | 'unknown';

export interface LedgerSummary {
  total_sent: number;
  /** messages whose recipient never got any copy */
  lost_msgs: number;
  /** expected copies (over all slots) that never arrived */
  missing_copies: number;
  /** copies that arrived twice at the same slot, plus copies at slots that expected none */
  dup_copies: number;
  unexpected_copies: number;
  delivered_copies: number;
}

/**
 * The ledger of expected copies. Every message gets a sequence number and a bit mask of the
 * "slots" (connections) that must receive a copy; `primaryMask` says which of those slots
 * belong to the recipient (the first copy there means the message was delivered). Up to 32 slots
 * per message, which covers 16 resources per user on each side.
 */
export class CopyLedger {
  private sentAt = new Float64Array(1024);
  private expected = new Uint32Array(1024);
  private primary = new Uint32Array(1024);
  private seen = new Uint32Array(1024);
  private delivered = new Uint8Array(1024);
  private n = 0;
  private dups = 0;
  private unexpected = 0;
  private copies = 0;
  private expectedTotal = 0;

  get size(): number {
    return this.n;
  }

  /** Expected copies not received yet, over all messages (0 means everything arrived). */
  get outstanding(): number {
    return this.expectedTotal - this.copies;
  }

  /** Record a sent message; returns its sequence number. */
  sent(t: number, expectedMask: number, primaryMask: number): number {
    if (this.n === this.sentAt.length) this.grow();
    const s = this.n++;
    this.sentAt[s] = t;
    this.expected[s] = expectedMask >>> 0;
    this.primary[s] = primaryMask >>> 0;
    this.expectedTotal += popcount(expectedMask);
    return s;
  }

  sentTime(seq: number): number {
    return this.sentAt[seq] as number;
  }

  isDelivered(seq: number): boolean {
    return this.delivered[seq] === 1;
  }

  /** Record a copy of message `seq` received on `slot` (0..31). */
  received(seq: number, slot: number): CopyVerdict {
    if (!(seq >= 0 && seq < this.n) || !Number.isInteger(seq)) return 'unknown';
    const bit = (1 << slot) >>> 0;
    if (((this.seen[seq] as number) & bit) !== 0) {
      this.dups++;
      return 'dup';
    }
    this.seen[seq] = ((this.seen[seq] as number) | bit) >>> 0;
    if (((this.expected[seq] as number) & bit) === 0) {
      this.unexpected++;
      return 'unexpected';
    }
    this.copies++;
    if (((this.primary[seq] as number) & bit) !== 0 && this.delivered[seq] === 0) {
      this.delivered[seq] = 1;
      return 'first';
    }
    return 'copy';
  }

  /** True when every expected copy of every message arrived. */
  complete(): boolean {
    return this.outstanding === 0;
  }

  summary(): LedgerSummary {
    let lost = 0;
    let missing = 0;
    for (let s = 0; s < this.n; s++) {
      if (this.delivered[s] === 0) lost++;
      missing += popcount(((this.expected[s] as number) & ~(this.seen[s] as number)) >>> 0);
    }
    return {
      total_sent: this.n,
      lost_msgs: lost,
      missing_copies: missing,
      dup_copies: this.dups + this.unexpected,
      unexpected_copies: this.unexpected,
      delivered_copies: this.copies,
    };
  }

  private grow(): void {
    const len = this.sentAt.length * 2;
    const f = new Float64Array(len);
    f.set(this.sentAt);
    this.sentAt = f;
    for (const k of ['expected', 'primary', 'seen'] as const) {
      const a = new Uint32Array(len);
      a.set(this[k]);
      this[k] = a;
    }
    const d = new Uint8Array(len);
    d.set(this.delivered);
    this.delivered = d;
  }
}

export function popcount(x: number): number {
  let v = x >>> 0;
  v = v - ((v >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/**
 * Slots for a chat pair where each user has `resources` connections: the sender's resources are
 * slots 0..R-1, the recipient's R..2R-1. The recipient's resources all get a copy (bare-JID
 * message, equal priority); with carbons (or MR2) the sender's other resources get a sent-copy.
 */
export function chatMasks(resources: number, senderResource: number, forking: boolean): { expected: number; primary: number } {
  const r = resources;
  if (r < 1 || r > 16) throw new Error('resources must be 1..16');
  const primary = (((1 << r) - 1) << r) >>> 0;
  let expected = primary;
  if (forking) {
    const own = ((1 << r) - 1) & ~(1 << senderResource);
    expected = (expected | own) >>> 0;
  }
  return { expected, primary };
}
