/**
 * The I/O around src/cluster/order.ts: an outbound filter on every local session of a cluster
 * node that holds archived copies until the order marks allow them, the marks this node knows,
 * and the asks for new ones. The decision itself is order.ts's decide().
 *
 * The filter runs first on the outbound path (before CSI and stream management), so a held copy
 * is neither queued by CSI nor counted by SM before it is released; released copies continue
 * through the remaining filters (Session.sendFrom).
 */
import type { Session } from '../core/session.js';
import { NS } from '../core/namespaces.js';
import type { Element } from '../xml/element.js';
import type { Counter, Metrics } from '../metrics/metrics.js';
import { seqOfArchiveId, type ArchiveClock } from '../modules/mam/ids.js';
import { decide, insertAt, isSilent, type NodeMark, type ReleaseReason } from './order.js';

/** Outbound filter order: before CSI (100) and SM (1000). */
export const ORDER_FILTER_ORDER = 10;
/** A node that does not answer an ask for this long is left out until it answers (see order.ts). */
export const ORDER_HOLD_MAX_MS = 2000;
/** An unanswered ask is sent again after this long (a publish lost while Redis reconnected). */
const REASK_MS = 200;
/** While anything is held, the queues are looked at again this often (silent nodes, lost asks). */
const RECHECK_MS = 50;

export interface OrderHost {
  /** Ask `node` (maybe this one) for its mark, at least `seq` once its deliveries up to `seq` are out; the answer comes to mark(). */
  ask(node: string, seq: number): void;
  /** This node's mark right now (MarkSource.current); without it this node is asked like any other. */
  selfMark?: () => number;
  metrics: Metrics;
}

interface Held {
  el: Element;
  seq: number | undefined;
}

/** The account's archive seq carried by a copy for `session` (plain or carbon), if any. */
export function archiveSeqOf(el: Element, session: Session): number | undefined {
  if (el.name !== 'message') return undefined;
  const wrap = el.getChild('received', NS.CARBONS) ?? el.getChild('sent', NS.CARBONS);
  const msg = wrap ? wrap.getChild('forwarded', NS.FORWARD)?.getChild('message') : el;
  if (!msg) return undefined;
  const by = session.jid.bare.toString();
  for (const sid of msg.getChildren('stanza-id', NS.SID)) {
    if (sid.attrs.by === by && sid.attrs.id !== undefined) return seqOfArchiveId(sid.attrs.id);
  }
  return undefined;
}

export class OrderGate {
  /** Marks of every live node, this one included. */
  private readonly marks = new Map<string, NodeMark>();
  /** Outstanding asks: node -> when it was asked. */
  private readonly asked = new Map<string, number>();
  private readonly held = new Map<Session, Held[]>();
  private pumpQueued = false;
  private timer: NodeJS.Timeout | undefined;
  private readonly heldTotal: Counter;
  private readonly released: Counter;
  private heldNow = 0;

  constructor(readonly self: string, private readonly host: OrderHost, private readonly holdMaxMs = ORDER_HOLD_MAX_MS) {
    this.marks.set(self, { w: 0 });
    this.heldTotal = host.metrics.counter('verona_cluster_order_held_total', 'Copies held for archive-id order across nodes');
    this.released = host.metrics.counter('verona_cluster_order_released_total', 'Held copies released, by reason (silent: a node that did not answer was left out)');
    host.metrics.gauge('verona_cluster_order_held', 'Copies held now for archive-id order', () => this.heldNow);
  }

  /** The outbound filter to put on each local session. */
  readonly filter = {
    name: 'cluster-order',
    order: ORDER_FILTER_ORDER,
    filter: (el: Element, s: Session): Element | null => this.outbound(el, s),
  };

  // ---- membership and marks ---------------------------------------------------------------

  /** The live members (after loading them from Redis). */
  setMembers(nodes: Iterable<string>): void {
    const keep = new Set(nodes);
    keep.add(this.self);
    for (const n of keep) if (!this.marks.has(n)) this.marks.set(n, { w: 0 });
    for (const n of [...this.marks.keys()]) if (!keep.has(n)) this.gone(n);
  }

  /** A node joined (hello): from now on it counts. */
  up(node: string): void {
    if (!this.marks.has(node)) this.marks.set(node, { w: 0 });
  }

  /** A node left or was reaped: it delivers nothing more, it no longer counts. */
  gone(node: string): void {
    if (node === this.self) return;
    this.marks.delete(node);
    this.asked.delete(node);
    this.schedule();
  }

  /** A mark from `node` (this one included). */
  mark(node: string, w: number): void {
    let m = this.marks.get(node);
    if (!m) {
      // A node we had not heard of yet (its hello crossed our load): it counts from now on.
      m = { w: 0 };
      this.marks.set(node, m);
    }
    if (w > m.w) m.w = w;
    delete m.silentSince;
    // Answered (maybe another node's ask: marks go to every node): the next pump asks again if it must.
    this.asked.delete(node);
    this.schedule();
  }

  // ---- holding ------------------------------------------------------------------------------

  private refreshSelf(): void {
    if (!this.host.selfMark) return;
    const m = this.marks.get(this.self) as NodeMark;
    const w = this.host.selfMark();
    if (w > m.w) m.w = w;
  }

  private outbound(el: Element, s: Session): Element | null {
    const q = this.held.get(s);
    const seq = archiveSeqOf(el, s);
    if (!q) {
      if (seq === undefined) return el;
      this.refreshSelf();
      const d = decide([{ seq }], this.marks, Date.now(), this.holdMaxMs);
      if (d.blockedAt === undefined) {
        if (d.reasons[0] === 'silent') this.released.inc({ reason: 'silent' });
        return el;
      }
      this.held.set(s, [{ el, seq }]);
    } else {
      q.splice(insertAt(q, seq), 0, { el, seq });
    }
    this.heldNow++;
    this.heldTotal.inc();
    this.schedule();
    return null;
  }

  private schedule(): void {
    if (this.pumpQueued) return;
    this.pumpQueued = true;
    queueMicrotask(() => {
      this.pumpQueued = false;
      this.pump();
    });
  }

  /** Release what the marks allow, ask for the marks still missing. */
  private pump(): void {
    const now = Date.now();
    this.refreshSelf();
    let need = 0;
    for (const [s, q] of this.held) {
      let reasons: ReleaseReason[];
      let blockedAt: number | undefined;
      if (s.closed) {
        // Nothing more is delivered to it; pass everything on (SM keeps what it must).
        reasons = q.map(() => 'marks' as const);
        blockedAt = undefined;
      } else {
        const d = decide(q, this.marks, now, this.holdMaxMs);
        reasons = d.reasons;
        blockedAt = d.blockedAt;
      }
      const out = q.splice(0, reasons.length);
      if (q.length === 0) this.held.delete(s);
      this.heldNow -= out.length;
      for (let i = 0; i < out.length; i++) {
        this.released.inc({ reason: reasons[i] as string });
        s.sendFrom(ORDER_FILTER_ORDER, (out[i] as Held).el);
      }
      if (blockedAt !== undefined) for (const h of q) if (h.seq !== undefined && h.seq > need) need = h.seq;
    }
    // One ask at a time per node, for the highest held seq: every node below it, silent ones too
    // (an answer makes a silent node count again).
    for (const [n, m] of this.marks) {
      if (m.w >= need || (n === this.self && this.host.selfMark)) continue;
      const at = this.asked.get(n);
      if (at !== undefined && now - at < REASK_MS) continue;
      this.asked.set(n, now);
      if (m.silentSince === undefined) m.silentSince = now;
      this.host.ask(n, need);
    }
    if (this.held.size > 0 && !this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.pump();
      }, RECHECK_MS);
      this.timer.unref();
    }
  }

  /** Nodes left out right now (for logs and tests). */
  silentNodes(): string[] {
    const now = Date.now();
    return [...this.marks].filter(([, m]) => isSilent(m, now, this.holdMaxMs)).map(([n]) => n);
  }

  /** Stop the recheck timer (the node is stopping); everything held goes out as it is. */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    for (const [s, q] of this.held) for (const h of q) s.sendFrom(ORDER_FILTER_ORDER, h.el);
    this.held.clear();
    this.heldNow = 0;
  }
}

/** What a MarkSource reads of the node around it. */
export interface MarkInputs {
  /** The archive clock (undefined without MAM: the node hands out no ids). */
  clock(): ArchiveClock | undefined;
  /** Archived messages queued for delivery and not yet delivered (Router.archivedPending). */
  pending(): number;
  /** Publish this node's mark (to every node and to its own gate). */
  publish(w: number): void;
}

/**
 * This node's order mark, kept as the router delivers. The router delivers archived messages in
 * the order their ids were taken, so once a message's copies are out, every seq up to its highest
 * is out ("through"), and every seq handed out since is still queued or belongs to nothing that
 * is delivered (a MUC room's row, a message a later hook consumed). The seqs handed out and not yet
 * covered by a delivery wait in `open`, in order: the mark is just below the oldest of them
 * (so an id another node took in between is covered as soon as this node's smaller ones are out);
 * with nothing queued it is the clock's floor (now). An ask is answered at once when the mark
 * covers it, else as soon as a delivery makes it do so. After a delivery that sent archived copies
 * to other nodes the mark is published unasked, right behind those copies, so their nodes need
 * not ask this one.
 */
export class MarkSource {
  private through = 0;
  /** Seqs handed out and not yet covered by a delivery, ascending (from `head`). */
  private open: number[] = [];
  private head = 0;
  private wanted: number | undefined;
  private publishQueued = false;
  private crossSent = false;

  constructor(private readonly inputs: MarkInputs) {}

  /** The archive clock handed out `seq` (ArchiveClock.onNext). */
  assigned(seq: number): void {
    this.open.push(seq);
  }

  /** The mark now: every archived copy of this node with seq <= it is out, none follows. */
  current(): number {
    const c = this.inputs.clock();
    if (!c) return Number.MAX_SAFE_INTEGER;
    if (this.inputs.pending() === 0 || this.head >= this.open.length) {
      // Nothing queued (or nothing queued carries an id): whatever was handed out is delivered or never will be.
      if (this.inputs.pending() === 0) this.clearOpen();
      return c.floor();
    }
    return Math.max(this.through, (this.open[this.head] as number) - 1);
  }

  private clearOpen(): void {
    this.open = [];
    this.head = 0;
  }

  /** A node (maybe this one) holds a copy with this seq. */
  asked(seq: number): void {
    // Later ids above what the asker holds: clocks of other hosts may lag (Lamport's rule).
    this.inputs.clock()?.atLeast(seq);
    if (this.current() >= seq) this.schedulePublish();
    else this.wanted = Math.max(this.wanted ?? 0, seq);
  }

  /** An archived copy went to another node (published on this node's Redis connection). */
  sentAcross(): void {
    this.crossSent = true;
  }

  /** The router delivered an archived message whose server-made ids have these seqs. */
  delivered(seqs: Array<number | undefined>): void {
    for (const q of seqs) if (q !== undefined && q > this.through) this.through = q;
    while (this.head < this.open.length && (this.open[this.head] as number) <= this.through) this.head++;
    if (this.head > 1024 && this.head * 2 > this.open.length) {
      this.open = this.open.slice(this.head);
      this.head = 0;
    }
    if (this.crossSent || (this.wanted !== undefined && this.current() >= this.wanted)) this.schedulePublish();
  }

  /** One publication per turn, of the mark at that moment (covers every ask and delivery before it). */
  private schedulePublish(): void {
    if (this.publishQueued) return;
    this.publishQueued = true;
    queueMicrotask(() => {
      this.publishQueued = false;
      this.crossSent = false;
      const w = this.current();
      if (this.wanted !== undefined && w >= this.wanted) this.wanted = undefined;
      this.inputs.publish(w);
    });
  }
}
