/**
 * What a c2s stream needs from the connection under it. TCP (with STARTTLS
 * or direct TLS), WebSocket (RFC 7395) and BOSH implement this; the stream
 * state machine never sees sockets, and transports never look inside stanzas.
 */
import type { Element } from '../xml/element.js';

export type TransportKind = 'tcp' | 'websocket' | 'bosh';

export interface Transport {
  readonly kind: TransportKind;
  readonly remoteAddress: string;
  /** TLS is active on this connection (or the HTTP request came over TLS / loopback-trusted). */
  readonly secure: boolean;
  /** STARTTLS can be offered (plain TCP with a certificate configured). */
  readonly canStartTls: boolean;
  /** Send the server's stream header (<stream:stream> on TCP, <open/> on WebSocket). */
  sendHeader(attrs: Record<string, string>): void;
  /** Send one top-level element. */
  send(el: Element): void;
  /** Whitespace keepalive (no-op where the transport has its own). */
  sendKeepalive(): void;
  /** SASL succeeded (TCP: frees the connection's login admission slot). */
  authenticated?(): void;
  /** Upgrade to TLS after <proceed/> was sent; resolves when the handshake is done. */
  startTls(): Promise<void>;
  /** Stream restart (after TLS or SASL): reset the parser for a new header. */
  restart(): void;
  /** Close: writes the stream footer (</stream:stream> or <close/>) then ends the connection. */
  close(): void;
  /** Adjust parser limits (stanza size grows after authentication). */
  setMaxStanzaSize(bytes: number): void;
  /** TLS channel-binding data (RFC 9266 tls-exporter, RFC 5929 tls-server-end-point); undefined without TLS. */
  channelBinding?(type: 'tls-exporter' | 'tls-server-end-point'): Buffer | undefined;
}

/** Events a transport delivers to its stream (the stream implements this). */
export interface TransportSink {
  onStreamStart(attrs: Record<string, string>, ns: string, name: string): void;
  onElement(el: Element): void;
  /**
   * The peer ended the stream. `clean` is false when the connection was
   * half-closed without a stream footer (TCP FIN only): stream management
   * then keeps the session for resumption, as after any unclean loss.
   */
  onStreamEnd(clean?: boolean): void;
  /** Parse error: the stream sends the stream error and closes. */
  onParseError(condition: string, text: string): void;
  /** The connection is gone (closed by peer, error, or after close()). */
  onClosed(reason: string): void;
  /** Any bytes arrived (for idle detection). */
  onActivity(): void;
}
