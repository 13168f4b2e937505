/**
 * Federation wiring: builds the s2s manager, makes it the router's remote
 * route, and opens the s2s listeners (STARTTLS on s2s.port, direct TLS with
 * ALPN xmpp-server on s2s.tlsPort). Called once from startServer.
 */
import net from 'node:net';
import tls from 'node:tls';
import type { Server } from '../core/server.js';
import { S2SManager } from './manager.js';

function listen(srv: net.Server, host: string, port: number): Promise<number> {
  return new Promise((resolve, reject) => {
    srv.once('error', reject);
    srv.listen({ host, port, backlog: 511 }, () => {
      srv.removeListener('error', reject);
      resolve((srv.address() as net.AddressInfo).port);
    });
  });
}

export async function startS2S(server: Server): Promise<S2SManager | undefined> {
  const c = server.config.s2s;
  if (!c.enabled || !server.tlsCredentials) return undefined;
  const m = new S2SManager({ domain: server.domain, config: server.config, log: server.log, metrics: server.metrics, router: server.router, ...server.tlsCredentials, certFor: (d) => server.vhostCerts.pair(d) });
  server.router.remoteRoute = m;
  const servers: net.Server[] = [];
  // Shutdown: the first listener's close also ends every s2s stream (a listener's close waits for
  // its connections, so the streams must go first). Without listeners, outgoing streams simply die
  // with the process.
  let streamsClosed = false;
  const closeStreams = (): void => {
    if (!streamsClosed) m.close();
    streamsClosed = true;
  };
  if (c.port >= 0) {
    const srv = net.createServer({ noDelay: true }, (s) => m.accept(s, false));
    const port = await listen(srv, c.host, c.port);
    servers.push(srv);
    server.addListener({ name: 's2s', port, close: () => new Promise((r) => { closeStreams(); srv.close(() => r()); }) });
  }
  if (c.tlsPort >= 0) {
    const srv = tls.createServer(
      { cert: server.tlsCredentials.cert, key: server.tlsCredentials.key, ca: m.tls.ca, requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2', ALPNProtocols: ['xmpp-server'], SNICallback: m.sniCallback },
      (s) => m.accept(s, true),
    );
    srv.on('tlsClientError', (err) => server.log.debug({ err: err.message }, 's2s TLS client error'));
    const port = await listen(srv, c.host, c.tlsPort);
    servers.push(srv);
    server.addListener({ name: 's2s-tls', port, close: () => new Promise((r) => { closeStreams(); srv.close(() => r()); }) });
  }
  for (const srv of servers) srv.on('error', (err) => server.log.error({ err }, 's2s listener error'));
  m.startSweeper();
  return m;
}
