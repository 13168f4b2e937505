/**
 * JIDs per RFC 7622, with the PRECIS profiles it names, built only from what
 * Node offers natively (Unicode regex properties, String#normalize, the
 * WHATWG/UTS #46 domain functions of node:url):
 *
 * - localpart: UsernameCaseMapped (RFC 8265 §3.3) on the IdentifierClass
 *   (RFC 8264 §4.2), minus the eight characters RFC 7622 §3.3.1 forbids;
 * - domainpart: IP literal, or NR-LDH / U-labels (RFC 7622 §3.2, IDNA2008),
 *   stored in U-label form;
 * - resourcepart: OpaqueString (RFC 8265 §4.2) on the FreeformClass.
 *
 * Known approximations (Node exposes neither Bidi_Class nor Joining_Type):
 * the Bidi Rule (RFC 5893) is approximated from scripts and general
 * categories, and ZWNJ is accepted only after a virama (the joining-type
 * alternative of RFC 5892 A.1 is not evaluated, so a few valid Arabic-script
 * strings with ZWNJ are refused; refusing is the safe direction).
 */
import { domainToASCII, domainToUnicode } from 'node:url';
import { isIPv4, isIPv6 } from 'node:net';

export class JIDError extends Error {
  readonly condition = 'jid-malformed';
}

const MAX_PART = 1023; // octets per part (RFC 7622 §3.2.1, §3.3.1, §3.4.1)
// A raw JID is at most three parts plus two separators once prepared; the raw
// input may be longer (NFC, mappings), so only cut obvious garbage early.
const MAX_INPUT = 4 * (3 * MAX_PART + 2);

// ---------------------------------------------------------------------------
// PRECIS string classes (RFC 8264 §8-9), evaluated per code point.

type Derived = 'PVALID' | 'CONTEXTJ' | 'CONTEXTO' | 'FREE_PVAL' | 'DISALLOWED';

// RFC 5892 §2.6 exceptions, reused by RFC 8264 §9.6.
const EXCEPTIONS = new Map<number, Derived>([
  [0x00df, 'PVALID'], [0x03c2, 'PVALID'], [0x06fd, 'PVALID'], [0x06fe, 'PVALID'],
  [0x0f0b, 'PVALID'], [0x3007, 'PVALID'],
  [0x00b7, 'CONTEXTO'], [0x0375, 'CONTEXTO'], [0x05f3, 'CONTEXTO'], [0x05f4, 'CONTEXTO'],
  [0x30fb, 'CONTEXTO'],
  [0x0640, 'DISALLOWED'], [0x07fa, 'DISALLOWED'], [0x302e, 'DISALLOWED'], [0x302f, 'DISALLOWED'],
  [0x3031, 'DISALLOWED'], [0x3032, 'DISALLOWED'], [0x3033, 'DISALLOWED'], [0x3034, 'DISALLOWED'],
  [0x3035, 'DISALLOWED'], [0x303b, 'DISALLOWED'],
]);
for (let cp = 0x0660; cp <= 0x0669; cp++) EXCEPTIONS.set(cp, 'CONTEXTO');
for (let cp = 0x06f0; cp <= 0x06f9; cp++) EXCEPTIONS.set(cp, 'CONTEXTO');

const RE_UNASSIGNED = /^\p{Cn}$/u;
const RE_JOIN_CONTROL = /^\p{Join_Control}$/u;
// Conjoining jamo (Hangul_Syllable_Type L, V, T): RFC 8264 §9.9.
const RE_OLD_HANGUL_JAMO = /^[\u1100-\u11ff\ua960-\ua97c\ud7b0-\ud7c6\ud7cb-\ud7fb]$/u;
const RE_IGNORABLE = /^[\p{Default_Ignorable_Code_Point}\p{Noncharacter_Code_Point}]$/u;
const RE_CONTROL = /^\p{Cc}$/u;
const RE_LETTER_DIGITS = /^[\p{Ll}\p{Lu}\p{Lo}\p{Nd}\p{Lm}\p{Mn}\p{Mc}]$/u;
const RE_OTHER_LETTER_DIGITS = /^[\p{Lt}\p{Nl}\p{No}\p{Me}]$/u;
const RE_FREE_EXTRA = /^[\p{Zs}\p{S}\p{P}]$/u; // Spaces, Symbols, Punctuation

/** RFC 8264 §8 derivation, collapsing ID_DIS/FREE_PVAL into FREE_PVAL. */
function derive(ch: string, cp: number): Derived {
  const exc = EXCEPTIONS.get(cp);
  if (exc !== undefined) return exc;
  if (RE_UNASSIGNED.test(ch)) return 'DISALLOWED'; // unassigned is never allowed in enforcement
  if (cp >= 0x21 && cp <= 0x7e) return 'PVALID'; // ASCII7
  if (RE_JOIN_CONTROL.test(ch)) return 'CONTEXTJ';
  if (RE_OLD_HANGUL_JAMO.test(ch)) return 'DISALLOWED';
  if (RE_IGNORABLE.test(ch)) return 'DISALLOWED';
  if (RE_CONTROL.test(ch)) return 'DISALLOWED';
  if (ch.normalize('NFKC') !== ch) return 'FREE_PVAL'; // HasCompat
  if (RE_LETTER_DIGITS.test(ch)) return 'PVALID';
  if (RE_OTHER_LETTER_DIGITS.test(ch) || RE_FREE_EXTRA.test(ch)) return 'FREE_PVAL';
  return 'DISALLOWED'; // private use, surrogates, Zl/Zp, other formats
}

/**
 * Canonical_Combining_Class == 9 (Virama), found through canonical ordering:
 * NFD moves a mark before U+05B0 (ccc 10) only when its class is 1..9, and
 * lets U+3099 (ccc 8) move before it only when its class is above 8.
 */
function isVirama(ch: string): boolean {
  if (ch === '\u05b0' || ch === '\u3099') return false;
  return (
    ('a\u05b0' + ch).normalize('NFD') === 'a' + ch + '\u05b0' &&
    ('a' + ch + '\u3099').normalize('NFD') === 'a\u3099' + ch
  );
}

const RE_GREEK = /^\p{Script=Greek}$/u;
const RE_HEBREW = /^\p{Script=Hebrew}$/u;
const RE_KANA_HAN = /[\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Han}]/u;

/** RFC 5892 Appendix A context rules. */
function contextOk(cps: string[], i: number): boolean {
  const cp = cps[i].codePointAt(0)!;
  const before = i > 0 ? cps[i - 1] : undefined;
  const after = i + 1 < cps.length ? cps[i + 1] : undefined;
  switch (cp) {
    case 0x200c: // ZWNJ (A.1, virama branch only)
    case 0x200d: // ZWJ (A.2)
      return before !== undefined && isVirama(before);
    case 0x00b7: // MIDDLE DOT between two 'l' (A.3)
      return before === 'l' && after === 'l';
    case 0x0375: // GREEK LOWER NUMERAL SIGN followed by Greek (A.4)
      return after !== undefined && RE_GREEK.test(after);
    case 0x05f3: // HEBREW PUNCTUATION GERESH / GERSHAYIM after Hebrew (A.5, A.6)
    case 0x05f4:
      return before !== undefined && RE_HEBREW.test(before);
    case 0x30fb: // KATAKANA MIDDLE DOT with some Hiragana/Katakana/Han (A.7)
      return cps.some((c) => c !== '\u30fb' && RE_KANA_HAN.test(c));
    default:
      if (cp >= 0x0660 && cp <= 0x0669) return !cps.some((c) => c >= '\u06f0' && c <= '\u06f9'); // A.8
      if (cp >= 0x06f0 && cp <= 0x06f9) return !cps.some((c) => c >= '\u0660' && c <= '\u0669'); // A.9
      return false;
  }
}

/** True when every code point is allowed by the class (identifier or freeform). */
function inClass(s: string, freeform: boolean): boolean {
  const cps = Array.from(s);
  for (let i = 0; i < cps.length; i++) {
    const d = derive(cps[i], cps[i].codePointAt(0)!);
    if (d === 'PVALID') continue;
    if (d === 'FREE_PVAL' && freeform) continue;
    if ((d === 'CONTEXTJ' || d === 'CONTEXTO') && contextOk(cps, i)) continue;
    return false;
  }
  return true;
}

// Approximation of the Bidi Rule (RFC 5893 §2), which RFC 8265 applies to
// usernames containing right-to-left code points.
const RE_RTL_LETTER =
  /[\p{Script=Hebrew}\p{Script=Arabic}\p{Script=Syriac}\p{Script=Thaana}\p{Script=Nko}\p{Script=Samaritan}\p{Script=Mandaic}\p{Script=Adlam}\p{Script=Hanifi_Rohingya}\p{Script=Yezidi}]/u;
const RE_AN = /[\u0600-\u0605\u0660-\u0669\u066b\u066c\u06dd\u08e2]/u; // Arabic Number
const RE_EN = /[0-9\u06f0-\u06f9]/u; // European Number (the common ones)

function bidiOk(s: string): boolean {
  const cps = Array.from(s);
  const isR = (c: string): boolean => /\p{L}/u.test(c) && RE_RTL_LETTER.test(c);
  if (!cps.some((c) => isR(c) || RE_AN.test(c))) return true; // not an RTL string
  if (!isR(cps[0])) return false; // rule 1 (an L first would break rule 5)
  let hasEN = false;
  let hasAN = false;
  for (const c of cps) {
    // rule 2: no L; letters of LTR scripts, spacing marks and other digits are L
    if ((/\p{L}/u.test(c) && !isR(c)) || /\p{Mc}/u.test(c)) return false;
    if (/\p{Nd}/u.test(c) && !RE_EN.test(c) && !RE_AN.test(c)) return false;
    if (RE_EN.test(c)) hasEN = true;
    if (RE_AN.test(c)) hasAN = true;
  }
  if (hasEN && hasAN) return false; // rule 4
  let end = cps.length - 1;
  while (end > 0 && /\p{Mn}/u.test(cps[end])) end--; // rule 3: trailing NSM allowed
  const last = cps[end];
  return isR(last) || RE_EN.test(last) || RE_AN.test(last);
}

/** Apply a PRECIS mapping until it is stable (RFC 8264 §7: at most 3 more passes). */
function untilStable(s: string, f: (x: string) => string): string {
  let cur = f(s);
  for (let i = 0; i < 3; i++) {
    const next = f(cur);
    if (next === cur) return cur;
    cur = next;
  }
  throw new JIDError('preparation is not stable');
}

function octets(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

// Fullwidth/halfwidth code points map to their <wide>/<narrow> decomposition
// (RFC 8265 §3.3 width mapping rule); per-character NFKC yields exactly that
// for every such code point an identifier may keep.
const RE_WIDTH = /[\u3000\uff01-\uffee]/gu;
const widthMap = (s: string): string => s.replace(RE_WIDTH, (c) => c.normalize('NFKC'));

const RE_PRINTABLE_ASCII = /^[\x21-\x7e]+$/;
const RE_PRINTABLE_ASCII_SPACE = /^[\x20-\x7e]+$/;

// Characters RFC 7622 §3.3.1 forbids in localparts beyond the IdentifierClass.
const LOCAL_FORBIDDEN = /["&'/:<>@]/u;

/** UsernameCaseMapped enforcement plus the XMPP localpart restrictions. */
export function prepareLocal(s: string): string {
  if (s.length === 0) throw new JIDError('empty localpart');
  if (s.length > MAX_INPUT) throw new JIDError('localpart too long');
  if (RE_PRINTABLE_ASCII.test(s)) {
    // Fast path for the common case: every printable ASCII character but
    // space is PVALID, and lower-casing is all the mapping there is.
    if (s.length > MAX_PART) throw new JIDError('localpart too long');
    if (LOCAL_FORBIDDEN.test(s)) throw new JIDError('forbidden character in localpart');
    return s.toLowerCase();
  }
  const mapped = widthMap(s);
  // Preparation (RFC 8265 §3.3.2) checks the class before case mapping too,
  // so that e.g. titlecase letters are refused rather than silently lowered.
  if (!inClass(mapped.normalize('NFC'), false)) throw new JIDError('forbidden character in localpart');
  const p = untilStable(mapped, (x) => widthMap(x).toLowerCase().normalize('NFC'));
  if (p.length === 0) throw new JIDError('empty localpart');
  if (octets(p) > MAX_PART) throw new JIDError('localpart too long');
  if (LOCAL_FORBIDDEN.test(p) || !inClass(p, false)) throw new JIDError('forbidden character in localpart');
  if (!bidiOk(p)) throw new JIDError('localpart violates the bidi rule');
  return p;
}

// NR-LDH label (RFC 5890 §2.3.1): letters, digits, hyphen, no hyphen at the
// ends, and no '--' in positions 3-4 (those are reserved, e.g. xn--).
const RE_LDH = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
const isReservedLdh = (l: string): boolean => l.length >= 4 && l[2] === '-' && l[3] === '-';

/** Check a U-label's code points against IDNA2008 (LDH ASCII + identifier letters). */
function uLabelOk(label: string): boolean {
  if (label.startsWith('-') || label.endsWith('-')) return false;
  for (const c of label) {
    if (c.charCodeAt(0) < 0x80 && !/[a-z0-9-]/.test(c)) return false;
  }
  return inClass(label, false);
}

export function prepareDomain(s: string): string {
  // RFC 7622 §3.2: strip one trailing dot before any other canonicalisation.
  let d = s.endsWith('.') ? s.slice(0, -1) : s;
  if (d.length === 0) throw new JIDError('empty domainpart');
  if (d.length > MAX_INPUT) throw new JIDError('domainpart too long');
  if (d.startsWith('[')) {
    // IPv6 literal (RFC 3986 IP-literal, no zone identifiers)
    const inner = d.endsWith(']') ? d.slice(1, -1) : '';
    if (inner.includes('%') || !isIPv6(inner)) throw new JIDError('bad IPv6 literal');
    return `[${inner.toLowerCase()}]`;
  }
  // eslint-disable-next-line no-control-regex
  if (/^[\x00-\x7f]*$/.test(d) && !/(^|\.)xn--/i.test(d)) {
    d = d.toLowerCase();
    if (/^[0-9.]+$/.test(d)) {
      // All-numeric names are IPv4 literals or nothing (RFC 3986 dotted decimal).
      if (!isIPv4(d)) throw new JIDError('bad IPv4 literal');
      return d;
    }
    for (const label of d.split('.')) {
      if (!RE_LDH.test(label) || isReservedLdh(label)) throw new JIDError('bad domain label');
    }
    if (octets(d) > MAX_PART) throw new JIDError('domainpart too long');
    return d;
  }
  // The WHATWG host parser would percent-decode and accept other ASCII
  // punctuation, so ASCII here must already be letters, digits, '-' or '.'.
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x2c\x2f\x3a-\x40\x5b-\x60\x7b-\x7f]/.test(d)) throw new JIDError('bad domain character');
  // Internationalised: UTS #46 mapping (case folding, NFC, full stops) and
  // A-label validation, then keep the U-label form (RFC 7622 §3.2.2).
  const ascii = domainToASCII(d);
  if (ascii === '' || ascii.endsWith('.')) throw new JIDError('bad internationalised domain');
  for (const label of ascii.split('.')) {
    if (label.length > 63) throw new JIDError('domain label too long');
    if (!RE_LDH.test(label) || (isReservedLdh(label) && !label.startsWith('xn--'))) {
      throw new JIDError('bad domain label');
    }
  }
  const unicode = domainToUnicode(ascii);
  if (unicode === '' || /^[0-9.]+$/.test(unicode)) throw new JIDError('bad internationalised domain');
  // The U-label form must lead back to the same A-labels, or one JID would have two meanings:
  // 'xn--xn--bcher-kvc' decodes to 'xn--bƿcher', which is no valid domain itself (found by the fuzzer).
  if (domainToASCII(unicode) !== ascii) throw new JIDError('bad internationalised domain');
  for (const label of unicode.split('.')) {
    if (!uLabelOk(label)) throw new JIDError('bad domain label');
  }
  if (octets(unicode) > MAX_PART) throw new JIDError('domainpart too long');
  return unicode;
}

// OpaqueString additional mapping: non-ASCII spaces become U+0020.
const RE_NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]/gu;

/** OpaqueString enforcement (RFC 8265 §4.2); case is kept. */
export function prepareResource(s: string): string {
  if (s.length === 0) throw new JIDError('empty resourcepart');
  if (s.length > MAX_INPUT) throw new JIDError('resourcepart too long');
  if (RE_PRINTABLE_ASCII_SPACE.test(s)) {
    // Fast path: printable ASCII and space are all allowed and need no mapping.
    if (s.length > MAX_PART) throw new JIDError('resourcepart too long');
    return s;
  }
  const r = untilStable(s, (x) => x.replace(RE_NON_ASCII_SPACE, ' ').normalize('NFC'));
  if (r.length === 0) throw new JIDError('empty resourcepart');
  if (octets(r) > MAX_PART) throw new JIDError('resourcepart too long');
  if (!inClass(r, true)) throw new JIDError('forbidden character in resourcepart');
  return r;
}

export class JID {
  readonly local: string;
  readonly domain: string;
  readonly resource: string;
  private str: string | undefined;

  /** Parts must already be prepared; use parseJID / jid() for user input. */
  constructor(local: string, domain: string, resource = '') {
    this.local = local;
    this.domain = domain;
    this.resource = resource;
  }

  get bare(): JID {
    return this.resource === '' ? this : new JID(this.local, this.domain);
  }

  isBare(): boolean {
    return this.resource === '';
  }

  withResource(resource: string): JID {
    return new JID(this.local, this.domain, prepareResource(resource));
  }

  bareString(): string {
    return this.local === '' ? this.domain : `${this.local}@${this.domain}`;
  }

  toString(): string {
    if (this.str === undefined) {
      const b = this.bareString();
      this.str = this.resource === '' ? b : `${b}/${this.resource}`;
    }
    return this.str;
  }

  equals(other: JID | undefined): boolean {
    return other !== undefined && this.toString() === other.toString();
  }
}

/** Parse and prepare; throws JIDError (condition jid-malformed). */
export function parseJID(input: string): JID {
  if (typeof input !== 'string' || input.length === 0) throw new JIDError('empty JID');
  if (input.length > MAX_INPUT) throw new JIDError('JID too long');
  // RFC 7622 §3.1: the resourcepart runs from the first '/', the localpart up
  // to the first '@' before it; '@' and '/' are then allowed in the resource.
  const slash = input.indexOf('/');
  const head = slash === -1 ? input : input.slice(0, slash);
  const resource = slash === -1 ? '' : input.slice(slash + 1);
  if (slash !== -1 && resource === '') throw new JIDError('empty resourcepart');
  const at = head.indexOf('@');
  const local = at === -1 ? '' : head.slice(0, at);
  const domain = at === -1 ? head : head.slice(at + 1);
  if (at !== -1 && local === '') throw new JIDError('empty localpart');
  return new JID(at === -1 ? '' : prepareLocal(local), prepareDomain(domain), resource === '' ? '' : prepareResource(resource));
}

/** parseJID that returns undefined instead of throwing. */
export function tryParseJID(input: string | undefined): JID | undefined {
  if (input === undefined) return undefined;
  try {
    return parseJID(input);
  } catch {
    return undefined;
  }
}
