/**
 * What goes into an archive: pure functions with a reason for every verdict
 * (logged, counted, and table-tested in test/unit/mam-rules.test.ts).
 *
 * Rules (docs/protocol.md "What is archived"): messages of type chat or
 * normal that carry a body, an encrypted payload, a delivery receipt
 * (XEP-0184), a chat marker (XEP-0333), a correction (XEP-0308), a
 * retraction (XEP-0424), a reaction (XEP-0444), or a <store/> hint
 * (XEP-0334). Never: chat states alone, <no-store/> or
 * <no-permanent-store/>, errors, groupchat, headline.
 */
import type { Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import type { ArchivePrefs } from '../../storage/archive.js';
import { messageType } from '../../core/routing.js';

export interface Verdict {
  ok: boolean;
  reason: string;
}

/** Payloads that make a message worth archiving, by namespace, with the element names that count. */
const ARCHIVED_PAYLOADS: ReadonlyArray<{ ns: string; names?: readonly string[]; reason: string }> = [
  { ns: 'eu.siacs.conversations.axolotl', names: ['encrypted'], reason: 'encrypted-omemo' },
  { ns: 'urn:xmpp:omemo:2', names: ['encrypted'], reason: 'encrypted-omemo2' },
  { ns: 'urn:xmpp:openpgp:0', names: ['openpgp'], reason: 'encrypted-ox' },
  { ns: 'jabber:x:encrypted', reason: 'encrypted-pgp' },
  { ns: 'urn:xmpp:eme:0', names: ['encryption'], reason: 'encrypted-eme' },
  // A receipt is the <received/>; a <request/> travels with a body anyway.
  { ns: 'urn:xmpp:receipts', names: ['received'], reason: 'receipt' },
  // Markers are the acknowledgements; <markable/> rides on a message with a body.
  { ns: 'urn:xmpp:chat-markers:0', names: ['received', 'displayed', 'acknowledged'], reason: 'chat-marker' },
  { ns: 'urn:xmpp:message-correct:0', names: ['replace'], reason: 'correction' },
  { ns: 'urn:xmpp:message-retract:1', names: ['retract'], reason: 'retraction' },
  { ns: 'urn:xmpp:message-retract:0', names: ['retract'], reason: 'retraction' },
  // XEP-0424 before version 0.4 wrapped the retraction in a XEP-0422 <apply-to/>.
  { ns: 'urn:xmpp:fasten:0', names: ['apply-to'], reason: 'fastening' },
  { ns: 'urn:xmpp:reactions:0', names: ['reactions'], reason: 'reaction' },
];

/** Should this message be stored in the archives of its parties (before preferences)? */
export function archiveVerdict(msg: Element): Verdict {
  const type = messageType(msg);
  if (type !== 'chat' && type !== 'normal') return { ok: false, reason: `type-${type}` };
  if (msg.getChild('no-store', NS.HINTS)) return { ok: false, reason: 'no-store-hint' };
  if (msg.getChild('no-permanent-store', NS.HINTS)) return { ok: false, reason: 'no-permanent-store-hint' };
  // A carbon or MAM result wrapper sent by a client is not a conversation message.
  if (msg.getChild('sent', NS.CARBONS) || msg.getChild('received', NS.CARBONS)) return { ok: false, reason: 'carbon-wrapper' };
  if (msg.getChild('result', NS.MAM)) return { ok: false, reason: 'mam-result' };
  const p = contentReason(msg);
  return p === undefined ? { ok: false, reason: 'no-archivable-payload' } : { ok: true, reason: p };
}

/**
 * Why this message holds conversation content (body, encrypted payload,
 * receipt, marker, correction, retraction, reaction, <store/> hint), or
 * undefined when it does not (e.g. a chat state alone). Type and hints
 * other than <store/> are not looked at.
 */
export function contentReason(msg: Element): string | undefined {
  if (msg.getChild('body') !== undefined) return 'body';
  for (const c of msg.children) {
    if (typeof c === 'string') continue;
    for (const p of ARCHIVED_PAYLOADS) {
      if (c.xmlns === p.ns && (p.names === undefined || p.names.includes(c.name))) return p.reason;
    }
  }
  if (msg.getChild('store', NS.HINTS)) return 'store-hint';
  return undefined;
}

/**
 * XEP-0441 preferences: `never` wins over `always`, both over the default.
 * Returns true/false, or 'roster' when the answer depends on whether the
 * contact is in the roster (the caller looks it up).
 */
export function prefsAllow(prefs: ArchivePrefs | undefined, withBare: string): boolean | 'roster' {
  if (!prefs) return true;
  if (prefs.never.includes(withBare)) return false;
  if (prefs.always.includes(withBare)) return true;
  if (prefs.default === 'always') return true;
  if (prefs.default === 'never') return false;
  return 'roster';
}
