/**
 * External components (XEP-0114, version 1.6): a listener (default
 * 127.0.0.1:5347) where a push app server, a gateway or a bot connects for a
 * domain configured with a shared secret. Once its handshake succeeds, the
 * domain is served through the router's ExternalRoute seam
 * (`router.addRoute`), and the server's disco#items lists it. Stanzas from
 * the component are checked to come from its domain and enter the router with
 * `router.route()`, like any server-side stanza (so messages to local
 * accounts are archived and forked as usual).
 */
import net from 'node:net';
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import type { VeronaModule } from '../core/module.js';
import type { ExternalRoute } from '../core/router.js';
import { ComponentConnection, type ComponentHost } from './stream.js';
import { parseComponentOptions } from './options.js';

interface ListenerSink {
  addListener(h: { name: string; port: number; close(): Promise<void> }): void;
}

export const componentModule: VeronaModule = {
  name: 'component',
  async load(api) {
    const opts = parseComponentOptions(api.options, api.domain);
    if (opts.secrets.size === 0 || opts.port < 0) return;
    const connected = new Map<string, ComponentConnection>();
    const items = api.service<Element[]>('disco-items');
    const m = {
      connections: api.metrics.counter('verona_component_connections_total', 'Component connections by outcome'),
      stanzas: api.metrics.counter('verona_component_stanzas_total', 'Stanzas to and from components, by direction'),
    };
    api.metrics.gauge('verona_components_connected', 'Components connected', () => connected.size);

    const host: ComponentHost = {
      log: api.log,
      secretFor: (d) => opts.secrets.get(d),
      online(conn) {
        if (connected.has(conn.domain)) {
          m.connections.inc({ outcome: 'conflict' });
          return false;
        }
        const route: ExternalRoute = {
          kind: 'component',
          send(stanza) {
            m.stanzas.inc({ direction: 'out' });
            conn.send(stanza);
          },
        };
        try {
          api.router.addRoute(conn.domain, route);
        } catch (err) {
          api.log.error({ err, component: conn.domain }, 'component: domain already routed');
          return false;
        }
        connected.set(conn.domain, conn);
        conn.onOffline = () => api.router.removeRoute(conn.domain, route);
        items?.push(x('item', NS.DISCO_ITEMS, { jid: conn.domain }));
        m.connections.inc({ outcome: 'ok' });
        api.log.info({ component: conn.domain }, 'component connected');
        return true;
      },
      offline(conn) {
        if (connected.get(conn.domain) !== conn) return;
        connected.delete(conn.domain);
        conn.onOffline?.();
        if (items) {
          const i = items.findIndex((it) => it.attrs.jid === conn.domain);
          if (i >= 0) items.splice(i, 1);
        }
        api.log.info({ component: conn.domain }, 'component disconnected');
      },
      inbound(_conn, stanza) {
        m.stanzas.inc({ direction: 'in' });
        api.router.route(stanza);
      },
    };

    const srv = net.createServer((s) => new ComponentConnection(s, host));
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host: opts.host, port: opts.port }, () => {
        srv.removeListener('error', reject);
        resolve();
      });
    });
    srv.on('error', (err) => api.log.error({ err }, 'component listener error'));
    const port = (srv.address() as net.AddressInfo).port;
    api.log.info({ listener: 'component', host: opts.host, port }, 'listening');
    const close = (): Promise<void> =>
      new Promise((r) => {
        for (const c of connected.values()) c.fail('system-shutdown');
        srv.close(() => r());
      });
    api.service<ListenerSink>('server')?.addListener({ name: 'component', port, close });
  },
};
