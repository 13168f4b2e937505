/**
 * An outgoing s2s stream to one remote domain (we are the originating
 * server): connect (targets from resolve.ts) -> header -> features ->
 * STARTTLS -> SASL EXTERNAL or dialback (policy.ts outgoingStep) -> ready:
 * the manager flushes its queue for the domain onto it.
 *
 * The same stream carries our <db:verify/> requests to that domain when it
 * is the authoritative server for a key someone sent us; they go out once
 * TLS is negotiated (before our own authentication finishes).
 *
 * XEP-0288: when the peer offers <bidi/> (and s2s.bidi is on) we ask for it
 * before authenticating; once ready, the peer's stanzas to us arrive on this
 * stream too and are checked like those of an incoming stream (from the
 * peer's domain, to ours) before they are routed.
 */
import net from 'node:net';
import tls from 'node:tls';
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { StanzaError, type StreamErrorCondition } from '../core/errors.js';
import { streamError } from '../core/errors.js';
import { S2SConn, type ConnSink } from './conn.js';
import { dialbackKey } from './dialback.js';
import { NS_BIDI, NS_BIDI_FEATURE, NS_DIALBACK, NS_DIALBACK_FEATURE, NS_SERVER, fromServerNs } from './ns.js';
import { bidiDecision, checkIncomingStanza, outgoingStep } from './policy.js';
import { resolveTargets, type Target } from './resolve.js';
import { tryParseJID } from '../jid/jid.js';
import type { S2SManager } from './manager.js';
import { outgoingKey } from './policy.js';

export type VerifyVerdict = 'valid' | 'invalid' | 'error';


const STANZAS = new Set(['message', 'presence', 'iq']);

export class OutgoingStream implements ConnSink {
  conn: S2SConn | undefined;
  /** The stream id the peer gave (dialback keys are bound to it). */
  streamId = '';
  state: 'connecting' | 'negotiating' | 'ready' | 'closed' = 'connecting';
  private externalFailed = false;
  private tlsReady = false;
  /** XEP-0288 requested: the peer may send its stanzas to us on this stream once it is ready. */
  bidi = false;
  lastActivity = Date.now();
  readonly startedAt = Date.now();
  private readonly pendingVerify = new Map<string, (v: VerifyVerdict) => void>();
  private readonly verifyQueue: Element[] = [];
  private connectTimer: NodeJS.Timeout | undefined;
  /** Why it failed, for the bounces: not-found (DNS, refused, TLS, auth) or timeout. */
  failure: StanzaError | undefined;

  /**
   * @param domain the remote domain
   * @param local the local domain it authenticates as: the server's, or one hosted beside it (a
   *   component answering a peer needs a stream of its own, XEP-0220 authenticates domain pairs)
   */
  constructor(
    readonly domain: string,
    private readonly m: S2SManager,
    readonly local: string = m.domain,
  ) {}

  /** The manager's key of this stream (src/s2s/manager.ts outgoingKey). */
  get key(): string {
    return outgoingKey(this.m.domain, this.local, this.domain);
  }

  /** A method, not a narrowed field read: the state changes across awaits. */
  get isClosed(): boolean {
    return this.state === 'closed';
  }

  async start(): Promise<void> {
    this.connectTimer = setTimeout(
      () => this.failWith(new StanzaError('remote-server-timeout', `${this.domain} did not complete a server-to-server stream in time`), 'timeout'),
      this.m.config.connectTimeout * 1000,
    );
    this.connectTimer.unref();
    let targets: Target[];
    try {
      targets = await resolveTargets(this.domain, this.m.config.hosts);
    } catch {
      targets = [];
    }
    for (const t of targets) {
      if (this.isClosed) return;
      const sock = await this.connect(t);
      if (this.isClosed) {
        sock?.destroy();
        return;
      }
      if (!sock) continue;
      this.conn = new S2SConn(sock, t.directTls, this.m.limits, this.m.log, this.m.tls.ca);
      this.conn.attach(this);
      this.state = 'negotiating';
      this.openStream();
      return;
    }
    this.failWith(new StanzaError('remote-server-not-found', `No server-to-server connection to ${this.domain}`), 'unreachable');
  }

  private connect(t: Target): Promise<net.Socket | undefined> {
    return new Promise((resolve) => {
      const onErr = (err: Error): void => {
        this.m.log.debug({ domain: this.domain, host: t.host, port: t.port, err: err.message }, 's2s: connect failed');
        resolve(undefined);
      };
      if (t.directTls) {
        const s = tls.connect({ host: t.host, port: t.port, servername: this.domain, secureContext: this.m.contextFor(this.local, 'client'), rejectUnauthorized: false, ALPNProtocols: ['xmpp-server'] });
        s.once('secureConnect', () => {
          s.removeListener('error', onErr);
          this.tlsReady = true;
          resolve(s);
        });
        s.once('error', onErr);
      } else {
        const s = net.connect({ host: t.host, port: t.port });
        s.once('connect', () => {
          s.removeListener('error', onErr);
          resolve(s);
        });
        s.once('error', onErr);
      }
    });
  }

  private openStream(): void {
    this.conn?.sendHeader({ from: this.local, to: this.domain, version: '1.0' });
  }

  // ---- ConnSink ---------------------------------------------------------------------------

  onStreamStart(attrs: Record<string, string>, ns: string, name: string): void {
    if (ns !== NS.STREAM || name !== 'stream' || attrs.xmlns !== NS_SERVER) return this.fail('invalid-namespace', 'Expected a jabber:server stream');
    this.streamId = attrs.id ?? '';
    if (this.streamId === '') return this.fail('invalid-xml', 'The stream header has no id');
  }

  onElement(el: Element): void {
    if (this.state === 'closed') return;
    this.lastActivity = Date.now();
    try {
      this.handle(el);
    } catch (err) {
      this.m.log.error({ err, domain: this.domain }, 's2s: unexpected error on outgoing stream');
      this.fail('internal-server-error');
    }
  }

  private handle(el: Element): void {
    if (el.is('features', NS.STREAM)) return this.features(el);
    if (el.is('proceed', NS.TLS)) return void this.starttls();
    if (el.is('success', NS.SASL)) return this.restartAfterAuth();
    if (el.is('failure', NS.SASL)) {
      this.externalFailed = true;
      this.m.authFailures.inc({ method: 'external-out' });
      return this.features(this.lastFeatures ?? x('features', NS.STREAM));
    }
    if (el.is('failure', NS.TLS)) return this.failWith(new StanzaError('remote-server-not-found', 'TLS refused by the peer'), 'tls-refused');
    if (el.xmlns === NS_DIALBACK && el.name === 'result') return this.dialbackResult(el);
    if (el.xmlns === NS_DIALBACK && el.name === 'verify') return this.verifyResult(el);
    if (el.is('error', NS.STREAM)) {
      const cond = el.elements().find((c) => c.xmlns === NS.STREAM_ERRORS)?.name ?? 'undefined-condition';
      this.m.log.info({ domain: this.domain, condition: cond }, 's2s: peer sent a stream error');
      return this.failWith(new StanzaError('remote-server-not-found', `${this.domain} closed the stream (${cond})`), 'peer-error');
    }
    if (el.xmlns === NS_SERVER && STANZAS.has(el.name)) return this.bidiStanza(el);
    this.fail('unsupported-stanza-type', `Unexpected <${el.name}/> on an outgoing stream`);
  }

  /** A stanza from the peer on our stream: only with XEP-0288, once authenticated, from its domain to ours. */
  private bidiStanza(raw: Element): void {
    if (!this.bidi || this.state !== 'ready') {
      this.m.rejected.inc({ reason: this.bidi ? 'bidi-before-ready' : 'not-bidi' });
      return this.fail('unsupported-stanza-type', 'Stanzas on this stream need a bidirectional stream (XEP-0288)');
    }
    const fromJid = tryParseJID(raw.attrs.from);
    const toJid = tryParseJID(raw.attrs.to);
    const c = checkIncomingStanza(new Set([this.domain]), fromJid?.domain ?? (raw.attrs.from === undefined ? undefined : '\u0000bad'), toJid?.domain, this.local);
    if (!c.ok) {
      this.m.rejected.inc({ reason: c.reason });
      this.m.log.warn({ domain: this.domain, from: raw.attrs.from, to: raw.attrs.to, reason: c.reason }, 's2s: stanza refused on a bidirectional stream');
      return this.fail(c.condition, c.reason);
    }
    this.m.received.inc({ kind: raw.name });
    this.m.deliverIncoming(fromServerNs(raw));
  }

  private lastFeatures: Element | undefined;
  private authed = false;

  private features(f: Element): void {
    this.lastFeatures = f;
    if (this.authed) {
      // Features after SASL success: nothing left to negotiate (bidi was asked for before SASL).
      return this.ready();
    }
    const conn = this.conn;
    if (!conn) return;
    const starttls = f.getChild('starttls', NS.TLS) !== undefined;
    const mechs = f.getChild('mechanisms', NS.SASL)?.getChildren('mechanism').map((m) => m.text().trim()) ?? [];
    const step = outgoingStep({
      starttls,
      external: mechs.includes('EXTERNAL'),
      dialback: f.getChild('dialback', NS_DIALBACK_FEATURE) !== undefined,
      secure: conn.secure,
      peerCertValid: conn.certValidFor(this.domain),
      requireTls: this.m.config.requireTls,
      secureAuth: this.m.config.secureAuth,
      insecurePeer: this.m.isInsecure(this.domain),
      externalFailed: this.externalFailed,
    });
    if (step.action !== 'starttls') {
      this.tlsReady = true;
      this.flushVerifies();
    }
    // XEP-0288 §2.2: ask for bidi before SASL or dialback (no answer comes; the request is pipelined).
    if ((step.action === 'external' || step.action === 'dialback') && !this.bidi && f.getChild('bidi', NS_BIDI_FEATURE) !== undefined) {
      const d = bidiDecision({ enabled: this.m.config.bidi, secure: conn.secure, requireTls: this.m.config.requireTls, insecurePeer: this.m.isInsecure(this.domain), authenticated: false });
      if (d.use) {
        conn.send(x('bidi', NS_BIDI));
        this.bidi = true;
        this.m.bidiNegotiated.inc({ direction: 'out' });
      }
    }
    switch (step.action) {
      case 'starttls':
        return conn.send(x('starttls', NS.TLS));
      case 'external':
        return conn.send(x('auth', NS.SASL, { mechanism: 'EXTERNAL' }, [Buffer.from(this.local).toString('base64')]));
      case 'dialback':
        return conn.send(x('result', NS_DIALBACK, { from: this.local, to: this.domain }, [dialbackKey(this.m.secret, this.domain, this.local, this.streamId)]));
      case 'fail':
        this.m.authFailures.inc({ method: 'out', reason: step.reason });
        return this.failWith(new StanzaError('remote-server-not-found', `Cannot authenticate with ${this.domain} (${step.reason})`), step.reason, 'policy-violation');
    }
  }

  private async starttls(): Promise<void> {
    const conn = this.conn;
    if (!conn) return;
    try {
      await conn.startTlsClient(this.domain, this.m.contextFor(this.local, 'client'));
    } catch (err) {
      this.m.log.info({ domain: this.domain, err: (err as Error).message }, 's2s: outgoing TLS handshake failed');
      return this.failWith(new StanzaError('remote-server-not-found', `TLS with ${this.domain} failed`), 'tls-failed');
    }
    conn.restart();
    this.openStream();
  }

  private restartAfterAuth(): void {
    this.authed = true;
    this.m.authOut.inc({ method: 'external' });
    this.conn?.restart();
    this.openStream();
  }

  private dialbackResult(el: Element): void {
    if (el.attrs.from?.toLowerCase() !== this.domain || el.attrs.to?.toLowerCase() !== this.local) return;
    if (el.attrs.type === 'valid') {
      this.m.authOut.inc({ method: 'dialback' });
      this.authed = true;
      return this.ready();
    }
    const cond = el.getChild('error')?.elements()[0]?.name ?? el.attrs.type ?? 'invalid';
    this.m.authFailures.inc({ method: 'dialback-out', reason: cond });
    this.failWith(new StanzaError('remote-server-not-found', `${this.domain} refused dialback (${cond})`), 'dialback-refused');
  }

  private ready(): void {
    if (this.state !== 'negotiating') return;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    this.state = 'ready';
    this.m.outgoingReady(this);
  }

  // ---- dialback verification (we are the receiving server asking the authoritative one) ----

  /** Dialback verifications waiting for the authoritative server's answer (read only; the fuzzer waits for them). */
  get verifying(): number {
    return this.pendingVerify.size;
  }

  /** Ask `this.domain` whether it made `key` for (`this.local`, the receiving domain here; it; streamId). */
  verify(streamId: string, key: string): Promise<VerifyVerdict> {
    return new Promise((resolve) => {
      const k = streamId;
      const prev = this.pendingVerify.get(k);
      if (prev) prev('error');
      this.pendingVerify.set(k, resolve);
      this.verifyQueue.push(x('verify', NS_DIALBACK, { from: this.local, to: this.domain, id: streamId }, [key]));
      this.flushVerifies();
    });
  }

  private flushVerifies(): void {
    if (!this.tlsReady || !this.conn || this.state === 'closed') return;
    for (const v of this.verifyQueue.splice(0)) this.conn.send(v);
  }

  private verifyResult(el: Element): void {
    const id = el.attrs.id;
    if (id === undefined) return;
    const cb = this.pendingVerify.get(id);
    if (!cb) return;
    this.pendingVerify.delete(id);
    cb(el.attrs.type === 'valid' && el.attrs.from?.toLowerCase() === this.domain ? 'valid' : el.attrs.type === 'invalid' ? 'invalid' : 'error');
  }

  // ---- sending and ending -----------------------------------------------------------------

  send(stanza: Element): void {
    this.lastActivity = Date.now();
    this.conn?.send(stanza);
  }

  onStreamEnd(): void {
    this.close();
  }

  onParseError(condition: string, text: string): void {
    this.m.garbage.inc({ condition });
    this.fail(condition as StreamErrorCondition, text);
  }

  onClosed(): void {
    if (this.state === 'closed') return;
    this.failWith(new StanzaError('remote-server-not-found', `The stream to ${this.domain} was closed`), 'closed');
  }

  /** Our stream error towards the peer, then fail. */
  fail(condition: StreamErrorCondition, text?: string): void {
    if (this.state !== 'closed' && this.conn && !this.conn.isClosed) {
      this.m.streamErrors.inc({ condition, direction: 'out' });
      this.conn.send(streamError(condition, text));
    }
    this.failWith(new StanzaError('remote-server-not-found', `Stream to ${this.domain} failed (${condition})`), condition);
  }

  private failWith(err: StanzaError, reason: string, streamCondition?: StreamErrorCondition): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.failure = err;
    if (this.connectTimer) clearTimeout(this.connectTimer);
    for (const cb of this.pendingVerify.values()) cb('error');
    this.pendingVerify.clear();
    if (streamCondition && this.conn && !this.conn.isClosed) this.conn.send(streamError(streamCondition, reason));
    this.conn?.close();
    this.m.outgoingClosed(this, wasReady ? undefined : err, reason);
  }

  /** Clean close (idle, shutdown). */
  close(): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    if (this.connectTimer) clearTimeout(this.connectTimer);
    for (const cb of this.pendingVerify.values()) cb('error');
    this.pendingVerify.clear();
    this.conn?.close();
    this.m.outgoingClosed(this, wasReady ? undefined : new StanzaError('remote-server-not-found', `The stream to ${this.domain} closed before it was ready`), 'closed');
  }
}
