/**
 * When to wake a phone (XEP-0357 push), as pure functions with reasons: the
 * reason goes to metrics (`verona_push_decisions_total{reason}`), logs and
 * the table test in test/unit/push-decide.test.ts.
 */
import type { Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';

/** What a message carries, for push purposes. */
export type PushContent =
  | 'body'
  | 'encrypted'
  /** XEP-0353 call proposal. */
  | 'call'
  | 'chat-state'
  | 'receipt'
  | 'marker'
  | 'presence'
  /** Anything else a message may carry (reactions, retractions, ...). */
  | 'other'
  /** groupchat, headline, error: never pushed. */
  | 'none';

/** Where the device that owns the registration is. */
export type DeviceState =
  /** A bound session with a live stream, CSI active. */
  | 'active'
  /** A live stream, but the client said it is inactive (XEP-0352). */
  | 'csi-inactive'
  /** Stream gone, session kept for resumption (XEP-0198). */
  | 'hibernated'
  /** No session for the device at all. */
  | 'offline';

export interface PushInput {
  content: PushContent;
  /** The message went into the account's archive (MAM). */
  archived: boolean;
  device: DeviceState;
  /** The device's session got a copy on the wire (not queued for resumption). */
  deliveredLive: boolean;
  /** A push to this registration is outstanding: the device has not come back since. */
  outstanding: boolean;
  /** This message already caused a push to this registration (e.g. archive and offline paths). */
  alreadyPushed: boolean;
}

export type PushAction = 'push' | 'coalesce' | 'skip';

export interface PushDecision {
  action: PushAction;
  reason: string;
}

const URGENT = new Set<PushContent>(['body', 'encrypted', 'call']);

export function isUrgent(c: PushContent): boolean {
  return URGENT.has(c);
}

/**
 * The decision for one message and one registration:
 * - never twice for one message; never for chat states or presence;
 * - nothing for a device that got it live;
 * - a CSI-inactive device only for urgent content (a body, encrypted, a call);
 * - a hibernated or offline device for urgent or archived content;
 * - while a push is outstanding, further messages are coalesced into it.
 */
export function decidePush(i: PushInput): PushDecision {
  if (i.alreadyPushed) return { action: 'skip', reason: 'already-pushed' };
  if (i.content === 'none') return { action: 'skip', reason: 'not-pushable-type' };
  if (i.content === 'chat-state' || i.content === 'presence') return { action: 'skip', reason: i.content };
  const urgent = isUrgent(i.content);
  switch (i.device) {
    case 'active':
      return { action: 'skip', reason: i.deliveredLive ? 'delivered-live' : 'live-session' };
    case 'csi-inactive':
      if (!urgent) return { action: 'skip', reason: 'csi-not-urgent' };
      break;
    case 'hibernated':
    case 'offline':
      if (!urgent && !i.archived) return { action: 'skip', reason: 'not-archived' };
      break;
  }
  if (i.outstanding) return { action: 'coalesce', reason: 'outstanding' };
  return { action: 'push', reason: `${i.device}-${urgent ? 'urgent' : 'archived'}` };
}

/** Namespaces of end-to-end encrypted payloads. */
const ENCRYPTED = new Set(['eu.siacs.conversations.axolotl', 'urn:xmpp:omemo:2', 'jabber:x:encrypted', 'urn:xmpp:openpgp:0']);
const NS_JMI = 'urn:xmpp:jingle-message:0';
const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates';
const NS_RECEIPTS = 'urn:xmpp:receipts';
const NS_MARKERS = 'urn:xmpp:chat-markers:0';
const NEUTRAL = new Set<string>([NS.SID, NS.HINTS, NS.DELAY, 'urn:xmpp:sid:0']);

/** Classify a message for push (pure). */
export function pushContent(msg: Element): PushContent {
  if (msg.name === 'presence') return 'presence';
  const type = msg.attrs.type ?? 'normal';
  if (type === 'groupchat' || type === 'headline' || type === 'error') return 'none';
  if (msg.getChild('body')) return 'body';
  let seen: PushContent | undefined;
  for (const c of msg.elements()) {
    if (ENCRYPTED.has(c.xmlns)) return 'encrypted';
    if (c.xmlns === NS_JMI && c.name === 'propose') return 'call';
    if (NEUTRAL.has(c.xmlns) || (c.name === 'thread' && c.xmlns === NS.CLIENT)) continue;
    const kind: PushContent = c.xmlns === NS_CHATSTATES ? 'chat-state' : c.xmlns === NS_RECEIPTS ? 'receipt' : c.xmlns === NS_MARKERS ? 'marker' : 'other';
    // 'other' wins over the quiet kinds: a reaction with a chat state is still a reaction.
    if (seen === undefined || kind === 'other') seen = kind;
  }
  return seen ?? 'none';
}
