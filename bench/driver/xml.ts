/**
 * Minimal XML for the load driver: an incremental framer that cuts an XMPP stream into
 * top-level stanzas, and a tiny non-validating parser that turns one stanza into a tree.
 *
 * The driver only needs stanza boundaries and a few names, attributes and texts, so this is
 * deliberately not a conforming XML parser: no DTDs, no validation, namespaces resolved only
 * as far as `xmlns` / `xmlns:p` declarations go. It must stay cheap, because the driver has to
 * be faster than any server it measures; the server's parser is not the one being tested here.
 */
import { StringDecoder } from 'node:string_decoder';

export interface XElement {
  /** Qualified name as written (`stream:features`). */
  name: string;
  /** Local part of the name (`features`). */
  local: string;
  /** Resolved namespace ('' when none is in scope). */
  ns: string;
  attrs: Record<string, string>;
  children: XElement[];
  /** Concatenated, entity-decoded character data directly inside this element. */
  text: string;
}

/** Prefix -> namespace; '' is the default namespace. */
export type NsScope = Readonly<Record<string, string>>;

export type FrameEvent =
  | { kind: 'open'; attrs: Record<string, string>; scope: NsScope }
  | { kind: 'stanza'; raw: string }
  | { kind: 'close' };

const ENTITY_RE = /&(#x[0-9a-fA-F]+|#[0-9]+|lt|gt|amp|quot|apos);/g;

function decodeEntity(_m: string, e: string): string {
  switch (e) {
    case 'lt': return '<';
    case 'gt': return '>';
    case 'amp': return '&';
    case 'quot': return '"';
    case 'apos': return "'";
    default:
      return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
  }
}

export function unescapeXml(s: string): string {
  return s.indexOf('&') < 0 ? s : s.replace(ENTITY_RE, decodeEntity);
}

const ESC_RE = /[&<>"']/g;
const ESC: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Escape for both text and attribute values. */
export function escapeXml(s: string): string {
  return s.replace(ESC_RE, (c) => ESC[c] ?? c);
}

/**
 * Parse the attributes of a start tag. `tag` is the text between '<' and '>' (the name first,
 * possibly a trailing '/').
 */
export function parseTagAttrs(tag: string): { name: string; attrs: Record<string, string> } {
  let i = 0;
  const n = tag.length;
  while (i < n && !isSpace(tag.charCodeAt(i)) && tag.charCodeAt(i) !== 47 /* / */) i++;
  const name = tag.slice(0, i);
  const attrs: Record<string, string> = {};
  while (i < n) {
    while (i < n && (isSpace(tag.charCodeAt(i)) || tag.charCodeAt(i) === 47)) i++;
    if (i >= n) break;
    const eq = tag.indexOf('=', i);
    if (eq < 0) break;
    const key = tag.slice(i, eq).trim();
    let j = eq + 1;
    while (j < n && isSpace(tag.charCodeAt(j))) j++;
    const q = tag[j];
    if (q !== '"' && q !== "'") break;
    const end = tag.indexOf(q, j + 1);
    if (end < 0) break;
    attrs[key] = unescapeXml(tag.slice(j + 1, end));
    i = end + 1;
  }
  return { name, attrs };
}

function isSpace(c: number): boolean {
  return c === 32 || c === 10 || c === 13 || c === 9;
}

/** Apply the xmlns declarations of `attrs` to `parent`; returns `parent` itself when there are none. */
function extendScope(parent: NsScope, attrs: Record<string, string>): NsScope {
  let scope: Record<string, string> | null = null;
  for (const k in attrs) {
    if (k === 'xmlns' || k.startsWith('xmlns:')) {
      scope ??= { ...parent };
      scope[k === 'xmlns' ? '' : k.slice(6)] = attrs[k] as string;
    }
  }
  return scope ?? parent;
}

function makeElement(name: string, attrs: Record<string, string>, scope: NsScope): XElement {
  const colon = name.indexOf(':');
  const prefix = colon < 0 ? '' : name.slice(0, colon);
  return {
    name,
    local: colon < 0 ? name : name.slice(colon + 1),
    ns: scope[prefix] ?? '',
    attrs,
    children: [],
    text: '',
  };
}

/**
 * Find the '>' that ends the tag starting at `lt`, skipping quoted attribute values
 * (a '>' inside an attribute value is legal XML). Returns -1 when the tag is incomplete.
 */
function tagEnd(buf: string, lt: number): number {
  let q = 0;
  for (let i = lt + 1; i < buf.length; i++) {
    const c = buf.charCodeAt(i);
    if (q !== 0) {
      if (c === q) q = 0;
    } else if (c === 34 || c === 39) {
      q = c;
    } else if (c === 62) {
      return i;
    }
  }
  return -1;
}

/** Parse one complete element (a stanza as cut by XmlFramer) into a tree. */
export function parseElement(raw: string, scope: NsScope): XElement {
  const stack: Array<{ el: XElement; scope: NsScope }> = [];
  let root: XElement | null = null;
  let pos = 0;
  const n = raw.length;
  while (pos < n) {
    const lt = raw.indexOf('<', pos);
    const textEnd = lt < 0 ? n : lt;
    if (textEnd > pos && stack.length > 0) {
      const top = stack[stack.length - 1]!.el;
      top.text += unescapeXml(raw.slice(pos, textEnd));
    }
    if (lt < 0) break;
    const c = raw.charCodeAt(lt + 1);
    if (c === 33 /* ! */) {
      if (raw.startsWith('<![CDATA[', lt)) {
        const end = raw.indexOf(']]>', lt + 9);
        if (end < 0) throw new Error('unterminated CDATA');
        if (stack.length > 0) stack[stack.length - 1]!.el.text += raw.slice(lt + 9, end);
        pos = end + 3;
      } else {
        const end = raw.indexOf('-->', lt + 4);
        if (end < 0) throw new Error('unterminated comment');
        pos = end + 3;
      }
      continue;
    }
    if (c === 63 /* ? */) {
      const end = raw.indexOf('?>', lt + 2);
      if (end < 0) throw new Error('unterminated PI');
      pos = end + 2;
      continue;
    }
    const gt = tagEnd(raw, lt);
    if (gt < 0) throw new Error('unterminated tag');
    if (c === 47 /* / */) {
      stack.pop();
      pos = gt + 1;
      if (stack.length === 0) break;
      continue;
    }
    const selfClose = raw.charCodeAt(gt - 1) === 47;
    const { name, attrs } = parseTagAttrs(raw.slice(lt + 1, selfClose ? gt - 1 : gt));
    const parentScope = stack.length > 0 ? stack[stack.length - 1]!.scope : scope;
    const elScope = extendScope(parentScope, attrs);
    const el = makeElement(name, attrs, elScope);
    if (stack.length > 0) stack[stack.length - 1]!.el.children.push(el);
    else root = el;
    pos = gt + 1;
    if (!selfClose) stack.push({ el, scope: elScope });
    else if (stack.length === 0) break;
  }
  if (root === null) throw new Error('no element');
  return root;
}

/**
 * Incremental framer: feed socket chunks, get stream open/close events and the raw text of
 * every top-level element. Keeps scanning state between chunks, so a large stanza that arrives
 * in many chunks is scanned once, not once per chunk.
 */
export class XmlFramer {
  private buf = '';
  private pos = 0;
  private depth = 0;
  private start = -1;
  private readonly decoder = new StringDecoder('utf8');

  /** Expect a new stream header (after SASL success); keeps any bytes not yet consumed. */
  restart(): void {
    this.buf = this.buf.slice(this.start >= 0 ? this.start : this.pos);
    this.pos = 0;
    this.start = -1;
    this.depth = 0;
  }

  push(chunk: Buffer | string, emit: (ev: FrameEvent) => void): void {
    // A StringDecoder keeps a multi-byte UTF-8 character split across chunks intact.
    this.buf += typeof chunk === 'string' ? chunk : this.decoder.write(chunk);
    const buf = this.buf;
    let pos = this.pos;
    for (;;) {
      const lt = buf.indexOf('<', pos);
      if (lt < 0) {
        pos = buf.length;
        break;
      }
      if (lt + 1 >= buf.length) {
        pos = lt;
        break;
      }
      const c = buf.charCodeAt(lt + 1);
      if (c === 63 /* ? */ || c === 33 /* ! */) {
        const closer = c === 63 ? '?>' : buf.startsWith('<![CDATA[', lt) ? ']]>' : '-->';
        if (c === 33 && !buf.startsWith('<!--', lt) && !buf.startsWith('<![CDATA[', lt)) {
          if (buf.length - lt < 9) {
            pos = lt;
            break;
          }
          throw new Error('DOCTYPE or unknown markup in stream');
        }
        const end = buf.indexOf(closer, lt + 2);
        if (end < 0) {
          pos = lt;
          break;
        }
        pos = end + closer.length;
        continue;
      }
      const gt = tagEnd(buf, lt);
      if (gt < 0) {
        pos = lt;
        break;
      }
      pos = gt + 1;
      if (c === 47 /* / end tag */) {
        this.depth--;
        if (this.depth === 1) {
          emit({ kind: 'stanza', raw: buf.slice(this.start, pos) });
          this.start = -1;
        } else if (this.depth <= 0) {
          this.depth = 0;
          emit({ kind: 'close' });
        }
        continue;
      }
      const selfClose = buf.charCodeAt(gt - 1) === 47;
      if (this.depth === 0) {
        const { attrs } = parseTagAttrs(buf.slice(lt + 1, selfClose ? gt - 1 : gt));
        this.depth = 1;
        emit({ kind: 'open', attrs, scope: extendScope({}, attrs) });
        continue;
      }
      if (selfClose) {
        if (this.depth === 1) emit({ kind: 'stanza', raw: buf.slice(lt, pos) });
        continue;
      }
      if (this.depth === 1) this.start = lt;
      this.depth++;
    }
    // Drop what was consumed; keep the unfinished stanza (from its start) or the unfinished tag.
    const keep = this.start >= 0 ? this.start : pos;
    if (keep > 0) {
      this.buf = buf.slice(keep);
      pos -= keep;
      if (this.start >= 0) this.start = 0;
    }
    this.pos = pos;
  }
}

export function child(el: XElement, local: string, ns?: string): XElement | undefined {
  for (const c of el.children) if (c.local === local && (ns === undefined || c.ns === ns)) return c;
  return undefined;
}

export function childrenOf(el: XElement, local: string, ns?: string): XElement[] {
  return el.children.filter((c) => c.local === local && (ns === undefined || c.ns === ns));
}

/** Depth-first search for the first descendant (or el itself) with this name. */
export function findDeep(el: XElement, local: string, ns?: string): XElement | undefined {
  if (el.local === local && (ns === undefined || el.ns === ns)) return el;
  for (const c of el.children) {
    const f = findDeep(c, local, ns);
    if (f) return f;
  }
  return undefined;
}
