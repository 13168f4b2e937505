/**
 * Pure classification of message stanzas used by routing policies. Each
 * function returns its verdict with a reason, for logs, metrics and tests.
 */
import type { Element } from '../xml/element.js';
import { NS } from './namespaces.js';
import { messageType } from './routing.js';

export interface Verdict {
  ok: boolean;
  reason: string;
}

const IM_PAYLOAD_NS = new Set([
  'urn:xmpp:receipts',
  'urn:xmpp:chat-markers:0',
  'http://jabber.org/protocol/chatstates',
  'urn:xmpp:message-correct:0',
  'urn:xmpp:message-retract:1',
  'urn:xmpp:reactions:0',
  'eu.siacs.conversations.axolotl',
  'urn:xmpp:omemo:2',
  'jabber:x:encrypted',
  'urn:xmpp:openpgp:0',
]);

/** XEP-0280 §6 with urn:xmpp:carbons:rules:0: may a legacy Carbons client get a copy? */
export function carbonsEligible(msg: Element): Verdict {
  const type = messageType(msg);
  if (msg.getChild('private', NS.CARBONS)) return { ok: false, reason: 'private' };
  if (msg.getChild('no-copy', NS.HINTS)) return { ok: false, reason: 'no-copy-hint' };
  if (msg.getChild('received', NS.CARBONS) || msg.getChild('sent', NS.CARBONS)) return { ok: false, reason: 'already-a-carbon' };
  if (type === 'groupchat' || type === 'error' || type === 'headline') return { ok: false, reason: `type-${type}` };
  if (type === 'chat') return { ok: true, reason: 'chat' };
  if (msg.getChild('body')) return { ok: true, reason: 'normal-with-body' };
  for (const c of msg.children) {
    if (typeof c !== 'string' && IM_PAYLOAD_NS.has(c.xmlns)) return { ok: true, reason: 'im-payload' };
  }
  return { ok: false, reason: 'normal-without-im-payload' };
}
