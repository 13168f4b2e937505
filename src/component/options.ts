/**
 * Options of the `component` module (config `moduleOptions.component`),
 * validated at load. Documented in docs/phones.md and docs/configuration.md.
 *
 *   moduleOptions:
 *     component:
 *       host: 127.0.0.1          # listen address (loopback by default)
 *       port: 5347               # 0 = ephemeral, -1 = disabled
 *       components:
 *         push.example.org: { secret: "..." }
 */
import { isIP } from 'node:net';
import { prepareDomain } from '../jid/jid.js';

export interface ComponentOptions {
  host: string;
  port: number;
  /** Component domain -> shared secret (XEP-0114 handshake). */
  secrets: Map<string, string>;
}

export const COMPONENT_DEFAULTS = { host: '127.0.0.1', port: 5347 } as const;

export function parseComponentOptions(raw: Record<string, unknown>, serverDomain: string): ComponentOptions {
  const out: ComponentOptions = { host: COMPONENT_DEFAULTS.host, port: COMPONENT_DEFAULTS.port, secrets: new Map() };
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'host') {
      if (typeof v !== 'string' || isIP(v) === 0) throw new Error(`moduleOptions.component.host: expected an IP address, got ${JSON.stringify(v)}`);
      out.host = v;
    } else if (k === 'port') {
      if (typeof v !== 'number' || !Number.isInteger(v) || v < -1 || v > 65535) {
        throw new Error(`moduleOptions.component.port: expected an integer from -1 to 65535, got ${JSON.stringify(v)}`);
      }
      out.port = v;
    } else if (k === 'components') {
      if (!v || typeof v !== 'object' || Array.isArray(v)) throw new Error('moduleOptions.component.components: expected a mapping of domain -> { secret }');
      for (const [d, c] of Object.entries(v as Record<string, unknown>)) {
        let domain: string;
        try {
          domain = prepareDomain(d);
        } catch {
          throw new Error(`moduleOptions.component.components: ${JSON.stringify(d)} is not a valid domain`);
        }
        if (domain === serverDomain) throw new Error(`moduleOptions.component.components: ${domain} is the server's own domain`);
        const secret = c && typeof c === 'object' ? (c as Record<string, unknown>).secret : undefined;
        if (typeof secret !== 'string' || secret.length < 8) {
          throw new Error(`moduleOptions.component.components.${domain}.secret: expected a string of at least 8 characters`);
        }
        out.secrets.set(domain, secret);
      }
    } else {
      throw new Error(`moduleOptions.component.${k}: unknown option (known: host, port, components)`);
    }
  }
  return out;
}
