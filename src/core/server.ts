/**
 * The running server: wires config, storage, hooks, router, modules and
 * listeners together, and owns the lifecycle (start, sweep, shutdown).
 */
import net from 'node:net';
import tls from 'node:tls';
import { randomBytes } from 'node:crypto';
import type { Config } from '../config/types.js';
import type { Storage } from '../storage/types.js';
import { openStorage } from '../storage/index.js';
import { ensureCertificate } from '../config/cert.js';
import { Metrics } from '../metrics/metrics.js';
import { AuthThrottle } from '../sasl/throttle.js';
import type { CredentialLookup } from '../sasl/contract.js';
import { C2SStream } from '../c2s/stream.js';
import { TcpTransport, tlsOptions } from '../net/tcp.js';
import { LoginGate } from '../net/admission.js';
import { startWebListeners } from '../net/web/http.js';
import { Hooks } from './hooks.js';
import type { HookEvents } from './events.js';
import { createLogger, type Logger } from './logger.js';
import { LocalSessionRegistry, type SessionRegistry } from './registry.js';
import { Router } from './router.js';
import { HostedDomains } from './vhosts.js';
import { VhostCertificates } from '../net/vhost-tls.js';
import type { Session } from './session.js';
import type { ServerContext } from './context.js';
import type { DiscoRegistry, ModuleApi, VeronaModule } from './module.js';
import { allModules } from '../modules/index.js';
import { startS2S } from '../s2s/index.js';
import { x } from '../xml/element.js';
import { NS } from './namespaces.js';
import { AdminActions } from '../admin/actions.js';
import { startAdminSocket } from '../admin/socket.js';
import { resolve as resolvePath } from 'node:path';
import { ConnectionLimiter } from '../limits/limits.js';
import { ClusterRegistry, startCluster } from '../cluster/index.js';

export interface ListenerHandle {
  name: string;
  port: number;
  close(): Promise<void>;
}

export class Server implements ServerContext {
  readonly config: Config;
  readonly domain: string;
  /** Every hosted domain (virtual hosts): `domain` plus `domains:` (src/core/vhosts.ts). */
  readonly hosts: HostedDomains;
  /** Each hosted domain's certificate, chosen by SNI on every TLS listener (src/net/vhost-tls.ts). */
  readonly vhostCerts: VhostCertificates;
  readonly log: Logger;
  readonly hooks: Hooks<HookEvents>;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly storage: Storage;
  readonly metrics = new Metrics();
  readonly throttle: AuthThrottle;
  readonly credentials: CredentialLookup;
  readonly secret = randomBytes(32);
  readonly streams = new Set<C2SStream>();
  readonly disco: DiscoRegistry = {
    features: { server: new Set(), account: new Set() },
    identities: { server: [], account: [] },
    extensions: { server: [], account: [] },
  };
  readonly services = new Map<string, unknown>();
  readonly listeners: ListenerHandle[] = [];
  private readonly closers: Array<() => void | Promise<void>> = [];
  secureContext: tls.SecureContext | undefined;
  tlsCredentials: { cert: string; key: string } | undefined;
  /** Open c2s connections per client address (limits.c2sConnectionsPerAddress). */
  readonly c2sConnections: ConnectionLimiter;
  private readonly readThrottled = this.metrics.counter('verona_read_throttled_total', 'Times a c2s stream was paused for reading faster than limits.readRate');
  /** Operators' actions (admin socket, XEP-0133); set by startServer. */
  admin: AdminActions | undefined;
  /** Listeners that terminate TLS themselves (direct TLS, HTTPS), for certificate reloads (src/config/reload.ts). */
  readonly tlsServers: tls.Server[] = [];
  private sweeper: NodeJS.Timeout | undefined;
  /** Bounds the logins in progress (c2s.maxPendingLogins: login storms must not starve delivery). */
  private readonly loginGate: LoginGate;
  private stopping = false;

  constructor(config: Config, storage: Storage, log?: Logger) {
    this.config = config;
    this.domain = config.domain;
    this.log = log ?? createLogger(config.log.level);
    this.storage = storage;
    this.loginGate = new LoginGate(config.c2s.maxPendingLogins);
    // A cluster member mirrors every node's sessions (src/cluster); otherwise this process's only.
    this.sessions = config.cluster.redis !== '' ? new ClusterRegistry(this.domain) : new LocalSessionRegistry();
    this.hooks = new Hooks<HookEvents>((name, owner, err) => this.log.error({ err, hook: name, module: owner }, 'hook handler failed'));
    this.router = new Router(this.domain, this.hooks, this.sessions, this.log, this.metrics);
    this.hosts = new HostedDomains(config.domain, Object.keys(config.domains ?? {}));
    this.router.hosts = this.hosts;
    this.vhostCerts = new VhostCertificates(this.hosts);
    this.router.userExists = (u) => this.storage.accounts.exists(u);
    const a = config.auth;
    this.throttle = new AuthThrottle({ perAddress: a.failuresPerAddress, perAccount: a.failuresPerAccount, windowMs: a.failureWindow * 1000 });
    this.credentials = { getAccount: (u) => this.storage.accounts.get(u) };
    this.c2sConnections = new ConnectionLimiter(config.limits.c2sConnectionsPerAddress, new Set(config.limits.exemptAddresses));
    this.services.set('disco-registry', this.disco);
    this.services.set('server', this);
    this.metrics.gauge('verona_sessions', 'Bound sessions', () => this.sessions.count());
    this.metrics.gauge('verona_streams', 'Open c2s streams', () => this.streams.size);
    const durable = storage.durableCommits?.bind(storage);
    if (durable) this.metrics.gauge('verona_storage_durable_commits', '1 when a commit (and so an SM ack) survives power loss', () => (durable() ? 1 : 0));
  }

  // ---- session lifecycle -------------------------------------------------

  detachSession(session: Session, reason: string): void {
    if (session.closed) return;
    // Stream management may keep the session for resumption.
    if (!this.stopping && this.hooks.fire('session/detached', { session, reason })) return;
    this.endSession(session, reason);
  }

  endSession(session: Session, reason: string): void {
    if (session.closed) return;
    if (session.remoteNode !== undefined) {
      // A cluster proxy: only forgotten here. Its own node ends it (callers then closeWith(), which
      // tells that node) and fires the hooks there, so that contacts hear of it once.
      session.closed = true;
      this.sessions.remove(session);
      return;
    }
    session.closed = true;
    this.sessions.remove(session);
    this.hooks.fire('session/ended', { session, reason });
    this.log.info({ jid: session.jid.toString(), reason }, 'session ended');
  }

  /** Why logins to this account are refused (disabled by an operator), or undefined. */
  accountDisabled(username: string): string | undefined {
    return this.admin?.disabledReason(username);
  }

  /** Run `fn` at shutdown (after the streams ended). */
  onClose(fn: () => void | Promise<void>): void {
    this.closers.push(fn);
  }

  // ---- modules -------------------------------------------------------------

  async loadModules(mods: readonly VeronaModule[]): Promise<void> {
    const disabled = new Set(this.config.modules.disabled);
    for (const m of mods) {
      if (disabled.has(m.name)) continue;
      await m.load(this.moduleApi(m.name));
      this.log.debug({ module: m.name }, 'module loaded');
    }
  }

  private moduleApi(name: string): ModuleApi {
    return {
      name,
      domain: this.domain,
      config: this.config,
      options: this.config.moduleOptions[name] ?? {},
      log: this.log.child({ module: name }),
      storage: this.storage,
      router: this.router,
      sessions: this.sessions,
      metrics: this.metrics,
      hook: (hook, handler, priority = 0) => void this.hooks.on(hook, handler, priority, name),
      iq: (target, type, ns, handler) => this.router.registerIq(target, type, ns, handler),
      discoFeature: (ns, target = 'server') => void this.disco.features[target].add(ns),
      discoIdentity: (id, target = 'server') => void this.disco.identities[target].push(id),
      discoExtension: (el, target = 'server') => void this.disco.extensions[target].push(el),
      service: <T>(n: string) => this.services.get(n) as T | undefined,
      provide: (n, s) => void this.services.set(n, s),
      onClose: (fn) => void this.closers.push(fn),
    };
  }

  // ---- listeners -----------------------------------------------------------

  /** Accept a TCP connection (plain with STARTTLS, or already TLS) that passed admitTcp. */
  private acceptTcp(socket: net.Socket, secure: boolean, onLoginDone?: () => void): void {
    const c = this.config.c2s;
    const l = this.config.limits;
    const t = new TcpTransport(socket, {
      secure,
      secureContext: this.secureContext,
      ...(this.hosts.size > 1 ? { sniCallback: this.vhostCerts.sniCallback } : {}),
      limits: { maxStanzaSize: c.maxStanzaSizePreAuth, maxDepth: c.maxDepth, maxAttributes: c.maxAttributes },
      log: this.log,
      readRate: l.readRate > 0 ? { rate: l.readRate, burst: Math.max(l.readBurst, c.maxStanzaSize), onThrottle: () => this.readThrottled.inc() } : undefined,
      ...(onLoginDone ? { onLoginDone } : {}),
    });
    const stream = new C2SStream(t, this);
    t.attach(stream);
  }

  /**
   * A connection accepted paused (pauseOnConnect) waits for a login admission slot
   * (src/net/admission.ts) before anything of it is read; direct TLS starts its handshake then.
   */
  private admitTcp(socket: net.Socket, direct: boolean): void {
    // Before a byte is read (or, on direct TLS, before the login): cut off an address with too
    // many connections. Checked at accept, not at admission, so that a refused connection never
    // holds a login slot (refusing after admission leaked the slot: 32 refusals, and no login was
    // admitted again) and so that the connections waiting in the queue count for their address.
    const addr = (socket.remoteAddress ?? 'unknown').replace(/^::ffff:/, '');
    if (!this.c2sConnections.acquire(addr)) {
      this.metrics.counter('verona_connections_refused_total', 'Connections refused by a limit, by listener and reason').inc({ listener: 'c2s', reason: 'per-address' });
      this.log.info({ addr }, 'c2s connection refused: too many from this address');
      socket.destroy();
      return;
    }
    socket.once('close', () => this.c2sConnections.release(addr));
    const onWaitError = (): void => undefined;
    socket.on('error', onWaitError);
    // enter() may run the callback before it returns: the slot is released through this indirection.
    let released = false;
    let release = (): void => void (released = true);
    const done = (): void => release();
    release = this.loginGate.enter(() => {
      socket.removeListener('error', onWaitError);
      if (socket.destroyed) return done();
      if (direct) {
        // Direct TLS (XEP-0368): the handshake is done by the tls.Server; the login waits here.
        this.acceptTcp(socket, true, done);
      } else {
        this.acceptTcp(socket, false, done);
      }
      socket.resume();
    });
    if (released) release();
  }

  private listen(name: string, server: net.Server, port: number): Promise<ListenerHandle> {
    return new Promise((resolve, reject) => {
      server.once('error', reject);
      server.listen({ host: this.config.c2s.host, port, backlog: 1024 }, () => {
        server.removeListener('error', reject);
        server.on('error', (err) => this.log.error({ err, listener: name }, 'listener error'));
        const addr = server.address() as net.AddressInfo;
        this.log.info({ listener: name, host: this.config.c2s.host, port: addr.port }, 'listening');
        resolve({ name, port: addr.port, close: () => new Promise((r) => server.close(() => r())) });
      });
    });
  }

  async startListeners(): Promise<void> {
    const c = this.config.c2s;
    if (c.port >= 0) {
      const srv = net.createServer({ noDelay: true, pauseOnConnect: true }, (s) => this.admitTcp(s, false));
      this.listeners.push(await this.listen('c2s', srv, c.port));
    }
    if (c.tlsPort >= 0 && this.tlsCredentials) {
      // XEP-0368: ALPN 'xmpp-client'; clients that send no ALPN are accepted too. Wrapping admitted
      // plain sockets in TLS ourselves (so that handshakes too wait for a login slot) lost a
      // client's first bytes now and then (foundation test, 1 run in 3): the handshake is the
      // tls.Server's, and the admission gate applies from the established TLS connection on.
      const sni = this.hosts.size > 1 ? { SNICallback: this.vhostCerts.sniCallback } : {};
      const srv = tls.createServer({ ...tlsOptions(this.tlsCredentials.cert, this.tlsCredentials.key), ALPNProtocols: ['xmpp-client'], ...sni }, (s) => {
        s.pause();
        this.admitTcp(s, true);
      });
      srv.on('tlsClientError', (err) => this.log.debug({ err: err.message }, 'TLS client error'));
      this.listeners.push(await this.listen('c2s-tls', srv, c.tlsPort));
      this.tlsServers.push(srv);
    }
  }

  /** Register an extra listener (HTTP, WebSocket) so shutdown closes it. */
  addListener(h: ListenerHandle): void {
    this.listeners.push(h);
  }

  get ports(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.listeners) out[l.name] = l.port;
    return out;
  }

  /** One timer for every stream: keepalives, server pings, dead-connection detection. */
  startSweeper(): void {
    const c = this.config.c2s;
    const every = Math.max(1, Math.min(c.keepaliveInterval || 60, c.pingInterval || 60, 15)) * 1000;
    this.sweeper = setInterval(() => this.sweep(), Math.min(every, 5000));
    this.sweeper.unref();
  }

  private sweep(): void {
    const now = Date.now();
    const c = this.config.c2s;
    for (const s of this.streams) {
      if (!s.session) continue;
      if (c.pingInterval > 0) {
        if (s.pingSentAt > 0 && now - s.pingSentAt > c.pingTimeout * 1000) {
          s.fail('connection-timeout', 'No answer to ping');
          continue;
        }
        if (s.pingSentAt === 0 && now - s.lastActivity > c.pingInterval * 1000) {
          s.pingSentAt = now;
          s.write(x('iq', NS.CLIENT, { type: 'get', id: `ping-${now}`, from: this.domain, to: s.session.jid.toString() }, [x('ping', NS.PING)]));
          continue;
        }
      }
      if (c.keepaliveInterval > 0 && now - s.lastWrite > c.keepaliveInterval * 1000) {
        s.lastWrite = now;
        s.transport.sendKeepalive();
      }
    }
  }

  /** SIGTERM/SIGINT: every stream gets <system-shutdown/>, storage is flushed, then we exit. */
  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.sweeper) clearInterval(this.sweeper);
    // Stop accepting first; the listeners' close completes once their connections are gone.
    const closing = Promise.all(this.listeners.map((l) => l.close().catch(() => undefined)));
    for (const s of [...this.streams]) {
      // Stream management may keep a resumable session across the restart (written to storage).
      if (s.session && !this.hooks.fire('session/detached', { session: s.session, reason: 'shutdown' })) this.endSession(s.session, 'shutdown');
      s.fail('system-shutdown', 'The server is shutting down');
    }
    await Promise.race([closing, new Promise((r) => setTimeout(r, 3000).unref())]);
    for (const fn of this.closers.reverse()) {
      try {
        await fn();
      } catch (err) {
        this.log.error({ err }, 'module close failed');
      }
    }
    await this.storage.close();
    this.log.info('stopped');
    this.log.flush?.();
  }
}

export async function startServer(config: Config, log?: Logger): Promise<Server> {
  // A broken idle PostgreSQL connection is replaced on the next query; say so in the log.
  const started: { server?: Server } = {};
  const storage = await openStorage(config, { onPoolError: (err) => started.server?.log.warn({ err }, 'database connection lost') });
  const server = (started.server = new Server(config, storage, log));
  const walResets = server.metrics.counter('verona_wal_resets_total', 'WAL resets by the checkpoint worker (archive commits held meanwhile)');
  const walHoldMs = server.metrics.counter('verona_wal_reset_hold_ms_total', 'Milliseconds archive commits were held for WAL resets');
  storage.startMaintenance?.({
    onWalReset: (r) => {
      walResets.inc({ ok: String(r.ok) });
      walHoldMs.inc(undefined, r.ms);
      server.log.info(r, 'WAL reset');
    },
  });
  const cert = await ensureCertificate(config);
  if (cert.generated) server.log.info({ cert: cert.path.cert }, 'generated a self-signed certificate');
  for (const w of cert.warnings ?? []) server.log.warn({ cert: cert.path.cert }, w);
  server.tlsCredentials = { cert: cert.cert, key: cert.key };
  server.secureContext = tls.createSecureContext(tlsOptions(cert.cert, cert.key));
  if (server.hosts.size > 1) {
    for (const [d, f] of await server.vhostCerts.load(config)) {
      if (d === config.domain) continue;
      if (f.generated) server.log.info({ domain: d, cert: f.path.cert }, 'generated a self-signed certificate');
      for (const w of f.warnings) server.log.warn({ domain: d, cert: f.path.cert }, w);
    }
  }
  server.admin = new AdminActions(server);
  await server.admin.load();
  server.services.set('admin', server.admin);
  await server.loadModules(allModules);
  if (server.sessions instanceof ClusterRegistry) await startCluster(server, server.sessions);
  server.hooks.fire('server/ready', {});
  await server.startListeners();
  await startS2S(server);
  await startWebListeners(server);
  if (config.admin.socket !== '') {
    const sock = await startAdminSocket(resolvePath(config.dataDir, config.admin.socket), server.admin, server.log);
    server.onClose(() => sock.close());
  }
  server.startSweeper();
  return server;
}
