/**
 * The HTTP listener for web clients (plain HTTP and HTTPS with the c2s
 * certificate). One request router serves everything on it:
 *
 *   /xmpp-websocket           XMPP over WebSocket (RFC 7395)       websocket.ts
 *   /http-bind                BOSH (XEP-0124/0206)                 bosh.ts
 *   /.well-known/host-meta    connection discovery (XEP-0156)      site.ts
 *   /, /converse/...          the converse.js chat page            site.ts
 *   /metrics                  Prometheus text, loopback by default
 *
 * Safety lives here, in front of the transports: browser origins are checked
 * before a WebSocket upgrade or a BOSH request is accepted, sockets and XMPP
 * sessions are counted per client address, and request sizes and header
 * timeouts are bounded. The client address is the socket peer unless that
 * peer is a configured trusted proxy, whose X-Forwarded-* headers are then used.
 */
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import type net from 'node:net';
import type { Duplex } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import type { Server, ListenerHandle } from '../../core/server.js';
import { ensureCertificate } from '../../config/cert.js';
import { tlsOptions } from '../tcp.js';
import { addressList, inList } from './options.js';
import { addressKey } from '../../limits/limits.js';
import { WebSocketGateway, WEBSOCKET_PATH } from './websocket.js';
import { BoshManager, BOSH_PATH, bindingError, type BoshReply } from './bosh.js';
import { WebSite } from './site.js';
import { HTTP_ROUTES_SERVICE, type HttpRoute } from './routes.js';

/** Who is on the other end of a request, as far as policy is concerned. */
export interface ClientInfo {
  /** Client address (a trusted proxy's X-Forwarded-For is followed). */
  address: string;
  /** The path to the client is protected: TLS here, https at a trusted proxy, or a direct loopback peer. */
  secure: boolean;
  /** The client reached us with https (decides ws:// vs wss:// in generated URLs). */
  https: boolean;
  /** Host the client used (Host, or X-Forwarded-Host from a trusted proxy), when it looks like a host. */
  host: string | undefined;
  /** The request carried proxy headers from a peer that is not a trusted proxy (so loopback means nothing). */
  untrustedForwarding: boolean;
  /**
   * The Host names this server (an IP literal, localhost, the domain or a
   * subdomain, publicUrl's host, an allowed origin's host). A browser page
   * whose DNS name was rebound to our address sends its own name here, so
   * same-host origin checks and /metrics depend on it.
   */
  knownHost: boolean;
}

const HOST_HEADER = /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$/;

export function normalizeAddress(a: string | undefined): string {
  if (!a) return 'unknown';
  return a.startsWith('::ffff:') ? a.slice(7) : a;
}

function isLoopback(a: string): boolean {
  return a === '::1' || a.startsWith('127.');
}

function header(req: http.IncomingMessage, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v.join(',') : v;
}

export class WebFront {
  readonly ws: WebSocketGateway | undefined;
  readonly bosh: BoshManager | undefined;
  readonly site: WebSite;
  private readonly proxies: net.BlockList;
  private readonly metricsFrom: net.BlockList;
  private readonly origins: Set<string>;
  private readonly hostNames = new Set<string>();
  private readonly sessionsPer = new Map<string, number>();
  private readonly socketsPer = new Map<string, number>();
  private readonly httpServers: http.Server[] = [];

  constructor(readonly server: Server) {
    const w = server.config.web;
    this.proxies = addressList(w.trustedProxies);
    this.metricsFrom = addressList(w.metrics.allowFrom);
    this.origins = new Set(w.allowedOrigins);
    for (const o of [w.publicUrl, ...w.allowedOrigins]) {
      if (o === '' || o === '*' || o === 'null') continue;
      this.hostNames.add(new URL(o).hostname.replace(/^\[|\]$/g, ''));
    }
    this.ws = w.websocket.enabled ? new WebSocketGateway(this) : undefined;
    this.bosh = w.bosh.enabled ? new BoshManager(this) : undefined;
    this.site = new WebSite(this);
    if (this.ws) {
      const ws = this.ws;
      server.metrics.gauge('verona_websocket_connections', 'Open WebSocket connections', () => ws.size);
    }
  }

  // ---- policy ------------------------------------------------------------------

  clientInfo(req: http.IncomingMessage): ClientInfo {
    const peer = normalizeAddress(req.socket.remoteAddress);
    const tls = (req.socket as TLSSocket).encrypted === true;
    const fwdFor = header(req, 'x-forwarded-for');
    const fwdProto = header(req, 'x-forwarded-proto');
    const fwdHost = header(req, 'x-forwarded-host');
    const forwarding = fwdFor !== undefined || fwdProto !== undefined || fwdHost !== undefined || req.headers.forwarded !== undefined;
    const hostOk = (h: string | undefined): string | undefined => (h !== undefined && HOST_HEADER.test(h) ? h.toLowerCase() : undefined);
    if (forwarding && inList(this.proxies, peer)) {
      // Walk X-Forwarded-For from the right, skipping our own proxies: the first other hop is the client.
      const hops = (fwdFor ?? '').split(',').map((s) => normalizeAddress(s.trim())).filter((s) => s !== '');
      let address = peer;
      for (let i = hops.length - 1; i >= 0; i--) {
        address = hops[i] as string;
        if (!inList(this.proxies, address)) break;
      }
      const proto = (fwdProto ?? '').split(',')[0]?.trim().toLowerCase();
      const viaHttps = proto === undefined || proto === '' ? tls : proto === 'https' || proto === 'wss';
      const host = hostOk(fwdHost?.split(',')[0]?.trim()) ?? hostOk(req.headers.host);
      return { address, secure: viaHttps, https: viaHttps, host, untrustedForwarding: false, knownHost: this.knownHost(host) };
    }
    const host = hostOk(req.headers.host);
    return {
      address: peer,
      secure: tls || (isLoopback(peer) && !forwarding),
      https: tls,
      host,
      untrustedForwarding: forwarding,
      knownHost: this.knownHost(host),
    };
  }

  /** See ClientInfo.knownHost. `host` is a validated Host header value (lower case, maybe with a port). */
  private knownHost(host: string | undefined): boolean {
    if (host === undefined) return false;
    const name = host.startsWith('[') ? host.slice(1, host.indexOf(']')) : host.replace(/:\d+$/, '');
    if (isIP(name) !== 0 || name === 'localhost' || name.endsWith('.localhost')) return true;
    // Every hosted domain (virtual hosts) and its subdomains.
    for (const domain of this.server.hosts.list()) if (name === domain || name.endsWith(`.${domain}`)) return true;
    return this.hostNames.has(name);
  }

  /**
   * Browsers always send Origin on WebSocket upgrades and cross-site POSTs.
   * Allowed: no Origin (not a browser), the page's own origin, publicUrl,
   * and web.allowedOrigins ('*' = any).
   */
  originAllowed(req: http.IncomingMessage, info: ClientInfo): boolean {
    const origin = header(req, 'origin');
    if (origin === undefined) return true;
    if (this.origins.has('*') || this.origins.has(origin.toLowerCase())) return true;
    if (origin === 'null') return false;
    let o: URL;
    try {
      o = new URL(origin);
    } catch {
      return false;
    }
    // The page's own host (either scheme: the same server's http and https listeners),
    // when that host is one of our names (not a DNS name rebound to our address).
    if (info.host !== undefined && info.knownHost && o.host === info.host) return true;
    const pub = this.server.config.web.publicUrl;
    return pub !== '' && new URL(pub).origin === o.origin;
  }

  /** Headers that let an allowed cross-origin page read the response. */
  cors(req: http.IncomingMessage): Record<string, string> {
    const origin = header(req, 'origin');
    if (origin === undefined) return {};
    return { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
  }

  private limit(): number {
    return this.server.config.web.maxConnectionsPerAddress;
  }

  /** Count an XMPP session (WebSocket or BOSH) against its address; false when over the limit. */
  acquireSession(address: string): boolean {
    // Counted like c2s (src/limits/limits.ts): IPv6 per /64, which one host usually owns.
    address = addressKey(address);
    const n = this.sessionsPer.get(address) ?? 0;
    const max = this.limit();
    if (max > 0 && n >= max) {
      this.server.log.info({ addr: address }, 'web session refused: too many from this address');
      this.server.metrics.counter('verona_web_refused_total', 'Web connections refused, by reason').inc({ reason: 'per-address' });
      return false;
    }
    this.sessionsPer.set(address, n + 1);
    return true;
  }

  releaseSession(address: string): void {
    address = addressKey(address);
    const n = (this.sessionsPer.get(address) ?? 1) - 1;
    if (n <= 0) this.sessionsPer.delete(address);
    else this.sessionsPer.set(address, n);
  }

  /** Raw sockets per peer, checked before any byte is read. Trusted proxies are exempt (they carry many clients). */
  private onConnection(socket: net.Socket): void {
    const addr = normalizeAddress(socket.remoteAddress);
    if (inList(this.proxies, addr)) return;
    const peer = addressKey(addr);
    const n = this.socketsPer.get(peer) ?? 0;
    const max = this.limit();
    if (max > 0 && n >= max) {
      this.server.metrics.counter('verona_web_refused_total', 'Web connections refused, by reason').inc({ reason: 'per-address' });
      socket.destroy();
      return;
    }
    this.socketsPer.set(peer, n + 1);
    socket.once('close', () => {
      const left = (this.socketsPer.get(peer) ?? 1) - 1;
      if (left <= 0) this.socketsPer.delete(peer);
      else this.socketsPer.set(peer, left);
    });
  }

  refuseUpgrade(socket: Duplex, status: number, text: string): void {
    const reason = http.STATUS_CODES[status] ?? 'Error';
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\n\r\n${text}`);
  }

  // ---- routing -----------------------------------------------------------------

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    socket.on('error', () => undefined);
    const path = (req.url ?? '/').split('?')[0];
    if (path !== WEBSOCKET_PATH || !this.ws) return this.refuseUpgrade(socket, 404, 'Not found');
    const info = this.clientInfo(req);
    if (!this.originAllowed(req, info)) {
      this.server.log.info({ addr: info.address, origin: req.headers.origin }, 'websocket refused: origin not allowed');
      this.server.metrics.counter('verona_web_refused_total', 'Web connections refused, by reason').inc({ reason: 'origin' });
      return this.refuseUpgrade(socket, 403, 'Origin not allowed');
    }
    this.ws.upgrade(req, socket, head, info);
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    res.setHeader('X-Content-Type-Options', 'nosniff');
    try {
      const path = new URL(req.url ?? '/', 'http://localhost').pathname;
      const info = this.clientInfo(req);
      if (path === BOSH_PATH || path === `${BOSH_PATH}/`) return this.boshRequest(req, res, info);
      if (path === WEBSOCKET_PATH) return text(res, 426, 'This is the XMPP WebSocket endpoint (RFC 7395): connect with a WebSocket client, subprotocol "xmpp".', { Upgrade: 'websocket' });
      if (path === '/metrics') return this.metrics(req, res, info);
      if (req.method === 'OPTIONS' && path.startsWith('/.well-known/')) return this.site.preflight(res);
      const route = this.routes().find((r) => path.startsWith(r.prefix));
      if (route) return route.handle(req, res, info);
      if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'Method not allowed', { Allow: 'GET, HEAD' });
      this.site.serve(path, req, res, info);
    } catch (err) {
      this.server.log.error({ err, url: req.url }, 'web request failed');
      if (!res.headersSent) text(res, 500, 'Internal server error');
      else res.destroy();
    }
  }

  /** Routes modules serve here (src/net/web/routes.ts). */
  private routes(): readonly HttpRoute[] {
    return (this.server.services.get(HTTP_ROUTES_SERVICE) as HttpRoute[] | undefined) ?? [];
  }

  private metrics(req: http.IncomingMessage, res: http.ServerResponse, info: ClientInfo): void {
    const m = this.server.config.web.metrics;
    if (!m.enabled) return text(res, 404, 'Not found');
    // A loopback peer relaying for others (an unlisted proxy) must not open the door.
    // Nor a page whose DNS name was rebound to 127.0.0.1 (it sends its own name as Host).
    if (info.untrustedForwarding || !info.knownHost || !inList(this.metricsFrom, info.address)) return text(res, 403, 'Forbidden');
    if (req.method !== 'GET' && req.method !== 'HEAD') return text(res, 405, 'Method not allowed', { Allow: 'GET, HEAD' });
    const body = this.server.metrics.render();
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store', 'Content-Length': Buffer.byteLength(body) });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  private boshRequest(req: http.IncomingMessage, res: http.ServerResponse, info: ClientInfo): void {
    const bosh = this.bosh;
    if (!bosh) return text(res, 404, 'BOSH is disabled on this server');
    const allowed = this.originAllowed(req, info);
    if (req.method === 'OPTIONS') {
      if (!allowed) return text(res, 403, 'Origin not allowed');
      res.writeHead(204, {
        ...this.cors(req),
        'Access-Control-Allow-Methods': 'POST, OPTIONS',
        'Access-Control-Allow-Headers': 'Content-Type',
        'Access-Control-Max-Age': '86400',
      });
      return void res.end();
    }
    if (req.method === 'GET' || req.method === 'HEAD') {
      return text(res, 200, 'This is the XMPP BOSH endpoint (XEP-0124, XEP-0206): POST <body/> elements here.');
    }
    if (req.method !== 'POST') return text(res, 405, 'Method not allowed', { Allow: 'POST, OPTIONS' });
    if (!allowed) {
      this.server.metrics.counter('verona_web_refused_total', 'Web connections refused, by reason').inc({ reason: 'origin' });
      return text(res, 403, 'Origin not allowed');
    }
    const max = this.server.config.web.bosh.maxBodySize;
    const declared = Number(req.headers['content-length'] ?? '0');
    const tooLarge = (): void => {
      const r = bindingError('policy-violation', false);
      res.writeHead(413, { 'Content-Type': 'text/xml; charset=utf-8', Connection: 'close', ...this.cors(req) });
      res.end(r.body);
      req.destroy();
    };
    if (declared > max) return tooLarge();
    const chunks: Buffer[] = [];
    let size = 0;
    let over = false;
    req.on('data', (c: Buffer) => {
      if (over) return;
      size += c.length;
      if (size > max) {
        over = true;
        return tooLarge();
      }
      chunks.push(c);
    });
    req.on('end', () => {
      if (over) return;
      const deliver = (r: BoshReply): void => {
        if (res.writableEnded || res.destroyed) return;
        res.writeHead(r.status, {
          'Content-Type': 'text/xml; charset=utf-8',
          'Cache-Control': 'no-store',
          'Content-Length': Buffer.byteLength(r.body),
          ...this.cors(req),
        });
        res.end(r.body);
      };
      const abandon = bosh.handle(Buffer.concat(chunks), info, deliver);
      if (abandon) res.once('close', () => void (res.writableFinished || abandon()));
    });
  }

  // ---- listeners ---------------------------------------------------------------

  private configure(srv: http.Server, name: string): void {
    // Slow-loris bounds: headers and request bodies must arrive promptly. A held
    // BOSH request is not affected: these count only until the request is read.
    srv.headersTimeout = 20_000;
    srv.requestTimeout = Math.max(30_000, ...this.routes().map((r) => (r.requestTimeout ?? 0) * 1000));
    srv.keepAliveTimeout = 10_000;
    srv.maxHeadersCount = 100;
    srv.on('connection', (s: net.Socket) => this.onConnection(s));
    srv.on('request', (req, res) => this.onRequest(req, res));
    srv.on('upgrade', (req, socket, head) => this.onUpgrade(req, socket, head));
    srv.on('clientError', (err, socket) => {
      this.server.log.debug({ err: err.message, listener: name }, 'HTTP client error');
      if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n');
      else socket.destroy();
    });
  }

  private listen(name: string, srv: http.Server, port: number): Promise<ListenerHandle> {
    const host = this.server.config.web.host;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port, backlog: 1024 }, () => {
        srv.removeListener('error', reject);
        srv.on('error', (err) => this.server.log.error({ err, listener: name }, 'listener error'));
        const addr = srv.address() as net.AddressInfo;
        this.server.log.info({ listener: name, host, port: addr.port }, 'listening');
        this.httpServers.push(srv);
        resolve({
          name,
          port: addr.port,
          close: () => this.closeServer(srv),
        });
      });
    });
  }

  /**
   * Stop accepting and drop idle keep-alive sockets, but do not wait for open
   * WebSockets and held BOSH requests: the server's shutdown sends them
   * <system-shutdown/> right after the listeners are closed.
   */
  private closeServer(srv: http.Server): Promise<void> {
    this.ws?.close();
    this.bosh?.close();
    srv.close();
    srv.closeIdleConnections();
    setTimeout(() => srv.closeAllConnections(), 2000).unref();
    return Promise.resolve();
  }

  async start(): Promise<void> {
    const w = this.server.config.web;
    if (w.port >= 0) {
      const srv = http.createServer();
      this.configure(srv, 'http');
      this.server.addListener(await this.listen('http', srv, w.port));
    }
    if (w.tlsPort >= 0 && this.server.secureContext) {
      // The same files as c2s (startServer has just loaded or generated them). Given
      // as cert/key, not only as a SecureContext, so that clients that send no SNI
      // (an IP address in the URL) get the certificate too.
      const cert = await ensureCertificate(this.server.config);
      const sni = this.server.hosts.size > 1 ? { SNICallback: this.server.vhostCerts.sniCallback } : {};
      const srv = https.createServer({ ...tlsOptions(cert.cert, cert.key), ALPNProtocols: ['http/1.1'], ...sni });
      srv.on('tlsClientError', (err) => this.server.log.debug({ err: err.message }, 'HTTPS client error'));
      this.server.tlsServers.push(srv);
      this.configure(srv, 'https');
      this.server.addListener(await this.listen('https', srv, w.tlsPort));
    }
  }
}

export function text(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

/**
 * Start the web listeners (called by startServer after the c2s listeners).
 * Returns undefined when both web ports are disabled.
 */
export async function startWebListeners(server: Server): Promise<WebFront | undefined> {
  const w = server.config.web;
  if (w.port < 0 && w.tlsPort < 0) return undefined;
  const front = new WebFront(server);
  await front.start();
  return front;
}
