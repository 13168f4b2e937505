/**
 * Limits that hold under load, as small pure pieces with an injected clock
 * (table-tested in test/unit/limits.test.ts) and the few lines that apply
 * them where they act:
 *
 *   ConnectionLimiter  open connections per client address (c2s listener in
 *                      core/server.ts; incoming s2s streams per peer address
 *                      with s2s.maxStreamsPerAddress in s2s/manager.ts)
 *   TokenBucket        bytes read per second per stream, with a burst
 *                      (net/tcp.ts pauses the socket while the bucket is empty)
 *   sessionsAllowed    bound resources per account (c2s/stream.ts at bind)
 */
import { isIPv6 } from 'node:net';

/**
 * The key an address is counted under: IPv6 per /64 (one host usually owns a
 * whole /64, so counting single addresses would be no limit at all).
 */
export function addressKey(address: string): string {
  if (!isIPv6(address)) return address;
  const full = expandIPv6(address);
  return full === undefined ? address : `${full.slice(0, 4).join(':')}::/64`;
}

function expandIPv6(a: string): string[] | undefined {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head === '' ? [] : head.split(':');
  const t = tail === undefined || tail === '' ? [] : tail.split(':');
  if (tail === undefined) return h.length === 8 ? h : undefined;
  const fill = 8 - h.length - t.length;
  if (fill < 0) return undefined;
  return [...h, ...Array<string>(fill).fill('0'), ...t];
}

/** Open connections per address; `max` 0 = no limit. */
export class ConnectionLimiter {
  private readonly open = new Map<string, number>();

  constructor(
    private readonly max: number,
    /** Addresses never limited (local administration, the benchmark driver). */
    private readonly exempt: ReadonlySet<string> = new Set(),
  ) {}

  /** Count a new connection; false (and nothing counted) when the address is at its limit. */
  acquire(address: string): boolean {
    if (this.max <= 0 || this.exempt.has(address)) return true;
    const k = addressKey(address);
    const n = this.open.get(k) ?? 0;
    if (n >= this.max) return false;
    this.open.set(k, n + 1);
    return true;
  }

  release(address: string): void {
    if (this.max <= 0 || this.exempt.has(address)) return;
    const k = addressKey(address);
    const n = (this.open.get(k) ?? 1) - 1;
    if (n <= 0) this.open.delete(k);
    else this.open.set(k, n);
  }

  /** Addresses with open connections (bounded by the connections themselves). */
  get size(): number {
    return this.open.size;
  }
}

/**
 * `rate` tokens per second, at most `burst` saved up; the refill is shared by
 * the two ways of spending below (TokenBucket here, RefusingBucket in
 * stanza-rules.ts).
 */
export abstract class Bucket {
  protected tokens: number;
  private last: number;

  constructor(
    protected readonly rate: number,
    protected readonly burst: number,
    now: number,
  ) {
    this.tokens = burst;
    this.last = now;
  }

  protected refill(now: number): void {
    const elapsed = Math.max(0, now - this.last);
    this.last = now;
    this.tokens = Math.min(this.burst, this.tokens + (elapsed * this.rate) / 1000);
  }
}

/**
 * A token bucket of bytes: `take` spends bytes (the balance may go negative:
 * data already read cannot be refused) and says how long to stop reading
 * until the balance is back at 0.
 */
export class TokenBucket extends Bucket {
  /** Spend `bytes` at time `now` (ms); returns the milliseconds to pause reading (0 = go on). */
  take(bytes: number, now: number): number {
    this.refill(now);
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }
}

/** May an account bind one more resource? `max` 0 = no limit. Replacing an existing resource always may. */
export function sessionsAllowed(current: number, max: number, replacing: boolean): { ok: boolean; reason: string } {
  if (replacing) return { ok: true, reason: 'replaces an existing resource' };
  if (max <= 0) return { ok: true, reason: 'no limit' };
  return current < max ? { ok: true, reason: 'under the limit' } : { ok: false, reason: `${max} sessions already bound` };
}
