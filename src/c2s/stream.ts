/**
 * The c2s stream state machine (RFC 6120 §4-§7), transport-agnostic:
 * header -> features -> [STARTTLS] -> SASL -> restart -> [MR2/SM nonzas] ->
 * bind -> stanzas to the Router. Every error path ends in the right stream
 * error and a closed connection; nothing a client sends can throw out of here.
 */
import { randomBytes, randomFillSync } from 'node:crypto';
import { Element, x } from '../xml/element.js';
import { JID, JIDError, prepareResource } from '../jid/jid.js';
import { NS } from '../core/namespaces.js';
import { StanzaError, errorReply, streamError, type StreamErrorCondition } from '../core/errors.js';
import type { Transport, TransportSink } from './transport.js';
import { Session, type SessionStream } from '../core/session.js';
import type { C2SStreamApi } from '../core/stream-api.js';
import { domainCredentials } from './vhost-auth.js';
import type { ServerContext } from '../core/context.js';
import type { SaslMechanism, SaslStep } from '../sasl/contract.js';
import { createMechanism } from '../sasl/mechanisms.js';
import { sessionsAllowed } from '../limits/limits.js';

type State = 'wait-header' | 'open' | 'closing' | 'closed';

const STANZAS = new Set(['message', 'presence', 'iq']);

/** Random bytes for stream ids, refilled 128 ids at a time: one randomBytes() call per stream showed in login profiles. */
const idPool = Buffer.alloc(12 * 128);
let idPoolNext = idPool.length;

export function newStreamId(): string {
  // 96 random bits, URL-safe: unique and short, since it prefixes archive ids.
  if (idPoolNext === idPool.length) {
    randomFillSync(idPool);
    idPoolNext = 0;
  }
  const id = idPool.toString('base64url', idPoolNext, idPoolNext + 12);
  idPoolNext += 12;
  return id;
}

export class C2SStream implements TransportSink, SessionStream, C2SStreamApi {
  id = '';
  private state: State = 'wait-header';
  private headerSent = false;
  authenticated = false;
  /** Account key (src/core/vhosts.ts) after SASL success: the localpart on the primary domain, user@domain on another. */
  username: string | undefined;
  /** The hosted domain this stream serves (its header's 'to'; the primary domain when absent). */
  localDomain: string;
  session: Session | undefined;
  readonly data = new Map<string, unknown>();
  private mechanism: SaslMechanism | undefined;
  private saslBusy = false;
  private saslFailures = 0;
  private tlsStarting = false;
  lastActivity = Date.now();
  lastWrite = Date.now();
  /** Set when a server ping is outstanding (for dead-connection detection). */
  pingSentAt = 0;
  private authTimer: NodeJS.Timeout | undefined;
  /**
   * Why the stream ended, for 'session/detached': 'closed' (the client sent
   * its footer), 'timeout', 'error' (we sent a stream error); unset means the
   * connection was lost ('disconnected'). SM resumes only unclean ends.
   */
  private endReason: string | undefined;
  private readonly ctx: ServerContext;
  readonly transport: Transport;

  constructor(transport: Transport, ctx: ServerContext) {
    this.transport = transport;
    this.ctx = ctx;
    this.localDomain = ctx.domain;
    ctx.streams.add(this);
    this.transport.setMaxStanzaSize(ctx.config.c2s.maxStanzaSizePreAuth);
    // A plain connection that could start TLS gets the short pre-TLS limit (keeps
    // idle or slow-drip sockets cheap); once TLS begins, the longer limit runs, since
    // a client may stop mid-handshake to ask its user about the certificate.
    const preTls = transport.canStartTls && !transport.secure;
    this.armAuthTimer(preTls ? ctx.config.c2s.authTimeoutPreTls : ctx.config.c2s.authTimeout, preTls);
  }

  private armAuthTimer(seconds: number, preTls: boolean): void {
    if (this.authTimer) clearTimeout(this.authTimer);
    if (seconds <= 0) return;
    this.authTimer = setTimeout(() => {
      if (!this.session && this.state !== 'closed') {
        this.fail('connection-timeout', preTls ? 'TLS was not started in time' : 'Authentication took too long');
      }
    }, seconds * 1000);
    this.authTimer.unref();
  }

  get remoteAddress(): string {
    return this.transport.remoteAddress;
  }
  get transportKind(): string {
    return this.transport.kind;
  }
  get secure(): boolean {
    return this.transport.secure;
  }
  /** Still exchanging elements (not closing or closed). */
  get open(): boolean {
    return this.state === 'open';
  }

  // ---- TransportSink ------------------------------------------------------

  onActivity(): void {
    this.lastActivity = Date.now();
    this.pingSentAt = 0;
  }

  onStreamStart(attrs: Record<string, string>, ns: string, name: string): void {
    if (this.state !== 'wait-header') return this.fail('bad-format', 'Unexpected stream header');
    this.id = newStreamId();
    // Virtual hosts: the header's 'to' picks the domain (answered in our header's 'from'); it is
    // fixed once authenticated, since the account key was made for it.
    const toDomain = attrs.to?.toLowerCase().replace(/\.$/, '');
    const hostUnknown = toDomain !== undefined && (!this.ctx.hosts.has(toDomain) || (this.authenticated && toDomain !== this.localDomain));
    if (toDomain !== undefined && !hostUnknown) this.localDomain = toDomain;
    const ws = this.transport.kind === 'websocket';
    const expectedNs = ws ? NS.FRAMING : NS.STREAM;
    const expectedName = ws ? 'open' : 'stream';
    this.sendHeader(attrs);
    if (ns !== expectedNs || name !== expectedName) return this.fail('invalid-namespace', `Expected <${expectedName}/> in ${expectedNs}`);
    if (!ws && attrs.xmlns !== NS.CLIENT) return this.fail('invalid-namespace', 'The default namespace must be jabber:client');
    const version = attrs.version;
    if (version === undefined || !/^1\.\d+$/.test(version)) return this.fail('unsupported-version', 'Only XMPP version 1.0 is supported');
    if (hostUnknown) return this.fail('host-unknown', `This server does not serve ${attrs.to ?? ''}`);
    this.state = 'open';
    this.sendFeatures();
  }

  onElement(el: Element): void {
    if (this.state !== 'open') return;
    try {
      this.handleElement(el);
    } catch (err) {
      // Never let client input crash the process: log and end this stream only.
      this.ctx.log.error({ err, stream: this.id }, 'unexpected error handling element');
      this.fail('internal-server-error');
    }
  }

  onStreamEnd(clean = true): void {
    if (this.state === 'closed') return;
    if (clean && this.state === 'open' && this.endReason === undefined) this.endReason = 'closed';
    this.state = 'closing';
    this.transport.close();
  }

  onParseError(condition: string, text: string): void {
    this.fail(condition as StreamErrorCondition, text);
  }

  onClosed(reason: string): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    if (this.authTimer) clearTimeout(this.authTimer);
    this.ctx.streams.delete(this);
    const session = this.session;
    const why = this.endReason ?? (reason === 'closed' ? 'disconnected' : reason);
    if (session && session.stream === this) this.ctx.detachSession(session, why);
    if (this.mechanism) this.mechanism = undefined;
  }

  // ---- SessionStream / C2SStreamApi --------------------------------------

  write(el: Element): void {
    if (this.state === 'closed') return;
    // Every stanza to a bound session takes the session's counted path (SM, CSI).
    const session = this.session;
    if (session && session.stream === this && STANZAS.has(el.name) && el.xmlns === NS.CLIENT) {
      session.send(el);
      return;
    }
    this.writeWire(el);
  }

  writeWire(el: Element): void {
    if (this.state === 'closed') return;
    this.lastWrite = Date.now();
    this.transport.send(el);
  }

  closeWith(condition?: string, text?: string): void {
    if (condition) this.fail(condition as StreamErrorCondition, text);
    else if (this.state !== 'closed') {
      this.state = 'closing';
      this.transport.close();
    }
  }

  // ---- internals -------------------------------------------------------------

  private sendHeader(clientAttrs: Record<string, string>): void {
    if (this.headerSent) return;
    this.headerSent = true;
    const attrs: Record<string, string> = { from: this.localDomain, id: this.id || newStreamId(), version: '1.0', 'xml:lang': 'en' };
    if (clientAttrs.from !== undefined && this.authenticated) attrs.to = clientAttrs.from;
    this.transport.sendHeader(attrs);
  }

  /** Send a stream error and close (RFC 6120 §4.9.1.1). */
  fail(condition: StreamErrorCondition, text?: string): void {
    if (this.state === 'closed' || this.state === 'closing') return;
    if (!this.headerSent) {
      if (!this.id) this.id = newStreamId();
      this.sendHeader({});
    }
    this.endReason ??= condition === 'connection-timeout' ? 'timeout' : 'error';
    this.ctx.log.info({ stream: this.id, addr: this.remoteAddress, condition, text }, 'stream error');
    this.ctx.metrics.counter('verona_stream_errors_total', 'Stream errors sent, by condition').inc({ condition });
    this.transport.send(streamError(condition, text));
    this.state = 'closing';
    this.transport.close();
  }

  private restart(): void {
    this.state = 'wait-header';
    this.headerSent = false;
    this.transport.restart();
  }

  private sendFeatures(): void {
    const c = this.ctx.config.c2s;
    const features = x('features', NS.STREAM);
    if (!this.authenticated) {
      const tlsNeeded = c.requireTls && !this.secure;
      if (!this.secure && this.transport.canStartTls) {
        const st = features.c('starttls', {}, NS.TLS);
        if (c.requireTls) st.c('required');
      }
      if (!tlsNeeded) {
        const mechs = features.c('mechanisms', {}, NS.SASL);
        for (const m of this.ctx.config.auth.mechanisms) {
          if (m === 'PLAIN' && !this.secure && !c.allowPlainWithoutTls) continue;
          mechs.c('mechanism').t(m);
        }
      }
      this.ctx.hooks.fire('stream/features', { stream: this, stage: 'pre-auth', features });
    } else {
      features.c('bind', {}, NS.BIND);
      features.c('session', {}, NS.SESSION).c('optional');
      this.ctx.hooks.fire('stream/features', { stream: this, stage: 'post-auth', features });
    }
    this.transport.send(features);
  }

  private handleElement(el: Element): void {
    if (this.session) {
      // RFC 3921 session establishment after bind (Strophe, so converse.js, sends it even when optional): a no-op.
      if (el.name === 'iq' && el.xmlns === NS.CLIENT && el.attrs.type === 'set' && el.attrs.to === undefined && el.getChild('session', NS.SESSION)) {
        this.write(x('iq', NS.CLIENT, { type: 'result', id: el.attrs.id }));
        // A stanza like any other for stream management: counted in, as its reply is counted out.
        this.session.onInbound?.(el, Promise.resolve());
        return;
      }
      if (STANZAS.has(el.name) && el.xmlns === NS.CLIENT) return this.handleStanza(this.session, el);
      if (this.ctx.hooks.fire('stream/nonza', { stream: this, el })) return;
      return this.fail('unsupported-stanza-type', `Unknown element <${el.name} xmlns='${el.xmlns}'>`);
    }
    if (el.xmlns === NS.TLS && el.name === 'starttls') return this.startTls();
    if (el.xmlns === NS.SASL) return this.handleSasl(el);
    if (this.authenticated) {
      if (el.name === 'iq' && el.xmlns === NS.CLIENT) {
        const bind = el.getChild('bind', NS.BIND);
        if (bind && el.attrs.type === 'set') return void this.bind(el, bind);
        if (el.getChild('session', NS.SESSION)) return this.write(x('iq', NS.CLIENT, { type: 'result', id: el.attrs.id }));
      }
      if (this.ctx.hooks.fire('stream/nonza', { stream: this, el })) return;
      if (el.name === 'iq' && el.xmlns === NS.CLIENT && el.attrs.type !== 'result' && el.attrs.type !== 'error') {
        return this.write(errorReply(el, new StanzaError('not-authorized', 'Bind a resource first')));
      }
      return this.fail('not-authorized', 'Bind a resource first');
    }
    if (this.ctx.hooks.fire('stream/nonza', { stream: this, el })) return;
    return this.fail('not-authorized', 'Authenticate first');
  }

  private startTls(): void {
    if (this.secure || !this.transport.canStartTls || this.authenticated || this.tlsStarting) {
      this.transport.send(x('failure', NS.TLS));
      this.state = 'closing';
      this.transport.close();
      return;
    }
    this.tlsStarting = true;
    this.armAuthTimer(this.ctx.config.c2s.authTimeout, false);
    this.transport.send(x('proceed', NS.TLS));
    this.restart();
    this.transport.startTls().then(
      () => {
        this.tlsStarting = false;
        this.ctx.log.debug({ addr: this.remoteAddress }, 'TLS established');
      },
      (err: unknown) => {
        this.ctx.log.info({ err: String(err), addr: this.remoteAddress }, 'TLS handshake failed');
        this.state = 'closing';
        this.transport.close();
      },
    );
  }

  private handleSasl(el: Element): void {
    const c = this.ctx.config.c2s;
    if (this.authenticated) return this.fail('policy-violation', 'Already authenticated');
    if (this.saslBusy) return this.fail('policy-violation', 'SASL step while the previous one is pending');
    if (el.name === 'abort') {
      this.mechanism = undefined;
      return this.transport.send(x('failure', NS.SASL, {}, [x('aborted', NS.SASL)]));
    }
    let step: Promise<SaslStep>;
    if (el.name === 'auth') {
      if (c.requireTls && !this.secure) return this.saslFailure('encryption-required', 'Use STARTTLS first', false);
      const name = el.attrs.mechanism ?? '';
      const allowed = this.ctx.config.auth.mechanisms as readonly string[];
      if (!allowed.includes(name) || (name === 'PLAIN' && !this.secure && !c.allowPlainWithoutTls)) {
        return this.saslFailure('invalid-mechanism', undefined, false);
      }
      if (!this.ctx.throttle.allowed(this.remoteAddress)) {
        return this.saslFailure('temporary-auth-failure', 'Too many failed attempts; try again later', false);
      }
      const mech = createMechanism(name, domainCredentials(this.ctx.credentials, this.ctx.hosts, this.localDomain), { domain: this.localDomain, secret: this.ctx.secret, fakeIterations: this.ctx.config.auth.scramIterations });
      if (!mech) return this.saslFailure('invalid-mechanism', undefined, false);
      this.mechanism = mech;
      const data = el.text().trim();
      const initial = data === '' ? undefined : data === '=' ? Buffer.alloc(0) : decodeB64(data);
      if (initial === null) return this.saslFailure('incorrect-encoding', undefined, false);
      step = mech.start(initial);
    } else if (el.name === 'response') {
      if (!this.mechanism) return this.fail('policy-violation', 'No authentication in progress');
      const data = el.text().trim();
      const buf = data === '' || data === '=' ? Buffer.alloc(0) : decodeB64(data);
      if (buf === null) return this.saslFailure('incorrect-encoding', undefined, false);
      step = this.mechanism.step(buf);
    } else {
      return this.fail('unsupported-stanza-type', `Unknown SASL element ${el.name}`);
    }
    this.saslBusy = true;
    step.then(
      (r) => {
        this.saslBusy = false;
        if (this.state !== 'open') return;
        this.saslResult(r);
      },
      (err: unknown) => {
        this.saslBusy = false;
        this.ctx.log.error({ err }, 'SASL mechanism failed');
        this.saslFailure('temporary-auth-failure', undefined, false);
      },
    );
  }

  private saslResult(r: SaslStep): void {
    if (r.kind === 'challenge') {
      this.transport.send(x('challenge', NS.SASL, {}, [r.data.length ? r.data.toString('base64') : '=']));
      return;
    }
    const claimedLocal = this.mechanism?.claimedUser;
    const claimed = claimedLocal === undefined ? undefined : this.ctx.hosts.keyFor(claimedLocal, this.localDomain);
    this.mechanism = undefined;
    if (r.kind === 'failure') return this.saslFailure(r.condition, r.text, true, claimed);
    r = { ...r, username: this.ctx.hosts.keyFor(r.username, this.localDomain) };
    // Per-account throttle: an account under attack refuses even a correct password for the window.
    if (!this.ctx.throttle.allowed(this.remoteAddress, r.username)) {
      return this.saslFailure('temporary-auth-failure', 'Too many failed attempts; try again later', false);
    }
    // Disabled by an operator (verona disable, XEP-0133): refused only after a correct password, so nobody learns it otherwise.
    const disabled = this.ctx.accountDisabled?.(r.username);
    if (disabled !== undefined) return this.saslFailure('account-disabled', disabled, false);
    this.ctx.throttle.recordSuccess(this.remoteAddress, r.username);
    this.authenticated = true;
    this.username = r.username;
    if (this.authTimer) clearTimeout(this.authTimer);
    this.ctx.log.info({ stream: this.id, user: r.username, addr: this.remoteAddress, transport: this.transport.kind }, 'authenticated');
    this.ctx.metrics.counter('verona_logins_total', 'Successful SASL authentications').inc();
    this.transport.send(x('success', NS.SASL, {}, r.data && r.data.length ? [r.data.toString('base64')] : []));
    this.transport.setMaxStanzaSize(this.ctx.config.c2s.maxStanzaSize);
    this.transport.authenticated?.();
    this.restart();
  }

  private saslFailure(condition: string, text: string | undefined, counts: boolean, user?: string): void {
    this.mechanism = undefined;
    if (counts) {
      this.ctx.throttle.recordFailure(this.remoteAddress, user);
      this.ctx.log.info({ addr: this.remoteAddress, condition }, 'authentication failed');
      this.ctx.metrics.counter('verona_auth_failures_total', 'Failed SASL authentications').inc({ condition });
    }
    const f = x('failure', NS.SASL, {}, [x(condition, NS.SASL)]);
    if (text) f.append(x('text', NS.SASL, { 'xml:lang': 'en' }, [text]));
    this.transport.send(f);
    // RFC 6120 §6.4.5: allow a few retries, then close.
    if (++this.saslFailures >= 5) this.fail('policy-violation', 'Too many authentication attempts');
  }

  private bind(iq: Element, bind: Element): void {
    let session: Session;
    try {
      session = this.bindSession(bind.getChildText('resource')?.trim());
    } catch (err) {
      if (err instanceof StanzaError) return this.write(errorReply(iq, err));
      throw err;
    }
    this.write(x('iq', NS.CLIENT, { type: 'result', id: iq.attrs.id }, [x('bind', NS.BIND, {}, [x('jid', NS.BIND, {}, [session.jid.toString()])])]));
  }

  /**
   * Authenticated by another SASL profile (XEP-0388 SASL2, src/c2s/sasl2.ts):
   * the same bookkeeping as a SASL success, without the stream restart.
   */
  authenticateAs(username: string, mechanism: string): void {
    this.authenticated = true;
    this.username = username;
    if (this.authTimer) clearTimeout(this.authTimer);
    this.ctx.log.info({ stream: this.id, user: username, addr: this.remoteAddress, transport: this.transport.kind, mechanism }, 'authenticated');
    this.ctx.metrics.counter('verona_logins_total', 'Successful SASL authentications').inc();
    this.transport.setMaxStanzaSize(this.ctx.config.c2s.maxStanzaSize);
  }

  /** Post-auth stream features without a restart (SASL2 success without Bind2). */
  sendStreamFeatures(): void {
    this.sendFeatures();
  }

  /** Channel-binding data of the TLS connection (RFC 5929, RFC 9266), undefined without TLS. */
  channelBinding(type: 'tls-exporter' | 'tls-server-end-point'): Buffer | undefined {
    return this.transport.channelBinding?.(type);
  }

  /** Bind a resource (RFC 6120 §7; Bind2 gives its own): throws StanzaError for a bad one. */
  bindSession(requested: string | undefined): Session {
    const username = this.username as string;
    let resource: string;
    try {
      resource = requested ? prepareResource(requested) : `verona-${randomBytes(6).toString('base64url')}`;
    } catch (err) {
      throw new StanzaError(err instanceof JIDError ? 'bad-request' : 'internal-server-error', 'Invalid resource');
    }
    const jid = new JID(this.ctx.hosts.localOf(username), this.localDomain, resource);
    const existing = this.ctx.sessions.byFullJid(username, resource);
    const allowed = sessionsAllowed(this.ctx.sessions.byUser(username).length, this.ctx.config.limits.sessionsPerAccount, existing !== undefined);
    if (!allowed.ok) {
      this.ctx.metrics.counter('verona_bind_refused_total', 'Resource binding refused by a limit').inc({ reason: 'sessions-per-account' });
      throw new StanzaError('resource-constraint', `Too many sessions: ${allowed.reason}`, 'wait');
    }
    if (existing) {
      // RFC 6120 §7.7.2.2: the new session wins; the old one gets <conflict/>.
      this.ctx.endSession(existing, 'replaced');
      existing.stream.closeWith('conflict', 'Replaced by a new connection with the same resource');
    }
    const session = new Session(jid, this, username);
    this.session = session;
    // Pre-bind state collected by modules (e.g. MR2 enabled before bind) moves to the session.
    this.ctx.sessions.add(session);
    this.ctx.hooks.fire('session/bound', { session });
    this.ctx.log.info({ stream: this.id, jid: jid.toString(), addr: this.remoteAddress }, 'resource bound');
    return session;
  }

  /** Attach a resumed session to this stream (SM). */
  adopt(session: Session): void {
    this.session = session;
    session.stream = this;
    session.closed = false;
  }

  private handleStanza(session: Session, el: Element): void {
    // RFC 6120 §8.1.2.1: the server stamps 'from'; a client may only claim its own JID.
    const from = el.attrs.from;
    if (from !== undefined && from !== session.jid.toString() && from !== session.jid.bare.toString()) {
      return this.fail('invalid-from', 'The from attribute does not match the session');
    }
    el.attrs.from = session.jid.toString();
    if (this.ctx.log.isLevelEnabled('trace')) this.ctx.log.trace({ stream: this.id, stanza: el.toString() }, 'in');
    // Per-session limits (src/limits/stanza-limits.ts): a StanzaError bounces the stanza; true = held, routed later.
    try {
      if (this.ctx.hooks.fire('stanza/client', { session, stanza: el, remoteAddress: this.remoteAddress }, true)) return void session.onInbound?.(el, Promise.resolve());
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      this.ctx.router.bounce(el, err, session);
      return void session.onInbound?.(el, Promise.resolve());
    }
    const handled = this.ctx.router.fromClient(session, el);
    session.onInbound?.(el, handled);
  }
}

function decodeB64(s: string): Buffer | null {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return null;
  return Buffer.from(s, 'base64');
}
