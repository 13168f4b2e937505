/**
 * Mutation-based inputs on fast-check: start from a corpus entry (committed
 * under test/fuzz/corpus/) and apply a few byte-level mutations (flip,
 * insert, delete, duplicate a range, splice in a token XMPP parsers care
 * about). fast-check shrinks a failure to the fewest, smallest mutations.
 */
import fc from 'fast-check';
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** test/fuzz/corpus, from src or from dist. */
export const CORPUS_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..', 'test/fuzz/corpus');

/** Every file of one corpus folder, sorted by name (stable seeds). */
export function corpus(name: string): Buffer[] {
  const dir = path.join(CORPUS_DIR, name);
  if (!existsSync(dir)) throw new Error(`no corpus ${dir}`);
  return readdirSync(dir)
    .sort()
    .map((f) => readFileSync(path.join(dir, f)));
}

/** Tokens that steer a parser into its interesting states. */
export const XML_TOKENS: readonly string[] = [
  '<', '>', '/>', '</', '=', "'", '"', ' ', '\n', '\t', 'xmlns=', "xmlns:stream='http://etherx.jabber.org/streams'",
  "xmlns='jabber:client'", 'xmlns:', 'xml:', 'xmlns:xml=', '<stream:stream ', '</stream:stream>', "version='1.0'",
  '&amp;', '&lt;', '&#x10FFFF;', '&#0;', '&#x;', '&foo;', '&', ']]>', '<![CDATA[', '<!DOCTYPE x [<!ENTITY a "b">]>',
  '<?xml version="1.0"?>', '<?pi?>', '<!-- c -->', '\u00e9', '\u{1F600}', '\uFFFE', '\0', '\u0085',
  '<message to="a@b">', '<body>', '</body>', '</message>', '<iq type="set" id="1">', '</iq>', '<presence/>',
];

const BYTES_OF_TOKENS = XML_TOKENS.map((t) => Buffer.from(t, 'utf8'));
/** Invalid and truncated UTF-8 sequences. */
const BAD_UTF8 = [Buffer.from([0xff]), Buffer.from([0xc3]), Buffer.from([0xe2, 0x82]), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from([0xf4, 0x90, 0x80, 0x80]), Buffer.from([0xc0, 0xaf])];

type Mutation =
  | { k: 'flip'; at: number; bit: number }
  | { k: 'byte'; at: number; v: number }
  | { k: 'insert'; at: number; token: Buffer }
  | { k: 'delete'; at: number; len: number }
  | { k: 'dup'; at: number; len: number; to: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ k: fc.constant('flip' as const), at: fc.nat(), bit: fc.integer({ min: 0, max: 7 }) }),
  fc.record({ k: fc.constant('byte' as const), at: fc.nat(), v: fc.integer({ min: 0, max: 255 }) }),
  fc.record({ k: fc.constant('insert' as const), at: fc.nat(), token: fc.constantFrom(...BYTES_OF_TOKENS, ...BAD_UTF8) }),
  fc.record({ k: fc.constant('insert' as const), at: fc.nat(), token: fc.uint8Array({ maxLength: 8 }).map((a) => Buffer.from(a)) }),
  fc.record({ k: fc.constant('delete' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 16 }) }),
  fc.record({ k: fc.constant('dup' as const), at: fc.nat(), len: fc.integer({ min: 1, max: 64 }), to: fc.nat() }),
);

export function applyMutation(b: Buffer, m: Mutation): Buffer {
  const n = b.length;
  const at = n === 0 ? 0 : m.at % (n + 1);
  switch (m.k) {
    case 'flip': {
      if (n === 0) return b;
      const c = Buffer.from(b);
      c[at % n] ^= 1 << m.bit;
      return c;
    }
    case 'byte': {
      if (n === 0) return Buffer.from([m.v]);
      const c = Buffer.from(b);
      c[at % n] = m.v;
      return c;
    }
    case 'insert':
      return Buffer.concat([b.subarray(0, at), m.token, b.subarray(at)]);
    case 'delete':
      return Buffer.concat([b.subarray(0, at), b.subarray(Math.min(n, at + m.len))]);
    case 'dup': {
      const piece = b.subarray(at, Math.min(n, at + m.len));
      const to = n === 0 ? 0 : m.to % (n + 1);
      return Buffer.concat([b.subarray(0, to), piece, b.subarray(to)]);
    }
  }
}

/** A corpus entry with 0..maxMutations mutations applied. */
export function mutated(seeds: readonly Buffer[], maxMutations = 6): fc.Arbitrary<Buffer> {
  return fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { maxLength: maxMutations })).map(([seed, ms]) => ms.reduce(applyMutation, seed));
}

/** Bytes either mutated from the corpus or random (random bytes find the early-rejection paths). */
export function bytesFrom(seeds: readonly Buffer[]): fc.Arbitrary<Buffer> {
  return fc.oneof({ weight: 4, arbitrary: mutated(seeds) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 512 }).map((a) => Buffer.from(a)) });
}

/** Split `b` at the given cut points (any byte, so also inside a multi-byte character). */
export function split(b: Buffer, cuts: readonly number[]): Buffer[] {
  if (b.length === 0) return [b];
  const points = [...new Set(cuts.map((c) => c % b.length))].sort((x, y) => x - y);
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    if (p === prev) continue;
    out.push(b.subarray(prev, p));
    prev = p;
  }
  out.push(b.subarray(prev));
  return out;
}

/**
 * A conversation corpus file holds one client turn per line-group,
 * separated by a line with only `---` (the harness waits for the server
 * between turns, as a real client does).
 */
export function turns(file: Buffer): Buffer[] {
  return file
    .toString('utf8')
    .split(/\r?\n---\r?\n/)
    .map((t) => Buffer.from(t.replace(/\r?\n$/, ''), 'utf8'));
}
