/**
 * Contract of the incremental stream parser (implementation: ./parser.ts).
 * The c2s layer depends only on this interface.
 */
import type { Element } from './element.js';

/** Stream error conditions the parser can raise (RFC 6120 §4.9.3). */
export type ParserErrorCondition =
  | 'not-well-formed'
  | 'restricted-xml'
  | 'policy-violation'
  | 'invalid-namespace'
  | 'bad-format';

export interface ParserLimits {
  /** Max size of one top-level stanza (characters of its XML text). */
  maxStanzaSize: number;
  /** Max element nesting depth inside a stanza (the stanza itself is depth 1). */
  maxDepth: number;
  /** Max attributes on one element. */
  maxAttributes: number;
}

export interface StreamParserEvents {
  /** `<stream:stream ...>` opened; attrs as written (xmlns, xmlns:stream, to, version, ...). ns: resolved namespace of the root element. */
  onStreamStart(name: string, ns: string, attrs: Record<string, string>): void;
  /** One complete top-level child of the stream (stanza or nonza), namespaces resolved. */
  onElement(el: Element): void;
  /** `</stream:stream>` */
  onStreamEnd(): void;
  /** Fatal: after this the parser ignores further input. */
  onError(condition: ParserErrorCondition, text: string): void;
}

export interface StreamParser {
  /** Feed raw bytes (a chunk may split a multi-byte character anywhere). */
  write(chunk: Buffer): void;
  /** Change limits (e.g. raise the stanza size after authentication). */
  setLimits(limits: ParserLimits): void;
  /** Forget everything and expect a new stream header (after STARTTLS / SASL success). */
  reset(): void;
  /** Release resources; no more events. */
  end(): void;
}
