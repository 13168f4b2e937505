/**
 * PEP policy as pure functions with reasons: who may read a node (XEP-0060
 * §4.5 access models), which resources get a notification (XEP-0163 §4:
 * implicit subscription = presence subscription + `NODE+notify` in caps),
 * and which last items a resource gets when it comes online or starts to
 * care about a node (XEP-0163 §6.2 / XEP-0060 pubsub#send_last_published_item).
 */
import type { AccessModel, Affiliation, NodeConfig } from '../../storage/pubsub.js';

/** What the server knows about the entity asking, relative to the node's owner. */
export interface Relation {
  /** The account itself (any of its resources). */
  isOwner: boolean;
  /** The owner lets it see presence (subscription from/both), or it is the owner. */
  canSeePresence: boolean;
  affiliation: Affiliation | undefined;
}

export type AccessDecision =
  | { allowed: true; reason: string }
  /** XEP-0060 §6.5.9.x conditions: the pubsub#errors element to send. */
  | { allowed: false; reason: 'presence-subscription-required' | 'closed-node' | 'outcast' };

export function accessDecision(model: AccessModel, rel: Relation): AccessDecision {
  if (rel.isOwner) return { allowed: true, reason: 'owner' };
  if (rel.affiliation === 'outcast') return { allowed: false, reason: 'outcast' };
  switch (model) {
    case 'open':
      return { allowed: true, reason: 'open' };
    case 'presence':
      return rel.canSeePresence ? { allowed: true, reason: 'presence-subscriber' } : { allowed: false, reason: 'presence-subscription-required' };
    case 'whitelist':
      return rel.affiliation === 'member' || rel.affiliation === 'publisher'
        ? { allowed: true, reason: 'whitelisted' }
        : { allowed: false, reason: 'closed-node' };
  }
}

/** One bound resource that could receive a notification. */
export interface Candidate {
  /** Full JID. */
  jid: string;
  /** Has sent available presence (and not gone unavailable). */
  available: boolean;
  /** Nodes its caps ask notifications for; undefined while caps are unknown. */
  notify: ReadonlySet<string> | undefined;
  relation: Relation;
}

export interface Target {
  jid: string;
  reason: string;
}

export interface Skip {
  jid: string;
  reason: string;
}

/**
 * Resources that get the notification of an event on `node`: available, caps
 * include NODE+notify, allowed by the access model. The candidates are the
 * owner's resources and those of its presence subscribers.
 */
export function notificationTargets(node: string, config: NodeConfig, candidates: readonly Candidate[]): { targets: Target[]; skipped: Skip[] } {
  const targets: Target[] = [];
  const skipped: Skip[] = [];
  const seen = new Set<string>();
  for (const c of candidates) {
    if (seen.has(c.jid)) continue;
    seen.add(c.jid);
    if (!config.deliverNotifications) skipped.push({ jid: c.jid, reason: 'notifications-off' });
    else if (!c.available) skipped.push({ jid: c.jid, reason: 'unavailable' });
    else if (c.notify === undefined) skipped.push({ jid: c.jid, reason: 'caps-unknown' });
    else if (!c.notify.has(node)) skipped.push({ jid: c.jid, reason: 'no-notify' });
    else {
      const a = accessDecision(config.accessModel, c.relation);
      if (a.allowed) targets.push({ jid: c.jid, reason: a.reason });
      else skipped.push({ jid: c.jid, reason: a.reason });
    }
  }
  return { targets, skipped };
}

/**
 * Why a resource is getting last items now:
 * - 'presence': it came online (initial available presence);
 * - 'subscribe': it newly became an implicit subscriber (caps now include
 *   +notify for the node, or the owner approved its presence subscription).
 */
export type LastItemTrigger = 'presence' | 'subscribe';

/** Should the last item of a node go to a resource, for this trigger? */
export function sendLastItem(
  node: string,
  config: NodeConfig,
  notify: ReadonlySet<string>,
  rel: Relation,
  trigger: LastItemTrigger,
): { send: boolean; reason: string } {
  if (!config.deliverNotifications) return { send: false, reason: 'notifications-off' };
  if (!notify.has(node)) return { send: false, reason: 'no-notify' };
  if (config.sendLastPublishedItem === 'never') return { send: false, reason: 'never' };
  if (config.sendLastPublishedItem === 'on_sub' && trigger === 'presence') return { send: false, reason: 'on-sub-only' };
  const a = accessDecision(config.accessModel, rel);
  return a.allowed ? { send: true, reason: a.reason } : { send: false, reason: a.reason };
}

/** Nodes a resource newly asks notifications for (present now, absent before). */
export function newInterests(before: ReadonlySet<string> | undefined, after: ReadonlySet<string>): Set<string> {
  const out = new Set<string>();
  for (const n of after) if (!before?.has(n)) out.add(n);
  return out;
}
