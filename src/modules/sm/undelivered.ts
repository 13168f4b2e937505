/**
 * Where a stanza goes when its session ends and the client never acked it
 * (or CSI never sent it). The rule (docs/stream-management.md): nothing is
 * lost, nothing doubled.
 *
 * - A client that uses MAM (MR2 stream, or it queried MAM on this session)
 *   catches up from the archive, so an archived message is simply dropped.
 * - For a legacy client, an unacked message goes to offline storage unless
 *   another resource of the account already got it (or it is already stored).
 * - IQ requests get an error reply; presence and the account's own sent
 *   copies are dropped (they are state, or already in the sender's archive).
 *
 * classifyUndelivered is pure and table-tested; DeliveryTracker remembers which
 * resources got which message so the "another resource got it" question has
 * an answer.
 */
import type { Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import type { Session } from '../../core/session.js';
import { messageType } from '../../core/routing.js';

export interface UndeliveredContext {
  /** Bare JID of the account the session belongs to. */
  account: string;
  /** MR2 stream, or the client queried MAM on this session: it catches up from the archive. */
  usesMam: boolean;
  /** Another resource of the account got this message (acked it, or still holds it unacked). */
  deliveredElsewhere: boolean;
  /** Another ended session already stored this message offline. */
  alreadyOffline: boolean;
}

export type UndeliveredVerdict =
  | { action: 'drop'; reason: string }
  | { action: 'bounce'; reason: string }
  /** `stanza` is what to store: the message itself, unwrapped from a carbons `received` copy. */
  | { action: 'offline'; reason: string; stanza: Element; archived: boolean };

/** The message inside a `<received/>` or `<sent/>` carbons/MR2 wrapper, if `el` is one. */
export function unwrapFork(el: Element): { kind: 'received' | 'sent'; inner: Element } | undefined {
  for (const kind of ['received', 'sent'] as const) {
    const w = el.getChild(kind, NS.CARBONS);
    const inner = w?.getChild('forwarded', NS.FORWARD)?.getChild('message');
    if (inner) return { kind, inner };
  }
  return undefined;
}

/** Does this copy carry the archive id of the account's own archive (XEP-0359 `by`)? */
export function archivedFor(msg: Element, account: string): boolean {
  for (const sid of msg.getChildren('stanza-id', NS.SID)) if (sid.attrs.by === account) return true;
  return false;
}

export function classifyUndelivered(el: Element, ctx: UndeliveredContext): UndeliveredVerdict {
  if (el.xmlns !== NS.CLIENT) return { action: 'drop', reason: 'nonza' };
  if (el.name === 'iq') {
    const t = el.attrs.type;
    return t === 'get' || t === 'set' ? { action: 'bounce', reason: 'iq-request' } : { action: 'drop', reason: 'iq-response' };
  }
  if (el.name !== 'message') return { action: 'drop', reason: el.name };
  const type = messageType(el);
  if (type === 'error' || type === 'groupchat' || type === 'headline') return { action: 'drop', reason: type };
  const fork = unwrapFork(el);
  // The account's own outgoing message: its sender has it, and it is in the sender's archive.
  if (fork?.kind === 'sent') return { action: 'drop', reason: 'own-sent-copy' };
  // A MAM result answers a query; the client can ask again.
  if (el.getChild('result', NS.MAM)) return { action: 'drop', reason: 'mam-result' };
  const msg = fork?.inner ?? el;
  const archived = archivedFor(msg, ctx.account);
  if (archived && ctx.usesMam) return { action: 'drop', reason: 'archived' };
  if (ctx.deliveredElsewhere) return { action: 'drop', reason: 'delivered-elsewhere' };
  if (ctx.alreadyOffline) return { action: 'drop', reason: 'already-offline' };
  return { action: 'offline', reason: archived ? 'legacy-client' : 'not-archived', stanza: msg, archived };
}

interface DeliveryInfo {
  /** Sessions that got a copy and have not acked it yet (SM queue or CSI held queue). */
  holders: Set<Session>;
  /** Sessions known to have it: acked under SM, or written to a stream without SM. */
  receivedBy: Set<Session>;
  offline: boolean;
}

/**
 * Which sessions got a copy of which message. Keyed weakly by the original
 * stanza object the router delivered, so the bookkeeping dies with it.
 */
export class DeliveryTracker {
  private readonly original = new WeakMap<Element, Element>();
  private readonly info = new WeakMap<Element, DeliveryInfo>();

  /** A copy of `original` went to `session`; `acks` tells whether it acks (SM) or counts as received at once. */
  delivered(original: Element, copy: Element, session: Session, acks: boolean): void {
    this.original.set(copy, original);
    let i = this.info.get(original);
    if (!i) {
      i = { holders: new Set(), receivedBy: new Set(), offline: false };
      this.info.set(original, i);
    }
    (acks ? i.holders : i.receivedBy).add(session);
  }

  private of(copy: Element): DeliveryInfo | undefined {
    const o = this.original.get(copy);
    return o ? this.info.get(o) : undefined;
  }

  acked(copy: Element, session: Session): void {
    const i = this.of(copy);
    if (!i) return;
    i.holders.delete(session);
    i.receivedBy.add(session);
  }

  /** Another session has the message or still may get it (it holds a copy and is not closed). */
  elsewhere(copy: Element, session: Session): boolean {
    const i = this.of(copy);
    if (!i) return false;
    for (const s of i.receivedBy) if (s !== session) return true;
    for (const s of i.holders) if (s !== session && !s.closed) return true;
    return false;
  }

  /** The session gave up its copy (ended without acking it). */
  released(copy: Element, session: Session): void {
    this.of(copy)?.holders.delete(session);
  }

  isOffline(copy: Element): boolean {
    return this.of(copy)?.offline ?? false;
  }

  markOffline(copy: Element): void {
    const i = this.of(copy);
    if (i) i.offline = true;
  }
}
