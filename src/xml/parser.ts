/**
 * Verona's incremental XML stream parser: a small dedicated tokenizer for the
 * subset of XML that XMPP allows (RFC 6120 §11), chosen over saxes, ltx and
 * node-expat by measurement (see docs/xml-parser.md and bench/xml-parsers.ts).
 *
 * Design, in the order the bytes flow:
 * - Bytes -> text: complete UTF-8 sequences are validated and decoded in one
 *   native call (a shared, non-streaming fatal TextDecoder); an incomplete
 *   sequence at the end of a chunk (at most 3 bytes) is carried to the next
 *   chunk, so a chunk may end anywhere. Large chunks are decoded in 2 KiB
 *   pieces so that parsed strings never pin a big input string.
 * - Text -> tokens: the tokenizer works at token granularity (a tag, a text run,
 *   a CDATA section) and jumps to the token's end with indexOf. Only the one
 *   token that is cut by the end of a chunk is kept (`pending`), together with
 *   what is needed to continue scanning it (the open quote of a tag, the last
 *   characters of a CDATA section), so each input character is scanned a
 *   bounded number of times however the stream is split: a huge stanza fed
 *   byte by byte costs linear time, never quadratic.
 * - Tokens -> Elements: namespaces are resolved with a copy-on-write prefix
 *   map per element (most elements declare none and share their parent's).
 *   Only elements below the stream root are built; the root is reported by
 *   onStreamStart and each complete top-level child by onElement.
 *
 * What is rejected (RFC 6120 §11.1): DOCTYPE, entity and other markup
 * declarations, comments and processing instructions -> restricted-xml; any
 * well-formedness or namespace-well-formedness error, undefined entities,
 * characters outside the XML Char production and invalid UTF-8 ->
 * not-well-formed; exceeding a limit -> policy-violation.
 */
import { Element } from './element.js';
import type {
  ParserErrorCondition,
  ParserLimits,
  StreamParser,
  StreamParserEvents,
} from './stream-parser.contract.js';

export const NS_XML = 'http://www.w3.org/XML/1998/namespace';
const NS_XMLNS = 'http://www.w3.org/2000/xmlns/';

/**
 * Bound on everything before and including the stream header (whitespace, the
 * XML declaration, the `<stream:stream ...>` tag). Two maximal JIDs (3071
 * bytes each) still fit.
 */
export const STREAM_HEADER_MAX = 8192;

/** Limits for parseXml when the caller gives none: no size bound, but nesting stays bounded
 * because serialize() recurses. */
export const DOCUMENT_LIMITS: ParserLimits = Object.freeze({
  maxStanzaSize: Number.POSITIVE_INFINITY,
  maxDepth: 256,
  maxAttributes: 256,
});

/** Thrown by parseXml. */
export class XmlError extends Error {
  readonly condition: ParserErrorCondition;
  constructor(condition: ParserErrorCondition, message: string) {
    super(message);
    this.name = 'XmlError';
    this.condition = condition;
  }
}

// Character codes
const TAB = 9;
const LF = 10;
const CR = 13;
const SPACE = 32;
const BANG = 33;
const QUOT = 34;
const HASH = 35;
const APOS = 39;
const SLASH = 47;
const COLON = 58;
const EQ = 61;
const LT = 60;
const GT = 62;
const QMARK = 63;
const BOM = 0xfeff;

// Kinds of the token that is cut by the end of a chunk.
const PK_NONE = 0;
const PK_SHORT = 1; // '<', '<!', '<![CD'...: too short to tell what it is; re-read with the next chunk
const PK_TEXT = 2;
const PK_START = 3;
const PK_END = 4;
const PK_CDATA = 5;
const PK_DECL = 6;

// Parser states
const RUNNING = 0;
const ENDED = 1; // </stream:stream> seen
const STOPPED = 2; // error or end()

/** Characters outside the XML 1.0 Char production (surrogates cannot come out of valid UTF-8). */
// eslint-disable-next-line no-control-regex -- these control characters are exactly what XML forbids
const BAD_CHAR = /[\x00-\x08\x0B\x0C\x0E-\x1F\uFFFE\uFFFF]/;
/** Anything in an attribute value that needs a second look: '<', references, TAB/LF/CR, non-Chars. */
// eslint-disable-next-line no-control-regex -- as BAD_CHAR, plus TAB/LF/CR which need normalising
const VALUE_SPECIAL = /[<&\x00-\x1F\uFFFE\uFFFF]/;
const NEEDS_NORM = /[\t\n\r]/;
const ATTR_NORM = /\r\n?|[\t\n]/g;
const EOL = /\r\n?/g;

// Names: an ASCII table covers virtually all XMPP traffic; a name with any
// other character is matched with the XML 1.0 (5th edition) QName pattern.
const NC_START =
  'A-Z_a-z\\u00C0-\\u00D6\\u00D8-\\u00F6\\u00F8-\\u02FF\\u0370-\\u037D\\u037F-\\u1FFF\\u200C-\\u200D' +
  '\\u2070-\\u218F\\u2C00-\\u2FEF\\u3001-\\uD7FF\\uF900-\\uFDCF\\uFDF0-\\uFFFD\\u{10000}-\\u{EFFFF}';
const NC_CHAR = NC_START + '\\-.0-9\\u00B7\\u0300-\\u036F\\u203F-\\u2040';
// eslint-disable-next-line no-misleading-character-class -- combining marks are NameChars (XML 1.0 §2.3)
const QNAME_U = new RegExp(`[${NC_START}][${NC_CHAR}]*(?::[${NC_START}][${NC_CHAR}]*)?`, 'uy');
/** 1: ASCII NameStartChar (without ':'), 2: other ASCII NameChar. */
const NAME_CH = new Uint8Array(128);
for (let c = 0; c < 128; c++) {
  if ((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || c === 95) NAME_CH[c] = 1;
  else if ((c >= 48 && c <= 57) || c === 45 || c === 46) NAME_CH[c] = 2;
}

/**
 * End of the QName starting at t[p], or -1 if none starts there. Whatever
 * follows (a delimiter, an invalid character, the end of input) is for the
 * caller to judge.
 */
function qnameEnd(t: string, p: number): number {
  const start = p;
  let c = t.charCodeAt(p);
  if (c >= 128) return qnameEndU(t, start);
  if (NAME_CH[c] !== 1) return -1; // also NaN: NAME_CH[NaN] is undefined
  let colon = false;
  for (;;) {
    c = t.charCodeAt(++p);
    if (c < 128) {
      if (NAME_CH[c] !== 0) continue;
      if (c !== COLON || colon) return p;
      const c2 = t.charCodeAt(p + 1);
      if (c2 >= 128) return qnameEndU(t, start);
      if (NAME_CH[c2] !== 1) return p; // the caller sees ':' where a delimiter should be
      colon = true;
      p++;
    } else if (c >= 128) {
      return qnameEndU(t, start);
    } else {
      return p; // NaN: end of input
    }
  }
}

function qnameEndU(t: string, p: number): number {
  QNAME_U.lastIndex = p;
  return QNAME_U.test(t) ? QNAME_U.lastIndex : -1;
}

const XML_DECL =
  /^<\?xml[ \t\n\r]+version[ \t\n\r]*=[ \t\n\r]*(?:"1\.[0-9]+"|'1\.[0-9]+')(?:[ \t\n\r]+encoding[ \t\n\r]*=[ \t\n\r]*(?:"([A-Za-z][\w.-]*)"|'([A-Za-z][\w.-]*)'))?(?:[ \t\n\r]+standalone[ \t\n\r]*=[ \t\n\r]*(?:"(?:yes|no)"|'(?:yes|no)'))?[ \t\n\r]*\?>$/;

/** Markup declarations and comments: all restricted in XMPP. */
const RESTRICTED_BANG = ['<!--', '<!DOCTYPE', '<!ENTITY', '<!ELEMENT', '<!ATTLIST', '<!NOTATION'];
const CDATA_OPEN = '<![CDATA[';

function isWs(c: number): boolean {
  return c === SPACE || c === LF || c === TAB || c === CR;
}

function isXmlChar(c: number): boolean {
  return c >= 0x20
    ? c <= 0xd7ff || (c >= 0xe000 && c <= 0xfffd) || (c >= 0x10000 && c <= 0x10ffff)
    : c === TAB || c === LF || c === CR;
}

/** Replaces the predefined entities and character references; null when one is undefined or malformed. */
function decodeEntities(t: string): string | null {
  let amp = t.indexOf('&');
  if (amp < 0) return t;
  let out = '';
  let last = 0;
  while (amp >= 0) {
    const semi = t.indexOf(';', amp + 1);
    if (semi < 0) return null;
    let rep: string;
    if (t.charCodeAt(amp + 1) === HASH) {
      let i = amp + 2;
      const hex = t.charCodeAt(i) === 120; // 'x'
      if (hex) i++;
      if (i === semi) return null;
      let code = 0;
      for (; i < semi; i++) {
        const c = t.charCodeAt(i);
        let d: number;
        if (c >= 48 && c <= 57) d = c - 48;
        else if (hex && c >= 97 && c <= 102) d = c - 87;
        else if (hex && c >= 65 && c <= 70) d = c - 55;
        else return null;
        code = code * (hex ? 16 : 10) + d;
        if (code > 0x10ffff) return null;
      }
      if (!isXmlChar(code)) return null;
      rep = String.fromCodePoint(code);
    } else {
      switch (t.slice(amp + 1, semi)) {
        case 'amp': rep = '&'; break;
        case 'lt': rep = '<'; break;
        case 'gt': rep = '>'; break;
        case 'quot': rep = '"'; break;
        case 'apos': rep = "'"; break;
        default: return null;
      }
    }
    out += t.slice(last, amp) + rep;
    last = semi + 1;
    amp = t.indexOf('&', last);
  }
  return out + t.slice(last);
}

/**
 * One decoder for all connections: in non-streaming mode TextDecoder is
 * stateless and takes Node's validating fast path (one native call that both
 * checks and decodes), where streaming mode would give every connection its
 * own ICU converter. Chunk splits are handled by the caller. ignoreBOM keeps
 * a U+FEFF at the start of a chunk as a character.
 */
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Decodes complete UTF-8; null when the bytes are not valid UTF-8. */
function utf8(b: Uint8Array): string | null {
  try {
    return UTF8.decode(b);
  } catch {
    return null;
  }
}

/** Bytes decoded per step; see writeBytes. */
const PIECE = 2048;

/**
 * A copy of `s` that does not reference the string it was sliced from: the
 * internalized (deduplicated) string, so all streams share one 'jabber:client'.
 */
function own(s: string): string {
  return Object.keys({ [s]: 0 })[0] as string;
}

/** Receives what the tokenizer finds; the stream parser and parseXml differ only here. */
interface Sink {
  onStreamStart(name: string, ns: string, attrs: Record<string, string>): void;
  onElement(el: Element): void;
  onStreamEnd(): void;
  onError(condition: ParserErrorCondition, text: string): void;
}

/**
 * The tokenizer and tree builder. In stream mode the root element is the
 * stream and each child of it is delivered whole; in document mode the root
 * itself is the one element delivered.
 */
class XmlCore {
  private readonly sink: Sink;
  private readonly stream: boolean;
  /** Depth (number of open elements) at which character data is content rather than top-level whitespace. */
  private readonly contentDepth: number;
  private limits: ParserLimits;

  private state = RUNNING;
  /** Bumped by reset()/end()/errors so that a loop interrupted by a callback stops touching state. */
  private gen = 0;

  /** Incomplete UTF-8 sequence at the end of the previous chunk. */
  private u8: Buffer | null = null;

  /** Absolute character offset (since the stream start) of the input string being processed. */
  private abs = 0;
  /** Absolute offset of the '<' that opened the current top-level element, -1 outside one. */
  private stanzaStart = -1;
  /** Absolute offset at which an XML declaration may appear (0, or 1 after a BOM). */
  private declAt = 0;

  private pending = '';
  private pk = PK_NONE;
  /** Open quote (0, '"' or "'") while a pending start tag is scanned. */
  private quote = 0;
  /** Last characters of a pending CDATA section / XML declaration, to find a terminator split across chunks. */
  private tail = '';

  // Open elements, innermost last.
  private readonly qnames: string[] = [];
  /** Default namespace in scope inside each open element. */
  private readonly nss: string[] = [];
  /** Prefix bindings in scope inside each open element (null: none besides xml). Shared until an element declares one. */
  private readonly pfxs: (Map<string, string> | null)[] = [];
  /** Elements being built (levels from the top-level element down). */
  private readonly els: Element[] = [];
  /** Document mode: the root element is complete. */
  private done = false;

  constructor(sink: Sink, limits: ParserLimits, stream: boolean) {
    this.sink = sink;
    this.limits = limits;
    this.stream = stream;
    this.contentDepth = stream ? 2 : 1;
  }

  setLimits(limits: ParserLimits): void {
    this.limits = limits;
  }

  reset(): void {
    this.clear();
    this.state = RUNNING;
  }

  end(): void {
    this.clear();
    this.state = STOPPED;
  }

  private clear(): void {
    this.gen++;
    this.u8 = null;
    this.abs = 0;
    this.stanzaStart = -1;
    this.declAt = 0;
    this.pending = '';
    this.pk = PK_NONE;
    this.quote = 0;
    this.tail = '';
    this.qnames.length = 0;
    this.nss.length = 0;
    this.pfxs.length = 0;
    this.els.length = 0;
    this.done = false;
  }

  private fail(condition: ParserErrorCondition, text: string): void {
    if (this.state === STOPPED) return;
    this.clear();
    this.state = STOPPED;
    this.sink.onError(condition, text);
  }

  /** True when the document is complete and nothing is left over (document mode). */
  finished(): boolean {
    return this.state === RUNNING && this.qnames.length === 0 && this.pk === PK_NONE && this.u8 === null;
  }

  writeBytes(b: Buffer): void {
    // Decoded in pieces: V8 substrings of 13+ characters are slices that keep
    // their whole parent string alive, so an element taken from a 64 KiB read
    // would pin 64 KiB for as long as anyone holds it (a presence cache, a CSI
    // queue). A piece bounds that to PIECE bytes on each side of the element.
    const gen = this.gen;
    for (let i = 0; i < b.length; i += PIECE) {
      if (this.state !== RUNNING || this.gen !== gen) return;
      const piece = b.length <= PIECE ? b : b.subarray(i, i + PIECE);
      const carry = this.u8;
      const s = this.decode(piece);
      if (s === null) {
        this.u8 = carry;
        this.invalidPiece(piece, gen);
        return;
      }
      if (s.length > 0) this.feed(s);
    }
  }

  /**
   * A piece with invalid UTF-8: parse what comes before the bad bytes, then
   * fail. Without this, how the input happened to be split decided whether
   * elements before the bad bytes were delivered and which error was raised
   * (found by the fuzzer, test/fuzz/targets.ts xml-stream). Byte by byte:
   * this runs at most once per stream, which ends here.
   */
  private invalidPiece(piece: Buffer, gen: number): void {
    for (let j = 0; j < piece.length; j++) {
      if (this.state !== RUNNING || this.gen !== gen) return;
      const s = this.decode(piece.subarray(j, j + 1));
      if (s === null) return this.fail('not-well-formed', 'invalid UTF-8');
      if (s.length > 0) this.feed(s);
    }
    if (this.state === RUNNING && this.gen === gen) this.fail('not-well-formed', 'invalid UTF-8');
  }

  /**
   * Decodes the complete UTF-8 sequences of `b` (with the bytes carried from
   * the previous chunk); null when the bytes are not valid UTF-8.
   */
  private decode(b: Buffer): string | null {
    let start = 0;
    let head = '';
    const carry = this.u8;
    if (carry !== null) {
      const lead = carry[0] as number;
      const need = (lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4) - carry.length;
      const take = need < b.length ? need : b.length;
      for (let i = 0; i < take; i++) if (((b[i] as number) & 0xc0) !== 0x80) return null;
      if (take < need) {
        this.u8 = Buffer.concat([carry, b]);
        return '';
      }
      const h = utf8(Buffer.concat([carry, b.subarray(0, need)]));
      if (h === null) return null;
      head = h;
      start = need;
      this.u8 = null;
    }
    let end = b.length;
    if (end > start && (b[end - 1] as number) >= 0x80) {
      // Hold back a multi-byte sequence that the next chunk completes.
      const lim = end - 4 < start ? start : end - 4;
      let i = end - 1;
      while (i >= lim && ((b[i] as number) & 0xc0) === 0x80) i--;
      if (i >= lim) {
        const lead = b[i] as number;
        if (lead >= 0xc2 && lead <= 0xf4 && end - i < (lead < 0xe0 ? 2 : lead < 0xf0 ? 3 : 4)) {
          this.u8 = Buffer.from(b.subarray(i, end));
          end = i;
        }
      }
    }
    if (end === start) return head;
    const body = utf8(start === 0 && end === b.length ? b : b.subarray(start, end));
    return body === null ? null : head + body;
  }

  /** Parses decoded text. */
  feed(s: string): void {
    if (this.state !== RUNNING) return;
    const gen = this.gen;
    let pos = 0;
    if (this.pk === PK_SHORT) {
      // A few characters of markup whose kind was undecided: read them again with the new input.
      this.abs -= this.pending.length;
      s = this.pending + s;
      this.pending = '';
      this.pk = PK_NONE;
    } else if (this.pk !== PK_NONE) {
      pos = this.resume(s);
      if (this.gen !== gen) return;
    }
    if (pos >= 0) {
      this.run(s, pos, gen);
      if (this.gen !== gen) return;
    }
    this.abs += s.length;
    if (this.stanzaStart >= 0 && this.abs - this.stanzaStart > this.limits.maxStanzaSize) {
      this.fail('policy-violation', 'stanza too large');
    } else if (this.stream && this.qnames.length === 0 && this.state === RUNNING && this.abs > STREAM_HEADER_MAX) {
      this.fail('policy-violation', 'stream header too large');
    }
  }

  /** Continues the pending token into `s`; returns where normal parsing resumes, or -1 when all of `s` was taken. */
  private resume(s: string): number {
    switch (this.pk) {
      case PK_TEXT: {
        const lt = s.indexOf('<');
        if (lt < 0) {
          this.pending += s;
          return -1;
        }
        const t = this.pending + s.slice(0, lt);
        this.pending = '';
        this.pk = PK_NONE;
        this.text(t, false, this.abs + lt);
        return lt;
      }
      case PK_START: {
        const gt = this.scanTag(s, 0);
        if (gt === -2) {
          this.fail('not-well-formed', "'<' in a start tag");
          return -1;
        }
        if (gt < 0) {
          this.pending += s;
          return -1;
        }
        const t = this.pending + s.slice(0, gt + 1);
        this.pending = '';
        this.pk = PK_NONE;
        // The tag is complete, so "cut by the end of input" (-1) cannot be the answer.
        if (this.startTag(t, 0, this.abs + gt + 1 - t.length) === -1) this.fail('not-well-formed', 'malformed start tag');
        return gt + 1;
      }
      case PK_END: {
        const gt = s.indexOf('>');
        if (gt < 0) {
          this.pending += s;
          return -1;
        }
        const t = this.pending + s.slice(0, gt);
        this.pending = '';
        this.pk = PK_NONE;
        this.endTag(t.slice(2), this.abs + gt + 1);
        return gt + 1;
      }
      default: {
        // CDATA section or XML declaration: find the terminator, possibly split across chunks.
        const cdata = this.pk === PK_CDATA;
        const term = cdata ? ']]>' : '?>';
        const joined = this.tail + s;
        const i = joined.indexOf(term);
        if (i < 0) {
          this.pending += s;
          this.tail = joined.slice(-(term.length - 1));
          return -1;
        }
        const end = i - this.tail.length + term.length;
        const t = this.pending + s.slice(0, end);
        this.pending = '';
        this.tail = '';
        this.pk = PK_NONE;
        if (cdata) this.text(t.slice(CDATA_OPEN.length, -3), true, this.abs + end);
        else this.decl(t);
        return end;
      }
    }
  }

  /** Keeps s[pos..] as the pending token of the given kind. */
  private hold(s: string, pos: number, kind: number): void {
    this.pending = s.slice(pos);
    this.pk = kind;
  }

  private run(s: string, pos: number, gen: number): void {
    const len = s.length;
    while (pos < len) {
      if (s.charCodeAt(pos) !== LT) {
        const lt = s.indexOf('<', pos);
        if (this.qnames.length < this.contentDepth) {
          // Between top-level elements: whitespace (keepalives) only, never buffered.
          const end = lt < 0 ? len : lt;
          for (let i = pos; i < end; i++) {
            const c = s.charCodeAt(i);
            if (isWs(c)) continue;
            if (c === BOM && this.abs + i === 0) {
              this.declAt = 1;
              continue;
            }
            this.fail('not-well-formed', 'text outside of any element');
            return;
          }
          pos = end;
          continue;
        }
        if (lt < 0) {
          this.hold(s, pos, PK_TEXT);
          return;
        }
        this.text(s.slice(pos, lt), false, this.abs + lt);
        if (this.gen !== gen) return;
        pos = lt;
        continue;
      }
      if (pos + 1 === len) {
        this.hold(s, pos, PK_SHORT);
        return;
      }
      const c1 = s.charCodeAt(pos + 1);
      if (c1 === SLASH) {
        // Closing the stream: bounded like a stanza while it is incomplete.
        if (this.qnames.length === this.contentDepth - 1) this.stanzaStart = this.abs + pos;
        const gt = s.indexOf('>', pos + 2);
        if (gt < 0) {
          this.hold(s, pos, PK_END);
          return;
        }
        this.endTag(s.slice(pos + 2, gt), this.abs + gt + 1);
        if (this.gen !== gen) return;
        pos = gt + 1;
        continue;
      }
      if (c1 === BANG) {
        if (s.startsWith(CDATA_OPEN, pos)) {
          if (this.qnames.length < this.contentDepth) {
            this.fail('not-well-formed', 'CDATA outside of any element');
            return;
          }
          const e = s.indexOf(']]>', pos + CDATA_OPEN.length);
          if (e < 0) {
            this.hold(s, pos, PK_CDATA);
            this.tail = s.slice(-2);
            return;
          }
          this.text(s.slice(pos + CDATA_OPEN.length, e), true, this.abs + e + 3);
          if (this.gen !== gen) return;
          pos = e + 3;
          continue;
        }
        const rest = len - pos;
        let short = rest < CDATA_OPEN.length && CDATA_OPEN.startsWith(s.slice(pos));
        for (const r of RESTRICTED_BANG) {
          if (s.startsWith(r, pos)) {
            this.fail('restricted-xml', r === '<!--' ? 'comments are not allowed' : 'DTDs and markup declarations are not allowed');
            return;
          }
          if (rest < r.length && r.startsWith(s.slice(pos))) short = true;
        }
        if (short) {
          this.hold(s, pos, PK_SHORT);
          return;
        }
        this.fail('not-well-formed', 'unexpected <!');
        return;
      }
      if (c1 === QMARK) {
        // The XML declaration is allowed at the very start only; any other PI is restricted.
        if (this.abs + pos === this.declAt) {
          if (len - pos < 6 && '<?xml '.startsWith(s.slice(pos))) {
            this.hold(s, pos, PK_SHORT);
            return;
          }
          if (s.startsWith('<?xml', pos) && isWs(s.charCodeAt(pos + 5))) {
            const e = s.indexOf('?>', pos + 6);
            if (e < 0) {
              this.hold(s, pos, PK_DECL);
              this.tail = s.slice(-1);
              return;
            }
            this.decl(s.slice(pos, e + 2));
            if (this.gen !== gen) return;
            pos = e + 2;
            continue;
          }
        }
        this.fail('restricted-xml', 'processing instructions are not allowed');
        return;
      }
      // Start tag: parsed in place; only when that fails is it scanned to tell "cut by the chunk end" from "malformed".
      if (this.qnames.length === this.contentDepth - 1) this.stanzaStart = this.abs + pos;
      const end = this.startTag(s, pos, this.abs);
      if (end < 0) {
        if (end === -1) this.hold(s, pos, PK_START);
        return;
      }
      if (this.gen !== gen) return;
      pos = end;
    }
  }

  /**
   * Index of the '>' that ends a start tag, skipping quoted attribute values;
   * -1 (and the quote state saved) if not in `s`; -2 at a '<', which no start
   * tag can contain, so a runaway quote is caught at once.
   */
  private scanTag(s: string, from: number): number {
    let q = this.quote;
    const len = s.length;
    for (let i = from; i < len; i++) {
      const c = s.charCodeAt(i);
      if (c === LT) return -2;
      if (q !== 0) {
        if (c === q) q = 0;
      } else if (c === GT) {
        this.quote = 0;
        return i;
      } else if (c === QUOT || c === APOS) {
        q = c;
      }
    }
    this.quote = q;
    return -1;
  }

  private decl(t: string): void {
    const m = XML_DECL.exec(t);
    if (m === null) {
      this.fail('not-well-formed', 'malformed XML declaration');
      return;
    }
    const enc = m[1] ?? m[2];
    if (enc !== undefined && enc.toLowerCase() !== 'utf-8') {
      this.fail('not-well-formed', `unsupported encoding ${enc}`);
    }
  }

  private tooBig(absEnd: number): boolean {
    if (this.stanzaStart >= 0 && absEnd - this.stanzaStart > this.limits.maxStanzaSize) {
      this.fail('policy-violation', 'stanza too large');
      return true;
    }
    return false;
  }

  /** Character data inside an element (raw: not yet unescaped unless `cdata`). */
  private text(raw: string, cdata: boolean, absEnd: number): void {
    if (this.tooBig(absEnd)) return;
    if (BAD_CHAR.test(raw)) {
      this.badChar();
      return;
    }
    // Line ends are normalised before unescaping, so that a &#13; reference survives.
    let v = raw.includes('\r') ? raw.replace(EOL, '\n') : raw;
    if (!cdata) {
      if (v.includes(']]>')) {
        this.fail('not-well-formed', "']]>' in character data");
        return;
      }
      const d = decodeEntities(v);
      if (d === null) {
        this.fail('not-well-formed', 'undefined entity or malformed reference');
        return;
      }
      v = d;
    }
    // An empty CDATA section is no text: an '' child would serialise as <b></b> and parse back as <b/> (fuzzer).
    if (v === '') return;
    const ch = (this.els[this.els.length - 1] as Element).children;
    const last = ch.length - 1;
    if (last >= 0 && typeof ch[last] === 'string') ch[last] = (ch[last] as string) + v;
    else ch.push(v);
  }

  /**
   * Parses the start tag at t[from] ('<'); `abs0` is the absolute offset of t[0].
   * Returns the index after its '>', -1 when the tag is cut by the end of `t`
   * (the quote state for resuming is then saved), -2 after an error.
   */
  private startTag(t: string, from: number, abs0: number): number {
    if (this.done && this.qnames.length === 0) {
      this.fail('not-well-formed', 'more than one root element');
      return -2;
    }
    // Element name.
    const p0 = from + 1;
    let p = qnameEnd(t, p0);
    if (p < 0) return this.badTag(t, from, 'invalid element name');
    const qname = t.slice(p0, p);
    const depth = this.qnames.length;
    let ns = depth > 0 ? (this.nss[depth - 1] as string) : '';
    let pfx = depth > 0 ? (this.pfxs[depth - 1] as Map<string, string> | null) : null;
    const keepXmlns = this.stream && depth === 0; // the stream header reports its attributes as written
    const attrs: Record<string, string> = {};
    let count = 0;
    let hasXmlns = false;
    let ownPfx = false;
    let prefixed = false;
    let selfClosing = false;
    const maxAttrs = this.limits.maxAttributes;
    for (;;) {
      // Whitespace, then '>', '/>' or an attribute (which needs the whitespace before it).
      const ws = p;
      let c = t.charCodeAt(p);
      while (c === SPACE || c === LF || c === TAB || c === CR) c = t.charCodeAt(++p);
      if (c === GT) break;
      if (c === SLASH) {
        if (t.charCodeAt(p + 1) !== GT) return this.badTag(t, from, 'malformed start tag');
        selfClosing = true;
        p++;
        break;
      }
      if (p === ws) return this.badTag(t, from, 'malformed start tag');
      const n0 = p;
      p = qnameEnd(t, p);
      if (p < 0) return this.badTag(t, from, 'invalid attribute name');
      const an = t.slice(n0, p);
      c = t.charCodeAt(p);
      while (c === SPACE || c === LF || c === TAB || c === CR) c = t.charCodeAt(++p);
      if (c !== EQ) return this.badTag(t, from, 'malformed attribute');
      c = t.charCodeAt(++p);
      while (c === SPACE || c === LF || c === TAB || c === CR) c = t.charCodeAt(++p);
      if (c !== QUOT && c !== APOS) return this.badTag(t, from, 'unquoted attribute value');
      // The value: find its end natively, then look inside only if it holds something special.
      const v0 = p + 1;
      const qe = t.indexOf(c === QUOT ? '"' : "'", v0);
      if (qe < 0) return this.badTag(t, from, 'unterminated attribute value');
      let v = t.slice(v0, qe);
      p = qe + 1;
      if (VALUE_SPECIAL.test(v)) {
        if (v.includes('<')) {
          this.fail('not-well-formed', "'<' in attribute value");
          return -2;
        }
        if (BAD_CHAR.test(v)) return this.badChar();
        if (NEEDS_NORM.test(v)) v = v.replace(ATTR_NORM, ' ');
        if (v.includes('&')) {
          const d = decodeEntities(v);
          if (d === null) {
            this.fail('not-well-formed', 'undefined entity or malformed reference');
            return -2;
          }
          v = d;
        }
      }
      if (++count > maxAttrs) {
        this.fail('policy-violation', 'too many attributes');
        return -2;
      }
      if (an.startsWith('xmlns')) {
        if (an.length === 5) {
          if (hasXmlns) {
            this.fail('not-well-formed', 'duplicate attribute xmlns');
            return -2;
          }
          if (v === NS_XML || v === NS_XMLNS) {
            this.fail('not-well-formed', 'reserved namespace as default');
            return -2;
          }
          hasXmlns = true;
          ns = v;
          if (keepXmlns) attrs.xmlns = v;
          continue;
        }
        if (an.charCodeAt(5) === COLON) {
          const px = an.slice(6);
          if (v === '' || px === 'xmlns' || (px === 'xml') !== (v === NS_XML) || v === NS_XMLNS) {
            this.fail('not-well-formed', `invalid declaration of prefix ${px}`);
            return -2;
          }
          const own: Map<string, string> = ownPfx && pfx !== null ? pfx : new Map(pfx ?? undefined);
          own.set(px, v);
          pfx = own;
          ownPfx = true;
        }
      } else if (!prefixed && an.indexOf(':') > 0 && !an.startsWith('xml:')) {
        prefixed = true;
      }
      if (Object.hasOwn(attrs, an)) {
        this.fail('not-well-formed', `duplicate attribute ${an}`);
        return -2;
      }
      if (an === '__proto__') Object.defineProperty(attrs, an, { value: v, enumerable: true, writable: true, configurable: true });
      else attrs[an] = v;
    }
    const to = p + 1;
    if (this.tooBig(abs0 + to)) return -2;

    // Resolve the element's namespace and check the attributes' prefixes.
    let local = qname;
    let elNs = ns;
    const colon = qname.indexOf(':');
    if (colon > 0) {
      const px = qname.slice(0, colon);
      const uri = px === 'xml' ? NS_XML : pfx?.get(px);
      if (uri === undefined || px === 'xmlns') {
        this.fail('not-well-formed', `unbound prefix ${px}`);
        return -2;
      }
      local = qname.slice(colon + 1);
      elNs = uri;
    }
    if (prefixed && !this.checkAttrPrefixes(attrs, pfx)) return -2;

    const level = depth - this.contentDepth + 2; // 1 = the top-level element
    if (level > this.limits.maxDepth) {
      this.fail('policy-violation', 'elements nested too deep');
      return -2;
    }
    if (level <= 0) {
      if (abs0 + to > STREAM_HEADER_MAX) {
        this.fail('policy-violation', 'stream header too large');
        return -2;
      }
      // The stream header. What it declares lives as long as the stream:
      // keep copies, not slices of the input (see writeBytes).
      this.qnames.push(own(qname));
      this.nss.push(own(ns));
      if (pfx !== null) for (const [k, v] of pfx) pfx.set(k, own(v));
      this.pfxs.push(pfx);
      for (const k in attrs) attrs[k] = own(attrs[k] as string);
      const gen = this.gen;
      this.sink.onStreamStart(own(local), own(elNs), attrs);
      if (selfClosing && this.gen === gen) this.endTag(qname, abs0 + to);
      return to;
    }
    const el = new Element(local, elNs, attrs);
    if (level > 1) (this.els[this.els.length - 1] as Element).children.push(el);
    if (selfClosing) {
      if (level === 1) this.complete(el);
      return to;
    }
    this.qnames.push(qname);
    this.nss.push(ns);
    this.pfxs.push(pfx);
    this.els.push(el);
    return to;
  }

  private badChar(): number {
    this.fail('not-well-formed', 'character not allowed in XML');
    return -2;
  }

  /** A start tag did not parse: malformed if it is complete, else wait for the rest. */
  private badTag(t: string, from: number, why: string): number {
    this.quote = 0;
    if (this.scanTag(t, from + 1) === -1) return -1;
    this.fail('not-well-formed', why);
    return -2;
  }

  /** Every prefixed attribute has a bound prefix and no two attributes share an expanded name. */
  private checkAttrPrefixes(attrs: Record<string, string>, pfx: Map<string, string> | null): boolean {
    const seen = new Set<string>();
    for (const an in attrs) {
      const colon = an.indexOf(':');
      if (colon <= 0 || an.startsWith('xmlns:')) continue;
      const px = an.slice(0, colon);
      const uri = px === 'xml' ? NS_XML : pfx?.get(px);
      if (uri === undefined) {
        this.fail('not-well-formed', `unbound prefix ${px}`);
        return false;
      }
      const expanded = uri + ' ' + an.slice(colon + 1);
      if (seen.has(expanded)) {
        this.fail('not-well-formed', `duplicate attribute ${an}`);
        return false;
      }
      seen.add(expanded);
    }
    return true;
  }

  /** `inner` is what lies between '</' and '>'. */
  private endTag(inner: string, absEnd: number): void {
    const depth = this.qnames.length;
    if (depth === 0) {
      this.fail('not-well-formed', 'end tag without start tag');
      return;
    }
    const q = this.qnames[depth - 1] as string;
    if (inner !== q) {
      let ok = inner.startsWith(q);
      for (let i = q.length; ok && i < inner.length; i++) ok = isWs(inner.charCodeAt(i));
      if (!ok) {
        this.fail('not-well-formed', `mismatched end tag: expected </${q}>`);
        return;
      }
    }
    this.qnames.pop();
    this.nss.pop();
    this.pfxs.pop();
    if (depth === 1 && this.stream) {
      this.state = ENDED;
      this.gen++; // stop the loop: nothing after </stream:stream> is parsed
      this.pending = '';
      this.pk = PK_NONE;
      this.stanzaStart = -1;
      this.sink.onStreamEnd();
      return;
    }
    const el = this.els.pop() as Element;
    if (depth === this.contentDepth) {
      if (this.tooBig(absEnd)) return;
      this.complete(el);
    }
  }

  /** A top-level element is complete. */
  private complete(el: Element): void {
    this.stanzaStart = -1;
    if (!this.stream) this.done = true;
    this.sink.onElement(el);
  }
}


/**
 * The XMPP stream parser: one per connection. Idle state is a few small
 * fields and empty arrays; nothing is preallocated.
 */
class VeronaStreamParser implements StreamParser {
  private readonly core: XmlCore;

  constructor(events: StreamParserEvents, limits: ParserLimits) {
    this.core = new XmlCore(events, limits, true);
  }

  write(chunk: Buffer): void {
    this.core.writeBytes(chunk);
  }

  setLimits(limits: ParserLimits): void {
    this.core.setLimits(limits);
  }

  /** Also discards the rest of a chunk being parsed when called from a callback (STARTTLS: never parse plaintext sent after <starttls/>). */
  reset(): void {
    this.core.reset();
  }

  end(): void {
    this.core.end();
  }
}

export function createStreamParser(events: StreamParserEvents, limits: ParserLimits): StreamParser {
  return new VeronaStreamParser(events, limits);
}

interface StringWithWellFormed {
  isWellFormed(): boolean;
}

/**
 * Parses one standalone document (a WebSocket frame, a stored element, a test
 * fixture). The same rules as on the stream apply; throws XmlError.
 */
export function parseXml(text: string, limits: ParserLimits = DOCUMENT_LIMITS): Element {
  let result: Element | undefined;
  let error: XmlError | undefined;
  const sink: Sink = {
    onStreamStart() {
      /* not called in document mode */
    },
    onElement(el) {
      result = el;
    },
    onStreamEnd() {
      /* not called in document mode */
    },
    onError(condition, message) {
      error = new XmlError(condition, message);
    },
  };
  // A JS string may hold lone surrogates, which no UTF-8 stream can.
  if (!(text as unknown as StringWithWellFormed).isWellFormed()) throw new XmlError('not-well-formed', 'lone surrogate');
  const core = new XmlCore(sink, limits, false);
  core.feed(text);
  if (error !== undefined) throw error;
  if (result === undefined || !core.finished()) throw new XmlError('not-well-formed', 'incomplete document');
  return result;
}
