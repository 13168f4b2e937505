/**
 * The connection under one s2s stream, either direction: bytes into the
 * shared incremental parser (src/xml/parser.ts, with its limits), elements
 * out in the `jabber:server` namespace (ns.ts), STARTTLS as TLS server or
 * TLS client, and what the peer's certificate proves.
 *
 * It knows nothing about dialback or routing (incoming.ts, outgoing.ts).
 */
import type net from 'node:net';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { escapeAttr, serialize, type Element } from '../xml/element.js';
import { createStreamParser } from '../xml/parser.js';
import type { ParserLimits, StreamParser } from '../xml/stream-parser.contract.js';
import type { Logger } from '../core/logger.js';
import { NS_DIALBACK, NS_SERVER, toServerNs } from './ns.js';
import { TickCork } from '../net/cork.js';

/** A peer that stops reading is cut off past this many buffered bytes. */

export interface ConnSink {
  onStreamStart(attrs: Record<string, string>, ns: string, name: string): void;
  onElement(el: Element): void;
  onStreamEnd(): void;
  onParseError(condition: string, text: string): void;
  onClosed(reason: string): void;
}

/** TLS material for both ends of s2s TLS: our certificate and the CAs we trust for peers. */
export interface S2STls {
  cert: string;
  key: string;
  /** System CAs plus the s2s.ca files. */
  ca: string[];
}

/** Parsed trusted CAs, per PEM list (the system list is large: parse it once, ~130 ms). */
const parsedCas = new WeakMap<readonly string[], X509Certificate[]>();
export function trusted(cas: readonly string[]): X509Certificate[] {
  let p = parsedCas.get(cas);
  if (!p) {
    p = [];
    for (const pem of cas) {
      try {
        p.push(new X509Certificate(pem));
      } catch {
        // A CA file that does not parse trusts nothing.
      }
    }
    parsedCas.set(cas, p);
  }
  return p;
}

function current(c: X509Certificate, now: number): boolean {
  return Date.parse(c.validFrom) <= now && now <= Date.parse(c.validTo);
}

/**
 * Does the peer's chain lead to one of `cas`? Node computes `authorized` only for
 * sockets a tls.Server made (not for STARTTLS sockets we upgrade ourselves), so
 * the chain is checked here with the public X509Certificate API: each link is
 * issued and signed by the next, every certificate is current, intermediates are CAs.
 */
export function chainTrusted(socket: tls.TLSSocket, cas: readonly string[]): boolean {
  const detailed = socket.getPeerCertificate(true);
  if (!detailed || !detailed.raw) return false;
  const now = Date.now();
  const roots = trusted(cas);
  let node: tls.DetailedPeerCertificate | undefined = detailed;
  let cur = new X509Certificate(detailed.raw);
  for (let depth = 0; depth < 8; depth++) {
    if (!current(cur, now)) return false;
    for (const r of roots) if (current(r, now) && cur.checkIssued(r) && cur.verify(r.publicKey)) return true;
    const up: tls.DetailedPeerCertificate | undefined = node?.issuerCertificate;
    if (!up || !up.raw || up === node || up.raw.equals(node?.raw ?? Buffer.alloc(0))) return false;
    const next = new X509Certificate(up.raw);
    if (!next.ca || !cur.checkIssued(next) || !cur.verify(next.publicKey)) return false;
    node = up;
    cur = next;
  }
  return false;
}

/** True when the TLS peer's certificate chains to a trusted CA and names `domain` (RFC 6125 DNS-ID). */
export function certValidFor(socket: net.Socket, domain: string, cas: readonly string[]): boolean {
  if (!(socket instanceof tls.TLSSocket)) return false;
  const cert = socket.getPeerCertificate();
  if (!cert || Object.keys(cert).length === 0) return false;
  if (!chainTrusted(socket, cas)) return false;
  return tls.checkServerIdentity(domain, cert) === undefined;
}

export class S2SConn {
  socket: net.Socket;
  secure: boolean;
  readonly remoteAddress: string;
  private parser: StreamParser;
  private sink: ConnSink | undefined;
  private closed = false;
  private readonly cork = new TickCork();
  private readonly limits: ParserLimits;

  constructor(
    socket: net.Socket,
    secure: boolean,
    limits: ParserLimits,
    private readonly log: Logger,
    /** CAs trusted for peer certificates (system + s2s.ca). */
    private readonly cas: readonly string[],
  ) {
    this.socket = socket;
    this.secure = secure;
    this.limits = { ...limits };
    const a = socket.remoteAddress ?? 'unknown';
    this.remoteAddress = a.startsWith('::ffff:') ? a.slice(7) : a;
    this.parser = this.makeParser();
    socket.setNoDelay(true);
    this.listen(socket);
  }

  attach(sink: ConnSink): void {
    this.sink = sink;
  }

  get isClosed(): boolean {
    return this.closed;
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
    this.parser.write(chunk);
  };

  private listen(socket: net.Socket): void {
    socket.on('data', this.onData);
    socket.on('error', (err) => this.log.debug({ err: err.message, addr: this.remoteAddress }, 's2s socket error'));
    socket.on('close', () => this.gone('closed'));
    socket.on('end', () => {
      if (!this.closed) this.sink?.onStreamEnd();
    });
  }

  private gone(reason: string): void {
    if (this.closed && !this.sink) return;
    this.closed = true;
    this.parser.end();
    const sink = this.sink;
    this.sink = undefined;
    sink?.onClosed(reason);
  }

  private out(s: string): void {
    if (this.closed) return;
    const sock = this.socket;
    if (!this.cork.write(sock, s)) {
      this.log.warn({ addr: this.remoteAddress }, 's2s peer does not read; dropping connection');
      sock.destroy();
    }
  }

  sendHeader(attrs: Record<string, string>): void {
    let s = `<?xml version='1.0'?><stream:stream xmlns='${NS_SERVER}' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='${NS_DIALBACK}'`;
    for (const k of Object.keys(attrs)) s += ` ${k}='${escapeAttr(attrs[k] as string)}'`;
    this.out(s + '>');
  }

  /** One top-level element; stanzas move from jabber:client to jabber:server here. */
  send(el: Element): void {
    this.out(serialize(toServerNs(el), NS_SERVER));
  }

  sendKeepalive(): void {
    this.out(' ');
  }

  restart(): void {
    this.parser.reset();
  }

  private detachPlain(): net.Socket {
    const plain = this.socket;
    this.cork.flush(plain);
    plain.removeListener('data', this.onData);
    plain.removeAllListeners('close');
    plain.removeAllListeners('end');
    return plain;
  }

  private upgraded(sec: tls.TLSSocket, resolve: () => void, reject: (e: Error) => void): void {
    this.socket = sec;
    this.secure = true;
    let done = false;
    sec.once('secureConnect', () => {
      done = true;
      resolve();
    });
    sec.once('secure', () => {
      done = true;
      resolve();
    });
    sec.once('error', (err) => {
      if (!done) reject(err);
    });
    this.listen(sec);
  }

  /** Receiving side of STARTTLS (after <proceed/> was written). Asks for the peer's certificate (XEP-0178). */
  startTlsServer(ctx: tls.SecureContext, sni?: (name: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void) => void): Promise<void> {
    const plain = this.detachPlain();
    return new Promise((resolve, reject) => {
      plain.write('', () => {
        const sec = new tls.TLSSocket(plain, { isServer: true, secureContext: ctx, requestCert: true, rejectUnauthorized: false, ALPNProtocols: ['xmpp-server'], ...(sni ? { SNICallback: sni } : {}) });
        this.upgraded(sec, resolve, reject);
      });
    });
  }

  /** Initiating side of STARTTLS (after <proceed/> arrived): our certificate as client certificate, SNI = the peer's domain. */
  startTlsClient(servername: string, ctx: tls.SecureContext): Promise<void> {
    const plain = this.detachPlain();
    return new Promise((resolve, reject) => {
      const sec = tls.connect({ socket: plain, servername, secureContext: ctx, rejectUnauthorized: false });
      this.upgraded(sec, resolve, reject);
    });
  }

  certValidFor(domain: string): boolean {
    return certValidFor(this.socket, domain, this.cas);
  }

  /** The peer's certificate chains to a trusted CA (whatever names it holds). */
  get peerCertTrusted(): boolean {
    const s = this.socket;
    return s instanceof tls.TLSSocket && chainTrusted(s, this.cas);
  }

  /** `opened` false: no stream header went out, so no closing tag either (it would be all the peer got, unbalanced). */
  close(opened = true): void {
    if (this.closed) return;
    if (opened) this.out('</stream:stream>');
    this.closed = true;
    const sock = this.socket;
    this.cork.flush(sock);
    sock.end();
    setTimeout(() => sock.destroy(), 3000).unref();
    // 'close' may come late; the stream is gone for us now.
    const sink = this.sink;
    this.sink = undefined;
    this.parser.end();
    sink?.onClosed('local-close');
  }
}
