/**
 * Archive-id order of deliveries per recipient across cluster nodes: the decision (pure).
 *
 * On one node every recipient sees ascending archive ids: ids are taken in hook order and the
 * router delivers archived messages in that order (Router.deliveryTail). In a cluster each node
 * takes ids from its own clock, and two nodes' deliveries to one session meet on the session's
 * node: node A's id 100 may arrive after node B's 101. A client that saw 101 and then lost its
 * connection would ask MAM for "after 101" and never see 100.
 *
 * So a node holds an archived copy for one of its sessions until it knows that no node will still
 * deliver a smaller id. Every node N has a *mark* here: "every archived delivery of N with
 * seq <= w has reached this node, and none with seq <= w will follow". A node makes its mark by
 * raising its archive clock to now (so later ids are above it) and waiting until its router has
 * delivered everything queued (Router.routedSoFar()); it publishes the mark on the same Redis
 * connection as its deliveries, so the mark arrives after them (pub/sub keeps one connection's
 * order). Marks are asked for when something waits, never sent by an idle cluster.
 *
 * Per session the held copies form one FIFO queue: an archived copy is inserted before the first
 * held archived copy with a higher seq (a later-arriving smaller id goes first), anything else
 * (presence, IQs, messages without this account's archive id) goes to the end, so it never
 * overtakes what was held before it. The head is released when it is not archived, or when every
 * counted node's mark is at or above its seq.
 *
 * A node that leaves (graceful stop, or reaped after cluster.nodeTimeout) is no longer counted. A
 * node that has not answered an ask for `holdMaxMs` is *silent* and not counted until it answers
 * again: a node that died delivers nothing more, and one that is merely stalled is the only case
 * in which order can still be lost (counted in verona_cluster_order_released_total{reason=silent}).
 */

/** What this node knows of one node (itself included). */
export interface NodeMark {
  /** Every archived delivery of the node with seq <= w has arrived here and none with seq <= w follows. */
  w: number;
  /** Since when (ms) an ask to the node is unanswered; undefined when none is. */
  silentSince?: number;
}

/** One held element, in queue order. */
export interface HeldItem {
  /** The session's archive seq carried by the element (its <stanza-id/>), undefined when none. */
  seq: number | undefined;
}

export type ReleaseReason = 'not-archived' | 'marks' | 'silent';

export interface Decision {
  /** Release this many items from the head of the queue, for these reasons (one per item). */
  reasons: ReleaseReason[];
  /** The seq that keeps the head held (undefined when the queue is released entirely). */
  blockedAt: number | undefined;
  /** The counted nodes whose mark is below blockedAt: ask them for a new mark. */
  waitingFor: string[];
}

/** Is the node left out of decisions (no answer to an ask within holdMaxMs)? */
export function isSilent(m: NodeMark, now: number, holdMaxMs: number): boolean {
  return m.silentSince !== undefined && now - m.silentSince >= holdMaxMs;
}

/** Counted nodes whose mark is below `seq`, and whether a silent node's mark was below it too. */
function below(seq: number, marks: ReadonlyMap<string, NodeMark>, now: number, holdMaxMs: number): { waiting: string[]; skippedSilent: boolean } {
  const waiting: string[] = [];
  let skippedSilent = false;
  for (const [node, m] of marks) {
    if (m.w >= seq) continue;
    if (isSilent(m, now, holdMaxMs)) skippedSilent = true;
    else waiting.push(node);
  }
  return { waiting, skippedSilent };
}

/** What to release from the head of one session's queue. */
export function decide(queue: readonly HeldItem[], marks: ReadonlyMap<string, NodeMark>, now: number, holdMaxMs: number): Decision {
  const reasons: ReleaseReason[] = [];
  for (const item of queue) {
    if (item.seq === undefined) {
      reasons.push('not-archived');
      continue;
    }
    const { waiting, skippedSilent } = below(item.seq, marks, now, holdMaxMs);
    if (waiting.length > 0) return { reasons, blockedAt: item.seq, waitingFor: waiting.sort() };
    reasons.push(skippedSilent ? 'silent' : 'marks');
  }
  return { reasons, blockedAt: undefined, waitingFor: [] };
}

/**
 * Where a new item goes in a held queue: an archived one before the first held archived item
 * with a higher seq (so ids leave in ascending order), anything else at the end (FIFO).
 */
export function insertAt(queue: readonly HeldItem[], seq: number | undefined): number {
  if (seq === undefined) return queue.length;
  for (let i = 0; i < queue.length; i++) {
    const s = (queue[i] as HeldItem).seq;
    if (s !== undefined && s > seq) return i;
  }
  return queue.length;
}
