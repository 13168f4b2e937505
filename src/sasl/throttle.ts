/**
 * Failed-authentication throttle: counts failures per client address and per
 * account over a sliding window (two fixed buckets, the previous one weighted
 * by how much of it still overlaps the window), so each key costs O(1) memory.
 *
 * Memory stays bounded under a flood of distinct addresses: stale entries are
 * swept lazily (no timer to clean up), and past `maxEntries` the least recently
 * touched entries are dropped. Dropping forgets a few counters, which an
 * attacker could only force by spending more addresses than the cap.
 *
 * IPv6 addresses are counted per /64, since one host usually owns a whole /64.
 * Successes clear the account's counter but not the address's: otherwise one
 * attacker could reset its address budget by logging into its own account
 * between guesses at other accounts.
 */
import { isIPv6 } from 'node:net';
import { prepareLocal } from '../jid/jid.js';

export interface AuthThrottleOptions {
  /** Failures allowed per address within the window. */
  perAddress: number;
  /** Failures allowed per account within the window. */
  perAccount: number;
  windowMs: number;
  /** Bound on tracked keys (addresses + accounts); default 100000. */
  maxEntries?: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

interface Counter {
  start: number; // start of the current bucket
  current: number;
  previous: number;
}

export class AuthThrottle {
  private readonly entries = new Map<string, Counter>();
  private readonly maxEntries: number;
  private readonly now: () => number;
  private lastSweep: number;

  constructor(private readonly opts: AuthThrottleOptions) {
    if (!(opts.windowMs > 0)) throw new RangeError('windowMs must be positive');
    this.maxEntries = opts.maxEntries ?? 100_000;
    this.now = opts.now ?? Date.now;
    this.lastSweep = this.now();
  }

  /** True when neither the address nor the account has used up its failures. */
  allowed(address: string, username?: string): boolean {
    const t = this.now();
    this.maybeSweep(t);
    // 0 turns a limit off (auth.failuresPerAddress / failuresPerAccount); it used to refuse every login.
    if (this.opts.perAddress > 0 && this.estimate(addressKey(address), t) >= this.opts.perAddress) return false;
    if (username !== undefined && this.opts.perAccount > 0 && this.estimate(accountKey(username), t) >= this.opts.perAccount) return false;
    return true;
  }

  recordFailure(address: string, username?: string): void {
    const t = this.now();
    this.maybeSweep(t);
    this.bump(addressKey(address), t);
    if (username !== undefined) this.bump(accountKey(username), t);
  }

  recordSuccess(_address: string, username?: string): void {
    if (username !== undefined) this.entries.delete(accountKey(username));
  }

  /** Number of tracked keys (for metrics and tests). */
  get size(): number {
    return this.entries.size;
  }

  private roll(c: Counter, t: number): void {
    const w = this.opts.windowMs;
    const elapsed = t - c.start;
    if (elapsed < w) return;
    // One bucket later the current becomes the previous; two or more, both are stale.
    c.previous = elapsed < 2 * w ? c.current : 0;
    c.current = 0;
    c.start = t - (elapsed % w);
  }

  private estimate(key: string, t: number): number {
    const c = this.entries.get(key);
    if (c === undefined) return 0;
    this.roll(c, t);
    const overlap = 1 - (t - c.start) / this.opts.windowMs;
    return c.current + c.previous * overlap;
  }

  private bump(key: string, t: number): void {
    let c = this.entries.get(key);
    if (c === undefined) {
      c = { start: t, current: 0, previous: 0 };
    } else {
      this.roll(c, t);
      this.entries.delete(key); // re-insert: Map order is then least recently touched first
    }
    c.current++;
    this.entries.set(key, c);
    while (this.entries.size > this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
  }

  /** Drop entries whose both buckets are out of the window, at most once per window. */
  private maybeSweep(t: number): void {
    if (t - this.lastSweep < this.opts.windowMs) return;
    this.lastSweep = t;
    for (const [key, c] of this.entries) {
      if (t - c.start >= 2 * this.opts.windowMs) this.entries.delete(key);
    }
  }
}

function addressKey(address: string): string {
  let a = address.toLowerCase();
  if (a.startsWith('::ffff:') && !a.slice(7).includes(':')) a = a.slice(7); // IPv4-mapped
  const pct = a.indexOf('%');
  if (pct !== -1) a = a.slice(0, pct); // zone id
  if (isIPv6(a)) return `a:${ipv6Prefix64(a)}`;
  return `a:${a}`;
}

/** First four hextets of an IPv6 address, expanded. */
function ipv6Prefix64(a: string): string {
  const [head, tail] = a.includes('::') ? a.split('::') : [a, undefined];
  const h = head === '' ? [] : head.split(':');
  let groups = h;
  if (tail !== undefined) {
    const t = tail === '' ? [] : tail.split(':');
    // An embedded IPv4 tail counts as two groups.
    const tailLen = t.length + (t.length > 0 && t[t.length - 1].includes('.') ? 1 : 0);
    groups = [...h, ...new Array<string>(8 - h.length - tailLen).fill('0'), ...t];
  }
  return groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ''))
    .join(':');
}

function accountKey(username: string): string {
  try {
    return `u:${prepareLocal(username)}`;
  } catch {
    return `u:${username}`;
  }
}
