/**
 * Per-session and per-account stanza limits as pure pieces (table-tested in
 * test/unit/stanza-limits.test.ts): what a stanza from a client is charged
 * against, and a refusing token bucket. The module that applies them is
 * src/limits/stanza-limits.ts.
 *
 * Why these vectors: the read rate (limits.readRate) already bounds the bytes
 * a stream sends, but not what the server does per byte. The stanzas whose
 * cost is far above their size are
 *   - IQ requests: each one runs a handler, often a storage read or write;
 *   - MAM queries: one small IQ reads and sends up to a page of archived messages;
 *   - presence broadcasts: one stanza goes to every contact's every resource;
 *   - subscription requests: each one writes two rosters and pushes to every
 *     resource of the contact (and is the spam vector);
 *   - directed presences: each target is remembered for the session and gets
 *     an unavailable at its end.
 * Messages are not charged here: each is one delivery (plus carbons/forks to
 * the sender's own devices), so the read rate bounds them.
 */
import type { Element } from '../xml/element.js';
import { tryParseJID } from '../jid/jid.js';
import { Bucket } from './limits.js';

export const NS_MAM = 'urn:xmpp:mam:2';
export const NS_RSM = 'http://jabber.org/protocol/rsm';

/** Which limit a stanza is charged against. */
export type LimitKind = 'iq' | 'mam' | 'presence-broadcast' | 'directed-presence' | 'subscription';

export interface Charge {
  kind: LimitKind;
  /** Tokens: 1 per stanza; MAM rows for a MAM query. */
  cost: number;
  reason: string;
  /** Directed presence: the canonical target JID (parsed once here). */
  target?: string;
}

export interface PageSizes {
  /** moduleOptions.mam.defaultPageSize: the page when the query asks for none. */
  defaultPage: number;
  /** moduleOptions.mam.maxPageSize: the MAM module never returns more. */
  maxPage: number;
}

/**
 * The charges for one stanza from the session of `ownBare`. IQ results and
 * errors are never charged (refusing an answer helps nobody, and they are
 * bounded by the read rate); nor are messages (see above).
 */
export function chargesFor(stanza: Element, ownBare: string, pages: PageSizes): Charge[] {
  const type = stanza.attrs.type;
  const to = stanza.attrs.to;
  if (stanza.name === 'iq') {
    if (type !== 'get' && type !== 'set') return [];
    const charges: Charge[] = [{ kind: 'iq', cost: 1, reason: `iq ${type}` }];
    const query = type === 'set' ? stanza.getChild('query', NS_MAM) : undefined;
    if (query) {
      // What the query may cost is its page: the rows read and sent. An
      // unparsable <max/> is the MAM module's bad-request; charge the default.
      const asked = query.getChild('set', NS_RSM)?.getChildText('max');
      const n = asked !== undefined && /^\d{1,9}$/.test(asked.trim()) ? Number(asked.trim()) : pages.defaultPage;
      charges.push({ kind: 'mam', cost: Math.max(1, Math.min(n, pages.maxPage)), reason: 'MAM query: its page size in rows' });
    }
    return charges;
  }
  if (stanza.name === 'presence') {
    const jid = tryParseJID(to);
    // An invalid 'to' is the router's jid-malformed, not a limit's business.
    if (to !== undefined && jid === undefined) return [];
    const broadcast = jid === undefined || (jid.resource === '' && jid.bare.toString() === ownBare);
    // Presence to one's own other resource is neither broadcast nor remembered.
    if (jid !== undefined && !broadcast && jid.bare.toString() === ownBare) return [];
    if (type === undefined || type === 'unavailable') {
      if (broadcast) return [{ kind: 'presence-broadcast', cost: 1, reason: 'presence broadcast to every contact' }];
      // Unavailable undoes a directed presence: never refused.
      return type === undefined ? [{ kind: 'directed-presence', cost: 1, reason: 'directed presence (remembered for the session)', target: jid?.toString() ?? '' }] : [];
    }
    if (type === 'subscribe' && !broadcast) return [{ kind: 'subscription', cost: 1, reason: 'subscription request' }];
    return [];
  }
  return [];
}

/**
 * A token bucket that refuses instead of going into debt (the read-rate
 * TokenBucket in limits.ts may go negative: bytes already read cannot be
 * refused; a stanza can). `rate` tokens per second, at most `burst` saved.
 */
export class RefusingBucket extends Bucket {
  /**
   * Spend `cost` tokens at `now` (ms): 0 when spent, otherwise the
   * milliseconds until they would be there (nothing spent). A cost above the
   * burst is charged as the whole burst, so it is possible, just rare.
   */
  take(cost: number, now: number): number {
    this.refill(now);
    const c = Math.min(cost, this.burst);
    if (this.tokens >= c) {
      this.tokens -= c;
      return 0;
    }
    return this.rate > 0 ? Math.ceil(((c - this.tokens) * 1000) / this.rate) : Number.POSITIVE_INFINITY;
  }

  /** Back at the burst: the bucket holds no information and may be dropped. */
  full(now: number): boolean {
    this.refill(now);
    return this.tokens >= this.burst;
  }
}

/** A configured rate: `perSecond` may be fractional; `burst` 0 turns the limit off. */
export interface RateSetting {
  perSecond: number;
  burst: number;
}

/** Buckets by key (accounts), dropped again once refilled so that the map stays as small as the active set. */
export class KeyedBuckets {
  private readonly buckets = new Map<string, RefusingBucket>();

  constructor(private readonly setting: RateSetting) {}

  take(key: string, cost: number, now: number): number {
    if (this.setting.burst <= 0) return 0;
    let b = this.buckets.get(key);
    if (!b) {
      b = new RefusingBucket(this.setting.perSecond, this.setting.burst, now);
      this.buckets.set(key, b);
    }
    return b.take(cost, now);
  }

  /** Drop the buckets that are full again (called from a timer). */
  prune(now: number): void {
    for (const [k, b] of this.buckets) if (b.full(now)) this.buckets.delete(k);
  }

  get size(): number {
    return this.buckets.size;
  }
}

/** May a session send one more directed presence to `target`? Re-sending to a known target always may. */
export function directedAllowed(known: ReadonlySet<string>, target: string, max: number): { ok: boolean; reason: string } {
  if (max <= 0) return { ok: true, reason: 'no limit' };
  if (known.has(target)) return { ok: true, reason: 'already a target' };
  return known.size < max ? { ok: true, reason: 'under the limit' } : { ok: false, reason: `${max} directed presences already sent by this session` };
}
