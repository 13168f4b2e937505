/**
 * Message routing decisions as pure functions: data in, deliveries out, each
 * with the reason it was made. No I/O here; the router applies the result.
 *
 * Base: RFC 6121 §8.5 (local user's bare and full JIDs). Refined by the
 * Verona chat-state rules (docs/protocol.md): MR2 streams receive forks of
 * every message type but groupchat/error (outgoing) and groupchat/error/
 * headline (incoming); legacy Carbons resources get XEP-0280 copies.
 * Invariant: one resource never receives two copies of one message.
 */

export type MessageType = 'normal' | 'chat' | 'groupchat' | 'headline' | 'error';

/** What routing needs to know about one bound resource of an account. */
export interface SessionView {
  resource: string;
  priority: number;
  /** Has sent initial presence and not gone unavailable. */
  available: boolean;
  /** Enabled urn:xmpp:mr2:0 on its stream. */
  mr2: boolean;
  /** Enabled XEP-0280 carbons (legacy clients). */
  carbons: boolean;
}

export type CopyShape = 'plain' | 'received' | 'sent';

export interface Delivery {
  resource: string;
  shape: CopyShape;
  reason: string;
}

export interface IncomingDecision {
  deliveries: Delivery[];
  /** No resource took the message: store offline (XEP-0160) when the type allows it. */
  offline: boolean;
  /** Bounce with this error instead (never leaks presence: same error whether or not resources exist). */
  bounce?: 'service-unavailable';
  reason: string;
}

export interface IncomingMessage {
  type: MessageType;
  /** Resource of the `to` JID, or undefined for the bare JID. */
  toResource: string | undefined;
  /** XEP-0280 §6 eligibility, computed by carbonsEligible(). */
  carbonsEligible: boolean;
}

export interface OutgoingMessage {
  type: MessageType;
  fromResource: string;
  carbonsEligible: boolean;
}

/**
 * RFC 6121 §5.2.2: a message without a type, or with a type we do not
 * understand, is handled as 'normal'. This is the one normalisation every
 * decision about a message uses (routing, archive, offline, carbons, MR2,
 * CSI, SM's undelivered handling), so an unknown type is never treated one
 * way by the router and another by the archive.
 */
export function normalizeType(t: string | undefined): MessageType {
  switch (t) {
    case 'chat':
    case 'groupchat':
    case 'headline':
    case 'error':
      return t;
    default:
      return 'normal';
  }
}

/** The normalised type of a message stanza (see normalizeType). */
export function messageType(msg: { attrs: Record<string, string | undefined> }): MessageType {
  return normalizeType(msg.attrs.type);
}

/** MR2 incoming fork rule: every type except groupchat, error, headline. */
export function mr2ForksIncoming(type: MessageType): boolean {
  return type !== 'groupchat' && type !== 'error' && type !== 'headline';
}

/** MR2 outgoing fork rule: every type except groupchat and error. */
export function mr2ForksOutgoing(type: MessageType): boolean {
  return type !== 'groupchat' && type !== 'error';
}

/**
 * RFC 6121 §8.5.2: which resources take a message addressed to the bare JID,
 * before forks. Chat and normal go to the available resource(s) of highest
 * non-negative priority (all of them when tied); headline to every available
 * non-negative resource; groupchat and error to none.
 */
function rfcBareTargets(type: MessageType, sessions: readonly SessionView[]): SessionView[] {
  const eligible = sessions.filter((s) => s.available && s.priority >= 0);
  if (eligible.length === 0) return [];
  switch (type) {
    case 'normal':
    case 'chat': {
      let top = -1;
      for (const s of eligible) if (s.priority > top) top = s.priority;
      return eligible.filter((s) => s.priority === top);
    }
    case 'headline':
      return eligible;
    default:
      return [];
  }
}

/** Messages to a local account (bare or full JID). */
export function decideIncoming(msg: IncomingMessage, sessions: readonly SessionView[]): IncomingDecision {
  const out: Delivery[] = [];
  const taken = new Set<string>();
  const add = (resource: string, shape: CopyShape, reason: string): void => {
    if (taken.has(resource)) return;
    taken.add(resource);
    out.push({ resource, shape, reason });
  };

  const addressed = msg.toResource === undefined ? undefined : sessions.find((s) => s.resource === msg.toResource);

  if (addressed) {
    // §8.5.3.1: the full JID exists; deliver to it whatever its priority.
    add(addressed.resource, 'plain', 'full-jid');
  } else {
    if (msg.toResource !== undefined) {
      // §8.5.3.2.1: the resource is gone. chat falls back to the bare JID; so does normal (protocol.md:
      // "a full JID whose resource is gone: treat as addressed to the bare JID", since MR2 forks normal
      // messages too, where RFC 6121 would let the server drop them). groupchat is bounced (a MUC service
      // learns the occupant is gone); headline and error are silently ignored.
      if (msg.type === 'groupchat') {
        return { deliveries: [], offline: false, bounce: 'service-unavailable', reason: 'full-jid-gone-groupchat' };
      }
      if (msg.type === 'headline' || msg.type === 'error') {
        return { deliveries: [], offline: false, reason: `full-jid-gone-${msg.type}-dropped` };
      }
    }
    if (msg.type === 'groupchat') {
      // §8.5.2.1.2: groupchat to a bare JID is an error whether or not resources exist.
      return { deliveries: [], offline: false, bounce: 'service-unavailable', reason: 'groupchat-to-bare' };
    }
    if (msg.type === 'error') return { deliveries: [], offline: false, reason: 'error-to-bare-dropped' };
    for (const s of rfcBareTargets(msg.type, sessions)) add(s.resource, 'plain', `rfc6121-bare-${msg.type}`);
    if (mr2ForksIncoming(msg.type)) {
      // MR2: every MR2 resource gets the plain copy, even at negative priority.
      for (const s of sessions) if (s.mr2) add(s.resource, 'plain', 'mr2-bare');
    }
  }

  // Forks to the account's other resources.
  const toBare = addressed === undefined;
  for (const s of sessions) {
    if (taken.has(s.resource)) continue;
    if (s.mr2) {
      if (mr2ForksIncoming(msg.type)) add(s.resource, toBare ? 'plain' : 'received', toBare ? 'mr2-bare' : 'mr2-received');
    } else if (s.carbons && msg.carbonsEligible && s.available) {
      add(s.resource, 'received', 'carbons-received');
    }
  }

  // A carbon is a copy for a client that is watching, not delivery: when nobody got the message
  // itself (only legacy 'received' carbons went out), chat/normal still go to offline storage
  // (§8.5.2.2), so that a legacy client that comes online later gets them.
  const plain = out.some((d) => d.shape === 'plain');
  if (plain) return { deliveries: out, offline: false, reason: 'delivered' };
  if (msg.type === 'chat' || msg.type === 'normal') {
    return { deliveries: out, offline: true, reason: out.length > 0 ? 'carbons-only-and-offline' : 'no-available-resource' };
  }
  if (out.length > 0) return { deliveries: out, offline: false, reason: 'delivered' };
  return { deliveries: [], offline: false, reason: `no-resource-${msg.type}-dropped` };
}

/** Copies of a message sent by one of the account's resources, for its other resources. */
export function decideOutgoing(msg: OutgoingMessage, sessions: readonly SessionView[], exclude?: ReadonlySet<string>): Delivery[] {
  const out: Delivery[] = [];
  for (const s of sessions) {
    if (s.resource === msg.fromResource || exclude?.has(s.resource)) continue;
    if (s.mr2) {
      if (mr2ForksOutgoing(msg.type)) out.push({ resource: s.resource, shape: 'sent', reason: 'mr2-sent' });
    } else if (s.carbons && s.available && msg.carbonsEligible) {
      out.push({ resource: s.resource, shape: 'sent', reason: 'carbons-sent' });
    }
  }
  return out;
}
