/**
 * Password preparation: SASLprep (RFC 4013) tables with OpaqueString's
 * normalisation form (RFC 8265 §4.2 uses NFC where RFC 4013 uses NFKC).
 * NFC keeps compatibility characters (ligatures, fullwidth letters) as the
 * user typed them, which is what OpaqueString asks for; for ASCII and most
 * real passwords both forms agree, so SCRAM clients that use NFKC still match.
 *
 * Unassigned code points are allowed (they may be assigned by a newer
 * Unicode than the one the client knows), and the RFC 3454 bidi check is not
 * applied (OpaqueString drops it too).
 */

export class SaslPrepError extends Error {}

// RFC 3454 B.1, "commonly mapped to nothing" (RFC 4013 §2.2). The classes
// list lone combining marks and joiners on purpose, each matched by itself.
// eslint-disable-next-line no-misleading-character-class
const MAP_TO_NOTHING = /[\u00ad\u034f\u1806\u180b-\u180d\u200b-\u200d\u2060\ufe00-\ufe0f\ufeff]/gu;
// RFC 3454 C.1.2, non-ASCII space characters, mapped to U+0020 (RFC 4013 §2.1).
const NON_ASCII_SPACE = /[\u00a0\u1680\u2000-\u200b\u202f\u205f\u3000]/gu;
// RFC 4013 §2.3 prohibited output: C.2.1/C.2.2 controls, C.3 private use,
// C.4 non-characters, C.5 surrogates, C.6 inappropriate for plain text,
// C.7 inappropriate for canonical representation, C.8 display-changing and
// deprecated, C.9 tagging. (C.1.2 spaces are already mapped.)
const PROHIBITED = new RegExp(
  // eslint-disable-next-line no-misleading-character-class -- lone code points, each matched by itself
  '[' +
    '\\u0000-\\u001f\\u007f-\\u009f\\u06dd\\u070f\\u180e\\u200c\\u200d\\u2028\\u2029\\u2060-\\u2063\\u206a-\\u206f' +
    '\\ufeff\\ufff9-\\ufffc\\u{1d173}-\\u{1d17a}' + // C.2.2
    '\\ue000-\\uf8ff\\u{f0000}-\\u{ffffd}\\u{100000}-\\u{10fffd}' + // C.3
    '\\ufdd0-\\ufdef\\ufffe\\uffff\\u{1fffe}\\u{1ffff}\\u{2fffe}\\u{2ffff}\\u{3fffe}\\u{3ffff}\\u{4fffe}\\u{4ffff}' +
    '\\u{5fffe}\\u{5ffff}\\u{6fffe}\\u{6ffff}\\u{7fffe}\\u{7ffff}\\u{8fffe}\\u{8ffff}\\u{9fffe}\\u{9ffff}' +
    '\\u{afffe}\\u{affff}\\u{bfffe}\\u{bffff}\\u{cfffe}\\u{cffff}\\u{dfffe}\\u{dffff}\\u{efffe}\\u{effff}' +
    '\\u{ffffe}\\u{fffff}\\u{10fffe}\\u{10ffff}' + // C.4
    '\\ud800-\\udfff' + // C.5 (lone surrogates; pairs are read as one code point under /u)
    '\\ufff9-\\ufffd' + // C.6
    '\\u2ff0-\\u2ffb' + // C.7
    '\\u0340\\u0341\\u200e\\u200f\\u202a-\\u202e' + // C.8
    '\\u{e0001}\\u{e0020}-\\u{e007f}' + // C.9
    ']',
  'u',
);

/** Prepare a password; throws SaslPrepError when it is prohibited or empty. */
export function saslprep(input: string): string {
  // Fast path: printable ASCII needs no mapping.
  if (/^[\x20-\x7e]+$/.test(input)) return input;
  const mapped = input.replace(MAP_TO_NOTHING, '').replace(NON_ASCII_SPACE, ' ').normalize('NFC');
  if (mapped.length === 0) throw new SaslPrepError('empty password');
  if (PROHIBITED.test(mapped)) throw new SaslPrepError('prohibited character in password');
  return mapped;
}
