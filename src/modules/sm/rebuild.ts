/**
 * After a crash (kill -9, power loss) a resumable session comes back from its live checkpoint
 * (docs/stream-management.md, "After a crash"). Its unacked outbound queue died with the process;
 * these pure functions decide what the resumed stream gets instead, from the archive, and which
 * stanzas the client sends again were already handled. Table-tested in test/unit/sm-rebuild.test.ts.
 *
 * Outbound: every archived stanza reaches a client's wire only after the checkpoint that records
 * its outbound number and archive id is committed (sm/index.ts holds it back until then). So for
 * the client's `h` the server knows exactly which archived stanzas the client had: those with a
 * number <= h, and every one acked before. What is in the archive after the last acked one and was
 * not among them is sent again, in archive order, shaped as the router would have shaped it
 * (plain, or a carbons/MR2 `received`/`sent` copy), with its `<stanza-id/>`.
 *
 * Inbound: the checkpoint's `h` may lag by one commit window. A message the client sends again
 * that is already in its own archive (same sender full JID, `to` and message id) was handled
 * before the crash: it is counted and not routed again.
 */
import type { Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { decideIncoming, decideOutgoing, messageType, type CopyShape, type SessionView } from '../../core/routing.js';
import { carbonsEligible } from '../../core/eligibility.js';
import { tryParseJID } from '../../jid/jid.js';
import { H_MOD, wireH } from './state.js';
import { unwrapFork } from './undelivered.js';

/** The archive id this copy carries for `account` (bare JID), on the message or inside its fork wrapper. */
export function archiveIdIn(el: Element, account: string): string | undefined {
  if (el.name !== 'message') return undefined;
  const msg = unwrapFork(el)?.inner ?? el;
  for (const sid of msg.getChildren('stanza-id', NS.SID)) if (sid.attrs.by === account) return sid.attrs.id;
  return undefined;
}

/**
 * The plain outbound count a client's wire `h` stands for, given the checkpoint's acked count:
 * an `h` behind it (stale, within half the counter space) means nothing more was received.
 */
export function clientCount(h: number, acked: number): number {
  const delta = (h - wireH(acked) + H_MOD) % H_MOD;
  return delta >= H_MOD / 2 ? acked : acked + delta;
}

/** Archive ids the client already has among the recorded unacked ones: number <= its count. */
export function deliveredIds(pending: ReadonlyArray<readonly [number, string]>, count: number): Set<string> {
  const out = new Set<string>();
  for (const [n, id] of pending) if (n <= count) out.add(id);
  return out;
}

/** An archive row as the rebuild needs it. */
export interface ArchivedRow {
  id: string;
  outgoing: boolean;
  msg: Element;
}

/**
 * The copy of one archived message a session gets, or undefined when the router would not
 * have sent it one: the fork rules of src/core/routing.ts applied to this session alone (an
 * addressed other resource is assumed to have been online, so the session gets a fork of it
 * only, as its flags say).
 */
export function copyShapeFor(row: ArchivedRow, view: SessionView): CopyShape | undefined {
  const type = messageType(row.msg);
  const eligible = carbonsEligible(row.msg).ok;
  if (row.outgoing) {
    const from = tryParseJID(row.msg.attrs.from);
    if (!from) return undefined;
    return decideOutgoing({ type, fromResource: from.resource, carbonsEligible: eligible }, [view])[0]?.shape;
  }
  const to = tryParseJID(row.msg.attrs.to);
  if (!to) return undefined;
  const toResource = to.isBare() ? undefined : to.resource;
  const sessions: SessionView[] = [view];
  if (toResource !== undefined && toResource !== view.resource) sessions.push({ resource: toResource, priority: 0, available: true, mr2: false, carbons: false });
  const d = decideIncoming({ type, toResource, carbonsEligible: eligible }, sessions).deliveries.find((x) => x.resource === view.resource);
  return d?.shape;
}

/** Key under which a message the client sends again is recognised in its archive. */
export function resendKey(msg: Element): string | undefined {
  const id = msg.attrs.id;
  const to = msg.attrs.to;
  if (msg.name !== 'message' || !id || !to) return undefined;
  return `${to}\u0000${id}`;
}

/** Keys of the messages `fullJid` sent, from its account's archive rows. */
export function sentKeys(rows: readonly ArchivedRow[], fullJid: string): Set<string> {
  const out = new Set<string>();
  for (const r of rows) {
    if (!r.outgoing || r.msg.attrs.from !== fullJid) continue;
    const k = resendKey(r.msg);
    if (k) out.add(k);
  }
  return out;
}
