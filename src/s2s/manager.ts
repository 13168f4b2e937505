/**
 * The s2s manager: the router's remote route (`router.remoteRoute`, an
 * ExternalRoute) and the owner of every s2s stream.
 *
 * - One outgoing stream per remote domain, reused; stanzas wait in a
 *   per-domain queue (bounded by s2s.maxQueue) while it connects, and all
 *   of them bounce with remote-server-not-found / remote-server-timeout when
 *   it fails (the sender's archived copy stays: the router archived it first).
 * - Incoming streams are accepted on s2s.port (STARTTLS) and s2s.tlsPort
 *   (direct TLS, XEP-0368), at most s2s.maxStreamsPerAddress per remote
 *   address; a domain authenticated on a new incoming stream replaces the
 *   older stream for that domain (one incoming stream per peer).
 * - Streams idle for s2s.idleTimeout seconds are closed (one timer for all).
 * - Dialback verification (XEP-0220 §2.3) goes over our outgoing stream to
 *   the domain being verified.
 * - XEP-0288 (s2s.bidi): a stanza for a domain with no ready outgoing
 *   stream goes out on the incoming stream that domain authenticated, when
 *   that stream is bidirectional, instead of opening a second connection;
 *   our own outgoing streams ask for bidi and take the peer's stanzas.
 */
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import type { Element } from '../xml/element.js';
import type { JID } from '../jid/jid.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../core/logger.js';
import type { Metrics, Counter } from '../metrics/metrics.js';
import { StanzaError, streamError } from '../core/errors.js';
import type { ExternalRoute, Router } from '../core/router.js';
import type { Session } from '../core/session.js';
import type { ParserLimits } from '../xml/stream-parser.contract.js';
import { newStreamId } from '../c2s/stream.js';
import { S2SConn, trusted, type S2STls } from './conn.js';
import { IncomingStream } from './incoming.js';
import { OutgoingStream, type VerifyVerdict } from './outgoing.js';
import { outgoingKey } from './policy.js';
import { ConnectionLimiter } from '../limits/limits.js';

interface Queued {
  stanza: Element;
  origin: Session | undefined;
}

export interface S2SDeps {
  domain: string;
  config: Config;
  log: Logger;
  metrics: Metrics;
  router: Router;
  cert: string;
  key: string;
  /** Virtual hosts: the certificate of another hosted domain (client certificate for EXTERNAL, SNI answer). */
  certFor?: (domain: string) => { cert: string; key: string } | undefined;
}

export class S2SManager implements ExternalRoute {
  readonly kind = 's2s';
  readonly domain: string;
  readonly config: Config['s2s'];
  readonly log: Logger;
  readonly tls: S2STls;
  readonly serverTlsContext: tls.SecureContext;
  /** One client context for every outgoing stream: building one with the system CAs costs ~100 ms. */
  readonly clientTlsContext: tls.SecureContext;
  readonly secret: string;
  readonly limits: ParserLimits;
  private readonly router: Router;
  private readonly certFor: S2SDeps['certFor'];
  /** Client and server contexts of the other hosted domains (virtual hosts), made on first use. */
  private readonly domainContexts = new Map<string, { cert: string; ctx: tls.SecureContext }>();
  private readonly outgoing = new Map<string, OutgoingStream>();
  private readonly queues = new Map<string, Queued[]>();
  private readonly incoming = new Set<IncomingStream>();
  /** Domain (with the local domain when it is a hosted one, see outgoingKey) -> the incoming stream that authenticated it last. */
  private readonly incomingByDomain = new Map<string, IncomingStream>();
  /** s2s.maxStreamsPerAddress, counted like c2s connections (IPv6 per /64; no exempt addresses: peers are never local admins). */
  private readonly perAddress: ConnectionLimiter;
  private readonly insecure: Set<string>;
  private sweeper: NodeJS.Timeout | undefined;
  private stopping = false;

  readonly sent: Counter;
  readonly received: Counter;
  readonly bounced: Counter;
  readonly rejected: Counter;
  readonly garbage: Counter;
  readonly authFailures: Counter;
  readonly authOut: Counter;
  readonly authIn: Counter;
  readonly streamErrors: Counter;
  readonly refused: Counter;
  readonly bidiNegotiated: Counter;
  readonly idleClosed: Counter;
  private readonly connectMs: Counter;
  private readonly connects: Counter;

  constructor(d: S2SDeps) {
    this.domain = d.domain;
    this.config = d.config.s2s;
    this.log = d.log.child({ component: 's2s' });
    this.router = d.router;
    this.perAddress = new ConnectionLimiter(this.config.maxStreamsPerAddress);
    this.certFor = d.certFor;
    this.insecure = new Set(this.config.insecureDomains.map((s) => s.toLowerCase()));
    const extra = this.config.ca.map((f) => readFileSync(f, 'utf8'));
    this.tls = { cert: d.cert, key: d.key, ca: [...tls.rootCertificates, ...extra] };
    this.serverTlsContext = tls.createSecureContext({ cert: d.cert, key: d.key, ca: this.tls.ca, minVersion: 'TLSv1.2' });
    this.clientTlsContext = tls.createSecureContext({ cert: d.cert, key: d.key, ca: this.tls.ca, minVersion: 'TLSv1.2' });
    // Parse the trusted CAs now rather than in the first peer's handshake.
    trusted(this.tls.ca);
    this.secret = this.config.dialbackSecret || randomBytes(32).toString('hex');
    this.limits = { maxStanzaSize: this.config.maxStanzaSize, maxDepth: d.config.c2s.maxDepth, maxAttributes: d.config.c2s.maxAttributes };
    const m = d.metrics;
    this.sent = m.counter('verona_s2s_stanzas_sent_total', 'Stanzas sent on outgoing s2s streams, by kind');
    this.received = m.counter('verona_s2s_stanzas_received_total', 'Stanzas accepted on incoming s2s streams, by kind');
    this.bounced = m.counter('verona_s2s_bounced_total', 'Stanzas bounced because a remote domain could not be reached, by condition');
    this.rejected = m.counter('verona_s2s_rejected_total', 'Stanzas refused on incoming s2s streams (never routed), by reason');
    this.garbage = m.counter('verona_s2s_parse_errors_total', 'S2S streams ended for unparsable or oversized input, by condition');
    this.authFailures = m.counter('verona_s2s_auth_failures_total', 'Failed s2s authentications, by method and reason');
    this.authOut = m.counter('verona_s2s_auth_out_total', 'Outgoing s2s streams authenticated, by method');
    this.authIn = m.counter('verona_s2s_auth_in_total', 'Domains authenticated on incoming s2s streams, by method');
    this.streamErrors = m.counter('verona_s2s_stream_errors_total', 'S2S stream errors sent, by condition and direction');
    this.refused = m.counter('verona_s2s_refused_total', 'S2S work refused by a limit, by limit');
    this.connectMs = m.counter('verona_s2s_connect_ms_total', 'Milliseconds from the first stanza for a domain to its stream being ready (sum)');
    this.connects = m.counter('verona_s2s_connects_total', 'Outgoing s2s streams that became ready');
    m.gauge('verona_s2s_streams_out', 'Outgoing s2s streams (any state)', () => this.outgoing.size);
    this.bidiNegotiated = m.counter('verona_s2s_bidi_total', 'S2S streams negotiated as bidirectional (XEP-0288), by direction (out: we asked, in: the peer asked)');
    this.idleClosed = m.counter('verona_s2s_idle_closed_total', 'S2S streams closed after s2s.idleTimeout without stanzas, by direction');
    m.gauge('verona_s2s_streams_bidi', 'S2S streams (either direction) that carry stanzas both ways (XEP-0288)', () => {
      let n = 0;
      for (const s of this.outgoing.values()) if (s.bidi && s.state === 'ready') n++;
      for (const s of this.incoming) if (s.bidi && s.authenticated.size > 0) n++;
      return n;
    });
    m.gauge('verona_s2s_streams_in', 'Incoming s2s streams', () => this.incoming.size);
  }

  /**
   * A domain this server answers for on s2s: one of its hosted domains (virtual hosts), or one
   * hosted beside them with a route of its own (components, MUC, upload), so that a peer can reach
   * e.g. a push app server connected as a component here.
   */
  serves(domain: string): boolean {
    if (domain === this.domain || this.isLocalDomain(domain)) return true;
    const r = this.router.routeFor(domain);
    return r !== undefined && r !== this;
  }

  /** A domain this server hosts (virtual hosts): incoming streams, dialback and stanzas may be addressed to any of them. */
  isLocalDomain(domain: string): boolean {
    return this.router.hosts.has(domain);
  }

  /**
   * The TLS context of a hosted domain (its certificate; the trusted CAs), as client (EXTERNAL) and
   * as server (SNI). The primary domain's are the two made at start.
   */
  contextFor(local: string, side: 'client' | 'server'): tls.SecureContext {
    const pair = local === this.domain ? undefined : this.certFor?.(local);
    if (!pair) return side === 'client' ? this.clientTlsContext : this.serverTlsContext;
    // Made again when the pair changed: a SIGHUP reload (src/net/vhost-tls.ts) swaps the PEM text.
    const k = `${side} ${local}`;
    const have = this.domainContexts.get(k);
    if (have?.cert === pair.cert) return have.ctx;
    const ctx = tls.createSecureContext({ cert: pair.cert, key: pair.key, ca: this.tls.ca, minVersion: 'TLSv1.2' });
    this.domainContexts.set(k, { cert: pair.cert, ctx });
    return ctx;
  }

  /** For the s2s TLS listeners: the hosted domain's certificate for the peer's SNI. */
  readonly sniCallback = (serverName: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, this.contextFor(this.router.hosts.forServerName(serverName), 'server'));
  };

  isInsecure(domain: string): boolean {
    return this.insecure.has(domain);
  }

  // ---- ExternalRoute ------------------------------------------------------------------------

  send(stanza: Element, from: JID, to: JID, origin: Session | undefined): void {
    if (this.stopping) {
      this.refused.inc({ limit: 'shutdown' });
      throw new StanzaError('remote-server-not-found', 'The server is shutting down');
    }
    // A stanza from a hosted domain (a component's answer) goes on a stream authenticated as that domain.
    const local = from.domain !== this.domain && this.serves(from.domain) ? from.domain : this.domain;
    const domain = to.domain;
    const key = outgoingKey(this.domain, local, domain);
    const out = this.outgoing.get(key);
    if (out?.state === 'ready') {
      this.sent.inc({ kind: stanza.name });
      out.send(stanza);
      return;
    }
    const back = this.bidiRoute(key, domain);
    if (back?.isOpen) {
      this.sent.inc({ kind: stanza.name });
      back.send(stanza);
      return;
    }
    let q = this.queues.get(key);
    if (!q) {
      q = [];
      this.queues.set(key, q);
    }
    if (q.length >= this.config.maxQueue) {
      this.refused.inc({ limit: 'queue' });
      throw new StanzaError('resource-constraint', `Too many stanzas waiting for ${to.domain}`);
    }
    q.push({ stanza, origin });
    // A bidirectional stream in its SASL restart takes the queue when it reopens: no second connection.
    if (!out && !back) this.connect(domain, local);
  }

  /** XEP-0288: the bidirectional incoming stream that authenticated `domain` under `key` (see outgoingKey), if any (open, or restarting after SASL). */
  private bidiRoute(key: string, domain: string): IncomingStream | undefined {
    const s = this.incomingByDomain.get(key);
    return s && s.bidi && !s.isClosed && s.authenticated.has(domain) ? s : undefined;
  }

  /** Stanzas queued for the domains of a bidirectional incoming stream go out on it (it is open). */
  private flushBidi(s: IncomingStream): void {
    if (!s.bidi || !s.isOpen) return;
    for (const domain of s.authenticated) {
      const key = outgoingKey(this.domain, s.localDomain, domain);
      const q = this.queues.get(key);
      if (!q) continue;
      this.queues.delete(key);
      for (const item of q) {
        this.sent.inc({ kind: item.stanza.name });
        s.send(item.stanza);
      }
    }
  }

  /** An incoming stream restarted after SASL (its new header arrived). */
  incomingReopened(s: IncomingStream): void {
    this.flushBidi(s);
  }

  private connect(domain: string, local: string = this.domain): OutgoingStream {
    const s = new OutgoingStream(domain, this, local);
    this.outgoing.set(s.key, s);
    this.log.debug({ domain, local }, 's2s: connecting');
    void s.start().catch((err: unknown) => this.log.error({ err, domain }, 's2s: connect crashed'));
    return s;
  }

  outgoingReady(s: OutgoingStream): void {
    if (this.outgoing.get(s.key) !== s) return;
    const ms = Date.now() - s.startedAt;
    this.connects.inc();
    this.connectMs.inc(undefined, ms);
    this.log.info({ domain: s.domain, ms }, 's2s: outgoing stream ready');
    const q = this.queues.get(s.key) ?? [];
    this.queues.delete(s.key);
    for (const item of q) {
      this.sent.inc({ kind: item.stanza.name });
      s.send(item.stanza);
    }
  }

  /** `err` set: the stream never became ready, so everything queued bounces with it. */
  outgoingClosed(s: OutgoingStream, err: StanzaError | undefined, reason: string): void {
    if (this.outgoing.get(s.key) === s) this.outgoing.delete(s.key);
    this.log.info({ domain: s.domain, reason, failed: err !== undefined }, 's2s: outgoing stream closed');
    const q = this.queues.get(s.key);
    if (!q) return;
    this.queues.delete(s.key);
    const e = err ?? new StanzaError('remote-server-not-found', `The stream to ${s.domain} closed`);
    for (const item of q) {
      this.bounced.inc({ condition: e.condition });
      this.router.bounce(item.stanza, e, item.origin);
    }
  }

  // ---- incoming ------------------------------------------------------------------------------

  accept(socket: net.Socket, secure: boolean): void {
    const conn = new S2SConn(socket, secure, this.limits, this.log, this.tls.ca);
    const addr = conn.remoteAddress;
    if (this.stopping || !this.perAddress.acquire(addr)) {
      this.refused.inc({ limit: this.stopping ? 'shutdown' : 'streams-per-address' });
      conn.sendHeader({ id: newStreamId(), from: this.domain, version: '1.0' });
      conn.send(this.stopping ? streamError('system-shutdown', 'The server is shutting down') : streamError('policy-violation', 'Too many streams from this address'));
      conn.close();
      return;
    }
    const s = new IncomingStream(conn, this);
    this.incoming.add(s);
  }

  incomingAuthenticated(s: IncomingStream, domain: string, method: string): void {
    this.authIn.inc({ method });
    this.log.info({ domain, method, addr: s.conn.remoteAddress }, 's2s: incoming stream authenticated');
    // Keyed by the pair: a peer has one stream to us and one to each domain hosted here.
    const key = outgoingKey(this.domain, s.localDomain, domain);
    const prev = this.incomingByDomain.get(key);
    this.incomingByDomain.set(key, s);
    // One incoming stream per peer: the older one for this domain goes (it may carry other domains too).
    if (prev && prev !== s) {
      prev.authenticated.delete(domain);
      if (prev.authenticated.size === 0) prev.fail('conflict', 'Replaced by a new stream');
    }
    // Stanzas waiting for this domain take the bidirectional stream now (after SASL: once it reopens).
    this.flushBidi(s);
  }

  incomingClosed(s: IncomingStream): void {
    if (!this.incoming.delete(s)) return;
    this.perAddress.release(s.conn.remoteAddress);
    for (const d of s.authenticated) {
      const key = outgoingKey(this.domain, s.localDomain, d);
      if (this.incomingByDomain.get(key) === s) this.incomingByDomain.delete(key);
    }
    // Stanzas held for a bidirectional stream that went away before it reopened need a stream of their own.
    for (const d of s.authenticated) {
      const key = outgoingKey(this.domain, s.localDomain, d);
      if (!this.stopping && this.queues.has(key) && !this.outgoing.has(key) && !this.bidiRoute(key, d)) this.connect(d, s.localDomain);
    }
  }

  /**
   * What the manager holds, as counts (read only): the s2s fuzz target checks that a stream that
   * ended left nothing behind. `incoming` counts only the streams from `address` when it is given.
   */
  holdings(address?: string): { incoming: number; incomingDomains: number; addresses: number; outgoing: number; queued: number; verifying: number } {
    let incoming = 0;
    for (const s of this.incoming) if (address === undefined || s.conn.remoteAddress === address) incoming++;
    let queued = 0;
    for (const q of this.queues.values()) queued += q.length;
    let verifying = 0;
    for (const s of this.outgoing.values()) verifying += s.verifying;
    return { incoming, incomingDomains: this.incomingByDomain.size, addresses: this.perAddress.size, outgoing: this.outgoing.size, queued, verifying };
  }

  deliverIncoming(stanza: Element): void {
    this.router.route(stanza);
  }

  /** XEP-0220 §2.3: ask the authoritative server of `originating` over our outgoing stream to it. */
  verifyDialback(originating: string, streamId: string, key: string, local: string = this.domain): Promise<VerifyVerdict> {
    const out = this.outgoing.get(outgoingKey(this.domain, local, originating)) ?? this.connect(originating, local);
    return out.verify(streamId, key);
  }

  // ---- lifecycle -------------------------------------------------------------------------------

  startSweeper(): void {
    const idle = this.config.idleTimeout * 1000;
    if (idle <= 0) return;
    this.sweeper = setInterval(() => {
      const now = Date.now();
      for (const s of [...this.outgoing.values()]) {
        if (s.state === 'ready' && now - s.lastActivity > idle) {
          this.idleClosed.inc({ direction: 'out' });
          s.close();
        }
      }
      for (const s of [...this.incoming]) {
        if (s.authenticated.size > 0 && now - s.lastActivity > idle) {
          this.idleClosed.inc({ direction: 'in' });
          s.close();
        }
      }
    }, Math.min(idle, 5000));
    this.sweeper.unref();
  }

  close(): void {
    this.stopping = true;
    if (this.sweeper) clearInterval(this.sweeper);
    for (const s of [...this.outgoing.values()]) s.close();
    for (const s of [...this.incoming]) s.fail('system-shutdown', 'The server is shutting down');
  }
}

