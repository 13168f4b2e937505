/**
 * TCP transport: plain sockets with STARTTLS, and direct TLS (XEP-0368).
 * Feeds raw bytes to the incremental parser (never decodes per chunk, so a
 * multi-byte character split across packets is safe) and batches writes per
 * tick with cork/uncork.
 */
import net from 'node:net';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import { escapeAttr, NS_CLIENT } from '../xml/element.js';
import type { Element } from '../xml/element.js';
import { serializeOnce } from '../xml/serialize-cache.js';
import { createStreamParser } from '../xml/parser.js';
import type { StreamParser, ParserLimits } from '../xml/stream-parser.contract.js';
import type { Transport, TransportSink } from '../c2s/transport.js';
import type { Logger } from '../core/logger.js';
import { TokenBucket } from '../limits/limits.js';
import { TickCork } from './cork.js';

/** A client that stops reading while we keep writing is cut off past this many buffered bytes. */

export interface TcpTransportOptions {
  secure: boolean;
  secureContext: tls.SecureContext | undefined;
  /** Virtual hosts: picks the hosted domain's certificate by SNI (src/net/vhost-tls.ts). */
  sniCallback?: (serverName: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void;
  limits: ParserLimits;
  log: Logger;
  /** Bytes per second with a burst (limits.readRate/readBurst); reading pauses while over it. */
  readRate?: { rate: number; burst: number; onThrottle?: () => void };
  /** Called once, when SASL succeeded or the connection went away (frees a login admission slot). */
  onLoginDone?: () => void;
}

export class TcpTransport implements Transport {
  readonly kind = 'tcp' as const;
  readonly remoteAddress: string;
  secure: boolean;
  private socket: net.Socket;
  private parser: StreamParser;
  private sink: TransportSink | undefined;
  private readonly cork = new TickCork();
  private closed = false;
  private readonly opts: TcpTransportOptions;
  private limits: ParserLimits;
  private readonly bucket: TokenBucket | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;

  constructor(socket: net.Socket, opts: TcpTransportOptions) {
    this.socket = socket;
    this.opts = opts;
    this.secure = opts.secure;
    this.limits = { ...opts.limits };
    this.remoteAddress = normalizeAddress(socket.remoteAddress);
    this.parser = this.makeParser();
    if (opts.readRate) this.bucket = new TokenBucket(opts.readRate.rate, opts.readRate.burst, Date.now());
    socket.setNoDelay(true);
    this.listen(socket);
  }

  get canStartTls(): boolean {
    return !this.secure && this.opts.secureContext !== undefined;
  }

  attach(sink: TransportSink): void {
    this.sink = sink;
  }

  private makeParser(): StreamParser {
    return createStreamParser(
      {
        onStreamStart: (name, ns, attrs) => this.sink?.onStreamStart(attrs, ns, name),
        onElement: (el) => this.sink?.onElement(el),
        onStreamEnd: () => this.sink?.onStreamEnd(),
        onError: (condition, text) => this.sink?.onParseError(condition, text),
      },
      this.limits,
    );
  }

  private readonly onData = (chunk: Buffer): void => {
    this.sink?.onActivity();
    this.parser.write(chunk);
    if (this.bucket) this.throttle(chunk.length);
  };

  /**
   * limits.readRate: over the rate, stop reading until the bucket refills. The
   * kernel's receive buffer then fills and TCP flow control slows the sender;
   * nothing is dropped, and one timer exists only while a stream is paused.
   */
  private throttle(bytes: number): void {
    const wait = (this.bucket as TokenBucket).take(bytes, Date.now());
    if (wait === 0 || this.resumeTimer !== undefined || this.closed) return;
    this.opts.readRate?.onThrottle?.();
    const sock = this.socket;
    sock.pause();
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      if (!this.closed) sock.resume();
    }, wait);
    this.resumeTimer.unref();
  }

  private listen(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', (err) => this.opts.log.debug({ err: err.message, addr: this.remoteAddress }, 'socket error'));
    socket.on('close', () => this.gone('closed'));
    socket.on('end', () => {
      // Half-close from the peer: finish our side too. Without a footer this is not a clean close.
      this.peerEnded = true;
      if (!this.closed) this.sink?.onStreamEnd(false);
    });
  }

  authenticated(): void {
    this.loginDone();
  }

  private loginDone(): void {
    const f = this.opts.onLoginDone;
    if (f === undefined) return;
    this.opts.onLoginDone = undefined;
    f();
  }

  private gone(reason: string): void {
    this.loginDone();
    if (this.closed && !this.sink) return;
    this.closed = true;
    if (this.resumeTimer !== undefined) clearTimeout(this.resumeTimer);
    this.parser.end();
    const sink = this.sink;
    this.sink = undefined;
    sink?.onClosed(reason);
  }

  private out(s: string): void {
    if (this.closed) return;
    const sock = this.socket;
    if (!this.cork.write(sock, s)) {
      this.opts.log.warn({ addr: this.remoteAddress }, 'client does not read; dropping connection');
      sock.destroy();
    }
  }

  sendHeader(attrs: Record<string, string>): void {
    let s = `<?xml version='1.0'?><stream:stream xmlns='${NS_CLIENT}' xmlns:stream='http://etherx.jabber.org/streams'`;
    for (const k of Object.keys(attrs)) s += ` ${k}='${escapeAttr(attrs[k] as string)}'`;
    this.out(s + '>');
  }

  send(el: Element): void {
    this.out(serializeOnce(el, NS_CLIENT));
  }

  /**
   * Channel-binding data is fixed for a TLS connection but asked for several times per login
   * (features offer -PLUS and FAST, then SCRAM checks it); getCertificate() decodes the whole
   * certificate each time, about 0.4 ms, which showed in the login-storm profile. Kept per
   * connection, from the TLS handshake on (null: computed, none; two fields rather than a Map:
   * an idle session should not pay for an object).
   */
  private cbExporter?: Buffer | null;
  /** The peer half-closed (FIN) before we closed: close() then just lets go. */
  private peerEnded = false;
  private cbEndPoint?: Buffer | null;

  channelBinding(type: 'tls-exporter' | 'tls-server-end-point'): Buffer | undefined {
    const sock = this.socket;
    if (!(sock instanceof tls.TLSSocket) || !this.secure) return undefined;
    const key = type === 'tls-exporter' ? 'cbExporter' : 'cbEndPoint';
    if (this[key] === undefined) this[key] = this.computeChannelBinding(sock, type) ?? null;
    return this[key] ?? undefined;
  }

  private computeChannelBinding(sock: tls.TLSSocket, type: 'tls-exporter' | 'tls-server-end-point'): Buffer | undefined {
    if (type === 'tls-exporter') {
      // RFC 9266: 32 bytes, label EXPORTER-Channel-Binding, no context; only sound on TLS 1.3.
      if (sock.getProtocol() !== 'TLSv1.3') return undefined;
      return sock.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
    }
    // RFC 5929 §4.1: hash of our certificate; SHA-256 (the hash of the certificates we make and of most others).
    const cert = sock.getCertificate();
    if (!cert || !('raw' in cert)) return undefined;
    return createHash('sha256').update(cert.raw).digest();
  }

  sendKeepalive(): void {
    this.out(' ');
  }

  restart(): void {
    this.parser.reset();
  }

  setMaxStanzaSize(bytes: number): void {
    this.limits.maxStanzaSize = bytes;
    this.parser.setLimits(this.limits);
  }

  startTls(): Promise<void> {
    const ctx = this.opts.secureContext;
    if (!ctx) return Promise.reject(new Error('no TLS context'));
    const plain = this.socket;
    return new Promise((resolve, reject) => {
      // Flush <proceed/> in plaintext before the TLS layer takes the socket over.
      this.cork.flush(plain);
      plain.removeListener('data', this.onData);
      plain.removeAllListeners('close');
      plain.removeAllListeners('end');
      plain.write('', () => {
        // The peer may have gone while <proceed/> was flushed: its 'close' found no listener (they
        // were removed above), so end the stream here, or the session and its login slot would stay.
        if (plain.destroyed) {
          this.gone('closed');
          reject(new Error('connection closed before the TLS handshake'));
          return;
        }
        const sni = this.opts.sniCallback;
        const sec = new tls.TLSSocket(plain, { isServer: true, secureContext: ctx, ALPNProtocols: ['xmpp-client'], ...(sni ? { SNICallback: sni } : {}) });
        this.socket = sec;
        this.secure = true;
        let done = false;
        sec.once('secure', () => {
          done = true;
          resolve();
        });
        sec.once('error', (err) => {
          if (!done) reject(err);
        });
        this.listen(sec);
      });
    });
  }

  close(): void {
    if (this.closed) return;
    if (this.peerEnded) {
      // The peer sent FIN without a stream footer (a client that dropped, or a whole network's
      // worth of them at once): no footer, no TLS close_notify, no 3 s timer. Writing them cost
      // a TLS encryption and a write error per socket, a quarter of the event-loop stall when
      // thousands of clients drop together (docs/benchmarks.md, login storm).
      this.closed = true;
      this.socket.destroy();
      return;
    }
    this.out('</stream:stream>');
    this.closed = true;
    const sock = this.socket;
    this.cork.flush(sock);
    sock.end();
    // A peer that never closes its side is cut off.
    setTimeout(() => sock.destroy(), 3000).unref();
  }
}

function normalizeAddress(a: string | undefined): string {
  if (!a) return 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

export function tlsOptions(cert: string, key: string): tls.SecureContextOptions {
  return { cert, key, minVersion: 'TLSv1.2' };
}
