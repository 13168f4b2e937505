/**
 * The one XML model of Verona: parse, build and serialize all use Element.
 *
 * Namespaces are resolved at parse time: `name` is the local name and `xmlns`
 * the namespace URI, so handlers match on (name, xmlns) and never on prefixes.
 * Serialization emits an `xmlns` declaration only where an element's namespace
 * differs from its parent's, and writes elements of the streams namespace with
 * the `stream:` prefix that the stream header declares.
 */

export const NS_CLIENT = 'jabber:client';
export const NS_STREAM = 'http://etherx.jabber.org/streams';

export type Node = Element | string;

export class Element {
  name: string;
  xmlns: string;
  attrs: Record<string, string>;
  children: Node[];

  constructor(name: string, xmlns: string, attrs?: Record<string, string>, children?: Node[]) {
    this.name = name;
    this.xmlns = xmlns;
    this.attrs = attrs ?? {};
    this.children = children ?? [];
  }

  is(name: string, xmlns?: string): boolean {
    return this.name === name && (xmlns === undefined || this.xmlns === xmlns);
  }

  attr(name: string): string | undefined {
    return this.attrs[name];
  }

  setAttr(name: string, value: string | undefined): this {
    if (value === undefined) delete this.attrs[name];
    else this.attrs[name] = value;
    return this;
  }

  /** First child element with this name (and namespace, when given). */
  getChild(name: string, xmlns?: string): Element | undefined {
    for (const c of this.children) {
      if (typeof c !== 'string' && c.name === name && (xmlns === undefined || c.xmlns === xmlns)) return c;
    }
    return undefined;
  }

  getChildren(name?: string, xmlns?: string): Element[] {
    const out: Element[] = [];
    for (const c of this.children) {
      if (typeof c === 'string') continue;
      if ((name === undefined || c.name === name) && (xmlns === undefined || c.xmlns === xmlns)) out.push(c);
    }
    return out;
  }

  /** First child element in the given namespace, whatever its name. */
  getChildByNs(xmlns: string): Element | undefined {
    for (const c of this.children) if (typeof c !== 'string' && c.xmlns === xmlns) return c;
    return undefined;
  }

  elements(): Element[] {
    return this.children.filter((c): c is Element => typeof c !== 'string');
  }

  /** Concatenated text of the direct text children. */
  text(): string {
    let s = '';
    for (const c of this.children) if (typeof c === 'string') s += c;
    return s;
  }

  getChildText(name: string, xmlns?: string): string | undefined {
    return this.getChild(name, xmlns)?.text();
  }

  /** Appends a child and returns the child (for building). */
  c(name: string, attrs?: Record<string, string>, xmlns?: string): Element {
    const el = new Element(name, xmlns ?? this.xmlns, attrs);
    this.children.push(el);
    return el;
  }

  append(...nodes: (Node | undefined)[]): this {
    for (const n of nodes) if (n !== undefined) this.children.push(n);
    return this;
  }

  t(text: string): this {
    this.children.push(text);
    return this;
  }

  removeChildren(pred: (el: Element) => boolean): this {
    this.children = this.children.filter((c) => typeof c === 'string' || !pred(c));
    return this;
  }

  /** Deep copy: stanzas are shared between copies only after cloning. */
  clone(): Element {
    const el = new Element(this.name, this.xmlns, { ...this.attrs });
    el.children = this.children.map((c) => (typeof c === 'string' ? c : c.clone()));
    return el;
  }

  toString(): string {
    return serialize(this, NS_CLIENT);
  }
}

/** Builder: x('message', {to}, NS, [children]) */
export function x(name: string, xmlns: string, attrs?: Record<string, string | undefined>, children?: (Node | undefined)[]): Element {
  const a: Record<string, string> = {};
  if (attrs) for (const k of Object.keys(attrs)) {
    const v = attrs[k];
    if (v !== undefined) a[k] = v;
  }
  const el = new Element(name, xmlns, a);
  if (children) for (const c of children) if (c !== undefined) el.children.push(c);
  return el;
}

// A parser turns a literal CR in text into LF, and literal TAB/LF/CR in an
// attribute value into spaces (XML 1.0 §2.11, §3.3.3): escaping them as
// character references is what makes parse(serialize(el)) give el back.
// The tests use separate non-global patterns: `test` on a /g regex moves lastIndex.
const HAS_TEXT = /[&<>\r]/;
const HAS_ATTR = /[&<>"'\t\n\r]/;
const ESC_TEXT = /[&<>\r]/g;
const ESC_ATTR = /[&<>"'\t\n\r]/g;
const ENTITIES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&apos;',
  '\t': '&#9;',
  '\n': '&#10;',
  '\r': '&#13;',
};

export function escapeText(s: string): string {
  return HAS_TEXT.test(s) ? s.replace(ESC_TEXT, (c) => ENTITIES[c] ?? c) : s;
}
export function escapeAttr(s: string): string {
  return HAS_ATTR.test(s) ? s.replace(ESC_ATTR, (c) => ENTITIES[c] ?? c) : s;
}

/**
 * Serialize `el` as it appears inside a parent whose default namespace is
 * `parentNs` (NS_CLIENT on a TCP stream; '' for WebSocket frames, which must
 * be namespace-complete).
 */
export function serialize(el: Element, parentNs: string): string {
  const parts: string[] = [];
  write(el, parentNs, parts);
  return parts.join('');
}

/** The namespace bound to the `xml` prefix: it can never be a default namespace (Namespaces in XML §3). */
const NS_XML_PREFIX = 'http://www.w3.org/XML/1998/namespace';

function write(el: Element, parentNs: string, out: string[]): void {
  // <xml:z/> parses into the XML namespace; written as <z xmlns="...XML/1998/namespace"/> no parser
  // (ours included) would take it back, and a relayed stanza would break the recipient's stream
  // (found by the fuzzer, test/fuzz/targets.ts xml-document).
  if (el.xmlns === NS_XML_PREFIX) return writeXmlPrefixed(el, parentNs, out);
  const streamNs = el.xmlns === NS_STREAM;
  const tag = streamNs ? 'stream:' + el.name : el.name;
  out.push('<', tag);
  let declaredStream = false;
  if (streamNs) {
    if (parentNs !== NS_STREAM && parentNs !== NS_CLIENT) {
      out.push(' xmlns:stream="', NS_STREAM, '"');
      declaredStream = true;
    }
  } else if (el.xmlns !== parentNs) {
    out.push(' xmlns="', escapeAttr(el.xmlns), '"');
  }
  const attrs = el.attrs;
  for (const k in attrs) {
    // A parsed <stream:features xmlns:stream=...> keeps its declaration in attrs: never write it twice.
    if (k === 'xmlns' || (declaredStream && k === 'xmlns:stream')) continue;
    out.push(' ', k, '="', escapeAttr(attrs[k] as string), '"');
  }
  if (el.children.length === 0) {
    out.push('/>');
    return;
  }
  out.push('>');
  // Children of a stream-prefixed element inherit the *parent's* default namespace.
  const childParent = streamNs ? parentNs : el.xmlns;
  for (const c of el.children) {
    if (typeof c === 'string') out.push(escapeText(c));
    else write(c, childParent, out);
  }
  out.push('</', tag, '>');
}

/** An element in the XML namespace keeps its `xml:` prefix; its children see the parent's default namespace. */
function writeXmlPrefixed(el: Element, parentNs: string, out: string[]): void {
  const tag = 'xml:' + el.name;
  out.push('<', tag);
  const attrs = el.attrs;
  for (const k in attrs) {
    if (k === 'xmlns') continue;
    out.push(' ', k, '="', escapeAttr(attrs[k] as string), '"');
  }
  if (el.children.length === 0) {
    out.push('/>');
    return;
  }
  out.push('>');
  for (const c of el.children) {
    if (typeof c === 'string') out.push(escapeText(c));
    else write(c, parentNs, out);
  }
  out.push('</', tag, '>');
}
