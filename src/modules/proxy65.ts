/**
 * XEP-0065 SOCKS5 Bytestreams (version 1.8.2): a proxy ("streamhost") on a
 * JID of its own (proxy.<domain>) for file transfers between clients that
 * cannot reach each other directly. Off by default (moduleOptions.proxy65).
 *
 *   <query xmlns='http://jabber.org/protocol/bytestreams'/> get   -> our <streamhost jid host port/>
 *   <query sid><activate>target</activate></query> set            -> the two connections are joined
 *
 * Both parties connect with SOCKS5 (RFC 1928, no authentication, CONNECT to
 * the domain name SHA1(sid + requester JID + target JID), port 0). Nothing is
 * relayed before the requester activates the pair (XEP-0065 §6.3.3); only
 * local accounts may activate; a connection not activated within
 * `activationTimeout` seconds is closed; at most `maxConnections` at once.
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { x } from '../xml/element.js';
import { StanzaError } from '../core/errors.js';
import type { VeronaModule } from '../core/module.js';
import { tryParseJID } from '../jid/jid.js';
import { hostService } from './upload/hosted.js';

export const NS_BYTESTREAMS = 'http://jabber.org/protocol/bytestreams';

export interface Proxy65Options {
  enabled: boolean;
  domain: string;
  /** Listen address. */
  host: string;
  /** Listen port (0 = ephemeral). */
  port: number;
  /** Address clients are told to connect to ('' = host). */
  publicHost: string;
  activationTimeout: number;
  maxConnections: number;
}

const DEFAULTS: Proxy65Options = { enabled: false, domain: '', host: '127.0.0.1', port: 7777, publicHost: '', activationTimeout: 60, maxConnections: 200 };

export function parseProxy65Options(raw: Record<string, unknown>): Proxy65Options {
  const out: Proxy65Options = { ...DEFAULTS };
  for (const [k, v] of Object.entries(raw)) {
    if (!Object.hasOwn(DEFAULTS, k)) throw new Error(`moduleOptions.proxy65.${k}: unknown option (known: ${Object.keys(DEFAULTS).join(', ')})`);
    const d = DEFAULTS[k as keyof Proxy65Options];
    if (typeof d !== typeof v || (typeof v === 'number' && (!Number.isInteger(v) || v < 0))) {
      throw new Error(`moduleOptions.proxy65.${k}: expected ${typeof d === 'number' ? 'a whole number >= 0' : `a ${typeof d}`}, got ${JSON.stringify(v)}`);
    }
    (out as unknown as Record<string, unknown>)[k] = v;
  }
  if (out.port > 65535) throw new Error('moduleOptions.proxy65.port: a port number');
  return out;
}

/** XEP-0065 §5.3.2: the DST.ADDR both parties use. */
export function streamHash(sid: string, requester: string, target: string): string {
  return createHash('sha1').update(`${sid}${requester}${target}`).digest('hex');
}

interface Pending {
  socket: net.Socket;
  /** Bytes a party sent before activation (held, never relayed early). */
  held: Buffer[];
}

/**
 * The SOCKS5 side: handshake, then park the socket under its hash. A hash
 * has at most two sockets (target first, then requester).
 */
class SocksProxy {
  readonly pending = new Map<string, Pending[]>();
  private connections = 0;
  readonly server: net.Server;

  constructor(private readonly opts: Proxy65Options, private readonly log: { info(o: object, m: string): void }) {
    this.server = net.createServer((s) => this.accept(s));
  }

  private accept(s: net.Socket): void {
    if (this.connections >= this.opts.maxConnections) {
      s.destroy();
      return;
    }
    this.connections++;
    s.once('close', () => this.connections--);
    s.on('error', () => undefined);
    s.setTimeout(this.opts.activationTimeout * 1000, () => s.destroy());
    let buf = Buffer.alloc(0);
    let stage: 'greeting' | 'request' | 'parked' = 'greeting';
    let entry: Pending | undefined;
    const onData = (d: Buffer): void => {
      if (stage === 'parked') {
        entry?.held.push(d);
        if ((entry?.held.reduce((n, b) => n + b.length, 0) ?? 0) > 1 << 20) s.destroy(); // no free storage before activation
        return;
      }
      buf = Buffer.concat([buf, d]);
      if (stage === 'greeting') {
        if (buf.length < 2) return;
        const n = buf[1] as number;
        if (buf[0] !== 5 || buf.length < 2 + n) return void (buf[0] !== 5 && s.destroy());
        const methods = buf.subarray(2, 2 + n);
        buf = buf.subarray(2 + n);
        if (!methods.includes(0)) {
          s.end(Buffer.from([5, 0xff]));
          return;
        }
        s.write(Buffer.from([5, 0]));
        stage = 'request';
      }
      if (stage === 'request') {
        if (buf.length < 5) return;
        const len = buf[4] as number;
        if (buf.length < 7 + len) return;
        // VER 5, CMD 1 (CONNECT), RSV 0, ATYP 3 (domain name): anything else is not XEP-0065.
        if (buf[0] !== 5 || buf[1] !== 1 || buf[3] !== 3 || len !== 40) {
          s.end(Buffer.from([5, 7, 0, 1, 0, 0, 0, 0, 0, 0]));
          return;
        }
        const hash = buf.subarray(5, 5 + len).toString('latin1');
        const rest = buf.subarray(7 + len);
        const list = this.pending.get(hash) ?? [];
        if (list.length >= 2 || !/^[0-9a-f]{40}$/.test(hash)) {
          s.end(Buffer.from([5, 2, 0, 1, 0, 0, 0, 0, 0, 0]));
          return;
        }
        entry = { socket: s, held: rest.length > 0 ? [rest] : [] };
        list.push(entry);
        this.pending.set(hash, list);
        const mine = entry;
        s.once('close', () => {
          const l = this.pending.get(hash);
          if (!l) return;
          const i = l.indexOf(mine);
          if (i >= 0) l.splice(i, 1);
          if (l.length === 0) this.pending.delete(hash);
        });
        stage = 'parked';
        s.write(Buffer.concat([Buffer.from([5, 0, 0, 3, len]), Buffer.from(hash, 'latin1'), Buffer.from([0, 0])]));
      }
    };
    s.on('data', onData);
    s.once('activate', () => s.removeListener('data', onData));
  }

  /** Join the two sockets of `hash`; false when both are not there. */
  activate(hash: string): boolean {
    const list = this.pending.get(hash);
    if (!list || list.length !== 2) return false;
    this.pending.delete(hash);
    const [a, b] = list as [Pending, Pending];
    for (const p of [a, b]) {
      p.socket.emit('activate');
      p.socket.setTimeout(0);
    }
    for (const [from, to] of [[a, b], [b, a]] as const) {
      for (const chunk of from.held) to.socket.write(chunk);
      from.held.length = 0;
      from.socket.pipe(to.socket);
    }
    this.log.info({ hash }, 'bytestream activated');
    return true;
  }

  listen(): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen({ host: this.opts.host, port: this.opts.port }, () => {
        this.server.removeListener('error', reject);
        resolve((this.server.address() as net.AddressInfo).port);
      });
    });
  }

  close(): Promise<void> {
    for (const l of this.pending.values()) for (const p of l) p.socket.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }
}

export const proxy65Module: VeronaModule = {
  name: 'proxy65',
  async load(api) {
    const opts = parseProxy65Options(api.options);
    if (!opts.enabled) return;
    const domain = opts.domain === '' ? `proxy.${api.domain}` : opts.domain;
    const proxy = new SocksProxy(opts, api.log);
    const port = await proxy.listen();
    const host = opts.publicHost === '' ? opts.host : opts.publicHost;
    api.log.info({ host: opts.host, port }, 'SOCKS5 bytestream proxy listening');
    const activations = api.metrics.counter('verona_proxy65_activations_total', 'SOCKS5 bytestream activations, by outcome');

    const unhost = hostService(api, {
      domain,
      kind: 'proxy65',
      name: 'SOCKS5 Bytestreams Service',
      identities: [{ category: 'proxy', type: 'bytestreams', name: 'SOCKS5 Bytestreams Service' }],
      features: [NS_BYTESTREAMS],
      iq: {
        [`get ${NS_BYTESTREAMS}`]: (q) => {
          if (!api.router.hosts.has(q.from.domain)) throw new StanzaError('forbidden', 'The proxy serves accounts of this server only');
          return x('query', NS_BYTESTREAMS, {}, [x('streamhost', NS_BYTESTREAMS, { jid: domain, host, port: String(port) })]);
        },
        [`set ${NS_BYTESTREAMS}`]: (q) => {
          if (!api.router.hosts.isAccount(q.from)) throw new StanzaError('forbidden', 'The proxy serves accounts of this server only');
          const sid = q.payload.attrs.sid;
          const target = tryParseJID(q.payload.getChildText('activate', NS_BYTESTREAMS)?.trim());
          if (sid === undefined || sid === '' || !target) throw new StanzaError('bad-request', 'Activation needs a sid and <activate>target JID</activate>');
          const ok = proxy.activate(streamHash(sid, q.from.toString(), target.toString()));
          activations.inc({ outcome: ok ? 'activated' : 'not-connected' });
          // XEP-0065 §6.3.3: the pair is not (yet) connected.
          if (!ok) throw new StanzaError('item-not-found', 'Both parties must be connected to the proxy first');
          return undefined;
        },
      },
    });
    api.onClose(async () => {
      unhost();
      await proxy.close();
    });
  },
};
