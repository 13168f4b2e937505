/**
 * Archiving preferences (XEP-0441, in the urn:xmpp:mam:2 namespace):
 * <prefs default='always|never|roster'><always><jid/>…</always><never><jid/>…</never></prefs>
 */
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { StanzaError } from '../../core/errors.js';
import { tryParseJID } from '../../jid/jid.js';
import type { ArchivePrefs } from '../../storage/archive.js';

export const DEFAULT_PREFS: ArchivePrefs = Object.freeze({ default: 'always', always: [], never: [] }) as ArchivePrefs;

/** At most this many JIDs per list: preferences are kept in memory for every account that sets them. */
export const MAX_PREF_JIDS = 1000;

function jids(list: Element | undefined): string[] {
  if (!list) return [];
  const out = new Set<string>();
  for (const j of list.getChildren('jid')) {
    const parsed = tryParseJID(j.text().trim());
    if (!parsed) throw new StanzaError('jid-malformed', `Invalid JID in preferences: ${j.text()}`);
    // Preferences match the contact's bare JID.
    out.add(parsed.bare.toString());
  }
  return [...out];
}

export function parsePrefs(el: Element): ArchivePrefs {
  const d = el.attrs.default ?? 'always';
  if (d !== 'always' && d !== 'never' && d !== 'roster') throw new StanzaError('bad-request', "default must be 'always', 'never' or 'roster'");
  const always = jids(el.getChild('always', NS.MAM));
  const never = jids(el.getChild('never', NS.MAM));
  if (always.length > MAX_PREF_JIDS || never.length > MAX_PREF_JIDS) throw new StanzaError('policy-violation', `At most ${MAX_PREF_JIDS} JIDs per list`);
  return { default: d, always: always.filter((j) => !never.includes(j)), never };
}

export function prefsElement(p: ArchivePrefs): Element {
  const list = (name: string, js: string[]): Element => x(name, NS.MAM, {}, js.map((j) => x('jid', NS.MAM, {}, [j])));
  return x('prefs', NS.MAM, { default: p.default }, [list('always', p.always), list('never', p.never)]);
}
