/**
 * XEP-0215 External Service Discovery (version 1.0.0): the STUN and TURN
 * servers an account's clients use for calls, as configured by the operator.
 *
 *   <services xmlns='urn:xmpp:extdisco:2' [type=]/>           every service (of that type)
 *   <credentials><service host= type= [port=]/></credentials>  fresh credentials for one
 *
 * A TURN server configured with a shared `secret` gets time-limited
 * credentials by the TURN REST scheme that coturn implements
 * (`use-auth-secret` / `static-auth-secret`, draft-uberti-behave-turn-rest-00):
 * username `<expiry unix time>:<account>`, password
 * base64(HMAC-SHA1(secret, username)); the server checks the HMAC and the
 * expiry itself, so nothing is shared with it but the secret. Services with
 * fixed `username`/`password` hand those out. Only the server's own accounts
 * are answered (forbidden otherwise): credentials are not for strangers.
 *
 * Options (moduleOptions.extdisco): services — a list of
 * { type: stun|turn|stuns|turns, host, port, transport: udp|tcp, name?,
 *   secret?, ttl? (seconds, 86400), username?, password? }.
 */
import { createHmac } from 'node:crypto';
import { x, type Element } from '../xml/element.js';
import { StanzaError } from '../core/errors.js';
import type { VeronaModule } from '../core/module.js';
import type { JID } from '../jid/jid.js';

export const NS_EXTDISCO = 'urn:xmpp:extdisco:2';

export interface ExternalService {
  type: 'stun' | 'turn' | 'stuns' | 'turns';
  host: string;
  port: number;
  transport: 'udp' | 'tcp';
  name?: string;
  /** TURN REST shared secret (coturn static-auth-secret). */
  secret?: string;
  /** Seconds the generated credentials stay valid. */
  ttl: number;
  username?: string;
  password?: string;
}

export interface TurnCredentials {
  username: string;
  password: string;
  /** Unix time (seconds) when they lapse. */
  expiry: number;
}

/** The TURN REST credentials for `user`, valid until `nowSeconds + ttl` (coturn's algorithm). */
export function turnRestCredentials(secret: string, user: string, nowSeconds: number, ttl: number): TurnCredentials {
  const expiry = Math.floor(nowSeconds) + ttl;
  const username = `${expiry}:${user}`;
  const password = createHmac('sha1', secret).update(username).digest('base64');
  return { username, password, expiry };
}

const TYPES = new Set(['stun', 'turn', 'stuns', 'turns']);

export function parseExtdiscoOptions(raw: Record<string, unknown>): ExternalService[] {
  for (const k of Object.keys(raw)) {
    if (k !== 'services') throw new Error(`moduleOptions.extdisco.${k}: unknown option (known: services)`);
  }
  const list = raw.services ?? [];
  if (!Array.isArray(list)) throw new Error('moduleOptions.extdisco.services: expected a list');
  return list.map((s: unknown, i): ExternalService => {
    const where = `moduleOptions.extdisco.services[${i}]`;
    if (s === null || typeof s !== 'object' || Array.isArray(s)) throw new Error(`${where}: expected a mapping`);
    const o = s as Record<string, unknown>;
    const known = ['type', 'host', 'port', 'transport', 'name', 'secret', 'ttl', 'username', 'password'];
    for (const k of Object.keys(o)) if (!known.includes(k)) throw new Error(`${where}.${k}: unknown option (known: ${known.join(', ')})`);
    const str = (k: string): string | undefined => {
      const v = o[k];
      if (v === undefined) return undefined;
      if (typeof v !== 'string' || v === '') throw new Error(`${where}.${k}: expected a non-empty string`);
      return v;
    };
    const type = str('type');
    if (type === undefined || !TYPES.has(type)) throw new Error(`${where}.type: one of stun, turn, stuns, turns`);
    const host = str('host');
    if (host === undefined) throw new Error(`${where}.host: required`);
    const tls = type === 'stuns' || type === 'turns';
    const port = o.port ?? (tls ? 5349 : 3478);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${where}.port: a port number`);
    const transport = str('transport') ?? (tls ? 'tcp' : 'udp');
    if (transport !== 'udp' && transport !== 'tcp') throw new Error(`${where}.transport: udp or tcp`);
    const ttl = o.ttl ?? 86400;
    if (typeof ttl !== 'number' || !Number.isInteger(ttl) || ttl < 60) throw new Error(`${where}.ttl: whole seconds, at least 60`);
    const svc: ExternalService = { type: type as ExternalService['type'], host, port, transport, ttl, name: str('name'), secret: str('secret'), username: str('username'), password: str('password') };
    if (svc.secret !== undefined && (svc.username !== undefined || svc.password !== undefined)) {
      throw new Error(`${where}: give either secret (time-limited credentials) or username/password, not both`);
    }
    return svc;
  });
}

/** The <service/> element for `user` at `nowSeconds` (credentials included when the service has any). */
export function serviceElement(s: ExternalService, user: string, nowSeconds: number): Element {
  const el = x('service', NS_EXTDISCO, { type: s.type, host: s.host, port: String(s.port), transport: s.transport, name: s.name });
  if (s.secret !== undefined) {
    const c = turnRestCredentials(s.secret, user, nowSeconds, s.ttl);
    el.attrs.username = c.username;
    el.attrs.password = c.password;
    el.attrs.expires = new Date(c.expiry * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    el.attrs.restricted = '1';
  } else if (s.username !== undefined || s.password !== undefined) {
    if (s.username !== undefined) el.attrs.username = s.username;
    if (s.password !== undefined) el.attrs.password = s.password;
    el.attrs.restricted = '1';
  }
  return el;
}

export const extdiscoModule: VeronaModule = {
  name: 'extdisco',
  load(api) {
    const services = parseExtdiscoOptions(api.options);
    if (services.length === 0) return; // nothing configured: not advertised
    api.discoFeature(NS_EXTDISCO);
    const now = (): number => Date.now() / 1000;
    const local = (from: JID): string => {
      if (!api.router.hosts.isAccount(from)) throw new StanzaError('forbidden', 'Only accounts of this server get its external services');
      return api.router.hosts.keyOf(from);
    };

    api.iq('server', 'get', NS_EXTDISCO, (ctx) => {
      const user = local(ctx.from);
      const p = ctx.payload;
      if (p.name === 'services') {
        const type = p.attrs.type;
        const out = x('services', NS_EXTDISCO, { type });
        for (const s of services) if (type === undefined || s.type === type) out.append(serviceElement(s, user, now()));
        return out;
      }
      if (p.name === 'credentials') {
        const want = p.getChild('service', NS_EXTDISCO);
        if (!want || want.attrs.host === undefined) throw new StanzaError('bad-request', 'Name the service: <service host= type=/>');
        const port = want.attrs.port === undefined ? undefined : Number(want.attrs.port);
        const match = services.filter((s) => s.host === want.attrs.host && (want.attrs.type === undefined || s.type === want.attrs.type) && (port === undefined || s.port === port));
        if (match.length === 0) throw new StanzaError('item-not-found', 'No such service');
        return x('credentials', NS_EXTDISCO, {}, match.map((s) => serviceElement(s, user, now())));
      }
      throw new StanzaError('bad-request', 'Expected <services/> or <credentials/>');
    });
  },
};
