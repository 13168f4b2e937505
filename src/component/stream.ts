/**
 * One XEP-0114 (Jabber Component Protocol, version 1.6) connection:
 * `jabber:component:accept` stream header naming the component's domain,
 * `<handshake>` = hex(SHA-1(stream id + secret)), then stanzas both ways.
 *
 * The stream is namespace-mapped at the edge: stanzas from the component
 * arrive in `jabber:component:accept` and enter the router as `jabber:client`
 * stanzas; stanzas to the component leave in `jabber:component:accept`. The
 * rest of the server never sees the component namespace.
 */
import net from 'node:net';
import { createHash, timingSafeEqual } from 'node:crypto';
import { Element, escapeAttr, serialize } from '../xml/element.js';
import { createStreamParser } from '../xml/parser.js';
import type { StreamParser } from '../xml/stream-parser.contract.js';
import { NS } from '../core/namespaces.js';
import { streamError, type StreamErrorCondition } from '../core/errors.js';
import { tryParseJID } from '../jid/jid.js';
import { newStreamId } from '../c2s/stream.js';
import type { Logger } from '../core/logger.js';

export const NS_COMPONENT = 'jabber:component:accept';

/** Verdict on a handshake (pure; table-tested). */
export function checkHandshake(streamId: string, secret: string, digest: string): { ok: boolean; reason: string } {
  const want = createHash('sha1').update(streamId + secret, 'utf8').digest('hex');
  const got = digest.trim().toLowerCase();
  if (!/^[0-9a-f]{40}$/.test(got)) return { ok: false, reason: 'malformed' };
  return timingSafeEqual(Buffer.from(want), Buffer.from(got)) ? { ok: true, reason: 'match' } : { ok: false, reason: 'mismatch' };
}

/** Deep copy with every element in namespace `from` moved to `to` (the stanza and its default-namespace children). */
export function mapNamespace(el: Element, from: string, to: string): Element {
  const out = new Element(el.name, el.xmlns === from ? to : el.xmlns, { ...el.attrs });
  out.children = el.children.map((c) => (typeof c === 'string' ? c : mapNamespace(c, from, to)));
  return out;
}

const STANZAS = new Set(['message', 'presence', 'iq']);

export interface ComponentHost {
  log: Logger;
  /** Secret of a configured component domain, undefined when unknown. */
  secretFor(domain: string): string | undefined;
  /** Called after a successful handshake; return false to refuse (domain already connected). */
  online(conn: ComponentConnection): boolean;
  offline(conn: ComponentConnection): void;
  /** A stanza from the component, already in jabber:client with a checked `from`. */
  inbound(conn: ComponentConnection, stanza: Element): void;
}

type State = 'wait-header' | 'wait-handshake' | 'ready' | 'closed';

export class ComponentConnection {
  domain = '';
  readonly id = newStreamId();
  private state: State = 'wait-header';
  private readonly parser: StreamParser;
  private headerSent = false;
  /** Set by the module when the route is installed; undone when the connection goes. */
  onOffline: (() => void) | undefined;

  constructor(
    private readonly socket: net.Socket,
    private readonly host: ComponentHost,
  ) {
    this.parser = createStreamParser(
      {
        onStreamStart: (name, ns, attrs) => this.onHeader(name, ns, attrs),
        onElement: (el) => this.onElement(el),
        onStreamEnd: () => this.close(),
        onError: (condition, text) => this.fail(condition as StreamErrorCondition, text),
      },
      { maxStanzaSize: 1024 * 1024, maxDepth: 64, maxAttributes: 64 },
    );
    socket.setNoDelay(true);
    socket.on('data', (d: Buffer) => this.parser.write(d));
    socket.on('error', (err) => host.log.debug({ err: err.message, component: this.domain }, 'component socket error'));
    socket.on('close', () => this.gone());
    // A peer that never sends a header or handshake is cut off.
    const t = setTimeout(() => {
      if (this.state !== 'ready') this.fail('connection-timeout', 'No handshake');
    }, 30000);
    t.unref();
  }

  get ready(): boolean {
    return this.state === 'ready';
  }

  private sendHeader(): void {
    if (this.headerSent) return;
    this.headerSent = true;
    const from = this.domain ? ` from='${escapeAttr(this.domain)}'` : '';
    this.socket.write(`<?xml version='1.0'?><stream:stream xmlns='${NS_COMPONENT}' xmlns:stream='${NS.STREAM}'${from} id='${this.id}'>`);
  }

  private onHeader(name: string, ns: string, attrs: Record<string, string>): void {
    const to = (attrs.to ?? '').toLowerCase().replace(/\.$/, '');
    if (this.host.secretFor(to) !== undefined) this.domain = to;
    this.sendHeader();
    if (name !== 'stream' || ns !== NS.STREAM || attrs.xmlns !== NS_COMPONENT) return this.fail('invalid-namespace', `Expected a ${NS_COMPONENT} stream`);
    if (!this.domain) return this.fail('host-unknown', 'No component is configured for this domain');
    this.state = 'wait-handshake';
  }

  private onElement(el: Element): void {
    try {
      if (this.state === 'wait-handshake') return this.onHandshake(el);
      if (this.state !== 'ready') return;
      if (!STANZAS.has(el.name) || el.xmlns !== NS_COMPONENT) return this.fail('unsupported-stanza-type', `Unexpected <${el.name}/>`);
      // XEP-0114 §3: the component may only send from its own domain (any JID there).
      const from = tryParseJID(el.attrs.from);
      if (!from || from.domain !== this.domain) return this.fail('invalid-from', `from must be a JID of ${this.domain}`);
      if (tryParseJID(el.attrs.to) === undefined) return this.fail('improper-addressing', 'Every stanza needs a valid to');
      this.host.inbound(this, mapNamespace(el, NS_COMPONENT, NS.CLIENT));
    } catch (err) {
      this.host.log.error({ err, component: this.domain }, 'component: unexpected error');
      this.fail('internal-server-error');
    }
  }

  private onHandshake(el: Element): void {
    if (el.name !== 'handshake' || el.xmlns !== NS_COMPONENT) return this.fail('not-authorized', 'Handshake first');
    const secret = this.host.secretFor(this.domain) as string;
    const v = checkHandshake(this.id, secret, el.text());
    if (!v.ok) {
      this.host.log.info({ component: this.domain, reason: v.reason, addr: this.socket.remoteAddress }, 'component handshake failed');
      return this.fail('not-authorized', 'Handshake failed');
    }
    if (!this.host.online(this)) return this.fail('conflict', 'This component is already connected');
    this.state = 'ready';
    this.socket.write(`<handshake/>`);
  }

  /** Send a jabber:client stanza to the component. */
  send(stanza: Element): void {
    if (this.state !== 'ready') return;
    this.socket.write(serialize(mapNamespace(stanza, NS.CLIENT, NS_COMPONENT), NS_COMPONENT));
  }

  fail(condition: StreamErrorCondition, text?: string): void {
    if (this.state === 'closed') return;
    this.sendHeader();
    this.socket.write(serialize(streamError(condition, text), NS_COMPONENT));
    this.close();
  }

  close(): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    if (wasReady) this.host.offline(this);
    this.socket.end('</stream:stream>');
    setTimeout(() => this.socket.destroy(), 3000).unref();
  }

  private gone(): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    if (wasReady) this.host.offline(this);
  }
}

