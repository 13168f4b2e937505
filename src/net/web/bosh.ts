/**
 * BOSH (XEP-0124) carrying XMPP (XEP-0206) at /http-bind.
 *
 * A BOSH session is a Transport: the payload of each <body/> goes to an
 * ordinary C2SStream, and what the stream sends is queued until the client
 * has a request waiting for it. The rules this file keeps:
 * - Requests are processed strictly in `rid` order. A request that arrives
 *   early (inside the window of `requests`) waits for the gap to fill; a
 *   repeated rid gets the response it had (retransmission); anything else is
 *   `item-not-found`.
 * - At most `hold` requests are kept waiting; a newer one releases the
 *   oldest. A waiting request is answered when there is output, or empty
 *   after `wait` seconds.
 * - A session with no request waiting for `inactivity` seconds (or the
 *   length of a requested pause) is over.
 * One timer for the whole manager (1 s tick) handles wait and inactivity.
 */
import { randomBytes } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import { escapeAttr, serialize, type Element } from '../../xml/element.js';
import { serializeOnce } from '../../xml/serialize-cache.js';
import { parseXml, XmlError } from '../../xml/parser.js';
import type { Transport, TransportSink } from '../../c2s/transport.js';
import { C2SStream } from '../../c2s/stream.js';
import { NS } from '../../core/namespaces.js';
import type { WebFront, ClientInfo } from './http.js';
import { defaultToClient } from './websocket.js';
import { TokenBucket } from '../../limits/limits.js';
import { webReadRate, type ReadRate } from '../../limits/web-read-rate.js';

export const BOSH_PATH = '/http-bind';
export const NS_HTTPBIND = 'http://jabber.org/protocol/httpbind';
export const NS_XBOSH = 'urn:xmpp:xbosh';
/** The XEP-0124 version implemented. */
const BOSH_VERSION = '1.11';
/** Output held for a client that is between requests; past this the session is dropped. */
const MAX_QUEUED_CHARS = 16 * 1024 * 1024;
/** Session creation requests carry no payload worth more than this. */
const MAX_CREATE_BODY = 16 * 1024;
/** rid is a positive integer below 2^53 (XEP-0124 §14.1). */
const RID = /^[0-9]{1,16}$/;

export type BoshCondition =
  | 'bad-request'
  | 'host-gone'
  | 'host-unknown'
  | 'improper-addressing'
  | 'internal-server-error'
  | 'item-not-found'
  | 'other-request'
  | 'policy-violation'
  | 'remote-connection-failed'
  | 'remote-stream-error'
  | 'see-other-uri'
  | 'system-shutdown'
  | 'undefined-condition';

/** HTTP codes for clients older than XEP-0124 1.6 (no 'ver'), which do not read terminate bodies (§19.1). */
const LEGACY_STATUS: Partial<Record<BoshCondition, number>> = { 'bad-request': 400, 'policy-violation': 403, 'item-not-found': 404 };

export interface BoshReply {
  status: number;
  body: string;
}

function terminateBody(condition?: BoshCondition, children = ''): string {
  const cond = condition ? ` condition="${condition}"` : '';
  return children === ''
    ? `<body xmlns="${NS_HTTPBIND}" type="terminate"${cond}/>`
    : `<body xmlns="${NS_HTTPBIND}" type="terminate"${cond} xmlns:stream="${NS.STREAM}">${children}</body>`;
}

/** A binding error as the client expects it: 200 + terminate body, or a bare HTTP code for legacy clients. */
export function bindingError(condition: BoshCondition, legacy: boolean): BoshReply {
  const status = legacy ? (LEGACY_STATUS[condition] ?? 200) : 200;
  return { status, body: status === 200 ? terminateBody(condition) : '' };
}

interface Waiting {
  rid: number;
  deliver: (r: BoshReply) => void;
  deadline: number;
}

interface Early {
  body: Element;
  deliver: (r: BoshReply) => void;
}

export class BoshSession implements Transport {
  readonly kind = 'bosh' as const;
  readonly canStartTls = false;
  readonly remoteAddress: string;
  readonly secure: boolean;
  readonly sid: string;
  readonly legacy: boolean;
  readonly wait: number;
  readonly hold: number;
  readonly requests: number;
  private sink: TransportSink | undefined;
  /** Highest rid processed so far (requests are processed in order). */
  private lastRid: number;
  private readonly waiting: Waiting[] = [];
  private readonly early = new Map<number, Early>();
  /** Responses by rid for retransmission, the last `requests` of them. */
  private readonly sent = new Map<number, BoshReply>();
  private queue: Element[] = [];
  private queuedChars = 0;
  private flushScheduled = false;
  /** Attributes of the session creation response, sent with the first response. */
  private creation: Record<string, string> | undefined;
  private maxStanzaSize: number;
  /** Since when no request has been waiting (0 while one is). */
  private idleSince = 0;
  private pauseUntil = 0;
  private lastEmptyPoll = 0;
  closed = false;
  /** The terminate response for a client that had no request waiting when the stream closed. */
  private final: BoshReply | undefined;

  constructor(
    private readonly manager: BoshManager,
    info: ClientInfo,
    opts: { rid: number; wait: number; hold: number; legacy: boolean },
  ) {
    this.sid = randomBytes(16).toString('base64url');
    this.remoteAddress = info.address;
    this.secure = info.secure;
    this.lastRid = opts.rid - 1;
    this.wait = opts.wait;
    this.hold = opts.hold;
    // XEP-0124 §7.2: one more request than hold lets the client always send.
    this.requests = opts.hold + 1;
    this.legacy = opts.legacy;
    this.maxStanzaSize = manager.front.server.config.c2s.maxStanzaSizePreAuth;
    this.readRate = webReadRate(manager.front.server.config, manager.front.server.metrics);
    if (this.readRate) this.readBucket = new TokenBucket(this.readRate.rate, this.readRate.burst, Date.now());
  }

  private readonly readRate: ReadRate | undefined;
  private readonly readBucket: TokenBucket | undefined;

  /** limits.readRate: how long to hold a body of `bytes` before processing it (0 = now). */
  readDelay(bytes: number): number {
    const wait = this.readBucket?.take(bytes, Date.now()) ?? 0;
    if (wait > 0) this.readRate?.onThrottle?.();
    return wait;
  }

  attach(sink: TransportSink): void {
    this.sink = sink;
  }

  // ---- Transport -------------------------------------------------------------

  sendHeader(attrs: Record<string, string>): void {
    // Only the first header becomes the session creation response; a restart needs none (XEP-0206 §5).
    if (this.creation !== undefined) {
      if (attrs.id !== undefined) this.creation.authid = attrs.id;
      if (attrs.from !== undefined) this.creation.from = attrs.from;
    }
  }

  send(el: Element): void {
    if (this.closed) return;
    this.queue.push(el);
    // Serialized now (and cached): the size bound needs it and the response reuses the string.
    this.queuedChars += serializeOnce(el, NS_HTTPBIND).length;
    if (this.queuedChars > MAX_QUEUED_CHARS) {
      this.manager.front.server.log.warn({ addr: this.remoteAddress }, 'BOSH client does not collect its data; dropping session');
      this.queue = [];
      this.queuedChars = 0;
      this.expire('overflow');
      return;
    }
    this.scheduleFlush();
  }

  /** BOSH needs no keepalive: a waiting request is answered after `wait` seconds anyway. */
  sendKeepalive(): void {}

  startTls(): Promise<void> {
    return Promise.reject(new Error('STARTTLS is not available on BOSH'));
  }

  /** The client's next body carries xmpp:restart='true'; nothing to reset here. */
  restart(): void {}

  setMaxStanzaSize(bytes: number): void {
    this.maxStanzaSize = bytes;
  }

  /** The stream is over: answer with type='terminate' (carrying any stream error). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const hasStreamError = this.queue.some((el) => el.name === 'error' && el.xmlns === NS.STREAM);
    const condition: BoshCondition | undefined = hasStreamError ? 'remote-stream-error' : undefined;
    const children = this.takeQueue();
    const body = terminateBody(condition, children);
    const first = this.waiting.shift();
    if (first) {
      this.reply(first, { status: 200, body });
      for (const w of this.waiting.splice(0)) this.reply(w, { status: 200, body: terminateBody(condition) });
      this.manager.remove(this);
    } else {
      // Keep the answer for the client's next request, for one inactivity period.
      this.final = { status: 200, body };
      this.idleSince = Date.now();
    }
    for (const e of this.early.values()) e.deliver({ status: 200, body: terminateBody(condition) });
    this.early.clear();
    process.nextTick(() => this.gone('closed'));
  }

  // ---- requests ----------------------------------------------------------------

  /** A request for this session (sid already matched). */
  handle(body: Element, deliver: (r: BoshReply) => void): void {
    if (this.final) {
      deliver(this.final);
      this.manager.remove(this);
      return;
    }
    if (this.closed) return deliver(bindingError('item-not-found', this.legacy));
    const ridText = body.attrs.rid ?? '';
    if (!RID.test(ridText)) return this.fatal('bad-request', deliver);
    const rid = Number(ridText);
    if (rid <= this.lastRid) return this.retransmit(rid, deliver);
    if (rid > this.lastRid + this.requests) return this.fatal('item-not-found', deliver);
    // Overactivity (§11): more requests open at once than 'requests' allows; one
    // extra is granted to a request that pauses or terminates the session.
    const extra = body.attrs.type === 'terminate' || body.attrs.pause !== undefined ? 1 : 0;
    if (this.waiting.length + this.early.size + 1 > this.requests + extra) return this.fatal('policy-violation', deliver);
    if (rid > this.lastRid + 1) {
      // Arrived before an earlier request: keep it until the gap fills (§14.2).
      if (this.early.has(rid)) this.early.get(rid)?.deliver({ status: 200, body: emptyBody() });
      this.early.set(rid, { body, deliver });
      return;
    }
    this.process(rid, body, deliver);
    let next: Early | undefined;
    while (!this.closed && (next = this.early.get(this.lastRid + 1)) !== undefined) {
      this.early.delete(this.lastRid + 1);
      this.process(this.lastRid + 1, next.body, next.deliver);
    }
  }

  private retransmit(rid: number, deliver: (r: BoshReply) => void): void {
    const old = this.sent.get(rid);
    if (old) {
      this.manager.front.server.metrics.counter('verona_bosh_retransmissions_total', 'BOSH responses sent again for a repeated rid').inc();
      return deliver(old);
    }
    const w = this.waiting.find((x) => x.rid === rid);
    if (w) {
      // The client gave up on the connection that carried this request; answer the new one instead.
      w.deliver({ status: 200, body: emptyBody() });
      w.deliver = deliver;
      return;
    }
    this.fatal('item-not-found', deliver);
  }

  /** A binding error ends the session (XEP-0124 §17.2). */
  private fatal(condition: BoshCondition, deliver: (r: BoshReply) => void): void {
    deliver(bindingError(condition, this.legacy));
    this.terminateWith(condition);
  }

  private process(rid: number, body: Element, deliver: (r: BoshReply) => void): void {
    const now = Date.now();
    this.lastRid = rid;
    const sink = this.sink;
    const payload = body.elements();
    const restart = xbosh(body, 'restart') === 'true';
    // A polling session (hold 0) must not poll faster than 'polling' (§12).
    if (this.hold === 0 && payload.length === 0 && body.attrs.type === undefined && !restart) {
      const minGap = this.manager.opts.polling * 1000;
      if (this.lastEmptyPoll > 0 && now - this.lastEmptyPoll < minGap) return this.fatal('policy-violation', deliver);
      this.lastEmptyPoll = now;
    }
    this.waiting.push({ rid, deliver, deadline: now + this.wait * 1000 });
    this.idleSince = 0;
    this.pauseUntil = 0;
    if (!sink) return;
    sink.onActivity();
    for (const child of payload) {
      if (this.closed) return;
      const el = defaultToClient(child, NS_HTTPBIND);
      if (serializedLengthOver(el, this.maxStanzaSize, body)) return sink.onParseError('policy-violation', 'stanza too large');
      sink.onElement(el);
    }
    if (this.closed) return;
    if (restart) {
      sink.onStreamStart(streamAttrs(body, this.manager.front.server.domain), NS.STREAM, 'stream');
    }
    if (body.attrs.type === 'terminate') {
      sink.onStreamEnd();
      if (!this.closed) this.close();
      return;
    }
    const pause = body.attrs.pause;
    if (pause !== undefined) {
      const secs = /^\d{1,9}$/.test(pause) ? Number(pause) : NaN;
      if (!(secs > 0 && secs <= this.manager.opts.maxPause)) return this.fatal('policy-violation', this.waiting.pop()?.deliver ?? deliver);
      // §10: answer everything now and keep the session for the requested time.
      this.flush(true);
      this.pauseUntil = Date.now() + secs * 1000;
      return;
    }
    if (this.queue.length > 0) this.scheduleFlush();
    else this.release();
  }

  /** Answer the oldest waiting requests until at most `hold` remain. */
  private release(): void {
    while (this.waiting.length > this.hold) {
      const w = this.waiting.shift() as Waiting;
      this.reply(w, { status: 200, body: this.bodyWith('') });
    }
    if (this.waiting.length === 0 && this.idleSince === 0) this.idleSince = Date.now();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // Stanzas produced in the same tick (features after the header, a burst of presences) share one response.
    process.nextTick(() => {
      this.flushScheduled = false;
      if (!this.closed) this.flush(false);
    });
  }

  /** Queue -> oldest waiting request; `all` answers every waiting request (pause). */
  private flush(all: boolean): void {
    if (this.queue.length > 0) {
      const w = this.waiting.shift();
      if (w) this.reply(w, { status: 200, body: this.bodyWith(this.takeQueue()) });
    }
    if (all) for (const w of this.waiting.splice(0)) this.reply(w, { status: 200, body: this.bodyWith('') });
    this.release();
  }

  private takeQueue(): string {
    let s = '';
    for (const el of this.queue) s += serializeOnce(el, NS_HTTPBIND);
    this.queue = [];
    this.queuedChars = 0;
    return s;
  }

  /** A response body; the first one also carries the session creation attributes. */
  private bodyWith(children: string): string {
    let attrs = '';
    if (this.creation) {
      for (const [k, v] of Object.entries(this.creation)) attrs += ` ${k}="${escapeAttr(v)}"`;
      this.creation = undefined;
    }
    if (children === '' && attrs === '') return emptyBody();
    return `<body xmlns="${NS_HTTPBIND}" xmlns:xmpp="${NS_XBOSH}" xmlns:stream="${NS.STREAM}"${attrs}>${children}</body>`;
  }

  private reply(w: Waiting, r: BoshReply): void {
    this.sent.set(w.rid, r);
    for (const rid of this.sent.keys()) {
      if (rid > this.lastRid - this.requests) break;
      this.sent.delete(rid);
    }
    w.deliver(r);
  }

  /** Called once a second by the manager: wait deadlines and inactivity. */
  tick(now: number): void {
    if (this.final) {
      if (now - this.idleSince > this.manager.opts.inactivity * 1000) this.manager.remove(this);
      return;
    }
    while (this.waiting.length > 0 && (this.waiting[0] as Waiting).deadline <= now) {
      this.reply(this.waiting.shift() as Waiting, { status: 200, body: this.bodyWith('') });
    }
    if (this.waiting.length === 0) {
      if (this.idleSince === 0) this.idleSince = now;
      const limit = this.pauseUntil > 0 ? this.pauseUntil : this.idleSince + this.manager.opts.inactivity * 1000;
      if (now > limit) this.expire('inactivity');
    }
  }

  /** The HTTP connection of a waiting request went away before we answered it. */
  abandoned(deliver: (r: BoshReply) => void): void {
    const i = this.waiting.findIndex((w) => w.deliver === deliver);
    if (i >= 0) this.waiting.splice(i, 1);
    if (this.waiting.length === 0 && this.idleSince === 0) this.idleSince = Date.now();
  }

  /** Session creation: remember the response attributes and open the stream. */
  start(body: Element, deliver: (r: BoshReply) => void, sink: TransportSink): void {
    const o = this.manager.opts;
    this.creation = {
      sid: this.sid,
      wait: String(this.wait),
      inactivity: String(o.inactivity),
      polling: String(o.polling),
      requests: String(this.requests),
      hold: String(this.hold),
      maxpause: String(o.maxPause),
      ver: BOSH_VERSION,
      'xmpp:version': '1.0',
      'xmpp:restartlogic': 'true',
    };
    this.attach(sink);
    const rid = Number(body.attrs.rid);
    this.lastRid = rid;
    this.waiting.push({ rid, deliver, deadline: Date.now() + this.wait * 1000 });
    sink.onActivity();
    // The stream's header and features go out in the creation response (XEP-0206 §4).
    sink.onStreamStart(streamAttrs(body, this.manager.front.server.domain), NS.STREAM, 'stream');
    if (this.closed) return;
    if (this.queue.length > 0) this.scheduleFlush();
    else this.release();
  }

  /** End from our side without a client to tell (inactivity, overflow, binding error). */
  private expire(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.deliver({ status: 200, body: terminateBody('remote-connection-failed') });
    this.manager.remove(this);
    this.gone(reason);
  }

  private terminateWith(condition: BoshCondition): void {
    for (const w of this.waiting.splice(0)) w.deliver(bindingError(condition, this.legacy));
    for (const e of this.early.values()) e.deliver(bindingError(condition, this.legacy));
    this.early.clear();
    this.expire(`bosh ${condition}`);
  }

  private gone(reason: string): void {
    const sink = this.sink;
    this.sink = undefined;
    sink?.onClosed(reason);
  }
}

function emptyBody(): string {
  return `<body xmlns="${NS_HTTPBIND}"/>`;
}

/** An attribute in the urn:xmpp:xbosh namespace, whatever prefix the client bound it to. */
function xbosh(body: Element, local: string): string | undefined {
  for (const [k, v] of Object.entries(body.attrs)) {
    if (k.startsWith('xmlns:') && v === NS_XBOSH) {
      const val = body.attrs[`${k.slice(6)}:${local}`];
      if (val !== undefined) return val;
    }
  }
  return body.attrs[`xmpp:${local}`];
}

/** The stream header the C2SStream expects, built from the BOSH body (XEP-0206 §5). */
function streamAttrs(body: Element, _domain: string): Record<string, string> {
  // Without 'to' the stream keeps its domain (virtual hosts: a restart body may omit it).
  const attrs: Record<string, string> = { xmlns: NS.CLIENT, ...(body.attrs.to === undefined ? {} : { to: body.attrs.to }), version: xbosh(body, 'version') ?? '1.0' };
  const lang = body.attrs['xml:lang'];
  if (lang !== undefined) attrs['xml:lang'] = lang;
  return attrs;
}

/** Stanza size check, paid only when the whole body is larger than one stanza may be. */
function serializedLengthOver(el: Element, max: number, body: Element): boolean {
  const approx = (body as Element & { sourceLength?: number }).sourceLength;
  if (approx !== undefined && approx <= max) return false;
  return serialize(el, NS.CLIENT).length > max;
}

export interface BoshOptions {
  maxWait: number;
  maxHold: number;
  inactivity: number;
  polling: number;
  maxPause: number;
  maxBodySize: number;
}

export class BoshManager {
  readonly sessions = new Map<string, BoshSession>();
  readonly opts: BoshOptions;
  private readonly timer: NodeJS.Timeout;

  constructor(readonly front: WebFront) {
    this.opts = front.server.config.web.bosh;
    this.timer = setInterval(() => {
      const now = Date.now();
      for (const s of [...this.sessions.values()]) s.tick(now);
    }, 1000);
    this.timer.unref();
    front.server.metrics.gauge('verona_bosh_sessions', 'Open BOSH sessions', () => this.sessions.size);
  }

  /**
   * One POST to /http-bind. `deliver` writes the HTTP response; it is called
   * exactly once, possibly much later (a held request). Returns a function
   * to call if the HTTP connection closes first.
   */
  handle(raw: Buffer, info: ClientInfo, deliver: (r: BoshReply) => void): (() => void) | undefined {
    if (!isUtf8(raw)) {
      deliver(bindingError('bad-request', false));
      return undefined;
    }
    const text = raw.toString('utf8');
    let body: Element;
    try {
      const c2s = this.front.server.config.c2s;
      body = parseXml(text, { maxStanzaSize: Number.POSITIVE_INFINITY, maxDepth: c2s.maxDepth + 1, maxAttributes: c2s.maxAttributes });
    } catch (err) {
      if (!(err instanceof XmlError)) throw err;
      deliver(bindingError('bad-request', false));
      return undefined;
    }
    (body as Element & { sourceLength?: number }).sourceLength = text.length;
    if (body.name !== 'body' || body.xmlns !== NS_HTTPBIND) {
      deliver(bindingError('bad-request', false));
      return undefined;
    }
    const sid = body.attrs.sid;
    if (sid === undefined) return this.create(body, text.length, info, deliver);
    const session = this.sessions.get(sid);
    if (!session) {
      // Only the creation request carries 'ver', so an unknown sid cannot tell
      // a legacy client; the terminate body is what current clients expect.
      deliver(bindingError('item-not-found', false));
      return undefined;
    }
    // limits.readRate: a session over the rate has its body processed later, held like a
    // long poll; with at most 'requests' open, the client cannot send faster than the rate.
    const wait = session.readDelay(raw.length);
    if (wait > 0) {
      setTimeout(() => session.handle(body, deliver), wait).unref();
      return () => session.abandoned(deliver);
    }
    session.handle(body, deliver);
    return () => session.abandoned(deliver);
  }

  private create(body: Element, size: number, info: ClientInfo, deliver: (r: BoshReply) => void): (() => void) | undefined {
    const legacy = body.attrs.ver === undefined;
    const a = body.attrs;
    if (size > MAX_CREATE_BODY || !RID.test(a.rid ?? '') || !/^\d{1,9}$/.test(a.wait ?? '') || !/^\d{1,9}$/.test(a.hold ?? '1')) {
      deliver(bindingError('bad-request', legacy));
      return undefined;
    }
    const srv = this.front.server;
    // XEP-0124 §7.1: 'to' names the service; say host-unknown here rather than after a stream error.
    if (a.to !== undefined && !srv.hosts.has(a.to.toLowerCase().replace(/\.$/, ''))) {
      deliver(bindingError('host-unknown', legacy));
      return undefined;
    }
    if (!this.front.acquireSession(info.address)) {
      deliver(bindingError('policy-violation', legacy));
      return undefined;
    }
    const session = new BoshSession(this, info, {
      rid: Number(a.rid),
      wait: Math.min(Number(a.wait), this.opts.maxWait),
      hold: Math.min(Number(a.hold ?? '1'), this.opts.maxHold),
      legacy,
    });
    this.sessions.set(session.sid, session);
    srv.metrics.counter('verona_web_connections_total', 'Web client connections, by transport').inc({ transport: 'bosh' });
    const stream = new C2SStream(session, srv);
    session.start(body, deliver, stream);
    return () => session.abandoned(deliver);
  }

  remove(s: BoshSession): void {
    if (this.sessions.get(s.sid) === s) {
      this.sessions.delete(s.sid);
      this.front.releaseSession(s.remoteAddress);
    }
  }

  close(): void {
    clearInterval(this.timer);
  }
}
