/**
 * XEP-0352 Client State Indication (urn:xmpp:csi:0, version 1.0) with the
 * hold/flush rules of docs/protocol.md ("CSI: quiet phones").
 *
 * While a client is inactive, its outbound filter holds what is not urgent:
 * presence updates (only the newest per contact full JID is kept), chat
 * states, receipts, markers, and forked copies of the account's own
 * outgoing messages. An urgent stanza first flushes the held ones, in order,
 * then passes. <active/> flushes everything; so does overflow of the bounded
 * queue (count and bytes).
 *
 * The filter runs before stream management's (lower `order`), so a held
 * stanza is counted for SM only when it is finally written. The state lives
 * on the Session, so it survives XEP-0198 resumption; when a session ends
 * for good, held stanzas go to SM's undelivered rules (nothing is lost).
 */
import { x, type Element, NS_CLIENT } from '../xml/element.js';
import { serializeOnce } from '../xml/serialize-cache.js';
import { NS } from '../core/namespaces.js';
import type { VeronaModule } from '../core/module.js';
import type { OutboundFilter, Session } from '../core/session.js';
import { UNDELIVERED_SERVICE, type UndeliveredSink } from './sm/index.js';
import { messageType } from '../core/routing.js';

/** Before SM (1000): SM must count only what is really sent. */
export const CSI_FILTER_ORDER = 100;

export interface CsiDecision {
  /** hold: keep while inactive; urgent: flush what is held, then send; pass: send, leave the queue alone. */
  action: 'hold' | 'urgent' | 'pass';
  reason: string;
  /** Held stanzas with the same key replace each other (presence per contact full JID). */
  key?: string;
}

/** Namespaces of end-to-end encrypted payloads: such a message is as urgent as a body. */
const ENCRYPTED = new Set(['eu.siacs.conversations.axolotl', 'urn:xmpp:omemo:2', 'jabber:x:encrypted', 'urn:xmpp:openpgp:0']);

/** Children that by themselves make a message holdable, with the reason they give. */
const QUIET: ReadonlyMap<string, string> = new Map([
  ['http://jabber.org/protocol/chatstates', 'chat-state'],
  ['urn:xmpp:receipts', 'receipt'],
  ['urn:xmpp:chat-markers:0', 'marker'],
]);

/** Children that say nothing about urgency (ids, hints, delay, thread) and are ignored. */
const NEUTRAL = new Set<string>([NS.SID, NS.HINTS, NS.DELAY]);

const SUBSCRIPTION = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']);

function classifyMessage(msg: Element): CsiDecision {
  const type = messageType(msg);
  if (type === 'error') return { action: 'urgent', reason: 'error' };
  if (msg.getChild('body')) return { action: 'urgent', reason: 'body' };
  let quiet: string | undefined;
  for (const c of msg.elements()) {
    if (ENCRYPTED.has(c.xmlns)) return { action: 'urgent', reason: 'encrypted' };
    if (c.name === 'subject' && c.xmlns === NS.CLIENT) return { action: 'urgent', reason: 'subject' };
    if (c.name === 'thread' && c.xmlns === NS.CLIENT) continue;
    if (NEUTRAL.has(c.xmlns)) continue;
    const q = QUIET.get(c.xmlns);
    if (q !== undefined) {
      quiet ??= q;
      continue;
    }
    // Anything we cannot classify safely goes out at once.
    if (c.name === 'result' && c.xmlns === NS.MAM) return { action: 'urgent', reason: 'mam-result' };
    return { action: 'urgent', reason: 'unknown-payload' };
  }
  return quiet === undefined ? { action: 'urgent', reason: 'empty-message' } : { action: 'hold', reason: quiet };
}

/**
 * The urgency decision: pure, one reason per verdict (for metrics, logs and
 * the table test in test/unit/csi.test.ts).
 */
export function csiDecide(el: Element): CsiDecision {
  if (el.xmlns !== NS.CLIENT) return { action: 'pass', reason: 'nonza' };
  switch (el.name) {
    case 'iq':
      return { action: 'urgent', reason: 'iq' };
    case 'presence': {
      const type = el.attrs.type;
      if (type === undefined || type === 'unavailable') {
        // MUC self-presence (status 110) confirms a join or a change the user made: let it through.
        const muc = el.getChild('x', 'http://jabber.org/protocol/muc#user');
        if (muc?.getChildren('status').some((s) => s.attrs.code === '110')) return { action: 'urgent', reason: 'muc-self-presence' };
        return { action: 'hold', reason: 'presence-update', key: `p:${el.attrs.from ?? ''}` };
      }
      if (type === 'error') return { action: 'hold', reason: 'presence-error' };
      if (SUBSCRIPTION.has(type)) return { action: 'urgent', reason: 'subscription' };
      return { action: 'urgent', reason: `presence-${type}` };
    }
    case 'message': {
      // Forked copies of the account's own outgoing messages wait (the user wrote them on another device).
      const sent = el.getChild('sent', NS.CARBONS);
      if (sent) return { action: 'hold', reason: 'own-sent-copy' };
      const recv = el.getChild('received', NS.CARBONS)?.getChild('forwarded', NS.FORWARD)?.getChild('message');
      if (recv) {
        const d = classifyMessage(recv);
        return { ...d, reason: `received-${d.reason}` };
      }
      return classifyMessage(el);
    }
    default:
      return { action: 'urgent', reason: 'unknown-stanza' };
  }
}

export interface CsiLimits {
  /** Held stanzas per session before a flush. */
  maxHeld: number;
  /** Serialized bytes held per session before a flush. */
  maxHeldBytes: number;
}

export const CSI_DEFAULTS: CsiLimits = { maxHeld: 100, maxHeldBytes: 256 * 1024 };

interface Held {
  el: Element;
  bytes: number;
  key: string | undefined;
}

/**
 * The held queue of one session, in arrival order. A keyed entry replaces
 * the older one with the same key (which leaves its place; the newest sits
 * where it arrived).
 */
export class HeldQueue {
  private items: Held[] = [];
  bytes = 0;

  get length(): number {
    return this.items.length;
  }

  /** Add; returns the element it superseded, if any. */
  add(el: Element, bytes: number, key: string | undefined): Element | undefined {
    let old: Element | undefined;
    if (key !== undefined) {
      const i = this.items.findIndex((h) => h.key === key);
      if (i >= 0) {
        const [h] = this.items.splice(i, 1) as [Held];
        this.bytes -= h.bytes;
        old = h.el;
      }
    }
    this.items.push({ el, bytes, key });
    this.bytes += bytes;
    return old;
  }

  take(): Element[] {
    const out = this.items.map((h) => h.el);
    this.items = [];
    this.bytes = 0;
    return out;
  }
}

function parseLimits(raw: Record<string, unknown>): CsiLimits {
  const out: CsiLimits = { ...CSI_DEFAULTS };
  for (const [k, v] of Object.entries(raw)) {
    if (!Object.hasOwn(CSI_DEFAULTS, k)) throw new Error(`moduleOptions.csi.${k}: unknown option (known: maxHeld, maxHeldBytes)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`moduleOptions.csi.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
    out[k as keyof CsiLimits] = v;
  }
  return out;
}

const DATA = 'csi';

/** Service 'csi-flush': send what CSI holds for a session on (past CSI) now. */
export type CsiFlush = (session: Session) => void;
export const CSI_FLUSH_SERVICE = 'csi-flush';

export const csiModule: VeronaModule = {
  name: 'csi',
  load(api) {
    const limits = parseLimits(api.options);
    const held = api.metrics.counter('verona_csi_held_total', 'Stanzas held for inactive clients, by reason');
    const superseded = api.metrics.counter('verona_csi_superseded_total', 'Held presence replaced by a newer one from the same full JID (never sent)');
    const flushes = api.metrics.counter('verona_csi_flushes_total', 'Flushes of held stanzas, by reason (active, urgent:<why>, overflow-count, overflow-bytes)');
    const flushed = api.metrics.counter('verona_csi_flushed_total', 'Held stanzas sent by flushes');
    const queue = (s: Session): HeldQueue => {
      let q = s.getData<HeldQueue>(DATA);
      if (!q) {
        q = new HeldQueue();
        s.data.set(DATA, q);
      }
      return q;
    };

    const flush = (s: Session, reason: string): void => {
      const q = s.getData<HeldQueue>(DATA);
      if (!q || q.length === 0) return;
      const items = q.take();
      flushes.inc({ reason });
      flushed.inc(undefined, items.length);
      // Past our own filter only: SM (and anything after CSI) still sees and counts each one.
      for (const el of items) s.sendFrom(CSI_FILTER_ORDER, el);
    };
    // Stream management writes a session down at a graceful stop: what CSI holds goes into its queue first.
    api.provide(CSI_FLUSH_SERVICE, ((s) => flush(s, 'hibernate')) satisfies CsiFlush);

    const filter: OutboundFilter = {
      name: 'csi',
      order: CSI_FILTER_ORDER,
      filter(el, s) {
        if (!s.csiInactive) return el;
        const d = csiDecide(el);
        if (d.action === 'pass') return el;
        if (d.action === 'urgent') {
          flush(s, `urgent:${d.reason}`);
          return el;
        }
        const q = queue(s);
        if (q.add(el, serializeOnce(el, NS_CLIENT).length, d.key)) superseded.inc();
        held.inc({ reason: d.reason });
        if (q.length > limits.maxHeld) flush(s, 'overflow-count');
        else if (q.bytes > limits.maxHeldBytes) flush(s, 'overflow-bytes');
        return null;
      },
    };

    api.hook('stream/features', (e) => {
      if (e.stage === 'post-auth') e.features.append(x('csi', NS.CSI));
    });
    api.hook('session/bound', ({ session }) => session.addFilter(filter));
    api.hook('stream/nonza', (e) => {
      if (e.el.xmlns !== NS.CSI) return false;
      const s = e.stream.session;
      // XEP-0352 §4: state applies to a bound resource; before binding there is nothing to hold.
      if (!s) return true;
      if (e.el.name === 'inactive') {
        s.csiInactive = true;
      } else if (e.el.name === 'active') {
        s.csiInactive = false;
        flush(s, 'active');
      }
      return true;
    });
    // After SM's own handler (priority 10): its unacked stanzas are older than anything held here.
    api.hook('session/ended', ({ session }) => {
      const q = session.getData<HeldQueue>(DATA);
      if (!q || q.length === 0) return;
      const items = q.take();
      const sink = api.service<UndeliveredSink>(UNDELIVERED_SERVICE);
      if (sink) sink(session, items, 'csi');
      else api.metrics.counter('verona_csi_dropped_at_end_total', 'Held stanzas dropped when a session ended (no sm module loaded)').inc(undefined, items.length);
    }, 0);
  },
};
