/**
 * An incoming s2s stream (we are the receiving server, RFC 6120 §4-§9):
 * header -> features -> [STARTTLS] -> SASL EXTERNAL (XEP-0178) or Server
 * Dialback (XEP-0220) per domain -> stanzas to the router.
 *
 * It also answers <db:verify/> before any authentication (we are then the
 * authoritative server for a key we issued on one of our outgoing streams).
 *
 * Every stanza must come from a domain this stream authenticated and go to
 * ours (policy.ts checkIncomingStanza); anything else is a stream error and
 * is never routed. Nothing a peer sends can throw out of here.
 *
 * XEP-0288: we offer <bidi/> and, when the peer asks for it before
 * authenticating, the stream also carries our stanzas to every domain it
 * authenticated (the manager routes through `send`), so the peer needs no
 * second connection back to us.
 */
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { newStreamId } from '../c2s/stream.js';
import { tryParseJID } from '../jid/jid.js';
import type { StreamErrorCondition } from '../core/errors.js';
import { streamError } from '../core/errors.js';
import type { ConnSink, S2SConn } from './conn.js';
import { dialbackKeyValid } from './dialback.js';
import { NS_BIDI, NS_BIDI_FEATURE, NS_DIALBACK, NS_DIALBACK_FEATURE, NS_SERVER, fromServerNs } from './ns.js';
import { bidiDecision, checkIncomingStanza, dialbackRequest, incomingFeatures } from './policy.js';
import type { S2SManager } from './manager.js';

const STANZAS = new Set(['message', 'presence', 'iq']);

export class IncomingStream implements ConnSink {
  id = '';
  /** starting-tls: <proceed/> sent, handshake running; nothing the peer sent in plaintext after <starttls/> is read. */
  private state: 'wait-header' | 'open' | 'starting-tls' | 'closed' = 'wait-header';
  /**
   * Bumped when what the peer said before no longer counts: TLS starts, SASL restarts the stream
   * (RFC 6120 §5.4.3.3, §6.4.6: knowledge from before is discarded), the stream closes. A dialback
   * verdict that arrives in a later epoch is dropped: applied, it authenticated a closed stream
   * (the manager then kept it as the domain's stream, and it replaced the live one) or wrote a
   * <db:result/> into the TLS layer before its stream header (both found by the s2s fuzz target).
   */
  private epoch = 0;
  /**
   * Our header of the current stream went out (false again after STARTTLS and SASL, until the
   * peer's new header): a stream error or closing tag without it is not well-formed XMPP, which
   * the s2s fuzz target found for a peer ending or erring before (or instead of) its header.
   */
  private headerSent = false;
  /** Domains this stream authenticated (several with dialback multiplexing). */
  readonly authenticated = new Set<string>();
  /** Our domain this stream was opened to: the server's, or one hosted here (a component). */
  localDomain: string;
  /** The domain the peer named in its stream header. */
  peerDomain: string | undefined;
  private saslDone = false;
  /** XEP-0288 negotiated: our stanzas to the authenticated domains go out on this stream too. */
  bidi = false;
  lastActivity = Date.now();
  private readonly authTimer: NodeJS.Timeout;

  constructor(
    readonly conn: S2SConn,
    private readonly m: S2SManager,
  ) {
    this.localDomain = m.domain;
    conn.attach(this);
    this.authTimer = setTimeout(() => {
      if (this.authenticated.size === 0) this.fail('connection-timeout', 'Authentication took too long', 'auth-timeout');
    }, m.config.authTimeout * 1000);
    this.authTimer.unref();
  }

  get isOpen(): boolean {
    return this.state === 'open';
  }

  get isClosed(): boolean {
    return this.state === 'closed';
  }

  onStreamStart(attrs: Record<string, string>, ns: string, name: string): void {
    if (this.state !== 'wait-header') return this.fail('bad-format', 'Unexpected stream header');
    this.id = newStreamId();
    const from = attrs.from?.toLowerCase();
    const asked = attrs.to?.toLowerCase().replace(/\.$/, '');
    // A peer may open the stream to a domain hosted here (a component): answer as that domain.
    if (asked !== undefined && this.m.serves(asked)) this.localDomain = asked;
    this.conn.sendHeader({ id: this.id, from: this.localDomain, ...(from ? { to: from } : {}), version: '1.0' });
    this.headerSent = true;
    this.state = 'open';
    if (ns !== NS.STREAM || name !== 'stream' || attrs.xmlns !== NS_SERVER) return this.fail('invalid-namespace', 'Expected a jabber:server stream');
    if (attrs.version === undefined || !/^1\.\d+$/.test(attrs.version)) return this.fail('unsupported-version', 'Only XMPP version 1.0 is supported');
    const to = attrs.to?.toLowerCase().replace(/\.$/, '');
    if (to !== undefined && !this.m.serves(to)) return this.fail('host-unknown', `This server does not serve ${to}`);
    if (from !== undefined) this.peerDomain = from;
    this.sendFeatures();
    // After SASL (or STARTTLS on a stream that authenticated before it) the restarted stream is usable
    // both ways now (XEP-0288): stanzas held meanwhile go out.
    if (this.bidi) this.m.incomingReopened(this);
  }

  private sendFeatures(): void {
    const features = x('features', NS.STREAM);
    if (!this.saslDone) {
      const f = incomingFeatures({
        secure: this.conn.secure,
        canStartTls: true,
        requireTls: this.m.config.requireTls,
        secureAuth: this.m.config.secureAuth,
        insecurePeer: this.peerDomain !== undefined && this.m.isInsecure(this.peerDomain),
        peerCertTrusted: this.conn.peerCertTrusted,
      });
      if (f.starttls !== 'none') features.append(x('starttls', NS.TLS, {}, f.starttls === 'required' ? [x('required', NS.TLS)] : []));
      if (f.external) features.append(x('mechanisms', NS.SASL, {}, [x('mechanism', NS.SASL, {}, ['EXTERNAL'])]));
      if (f.dialback) features.append(x('dialback', NS_DIALBACK_FEATURE, {}, [x('errors', NS_DIALBACK_FEATURE)]));
      if (this.bidiAllowed().use) features.append(x('bidi', NS_BIDI_FEATURE));
    }
    this.conn.send(features);
  }

  onElement(el: Element): void {
    if (this.state !== 'open') return;
    this.lastActivity = Date.now();
    try {
      this.handle(el);
    } catch (err) {
      this.m.log.error({ err, stream: this.id }, 's2s: unexpected error handling element');
      this.fail('internal-server-error');
    }
  }

  private handle(el: Element): void {
    if (el.xmlns === NS_SERVER && STANZAS.has(el.name)) return this.stanza(el);
    if (el.xmlns === NS_DIALBACK && el.name === 'result') return void this.dialbackResult(el);
    if (el.xmlns === NS_DIALBACK && el.name === 'verify') return this.dialbackVerify(el);
    if (el.is('starttls', NS.TLS)) return void this.starttls();
    if (el.is('auth', NS.SASL)) return this.saslExternal(el);
    if (el.is('bidi', NS_BIDI)) return this.bidiRequest();
    this.fail('unsupported-stanza-type', `Unexpected <${el.name}/> in ${el.xmlns}`);
  }

  private async starttls(): Promise<void> {
    if (this.conn.secure) return this.fail('policy-violation', 'TLS is already on');
    this.conn.send(x('proceed', NS.TLS));
    // Still inside the parser's callback: the reset discards the rest of the chunk, so plaintext
    // pipelined after <starttls/> is never acted on (RFC 6120 §5.4.3.3; c2s does the same).
    this.state = 'starting-tls';
    this.epoch++;
    this.conn.restart();
    try {
      await this.conn.startTlsServer(this.m.serverTlsContext, this.m.sniCallback);
    } catch (err) {
      this.m.log.info({ err: (err as Error).message, addr: this.conn.remoteAddress }, 's2s: incoming TLS handshake failed');
      this.conn.socket.destroy();
      return;
    }
    // Closed during the handshake (the peer went away, a timeout): stay closed.
    if (this.state !== 'starting-tls') return;
    this.state = 'wait-header';
    this.headerSent = false;
    this.conn.restart();
  }

  private bidiAllowed(): ReturnType<typeof bidiDecision> {
    return bidiDecision({
      enabled: this.m.config.bidi,
      secure: this.conn.secure,
      requireTls: this.m.config.requireTls,
      insecurePeer: this.peerDomain !== undefined && this.m.isInsecure(this.peerDomain),
      authenticated: this.authenticated.size > 0 || this.saslDone,
    });
  }

  /** XEP-0288 §2.2: the initiating server asks to receive stanzas on this stream (no reply is sent). */
  private bidiRequest(): void {
    const d = this.bidiAllowed();
    if (!d.use) {
      this.m.refused.inc({ limit: 'bidi' });
      return this.fail('policy-violation', `Bidirectional stream not available (${d.reason})`, `bidi-${d.reason}`);
    }
    this.bidi = true;
    this.m.bidiNegotiated.inc({ direction: 'in' });
  }

  /** A stanza of ours to a domain this bidi stream authenticated (the manager checked both). */
  send(stanza: Element): void {
    this.lastActivity = Date.now();
    this.conn.send(stanza);
  }

  /** XEP-0178: the certificate must be valid for the domain asked for (authzid, else the header's from). */
  private saslExternal(el: Element): void {
    const fail = (cond: string): void => this.conn.send(x('failure', NS.SASL, {}, [x(cond, NS.SASL)]));
    if (el.attrs.mechanism !== 'EXTERNAL' || this.saslDone) return fail('invalid-mechanism');
    const text = el.text().trim();
    let authzid = this.peerDomain;
    if (text !== '' && text !== '=') {
      authzid = Buffer.from(text, 'base64').toString('utf8').toLowerCase();
    }
    if (!this.conn.secure || authzid === undefined || !this.conn.certValidFor(authzid)) {
      this.m.authFailures.inc({ method: 'external' });
      return fail('not-authorized');
    }
    this.conn.send(x('success', NS.SASL));
    this.saslDone = true;
    this.epoch++;
    // The stream restarts first: nothing of ours (bidi stanzas) may go out before the peer's new header.
    this.state = 'wait-header';
    this.headerSent = false;
    this.conn.restart();
    this.authOk(authzid, 'external');
  }

  private authOk(domain: string, method: string): void {
    this.authenticated.add(domain);
    clearTimeout(this.authTimer);
    this.m.incomingAuthenticated(this, domain, method);
  }

  /** XEP-0220 §2.1.2: the originating server asks us to accept its domain with a key. */
  private async dialbackResult(el: Element): Promise<void> {
    const from = el.attrs.from?.toLowerCase();
    const to = el.attrs.to?.toLowerCase();
    const key = el.text().trim();
    if (el.attrs.type !== undefined) return; // results addressed to an originating server belong on outgoing streams
    if (!from || !to || !key || !tryParseJID(from) || from.includes('@') || from.includes('/')) return this.fail('improper-addressing', 'db:result needs from, to and a key');
    const reply = (type: string, children?: Element[]): void => {
      if (this.state === 'open') this.conn.send(x('result', NS_DIALBACK, { from: to, to: from, type }, children));
    };
    const d = dialbackRequest({
      to,
      localDomain: (d) => this.m.serves(d),
      secure: this.conn.secure,
      requireTls: this.m.config.requireTls,
      secureAuth: this.m.config.secureAuth,
      insecurePeer: this.m.isInsecure(from),
      peerCertValidForFrom: this.conn.certValidFor(from),
    });
    if (d.action === 'refuse') {
      this.m.authFailures.inc({ method: 'dialback', reason: d.reason });
      return reply('error', [x('error', NS.CLIENT, { type: 'cancel' }, [x(d.condition, NS.STANZA_ERRORS)])]);
    }
    if (d.action === 'accept') {
      this.authOk(from, 'dialback-cert');
      return reply('valid');
    }
    const epoch = this.epoch;
    const verdict = await this.m.verifyDialback(from, this.id, key, to);
    if (this.epoch !== epoch) return;
    if (verdict === 'valid') {
      this.authOk(from, 'dialback');
      reply('valid');
    } else if (verdict === 'invalid') {
      this.m.authFailures.inc({ method: 'dialback', reason: 'invalid-key' });
      reply('invalid');
      // XEP-0220 §2.4: an invalid key ends the stream when nothing else is authenticated on it.
      if (this.authenticated.size === 0) this.fail('not-authorized', 'Dialback key is not valid');
    } else {
      this.m.authFailures.inc({ method: 'dialback', reason: 'authoritative-unreachable' });
      reply('error', [x('error', NS.CLIENT, { type: 'cancel' }, [x('remote-server-not-found', NS.STANZA_ERRORS)])]);
    }
  }

  /** XEP-0220 §2.3: we are the authoritative server: was this key made by us for that stream? */
  private dialbackVerify(el: Element): void {
    const from = el.attrs.from?.toLowerCase();
    const to = el.attrs.to?.toLowerCase();
    const id = el.attrs.id;
    if (!from || !to || !id) return this.fail('improper-addressing', 'db:verify needs from, to and id');
    if (!this.m.serves(to)) return void this.conn.send(x('verify', NS_DIALBACK, { from: to, to: from, id, type: 'invalid' }));
    // The key was made for (receiving = the asker, originating = us, the asker's stream id).
    const ok = dialbackKeyValid(this.m.secret, from, to, id, el.text());
    this.conn.send(x('verify', NS_DIALBACK, { from: to, to: from, id, type: ok ? 'valid' : 'invalid' }));
  }

  private stanza(raw: Element): void {
    const fromJid = tryParseJID(raw.attrs.from);
    const toJid = tryParseJID(raw.attrs.to);
    const c = checkIncomingStanza(this.authenticated, fromJid?.domain ?? (raw.attrs.from === undefined ? undefined : '\u0000bad'), toJid?.domain, (d) => this.m.serves(d));
    if (!c.ok) {
      this.m.rejected.inc({ reason: c.reason });
      // Say who the impostor was in the log; never route it.
      this.m.log.warn({ stream: this.id, peer: [...this.authenticated], from: raw.attrs.from, to: raw.attrs.to, reason: c.reason }, 's2s: stanza refused');
      return this.fail(c.condition, c.reason);
    }
    this.m.received.inc({ kind: raw.name });
    this.m.deliverIncoming(fromServerNs(raw));
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
    this.state = 'closed';
    this.epoch++;
    clearTimeout(this.authTimer);
    this.m.incomingClosed(this);
  }

  fail(condition: StreamErrorCondition, text?: string, metric?: string): void {
    if (this.state === 'closed') return;
    if (!this.headerSent) {
      this.id = newStreamId();
      this.conn.sendHeader({ id: this.id, from: this.localDomain, version: '1.0' });
      this.headerSent = true;
    }
    this.m.streamErrors.inc({ condition, direction: 'in', ...(metric ? { reason: metric } : {}) });
    this.m.log.info({ stream: this.id, addr: this.conn.remoteAddress, peer: this.peerDomain, condition, text }, 's2s: incoming stream error');
    this.conn.send(streamError(condition, text));
    this.close();
  }

  close(): void {
    if (this.state === 'closed') return;
    this.conn.close(this.headerSent);
    this.onClosed();
  }
}
