/**
 * One client-to-server connection of the load driver: raw `net` socket, plaintext c2s, STARTTLS
 * or direct TLS (XEP-0368) with optional TLS session resumption (tickets kept per user),
 * SASL PLAIN / SCRAM, bind, optional SM (answers `<r/>`), carbons, MR2, CSI, presence.
 *
 * Writes are coalesced: `send()` appends to the connection's pending output and one flush per
 * event-loop turn (setImmediate) writes everything queued on every connection, so a burst of
 * messages costs one syscall per socket rather than one per stanza. That keeps the driver's own
 * CPU low at high rates, which is the point of a load driver.
 */
import net from 'node:net';
import tls from 'node:tls';
import { performance } from 'node:perf_hooks';
import { ScramClient, pickMechanism, plainPayload, type Mechanism } from './sasl.js';
import { XmlFramer, child, escapeXml, findDeep, parseElement, type FrameEvent, type NsScope, type XElement } from './xml.js';

export const NS = {
  STREAM: 'http://etherx.jabber.org/streams',
  CLIENT: 'jabber:client',
  SASL: 'urn:ietf:params:xml:ns:xmpp-sasl',
  BIND: 'urn:ietf:params:xml:ns:xmpp-bind',
  SESSION: 'urn:ietf:params:xml:ns:xmpp-session',
  SM: 'urn:xmpp:sm:3',
  CARBONS: 'urn:xmpp:carbons:2',
  FORWARD: 'urn:xmpp:forward:0',
  SID: 'urn:xmpp:sid:0',
  MAM: 'urn:xmpp:mam:2',
  RSM: 'http://jabber.org/protocol/rsm',
  CSI: 'urn:xmpp:csi:0',
  REGISTER: 'jabber:iq:register',
  MR2: 'urn:xmpp:mr2:0',
  PING: 'urn:xmpp:ping',
  TLS: 'urn:ietf:params:xml:ns:xmpp-tls',
} as const;

export class XmppError extends Error {}

export interface ConnOptions {
  host: string;
  port: number;
  domain: string;
  user: string;
  password: string;
  resource?: string;
  mech?: Mechanism;
  /** Source address (e.g. 127.0.0.2): one address has only ~28k ephemeral ports to one server port. */
  localAddress?: string;
  /** 'starttls': upgrade after the first features; 'direct': TLS from the first byte (XEP-0368). */
  tls?: TlsMode;
  /** Where TLS sessions (tickets) are kept between connections; absent: no resumption. */
  tlsSessions?: TlsSessionStore;
  /** Key of this client in tlsSessions (default: the bare JID and resource). */
  tlsSessionKey?: string;
}

export type TlsMode = 'none' | 'starttls' | 'direct';

/**
 * TLS sessions the driver may resume, by client: what a phone keeps across a network blip. The
 * newest ticket a server issued for a client wins (TLS 1.3 servers send several; OpenSSL's
 * tickets may be reused, and a server that refuses one just does a full handshake).
 */
export class TlsSessionStore {
  private readonly m = new Map<string, Buffer>();
  get(key: string): Buffer | undefined {
    return this.m.get(key);
  }
  set(key: string, session: Buffer): void {
    this.m.set(key, session);
  }
  get size(): number {
    return this.m.size;
  }
}

/** Every TLS handshake this process completed, and how many of them resumed a session. */
export const tlsCounters = { handshakes: 0, resumed: 0, protocols: {} as Record<string, number> };

/** What the TLS layer of one connection did (for the results: resumed or full handshake). */
export interface TlsInfo {
  protocol: string | null;
  resumed: boolean;
  /** Milliseconds from the start of the TLS handshake to its end. */
  handshakeMs: number;
}

export interface LoginOptions {
  sm?: boolean;
  carbons?: boolean;
  /** Enable Verona's Message Routing 2.0 (urn:xmpp:mr2:0) before binding. */
  mr2?: boolean;
  presence?: boolean;
  roster?: boolean;
  csi?: 'active' | 'inactive';
}

type Waiter = { resolve: (el: XElement) => void; reject: (e: Error) => void; timer: NodeJS.Timeout };

const pendingFlush: Set<XmppConn> = new Set();
let flushScheduled = false;

function flushAll(): void {
  flushScheduled = false;
  for (const c of pendingFlush) c.flush();
  pendingFlush.clear();
}

let idCounter = 0;

export class XmppConn {
  readonly host: string;
  readonly port: number;
  readonly domain: string;
  readonly user: string;
  readonly password: string;
  readonly resource: string;
  readonly mech: Mechanism;
  readonly localAddress: string | undefined;
  readonly tlsMode: TlsMode;
  readonly bare: string;
  /** The SASL mechanism used (after auth). */
  usedMech = '';
  /** Set once TLS is up. */
  tlsInfo: TlsInfo | null = null;
  private readonly tlsSessions: TlsSessionStore | undefined;
  private readonly tlsKey: string;
  jid = '';
  /** The `id` of the server's current stream header (Verona computes archive ids from it). */
  streamId = '';
  closed = false;
  /** Set by close(): the end of the connection is ours, not a failure to report. */
  closing = false;
  smEnabled = false;
  smId: string | undefined;
  hIn = 0;
  features: XElement | null = null;
  /** Called for every stanza after login that is not an awaited IQ response. */
  onStanza: ((el: XElement) => void) | null = null;
  /** Called once when the connection fails or closes. */
  onClose: ((err: Error) => void) | null = null;

  private sock: net.Socket | tls.TLSSocket | null = null;
  private readonly framer = new XmlFramer();
  private scope: NsScope = {};
  private out: string[] = [];
  private readonly queue: Array<XElement | Error> = [];
  private waiter: Waiter | null = null;
  private readonly pending = new Map<string, { resolve: (el: XElement) => void; reject: (e: Error) => void }>();

  constructor(o: ConnOptions) {
    this.host = o.host;
    this.port = o.port;
    this.domain = o.domain;
    this.user = o.user;
    this.password = o.password;
    this.resource = o.resource ?? 'r1';
    this.mech = o.mech ?? 'PLAIN';
    this.localAddress = o.localAddress;
    this.bare = `${o.user}@${o.domain}`;
    this.tlsMode = o.tls ?? 'none';
    this.tlsSessions = o.tlsSessions;
    this.tlsKey = o.tlsSessionKey ?? `${this.bare}/${this.resource}`;
  }

  nid(prefix = 'i'): string {
    return prefix + (++idCounter).toString(36);
  }

  /** Queue raw XML for this connection; it goes out in this event-loop turn's flush. */
  send(data: string): void {
    if (this.closed) return;
    this.out.push(data);
    if (this.out.length === 1) {
      pendingFlush.add(this);
      if (!flushScheduled) {
        flushScheduled = true;
        setImmediate(flushAll);
      }
    }
  }

  flush(): void {
    if (this.out.length === 0 || this.sock === null || this.closed) {
      this.out = [];
      return;
    }
    const data = this.out.length === 1 ? (this.out[0] as string) : this.out.join('');
    this.out = [];
    this.sock.write(data);
  }

  /** Bytes handed to the socket but not yet written to the kernel (back-pressure signal). */
  get writableLength(): number {
    return this.sock?.writableLength ?? 0;
  }

  private openStream(): void {
    this.framer.restart();
    this.send(
      `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${escapeXml(this.domain)}' version='1.0'>`,
    );
  }

  private onFrame = (ev: FrameEvent): void => {
    if (ev.kind === 'stanza') {
      this.dispatch(parseElement(ev.raw, this.scope));
    } else if (ev.kind === 'open') {
      this.scope = ev.scope;
      this.streamId = ev.attrs['id'] ?? '';
    } else {
      this.fail(new XmppError('stream closed by server'));
    }
  };

  private dispatch(el: XElement): void {
    if (el.ns === NS.SM) {
      if (el.local === 'r') this.send(`<a xmlns='urn:xmpp:sm:3' h='${this.hIn >>> 0}'/>`);
      else if (el.local !== 'a') this.enqueue(el);
      return;
    }
    if (el.ns === NS.CLIENT && (el.local === 'message' || el.local === 'presence' || el.local === 'iq')) {
      if (this.smEnabled) this.hIn++;
      if (el.local === 'iq') {
        const id = el.attrs['id'];
        const p = id !== undefined ? this.pending.get(id) : undefined;
        if (p !== undefined && (el.attrs['type'] === 'result' || el.attrs['type'] === 'error')) {
          this.pending.delete(id as string);
          if (el.attrs['type'] === 'error') p.reject(new XmppError('iq error: ' + describe(el)));
          else p.resolve(el);
          return;
        }
        if (el.attrs['type'] === 'get' || el.attrs['type'] === 'set') {
          // Answer server pings (and refuse anything else) so that no server waits on us.
          const to = el.attrs['from'] ? ` to='${escapeXml(el.attrs['from'])}'` : '';
          const iid = escapeXml(id ?? '');
          if (child(el, 'ping', NS.PING)) this.send(`<iq type='result' id='${iid}'${to}/>`);
          else
            this.send(
              `<iq type='error' id='${iid}'${to}><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`,
            );
          return;
        }
      }
      if (this.onStanza !== null) {
        this.onStanza(el);
        return;
      }
    }
    this.enqueue(el);
  }

  private enqueue(el: XElement | Error): void {
    const w = this.waiter;
    if (w !== null) {
      this.waiter = null;
      clearTimeout(w.timer);
      if (el instanceof Error) w.reject(el);
      else w.resolve(el);
    } else {
      this.queue.push(el);
    }
  }

  private fail(e: Error): void {
    if (this.closed) return;
    this.closed = true;
    for (const p of this.pending.values()) p.reject(new XmppError(e.message));
    this.pending.clear();
    this.enqueue(e);
    this.sock?.destroy();
    if (!this.closing) this.onClose?.(e);
  }

  /** Next queued top-level element (pre-login negotiation). */
  next(timeoutMs = 30000): Promise<XElement> {
    const q = this.queue.shift();
    if (q !== undefined) return q instanceof Error ? Promise.reject(q) : Promise.resolve(q);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        reject(new XmppError('timeout waiting for server'));
      }, timeoutMs);
      this.waiter = { resolve, reject, timer };
    });
  }

  iq(body: string, type: 'get' | 'set' = 'set', to?: string, timeoutMs = 60000): Promise<XElement> {
    const id = this.nid('q');
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new XmppError('iq timeout'));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (el) => {
          clearTimeout(timer);
          resolve(el);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.send(`<iq type='${type}' id='${id}'${to ? ` to='${escapeXml(to)}'` : ''}>${body}</iq>`);
    });
  }

  private async streamFeatures(): Promise<XElement> {
    for (;;) {
      const el = await this.next();
      if (el.ns === NS.STREAM && el.local === 'features') {
        this.features = el;
        return el;
      }
      if (el.ns === NS.STREAM && el.local === 'error') throw new XmppError('stream error ' + describe(el));
    }
  }

  /** Connect (and with STARTTLS or direct TLS, secure the connection) and read the stream features. */
  async open(): Promise<XElement> {
    const feats = await this.connect();
    if (this.tlsMode !== 'starttls') return feats;
    if (!child(feats, 'starttls', NS.TLS)) throw new XmppError('server does not offer STARTTLS');
    this.send(`<starttls xmlns='${NS.TLS}'/>`);
    const el = await this.next();
    if (el.local !== 'proceed' || el.ns !== NS.TLS) throw new XmppError('STARTTLS refused: ' + describe(el));
    await this.upgrade(this.sock as net.Socket);
    this.openStream();
    return this.streamFeatures();
  }

  private tlsOptions(): tls.ConnectionOptions {
    const session = this.tlsSessions?.get(this.tlsKey);
    return {
      // The benchmark certificates are self-signed for the bench domain: the driver measures,
      // it does not authenticate the server.
      rejectUnauthorized: false,
      servername: this.domain,
      ALPNProtocols: ['xmpp-client'],
      ...(session !== undefined ? { session } : {}),
    };
  }

  /** Keep the server's tickets for the next connection of this client. */
  private watchTls(sec: tls.TLSSocket, t0: number): void {
    const store = this.tlsSessions;
    if (store !== undefined) sec.on('session', (s: Buffer) => store.set(this.tlsKey, s));
    sec.once('secureConnect', () => {
      this.tlsInfo = { protocol: sec.getProtocol(), resumed: sec.isSessionReused(), handshakeMs: now() - t0 };
      tlsCounters.handshakes++;
      if (this.tlsInfo.resumed) tlsCounters.resumed++;
      const p = this.tlsInfo.protocol ?? '?';
      tlsCounters.protocols[p] = (tlsCounters.protocols[p] ?? 0) + 1;
    });
  }

  /** STARTTLS: wrap the plain socket once <proceed/> arrived. */
  private upgrade(plain: net.Socket): Promise<void> {
    plain.removeListener('data', this.onData);
    return new Promise((resolve, reject) => {
      const t0 = now();
      const sec = tls.connect({ ...this.tlsOptions(), socket: plain });
      this.sock = sec;
      this.watchTls(sec, t0);
      sec.once('secureConnect', () => resolve());
      sec.on('data', this.onData);
      sec.on('error', (e) => {
        reject(e);
        this.fail(e);
      });
      sec.on('close', () => {
        if (!this.closed) this.fail(new XmppError('connection closed'));
      });
    });
  }

  private readonly onData = (chunk: Buffer): void => {
    try {
      this.framer.push(chunk, this.onFrame);
    } catch (e) {
      this.fail(e as Error);
    }
  };

  private connect(): Promise<XElement> {
    return new Promise((resolve, reject) => {
      const base = {
        host: this.host,
        port: this.port,
        noDelay: true,
        ...(this.localAddress !== undefined ? { localAddress: this.localAddress } : {}),
      };
      const direct = this.tlsMode === 'direct';
      const t0 = now();
      const sock = direct ? tls.connect({ ...base, ...this.tlsOptions() }) : net.connect(base);
      if (direct) this.watchTls(sock as tls.TLSSocket, t0);
      this.sock = sock;
      let connected = false;
      sock.on(direct ? 'secureConnect' : 'connect', () => {
        connected = true;
        this.openStream();
        this.streamFeatures().then(resolve, reject);
      });
      sock.on('data', this.onData);
      sock.on('error', (e) => {
        if (!connected) reject(e);
        this.fail(e);
      });
      sock.on('close', () => {
        // An Error (with its stack) per closed connection showed in the churn profile.
        if (!this.closed) this.fail(new XmppError('connection closed'));
      });
    });
  }

  async auth(): Promise<XElement> {
    const feats = this.features;
    const mechs = feats ? (child(feats, 'mechanisms', NS.SASL)?.children.map((m) => m.text.trim()) ?? []) : [];
    const mech = pickMechanism(this.mech, mechs);
    if (mech === null) throw new XmppError(`mechanism ${this.mech} not offered (${mechs.join(',')})`);
    this.usedMech = mech;
    let el: XElement;
    let scram: ScramClient | null = null;
    if (mech === 'PLAIN') {
      this.send(`<auth xmlns='${NS.SASL}' mechanism='PLAIN'>${plainPayload(this.user, this.password)}</auth>`);
      el = await this.next();
    } else {
      scram = new ScramClient(mech, this.user, this.password);
      this.send(`<auth xmlns='${NS.SASL}' mechanism='${mech}'>${scram.first()}</auth>`);
      el = await this.next();
      if (el.local !== 'challenge') throw new XmppError('SCRAM: expected challenge, got ' + describe(el));
      const fin = await scram.final(el.text.trim());
      this.send(`<response xmlns='${NS.SASL}'>${fin}</response>`);
      el = await this.next();
    }
    if (el.local !== 'success' || el.ns !== NS.SASL) throw new XmppError('auth failed: ' + describe(el));
    if (scram !== null && !scram.verify(el.text.trim())) throw new XmppError('SCRAM: bad server signature');
    this.openStream();
    return this.streamFeatures();
  }

  async login(o: LoginOptions = {}): Promise<void> {
    await this.open();
    const feats = await this.auth();
    if (o.mr2) {
      if (!child(feats, 'mr2', NS.MR2)) throw new XmppError('server does not offer urn:xmpp:mr2:0');
      this.send(`<enable xmlns='${NS.MR2}'/>`);
      const el = await this.next();
      if (el.local !== 'enabled' || el.ns !== NS.MR2) throw new XmppError('mr2 enable failed: ' + describe(el));
    }
    const r = await this.iq(`<bind xmlns='${NS.BIND}'><resource>${escapeXml(this.resource)}</resource></bind>`);
    const j = findDeep(r, 'jid', NS.BIND);
    this.jid = j ? j.text.trim() : `${this.bare}/${this.resource}`;
    const sess = child(feats, 'session', NS.SESSION);
    if (sess && !child(sess, 'optional')) await this.iq(`<session xmlns='${NS.SESSION}'/>`);
    if (o.sm) {
      if (!child(feats, 'sm', NS.SM)) throw new XmppError('server does not offer urn:xmpp:sm:3');
      this.send(`<enable xmlns='${NS.SM}' resume='true'/>`);
      const el = await this.next();
      if (el.local !== 'enabled') throw new XmppError('sm enable failed: ' + describe(el));
      this.smEnabled = true;
      this.smId = el.attrs['id'];
    }
    if (o.carbons) await this.iq(`<enable xmlns='${NS.CARBONS}'/>`);
    if (o.roster) await this.iq(`<query xmlns='jabber:iq:roster'/>`, 'get');
    if (o.presence !== false) this.send('<presence/>');
    if (o.csi) this.send(`<${o.csi} xmlns='${NS.CSI}'/>`);
    // One round trip, so everything above has been processed when login() returns.
    await this.iq(`<ping xmlns='${NS.PING}'/>`, 'get', this.domain);
  }

  /** Close the stream politely and wait (bounded) for the socket to go away. */
  close(timeoutMs = 5000): Promise<void> {
    const sock = this.sock;
    if (sock === null || this.closed) {
      sock?.destroy();
      return Promise.resolve();
    }
    this.closing = true;
    this.send('</stream:stream>');
    this.flush();
    pendingFlush.delete(this);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        sock.destroy();
        resolve();
      }, timeoutMs);
      sock.once('close', () => {
        clearTimeout(t);
        resolve();
      });
      sock.end();
    });
  }

  /** Drop the TCP connection without closing the stream (what a crashed client does). */
  destroy(): void {
    this.closing = true;
    this.closed = true;
    this.sock?.destroy();
  }
}

export function describe(el: XElement): string {
  const parts = [el.name];
  for (const [k, v] of Object.entries(el.attrs)) parts.push(`${k}=${v}`);
  const kids = el.children.map((c) => describe(c)).join(' ');
  const txt = el.text.trim();
  return `<${parts.join(' ')}>${kids}${txt ? ' ' + txt.slice(0, 200) : ''}`.slice(0, 600);
}

export const now = (): number => performance.now();
