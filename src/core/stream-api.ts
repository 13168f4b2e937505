/** What modules may see of a c2s stream (before and after binding). */
import type { Element } from '../xml/element.js';
import type { Session } from './session.js';

export interface C2SStreamApi {
  readonly id: string;
  readonly remoteAddress: string;
  readonly transportKind: string;
  readonly secure: boolean;
  readonly authenticated: boolean;
  /** Account key after SASL success (src/core/vhosts.ts): the prepared localpart on the primary domain, user@domain on another hosted domain. */
  readonly username: string | undefined;
  /** The hosted domain the stream serves (virtual hosts). */
  readonly localDomain: string;
  readonly session: Session | undefined;
  /** Module state for the pre-bind phase (e.g. MR2 enabled before bind), keyed by module name. */
  readonly data: Map<string, unknown>;
  /** Still exchanging elements (not closing or closed). */
  readonly open: boolean;
  /** Attach a session resumed by stream management to this stream (XEP-0198). */
  adopt(session: Session): void;
  /** Send a top-level element: nonzas go to the wire, stanzas of a bound session through its counted path. */
  write(el: Element): void;
  /** Past every outbound filter, straight to the transport (SM replays already-counted stanzas with it). */
  writeWire(el: Element): void;
  closeWith(condition?: string, text?: string): void;
  /** SASL2 (XEP-0388): mark the stream authenticated without a restart. */
  authenticateAs(username: string, mechanism: string): void;
  /** Bind a resource (Bind2, XEP-0386); throws StanzaError for a bad one. */
  bindSession(requested: string | undefined): Session;
  /** Post-auth stream features without a restart (SASL2 success without Bind2). */
  sendStreamFeatures(): void;
  /** TLS channel-binding data (XEP-0440), undefined without TLS. */
  channelBinding(type: 'tls-exporter' | 'tls-server-end-point'): Buffer | undefined;
}
