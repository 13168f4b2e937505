/**
 * XMPP over WebSocket (RFC 7395). Each text frame carries exactly one
 * complete element: <open/>, <close/>, or one stanza/nonza. A frame is
 * parsed as a standalone document with the same limits as a TCP stanza, and
 * the result is handed to an ordinary C2SStream, so negotiation, SASL,
 * throttling, SM and MR2 are exactly those of a TCP client.
 */
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket, type RawData } from 'ws';
import { escapeAttr, type Element } from '../../xml/element.js';
import { serializeOnce } from '../../xml/serialize-cache.js';
import { parseXml, XmlError } from '../../xml/parser.js';
import type { ParserLimits } from '../../xml/stream-parser.contract.js';
import type { Transport, TransportSink } from '../../c2s/transport.js';
import { C2SStream } from '../../c2s/stream.js';
import { NS } from '../../core/namespaces.js';
import type { Logger } from '../../core/logger.js';
import type { WebFront, ClientInfo } from './http.js';
import { TokenBucket } from '../../limits/limits.js';
import { webReadRate, type ReadRate } from '../../limits/web-read-rate.js';

export const WEBSOCKET_PATH = '/xmpp-websocket';

/** Same bound as TCP: a client that stops reading is cut off past this much unsent data. */
const MAX_BUFFERED = 16 * 1024 * 1024;
/** How long a closing connection may take to answer our close frame before it is cut. */
const CLOSE_GRACE_MS = 3000;

/**
 * Frames may arrive without a namespace (`<message to=...>`): RFC 7395 puts
 * stanzas in jabber:client by default, so an element (and each descendant)
 * left in no namespace is moved there. Elements with their own xmlns keep it.
 */
export function defaultToClient(el: Element, from: string): Element {
  if (el.xmlns === from) el.xmlns = NS.CLIENT;
  for (const c of el.children) if (typeof c !== 'string') defaultToClient(c, from);
  return el;
}

export interface WebSocketTransportOptions {
  info: ClientInfo;
  limits: ParserLimits;
  log: Logger;
  /** limits.readRate / readBurst, as on TCP: over it, ws.pause() until the bucket refills. */
  readRate?: { rate: number; burst: number; onThrottle?: () => void };
}

export class WebSocketTransport implements Transport {
  readonly kind = 'websocket' as const;
  readonly remoteAddress: string;
  readonly secure: boolean;
  readonly canStartTls = false;
  /** Cleared by the heartbeat, set again by any pong or frame. */
  alive = true;
  private sink: TransportSink | undefined;
  private closed = false;
  /** The next frame must be <open/> (at the start and after each restart). */
  private headerDue = true;
  private readonly limits: ParserLimits;
  private readonly log: Logger;
  private readonly bucket: TokenBucket | undefined;
  private readonly readRate: ReadRate | undefined;
  private resumeTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly ws: WebSocket,
    opts: WebSocketTransportOptions,
  ) {
    this.remoteAddress = opts.info.address;
    this.secure = opts.info.secure;
    this.limits = { ...opts.limits };
    this.log = opts.log;
    this.readRate = opts.readRate;
    if (opts.readRate) this.bucket = new TokenBucket(opts.readRate.rate, opts.readRate.burst, Date.now());
    ws.on('message', (data, isBinary) => this.onFrame(data, isBinary));
    ws.on('pong', () => {
      this.alive = true;
      this.sink?.onActivity();
    });
    ws.on('error', (err) => this.log.debug({ err: err.message, addr: this.remoteAddress }, 'websocket error'));
    ws.on('close', (code) => this.gone(`websocket closed (${code})`));
  }

  attach(sink: TransportSink): void {
    this.sink = sink;
  }

  private onFrame(data: RawData, isBinary: boolean): void {
    const sink = this.sink;
    if (!sink || this.closed) return;
    this.alive = true;
    sink.onActivity();
    // RFC 7395 §3.2: XMPP travels in text frames only.
    if (isBinary) return sink.onParseError('bad-format', 'Binary frames are not allowed');
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
    if (this.bucket) this.throttle(buf.length);
    // Cheap bound before parsing: a frame is one element, so it is at most one stanza long.
    if (buf.length > this.limits.maxStanzaSize * 4) return sink.onParseError('policy-violation', 'stanza too large');
    let el: Element;
    try {
      el = parseXml(buf.toString('utf8'), this.limits);
    } catch (err) {
      if (err instanceof XmlError) return sink.onParseError(err.condition, err.message);
      throw err;
    }
    if (el.xmlns === NS.FRAMING && el.name === 'close') return sink.onStreamEnd();
    // Where a header is due, whatever came is treated as one: the stream then
    // answers a wrong one (<stream:stream>, a stanza) with the right error.
    if (this.headerDue || (el.xmlns === NS.FRAMING && el.name === 'open')) {
      this.headerDue = false;
      return sink.onStreamStart(el.attrs, el.xmlns, el.name);
    }
    sink.onElement(defaultToClient(el, ''));
  }

  /** The read rate (src/limits/limits.ts TokenBucket): stop reading frames until the bucket refills; TCP slows the sender. */
  private throttle(bytes: number): void {
    const wait = (this.bucket as TokenBucket).take(bytes, Date.now());
    if (wait === 0 || this.resumeTimer !== undefined || this.closed) return;
    this.readRate?.onThrottle?.();
    this.ws.pause();
    this.resumeTimer = setTimeout(() => {
      this.resumeTimer = undefined;
      if (!this.closed) this.ws.resume();
    }, wait);
    this.resumeTimer.unref();
  }

  private gone(reason: string): void {
    if (this.resumeTimer) clearTimeout(this.resumeTimer);
    this.closed = true;
    const sink = this.sink;
    this.sink = undefined;
    sink?.onClosed(reason);
  }

  private frame(s: string): void {
    if (this.closed) return;
    const ws = this.ws;
    if (ws.readyState !== ws.OPEN) return;
    ws.send(s);
    if (ws.bufferedAmount > MAX_BUFFERED) {
      this.log.warn({ addr: this.remoteAddress }, 'web client does not read; dropping connection');
      ws.terminate();
    }
  }

  sendHeader(attrs: Record<string, string>): void {
    let s = `<open xmlns="${NS.FRAMING}"`;
    for (const k of Object.keys(attrs)) s += ` ${k}="${escapeAttr(attrs[k] as string)}"`;
    this.frame(s + '/>');
  }

  send(el: Element): void {
    // Parent namespace '' makes every frame namespace-complete (RFC 7395 §3.3.3).
    this.frame(serializeOnce(el, ''));
  }

  /** WebSocket has its own keepalive: a ping frame, whose pong also proves the peer alive. */
  sendKeepalive(): void {
    if (this.closed || this.ws.readyState !== this.ws.OPEN) return;
    this.ws.ping();
  }

  startTls(): Promise<void> {
    return Promise.reject(new Error('STARTTLS is not available on WebSocket'));
  }

  /** A restart is just the client's next <open/> frame: there is no parser state to reset. */
  restart(): void {
    this.headerDue = true;
  }

  setMaxStanzaSize(bytes: number): void {
    this.limits.maxStanzaSize = bytes;
  }

  close(): void {
    if (this.closed) return;
    this.frame(`<close xmlns="${NS.FRAMING}"/>`);
    this.closed = true;
    const ws = this.ws;
    if (ws.readyState === ws.OPEN) ws.close(1000);
    // A peer that never completes the closing handshake is cut off.
    setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
  }
}

/** Accepts upgrades on /xmpp-websocket and runs the heartbeat for all of them. */
export class WebSocketGateway {
  private readonly wss: WebSocketServer;
  private readonly transports = new Set<WebSocketTransport>();
  private heartbeat: NodeJS.Timeout | undefined;

  constructor(private readonly front: WebFront) {
    const c2s = front.server.config.c2s;
    this.wss = new WebSocketServer({
      noServer: true,
      // One frame holds one stanza; frames a little over the stanza limit still
      // reach the parser and get a proper policy-violation stream error, while
      // absurd ones are refused by ws itself before they are buffered.
      maxPayload: c2s.maxStanzaSize + 64 * 1024,
      perMessageDeflate: false,
      clientTracking: false,
      handleProtocols: (protocols) => (protocols.has('xmpp') ? 'xmpp' : false),
    });
    const every = front.server.config.web.websocket.pingInterval;
    if (every > 0) {
      this.heartbeat = setInterval(() => this.beat(), every * 1000);
      this.heartbeat.unref();
    }
  }

  get size(): number {
    return this.transports.size;
  }

  /** A connection that did not answer the previous ping (or send anything) since is dead. */
  private beat(): void {
    for (const t of this.transports) {
      if (!t.alive) {
        this.front.server.log.debug({ addr: t.remoteAddress }, 'websocket did not answer ping; closing');
        t.ws.terminate();
        continue;
      }
      t.alive = false;
      t.sendKeepalive();
    }
  }

  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, info: ClientInfo): void {
    const front = this.front;
    const offered = String(req.headers['sec-websocket-protocol'] ?? '')
      .split(',')
      .map((p) => p.trim());
    // RFC 7395 §3.1: the 'xmpp' subprotocol is mandatory.
    if (!offered.includes('xmpp')) return front.refuseUpgrade(socket, 400, 'The WebSocket subprotocol "xmpp" is required');
    if (!front.acquireSession(info.address)) return front.refuseUpgrade(socket, 429, 'Too many connections from your address');
    // ws refuses a malformed handshake itself without calling back: give the slot back then.
    let upgraded = false;
    socket.once('close', () => {
      if (!upgraded) front.releaseSession(info.address);
    });
    this.wss.handleUpgrade(req, socket, head, (ws) => {
      upgraded = true;
      const srv = front.server;
      const c = srv.config.c2s;
      const t = new WebSocketTransport(ws, {
        info,
        limits: { maxStanzaSize: c.maxStanzaSizePreAuth, maxDepth: c.maxDepth, maxAttributes: c.maxAttributes },
        log: srv.log,
        readRate: webReadRate(srv.config, srv.metrics),
      });
      this.transports.add(t);
      ws.once('close', () => {
        this.transports.delete(t);
        front.releaseSession(info.address);
      });
      srv.metrics.counter('verona_web_connections_total', 'Web client connections, by transport').inc({ transport: 'websocket' });
      const stream = new C2SStream(t, srv);
      t.attach(stream);
    });
  }

  close(): void {
    if (this.heartbeat) clearInterval(this.heartbeat);
  }
}
