/**
 * Presence decisions (RFC 6121 §4) as pure functions: what a presence stanza
 * is, and who gets what when a resource sends broadcast presence or goes
 * away. The roster service turns a plan into stanzas.
 */
import type { Element } from '../../xml/element.js';
import { hasFrom, hasTo, isSubscriptionType, type Subscription, type SubscriptionType } from './states.js';

export type PresenceKind = 'available' | 'unavailable' | 'probe' | 'error' | SubscriptionType | 'invalid';

export function presenceKind(type: string | undefined): PresenceKind {
  if (type === undefined) return 'available';
  if (type === 'unavailable' || type === 'probe' || type === 'error') return type;
  if (isSubscriptionType(type)) return type;
  return 'invalid';
}

/** §4.7.2.3: an integer from -128 to 127, 0 when absent. Out-of-range values are clamped, garbage counts as 0. */
export function parsePriority(presence: Element): number {
  const el = presence.getChild('priority', presence.xmlns);
  if (!el) return 0;
  const t = el.text().trim();
  if (!/^[+-]?\d+$/.test(t)) return 0;
  const n = Number(t);
  return Math.max(-128, Math.min(127, n));
}

export interface ContactView {
  jid: string;
  subscription: Subscription;
}

export interface ResourceView {
  resource: string;
  available: boolean;
}

export interface BroadcastInput {
  /** 'available' (initial or update) or 'unavailable' (sent, or the session ended). */
  kind: 'available' | 'unavailable';
  /** The resource was available before this stanza. */
  wasAvailable: boolean;
  /** The account's roster. */
  contacts: readonly ContactView[];
  /** JIDs that got directed presence from this resource (§4.6). */
  directedTo: Iterable<string>;
  /** The account's other resources (not the sender). */
  others: readonly ResourceView[];
  /** The stanza came from the client (false: the session ended abruptly). */
  fromClient: boolean;
}

export interface BroadcastPlan {
  /** Bare JIDs of contacts that get the presence (subscription from/both, §4.2.2, §4.4.2, §4.5.2). */
  contacts: string[];
  /** JIDs of directed-presence targets that get unavailable (§4.6.3); the list is then cleared. */
  directed: string[];
  /** Other resources of the account that get the presence. */
  ownResources: string[];
  /** Reflect the presence to the sending resource itself (§4.2.2, §4.4.2). */
  reflect: boolean;
  /** Initial presence: probe these contacts (subscription to/both, §4.2.2) for the new resource. */
  probe: string[];
  /** Initial presence: send the presence of these other resources to the new resource. */
  ownPresenceTo: string[];
  /** Initial presence: re-send pending inbound subscription requests to the new resource (§3.1.3). */
  resendPending: boolean;
  reason: string;
}

function bareOf(jid: string): string {
  const i = jid.indexOf('/');
  return i < 0 ? jid : jid.slice(0, i);
}

export function planBroadcast(i: BroadcastInput): BroadcastPlan {
  const empty: BroadcastPlan = {
    contacts: [],
    directed: [],
    ownResources: [],
    reflect: false,
    probe: [],
    ownPresenceTo: [],
    resendPending: false,
    reason: '',
  };
  const availableOthers = i.others.filter((r) => r.available).map((r) => r.resource);
  if (i.kind === 'unavailable') {
    const directed = [...i.directedTo];
    if (!i.wasAvailable) {
      // Never became available: only undo directed presence.
      return { ...empty, directed, reason: directed.length ? 'directed-only' : 'was-not-available' };
    }
    const contacts = i.contacts.filter((c) => hasFrom(c.subscription)).map((c) => c.jid);
    // A directed-presence target that is also a subscriber gets the broadcast copy: not twice.
    const subscribers = new Set(contacts);
    return {
      ...empty,
      contacts,
      directed: directed.filter((d) => !subscribers.has(bareOf(d))),
      ownResources: availableOthers,
      reason: i.fromClient ? 'unavailable' : 'session-ended',
    };
  }
  const contacts = i.contacts.filter((c) => hasFrom(c.subscription)).map((c) => c.jid);
  if (i.wasAvailable) return { ...empty, contacts, ownResources: availableOthers, reflect: true, reason: 'update' };
  return {
    ...empty,
    contacts,
    ownResources: availableOthers,
    reflect: true,
    probe: i.contacts.filter((c) => hasTo(c.subscription)).map((c) => c.jid),
    ownPresenceTo: availableOthers,
    resendPending: true,
    reason: 'initial',
  };
}
