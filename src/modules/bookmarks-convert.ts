/**
 * Bookmark conversions between XEP-0402 (PEP Native Bookmarks, version 1.2:
 * one item per room on urn:xmpp:bookmarks:1, id = room JID) and XEP-0048
 * (Bookmarks 1.2: one <storage xmlns='storage:bookmarks'/> document, in
 * private XML storage or on the PEP node storage:bookmarks). Pure functions.
 *
 * What has no counterpart is kept on the side that has it: XEP-0048 <url/>
 * bookmarks stay in the legacy document, XEP-0402 <extensions/> stay on the
 * native item when the legacy document changes the same room.
 */
import { x, serialize, type Element } from '../xml/element.js';

export const NS_BOOKMARKS2 = 'urn:xmpp:bookmarks:1';
export const NS_BOOKMARKS_LEGACY = 'storage:bookmarks';

/** One room bookmark, format-neutral. */
export interface RoomBookmark {
  jid: string;
  name?: string;
  autojoin: boolean;
  nick?: string;
  password?: string;
  /** XEP-0402 <extensions/> (native side only). */
  extensions?: Element;
}

function bool(v: string | undefined): boolean {
  return v === 'true' || v === '1';
}

function text(el: Element, name: string, ns: string): string | undefined {
  const t = el.getChild(name, ns)?.text();
  return t === undefined || t === '' ? undefined : t;
}

/** Rooms of a XEP-0048 <storage/> (conferences without a JID are skipped: they cannot be converted). */
export function fromLegacy(storage: Element | undefined): RoomBookmark[] {
  if (!storage) return [];
  const out: RoomBookmark[] = [];
  const seen = new Set<string>();
  for (const c of storage.getChildren('conference', NS_BOOKMARKS_LEGACY)) {
    const jid = c.attrs.jid;
    if (jid === undefined || jid === '' || seen.has(jid)) continue;
    seen.add(jid);
    out.push({ jid, name: c.attrs.name || undefined, autojoin: bool(c.attrs.autojoin), nick: text(c, 'nick', NS_BOOKMARKS_LEGACY), password: text(c, 'password', NS_BOOKMARKS_LEGACY) });
  }
  return out;
}

/** One XEP-0402 item (id = room JID, payload <conference/>). */
export function fromNative(id: string, conference: Element): RoomBookmark {
  return {
    jid: id,
    name: conference.attrs.name || undefined,
    autojoin: bool(conference.attrs.autojoin),
    nick: text(conference, 'nick', NS_BOOKMARKS2),
    password: text(conference, 'password', NS_BOOKMARKS2),
    extensions: conference.getChild('extensions', NS_BOOKMARKS2),
  };
}

export function toNative(b: RoomBookmark): Element {
  const el = x('conference', NS_BOOKMARKS2, { name: b.name, autojoin: b.autojoin ? 'true' : 'false' });
  if (b.nick !== undefined) el.append(x('nick', NS_BOOKMARKS2, {}, [b.nick]));
  if (b.password !== undefined) el.append(x('password', NS_BOOKMARKS2, {}, [b.password]));
  if (b.extensions) el.append(b.extensions.clone());
  return el;
}

/** The legacy document for `rooms`, keeping the <url/> bookmarks of `previous`. */
export function toLegacy(rooms: readonly RoomBookmark[], previous: Element | undefined): Element {
  const st = x('storage', NS_BOOKMARKS_LEGACY);
  for (const b of rooms) {
    const c = x('conference', NS_BOOKMARKS_LEGACY, { jid: b.jid, name: b.name, autojoin: b.autojoin ? 'true' : 'false' });
    if (b.nick !== undefined) c.append(x('nick', NS_BOOKMARKS_LEGACY, {}, [b.nick]));
    if (b.password !== undefined) c.append(x('password', NS_BOOKMARKS_LEGACY, {}, [b.password]));
    st.append(c);
  }
  for (const u of previous?.getChildren('url', NS_BOOKMARKS_LEGACY) ?? []) st.append(u.clone());
  return st;
}

export interface NativePlan {
  publish: Array<{ id: string; payload: Element }>;
  retract: string[];
}

/**
 * What to publish and retract on urn:xmpp:bookmarks:1 so that it holds
 * exactly the rooms of a legacy document. Unchanged items are left alone
 * (no notification storm); a changed room keeps its native <extensions/>.
 */
export function planNative(legacy: readonly RoomBookmark[], native: ReadonlyMap<string, Element>): NativePlan {
  const plan: NativePlan = { publish: [], retract: [] };
  const wanted = new Set<string>();
  for (const b of legacy) {
    wanted.add(b.jid);
    const current = native.get(b.jid);
    const merged: RoomBookmark = { ...b, extensions: current ? fromNative(b.jid, current).extensions : undefined };
    const payload = toNative(merged);
    if (current === undefined || serialize(current, '') !== serialize(payload, '')) plan.publish.push({ id: b.jid, payload });
  }
  for (const id of native.keys()) if (!wanted.has(id)) plan.retract.push(id);
  return plan;
}
