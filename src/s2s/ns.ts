/**
 * Namespaces of server-to-server streams and the translation between the
 * client namespace the router works in and the server namespace on the wire.
 *
 * Inside Verona every stanza is in `jabber:client` (routing, hooks, the
 * archive all match on it). RFC 6120 §4.8.3: on an s2s stream the default
 * namespace is `jabber:server`, and the children of a stanza that are in
 * the stanza's namespace (`<body/>`, `<subject/>`, `<thread/>`, `<error/>`)
 * are in `jabber:server` too. Content in other namespaces is untouched,
 * including a forwarded `<message xmlns='jabber:client'/>` inside
 * `<forwarded/>`, which keeps its own namespace on every stream.
 */
import { Element } from '../xml/element.js';

export const NS_SERVER = 'jabber:server';
export const NS_CLIENT = 'jabber:client';
export const NS_DIALBACK = 'jabber:server:dialback';
export const NS_DIALBACK_FEATURE = 'urn:xmpp:features:dialback';
export const NS_BIDI_FEATURE = 'urn:xmpp:features:bidi';
export const NS_BIDI = 'urn:xmpp:bidi';

/** Copy `el` with every element of the `from` namespace chain (from the top down) moved to `to`. Pure. */
function translate(el: Element, from: string, to: string): Element {
  if (el.xmlns !== from) return el;
  const out = new Element(el.name, to, el.attrs);
  out.children = el.children.map((c) => (typeof c === 'string' ? c : translate(c, from, to)));
  return out;
}

/** A stanza as the router holds it -> as it goes on an s2s stream. */
export function toServerNs(el: Element): Element {
  return translate(el, NS_CLIENT, NS_SERVER);
}

/** A stanza read from an s2s stream -> as the router holds it. */
export function fromServerNs(el: Element): Element {
  return translate(el, NS_SERVER, NS_CLIENT);
}
