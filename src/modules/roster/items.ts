/**
 * Roster items on the wire (RFC 6121 §2.1) and the checks of a roster set
 * (§2.3.3, §2.5.3), as pure functions. A check returns the stanza error
 * condition with its reason instead of throwing, so tables can test it.
 */
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { tryParseJID } from '../../jid/jid.js';
import type { StanzaErrorCondition } from '../../core/errors.js';
import type { RosterItemData } from '../../storage/roster.js';

export interface ItemLimits {
  /** Longest item name, in characters. */
  maxNameLength: number;
  /** Longest group name, in characters. */
  maxGroupLength: number;
  /** Most groups on one item. */
  maxGroups: number;
}

export const DEFAULT_ITEM_LIMITS: ItemLimits = { maxNameLength: 1024, maxGroupLength: 1024, maxGroups: 100 };

export type RosterSetRequest =
  | { ok: true; op: 'update'; jid: string; name: string | undefined; groups: string[] }
  | { ok: true; op: 'remove'; jid: string }
  | { ok: false; condition: StanzaErrorCondition; reason: string };

/**
 * Read and check the <query/> of a roster set sent by `ownBare` (its own bare
 * JID). The 'subscription' attribute counts only as "remove"; 'ask' and
 * 'approved' are the server's to set and are ignored (§2.1.2, §2.1.3).
 */
export function parseRosterSet(query: Element, ownBare: string, limits: ItemLimits = DEFAULT_ITEM_LIMITS): RosterSetRequest {
  const items = query.getChildren('item', NS.ROSTER);
  if (items.length !== 1) return { ok: false, condition: 'bad-request', reason: 'A roster set carries exactly one item' };
  const item = items[0] as Element;
  const raw = item.attrs.jid;
  if (raw === undefined || raw === '') return { ok: false, condition: 'bad-request', reason: 'The item has no jid' };
  const jid = tryParseJID(raw);
  if (!jid) return { ok: false, condition: 'bad-request', reason: 'The item jid is not a valid JID' };
  const jidStr = jid.toString();
  if (item.attrs.subscription === 'remove') return { ok: true, op: 'remove', jid: jidStr };
  if (jid.bare.toString() === ownBare) return { ok: false, condition: 'bad-request', reason: 'The own JID cannot be a roster item' };
  let name: string | undefined = item.attrs.name;
  if (name !== undefined && [...name].length > limits.maxNameLength) {
    return { ok: false, condition: 'not-acceptable', reason: `The name is longer than ${limits.maxNameLength} characters` };
  }
  // An empty name means "no name" (clients send name='' to clear it).
  if (name === '') name = undefined;
  const groups: string[] = [];
  for (const g of item.getChildren('group', NS.ROSTER)) {
    const text = g.text();
    if (text === '') return { ok: false, condition: 'not-acceptable', reason: 'A group name is empty' };
    if ([...text].length > limits.maxGroupLength) {
      return { ok: false, condition: 'not-acceptable', reason: `A group name is longer than ${limits.maxGroupLength} characters` };
    }
    // §2.3.3: duplicate groups are a bad-request.
    if (groups.includes(text)) return { ok: false, condition: 'bad-request', reason: `The group ${text} is given twice` };
    groups.push(text);
  }
  if (groups.length > limits.maxGroups) return { ok: false, condition: 'not-acceptable', reason: `More than ${limits.maxGroups} groups` };
  return { ok: true, op: 'update', jid: jidStr, name, groups };
}

/** One <item/> as sent in a roster result or push. */
export function itemElement(item: RosterItemData): Element {
  const el = x('item', NS.ROSTER, {
    jid: item.jid,
    name: item.name,
    subscription: item.subscription,
    ask: item.ask ? 'subscribe' : undefined,
    approved: item.approved ? 'true' : undefined,
  });
  for (const g of item.groups) el.append(x('group', NS.ROSTER, {}, [g]));
  return el;
}

/** The <item subscription='remove'/> of a roster push for a removed item. */
export function removedElement(jid: string): Element {
  return x('item', NS.ROSTER, { jid, subscription: 'remove' });
}

/** A roster push (§2.1.6) to one resource. No 'from': it comes from the user's own account. */
export function rosterPush(to: string, id: string, item: Element, ver: string | undefined): Element {
  return x('iq', NS.CLIENT, { type: 'set', id, to }, [x('query', NS.ROSTER, { ver }, [item])]);
}
