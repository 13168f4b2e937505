/**
 * The Router decides who gets which copy and applies it. Its decisions are
 * the pure functions in routing.ts; what is here is the thin I/O around them:
 * resolving sessions, running the hooks, waiting for archive commits, sending.
 *
 * Ordering: each session's inbound stanzas are delivered in the order
 * received. The synchronous hook phase of stanza N+1 may run before stanza N
 * is delivered (so both join the same archive group commit), but delivery
 * of N+1 waits for delivery of N (Session.inboundTail).
 */
import { HostedDomains } from './vhosts.js';
import { JID, tryParseJID } from '../jid/jid.js';
import { Element, x } from '../xml/element.js';
import { StanzaError, errorReply } from './errors.js';
import type { StanzaEvent, HookEvents } from './events.js';
import type { Hooks } from './hooks.js';
import { NS } from './namespaces.js';
import type { SessionRegistry } from './registry.js';
import { decideIncoming, decideOutgoing, messageType, type CopyShape } from './routing.js';
import { carbonsEligible } from './eligibility.js';
import type { Session } from './session.js';
import type { Logger } from './logger.js';
import type { Metrics, Counter } from '../metrics/metrics.js';

export type IqTarget = 'server' | 'account';
export interface IqContext {
  stanza: Element;
  type: 'get' | 'set';
  /** The payload element. */
  payload: Element;
  from: JID;
  to: JID;
  origin: Session | undefined;
  /** Addressed to the sender's own account (no `to`, or own bare JID). */
  self: boolean;
}
/** Returns the result payload (or undefined for an empty result); throws StanzaError for an error. */
export type IqHandler = (ctx: IqContext) => Element | undefined | void | Promise<Element | undefined | void>;

/**
 * Where stanzas for a domain that has no local accounts go: a hosted service on
 * a subdomain (MUC, upload), an external component (XEP-0114), or a remote
 * server (s2s). The router has already run the sender-side hooks; the route
 * owns delivery from here. Throw a StanzaError to bounce the stanza.
 */
export interface ExternalRoute {
  /** A short name for logs and metrics ('s2s', 'component', 'muc', ...). */
  readonly kind: string;
  /**
   * A promise returned for a message from a local session joins the stanza's waits: stream
   * management acks it only once the promise settles (a hosted MUC archives the message first).
   */
  send(stanza: Element, from: JID, to: JID, origin: Session | undefined): void | Promise<unknown>;
}

export interface UserExists {
  (username: string): Promise<boolean>;
}

export class Router {
  private readonly iqHandlers = new Map<string, IqHandler>();
  private readonly pendingIq = new Map<string, { resolve: (el: Element) => void; timer: NodeJS.Timeout }>();
  private iqCounter = 0;
  /** Delivery of the last archived message (see chain()). */
  private deliveryTail: Promise<void> = Promise.resolve();
  /** Archived messages queued on deliveryTail and not yet handed to the sessions (cluster order marks, src/cluster/order.ts). */
  archivedPending = 0;
  /** Called once an archived message's copies were handed to the sessions, in archive-id order (cluster order marks). */
  onArchivedDelivered: ((e: StanzaEvent | undefined) => void) | undefined;
  readonly domainJid: JID;
  private readonly routed: Counter;
  userExists: UserExists = async () => false;
  /** Routes for domains served by something other than local accounts (exact domain match). */
  private readonly routes = new Map<string, ExternalRoute>();
  /** The hosted domains (virtual hosts, src/core/vhosts.ts); the server sets it from the config. */
  hosts: HostedDomains;
  /** Where every other non-local domain goes (the s2s manager); unset: remote-server-not-found. */
  remoteRoute: ExternalRoute | undefined;

  constructor(
    readonly domain: string,
    private readonly hooks: Hooks<HookEvents>,
    private readonly registry: SessionRegistry,
    private readonly log: Logger,
    metrics: Metrics,
  ) {
    this.domainJid = new JID('', domain);
    this.hosts = new HostedDomains(domain);
    this.routed = metrics.counter('verona_copies_delivered_total', 'Message copies delivered to sessions, by decision reason');
  }

  registerIq(target: IqTarget, type: 'get' | 'set', ns: string, handler: IqHandler): void {
    const k = `${target}:${type}:${ns}`;
    if (this.iqHandlers.has(k)) throw new Error(`IQ handler for ${k} registered twice`);
    this.iqHandlers.set(k, handler);
  }

  isLocal(jid: JID): boolean {
    return this.hosts.has(jid.domain);
  }

  /** Serve `domain` with `route` (a hosted service, a component). Throws when the domain is taken. */
  addRoute(domain: string, route: ExternalRoute): void {
    if (this.hosts.has(domain) || this.routes.has(domain)) throw new Error(`domain ${domain} is already routed`);
    this.routes.set(domain, route);
  }

  removeRoute(domain: string, route?: ExternalRoute): void {
    if (route === undefined || this.routes.get(domain) === route) this.routes.delete(domain);
  }

  /** The route for a non-local domain: an exact route, else the remote route, else undefined. */
  routeFor(domain: string): ExternalRoute | undefined {
    return this.routes.get(domain) ?? this.remoteRoute;
  }

  /** Domains with a route of their own (for disco#items of the server). */
  routedDomains(): string[] {
    return [...this.routes.keys()];
  }

  /** Hand a stanza to the route of a non-local domain, bouncing when there is none or it refuses. */
  private routeExternal(stanza: Element, from: JID, to: JID, origin: Session | undefined): Promise<unknown> | undefined {
    const route = this.routeFor(to.domain);
    try {
      if (!route) throw new StanzaError('remote-server-not-found', `Remote domain ${to.domain} is not reachable`);
      return route.send(stanza, from, to, origin) ?? undefined;
    } catch (err) {
      if (!(err instanceof StanzaError)) this.log.error({ err, domain: to.domain }, 'external route failed');
      this.bounce(stanza, err instanceof StanzaError ? err : new StanzaError('internal-server-error'), origin);
      return undefined;
    }
  }

  /**
   * Send a server-made stanza to another domain on behalf of a local session: a failure to reach
   * it bounces to that session (roster subscription requests to remote contacts).
   */
  toRemote(stanza: Element, origin: Session | undefined): void {
    const to = tryParseJID(stanza.attrs.to);
    const from = tryParseJID(stanza.attrs.from) ?? this.domainJid;
    if (to) this.routeExternal(stanza, from, to, origin);
  }

  /**
   * Entry point for a stanza from a bound client session. `from` is already
   * stamped. Resolves when the stanza is handled: archived (when it is
   * archivable) and routed. SM counts `h` on this.
   */
  fromClient(session: Session, stanza: Element): Promise<void> {
    const to = stanza.attrs.to === undefined ? undefined : tryParseJID(stanza.attrs.to);
    if (stanza.attrs.to !== undefined && to === undefined) {
      this.bounce(stanza, new StanzaError('jid-malformed', 'Invalid JID in to'), session);
      return this.chain(session, []);
    }
    const from = session.jid;
    switch (stanza.name) {
      case 'message': {
        const e: StanzaEvent = { stanza, from, to: to ?? from.bare, origin: session, waits: [] };
        if (to === undefined) stanza.attrs.to = from.bare.toString();
        if (!this.prepareMessage(e)) return this.chain(session, []);
        return this.chain(session, e.waits, () => this.deliverMessage(e), e);
      }
      case 'presence': {
        const e: StanzaEvent = { stanza, from, to: to ?? from.bare, origin: session, waits: [] };
        return this.chain(session, [], () => this.routePresence(e, to === undefined));
      }
      case 'iq': {
        this.routeIq(stanza, from, to, session);
        return this.chain(session, []);
      }
      default:
        return this.chain(session, []);
    }
  }

  /** Route a stanza the server itself generated (pushes, broadcasts, bounces). */
  route(stanza: Element): void {
    const to = tryParseJID(stanza.attrs.to);
    const from = tryParseJID(stanza.attrs.from) ?? this.domainJid;
    if (!to) return;
    if (stanza.name === 'message') {
      const e: StanzaEvent = { stanza, from, to, origin: undefined, waits: [] };
      if (!this.prepareMessage(e)) return;
      if (e.waits.length === 0) this.deliverMessage(e);
      else {
        // Archived (e.g. from a remote server): delivered in archive order like a local message (chain()).
        this.archivedPending++;
        const next = Promise.all([this.settle(e.waits, e), this.deliveryTail]).then(() => this.archivedDone(e, this.safe(() => this.deliverMessage(e))));
        this.deliveryTail = next;
      }
    } else if (stanza.name === 'presence') {
      this.routePresence({ stanza, from, to, origin: undefined, waits: [] }, false);
    } else if (stanza.name === 'iq') {
      this.routeIq(stanza, from, to, undefined);
    }
  }

  /** Deliver a stanza to one local session without any hooks (pushes, direct replies). */
  sendToSession(session: Session, stanza: Element): void {
    if (!session.closed) session.send(stanza);
  }

  /** Send an IQ from the server and wait for its result (caps disco, pings). Rejects on timeout/error. */
  request(iq: Element, timeoutMs = 30000): Promise<Element> {
    const id = iq.attrs.id ?? `v${++this.iqCounter}`;
    iq.attrs.id = id;
    if (iq.attrs.from === undefined) iq.attrs.from = this.domain;
    const key = `${iq.attrs.to}#${id}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pendingIq.delete(key);
        reject(new Error('iq timeout'));
      }, timeoutMs);
      timer.unref();
      this.pendingIq.set(key, { resolve, timer });
      this.route(iq);
    });
  }

  // ---- message -------------------------------------------------------

  /** Runs the synchronous hooks; returns true when the message goes on to delivery. */
  private prepareMessage(e: StanzaEvent): boolean {
    try {
      if (e.origin && this.hooks.fire('message/out', e, true)) return false;
      if (!this.hosts.has(e.to.domain)) {
        // Another domain (a remote server, a hosted service). A local user's message is a chat
        // like a local one on the sender's side (protocol.md): 'message/out' queued the sender's
        // archive row (MAM), and deliverMessage hands it to the route after the commit, then forks
        // it to the sender's other devices. Server-generated stanzas go straight out.
        if (e.origin) return true;
        this.routeExternal(e.stanza, e.from, e.to, e.origin);
        return false;
      }
      if (e.to.local === '') {
        this.hooks.fire('message/server', e, true);
        return false;
      }
      // A recipient-side hook that returns true consumed the message (e.g. blocked).
      return !this.hooks.fire('message/in', e, true);
    } catch (err) {
      this.handleHookError(err, e);
      return false;
    }
  }

  private handleHookError(err: unknown, e: StanzaEvent): void {
    const se = err instanceof StanzaError ? err : new StanzaError('internal-server-error');
    if (!(err instanceof StanzaError)) this.log.error({ err }, 'message hook failed');
    if (e.stanza.attrs.type !== 'error') this.bounce(e.stanza, se, e.origin);
  }

  private async settle(waits: Promise<unknown>[], e: StanzaEvent): Promise<void> {
    const results = await Promise.allSettled(waits);
    for (const r of results) if (r.status === 'rejected') e.archiveFailed = true;
  }

  /** Returns what an external route gave back for the message (a hosted room's archive commit): the sender's ack waits for it. */
  private deliverMessage(e: StanzaEvent): Promise<unknown> | undefined {
    const type = messageType(e.stanza);
    const eligible = carbonsEligible(e.stanza).ok;
    const recipientIsSender = e.origin !== undefined && e.to.local === e.from.local && e.to.domain === e.from.domain;
    // Resources of the recipient account that got the message; they matter for the sender's
    // forks only when both are the same account (never two copies to one resource).
    const handledResources = new Set<string>();

    // Recipient side first, so a message to one's own account never also yields a 'sent' copy.
    if (this.hosts.isAccount(e.to)) {
      const sessions = this.registry.byUser(this.hosts.keyOf(e.to)).filter((s) => !s.closed && !e.skipResources?.has(s.resource));
      // A message to one's own bare JID is not echoed to the sending resource (it gets a
      // 'sent' fork if anything); one addressed to the sender's own full JID is delivered.
      const view = recipientIsSender && e.to.isBare() ? sessions.filter((s) => s !== e.origin) : sessions;
      const d = decideIncoming(
        { type, toResource: e.to.isBare() ? undefined : e.to.resource, carbonsEligible: eligible },
        view,
      );
      for (const del of d.deliveries) {
        const s = view.find((v) => v.resource === del.resource);
        if (!s) continue;
        handledResources.add(del.resource);
        this.deliverCopy(e, s, del.shape, e.recipientArchiveId, e.to.bare.toString(), del.reason);
      }
      if (d.offline) {
        this.offlineInOrder(e);
      } else if (d.bounce) {
        this.bounce(e.stanza, new StanzaError(d.bounce), e.origin);
      }
    }
    // To another domain (only local senders get here, see prepareMessage): out it goes now that the
    // sender's copy is archived; a failure bounces to the sender, the archived copy stays.
    const external = !this.hosts.has(e.to.domain) ? this.routeExternal(e.stanza, e.from, e.to, e.origin) : undefined;
    if (e.origin) {
      const senders = this.registry.byUser(this.hosts.keyOf(e.from)).filter((s) => !s.closed);
      for (const del of decideOutgoing({ type, fromResource: e.from.resource, carbonsEligible: eligible }, senders, recipientIsSender ? handledResources : undefined)) {
        const s = senders.find((v) => v.resource === del.resource);
        if (s) this.deliverCopy(e, s, 'sent', e.senderArchiveId, e.from.bare.toString(), del.reason);
      }
      // The MR2 promise (docs/protocol.md §6): an archivable message that was routed is in the
      // sender's archive under its computable id unless the sending stream is told otherwise here.
      const notArchived = e.archiveFailed ? 'storage' : e.senderNotArchived;
      if (notArchived !== undefined && e.origin.mr2 && e.stanza.attrs.id !== undefined) {
        e.origin.send(x('archive-failed', NS.MR2, { id: e.stanza.attrs.id, reason: notArchived }));
      }
    }
    return external;
  }

  /**
   * Offline handling for one recipient account in delivery order. offlineOrBounce awaits a
   * query (does the account exist?); on PostgreSQL the answers for consecutive messages come
   * back on different pool connections, out of order, and the offline queue then held them in
   * the wrong order (and a full queue kept a later message instead of an earlier one).
   */
  private readonly offlineTails = new Map<string, Promise<void>>();

  private offlineInOrder(e: StanzaEvent): void {
    const key = e.to.local;
    const next = (this.offlineTails.get(key) ?? Promise.resolve())
      .then(() => this.offlineOrBounce(e))
      .catch((err: unknown) => this.log.error({ err }, 'offline handling failed'));
    this.offlineTails.set(key, next);
    void next.then(() => {
      if (this.offlineTails.get(key) === next) this.offlineTails.delete(key);
    });
  }

  private async offlineOrBounce(e: StanzaEvent): Promise<void> {
    if (!(await this.userExists(this.hosts.keyOf(e.to)))) {
      this.bounce(e.stanza, new StanzaError('service-unavailable'), e.origin);
      return;
    }
    if (this.hooks.fire('message/offline', e)) return;
    // Nothing stores it for later. An error means that nothing kept the message: one that is in
    // the recipient's archive reaches every device of the recipient through MAM (docs/protocol.md).
    if (e.recipientArchiveId === undefined) this.bounce(e.stanza, new StanzaError('service-unavailable'), e.origin);
  }

  /** Build the copy of the given shape (stanza-id stamped) and send it. */
  private deliverCopy(e: StanzaEvent, s: Session, shape: CopyShape, archiveId: string | undefined, by: string, reason: string): void {
    const copy = buildCopy(e.stanza, shape, s, archiveId, by);
    const ev = { ...e, session: s, copy, shape };
    if (this.hooks.fire('message/deliver', ev)) return;
    this.routed.inc({ reason });
    s.send(ev.copy);
  }

  // ---- presence ------------------------------------------------------

  private routePresence(e: StanzaEvent, broadcast: boolean): void {
    try {
      if (e.origin && this.hooks.fire('presence/out', e, true)) return;
      if (broadcast) return; // presence without 'to' only matters to the presence module
      if (!this.hosts.has(e.to.domain)) {
        this.routeExternal(e.stanza, e.from, e.to, e.origin);
        return;
      }
      if (e.to.local === '') return;
      if (this.hooks.fire('presence/in', e, true)) return;
      // Default (no presence module): deliver to the full JID, or to every available resource.
      if (!e.to.isBare()) {
        const s = this.registry.byFullJid(this.hosts.keyOf(e.to), e.to.resource);
        if (s && !s.closed) s.send(e.stanza);
        return;
      }
      for (const s of this.registry.byUser(this.hosts.keyOf(e.to))) if (s.available && !s.closed) s.send(e.stanza);
    } catch (err) {
      if (!(err instanceof StanzaError)) this.log.error({ err }, 'presence hook failed');
      else if (e.stanza.attrs.type !== 'error') this.bounce(e.stanza, err, e.origin);
    }
  }

  // ---- iq --------------------------------------------------------------

  private routeIq(stanza: Element, from: JID, to: JID | undefined, origin: Session | undefined): void {
    const type = stanza.attrs.type;
    // Policy between accounts (blocking, XEP-0191) before anything else sees it.
    if (to !== undefined && to.local !== '' && this.hooks.fire('iq/in', { stanza, from, to, origin, waits: [] })) return;
    if (type === 'result' || type === 'error') {
      // Replies addressed to the server (or to the account on its behalf) resolve server-originated requests.
      if (to === undefined || this.hosts.has(to.domain) && (to.local === '' || to.isBare())) {
        const key = `${from.toString()}#${stanza.attrs.id}`;
        const p = this.pendingIq.get(key) ?? this.pendingIq.get(`${from.bare.toString()}#${stanza.attrs.id}`);
        if (p) {
          clearTimeout(p.timer);
          this.pendingIq.delete(key);
          p.resolve(stanza);
          return;
        }
        if (to === undefined || to.local === '' ) return;
      }
      if (to && !this.hosts.has(to.domain)) this.routeExternal(stanza, from, to, origin);
      else if (to && !to.isBare()) this.toFullJid(stanza, to, origin);
      return;
    }
    if (type !== 'get' && type !== 'set') {
      this.bounce(stanza, new StanzaError('bad-request', 'IQ type must be get, set, result or error'), origin);
      return;
    }
    const payloads = stanza.elements();
    if (payloads.length !== 1 || stanza.attrs.id === undefined) {
      this.bounce(stanza, new StanzaError('bad-request', 'An IQ get/set has exactly one payload and an id'), origin);
      return;
    }
    const payload = payloads[0] as Element;
    if (to && !this.hosts.has(to.domain)) {
      this.routeExternal(stanza, from, to, origin);
      return;
    }
    if (to && !to.isBare()) {
      this.toFullJid(stanza, to, origin);
      return;
    }
    const target = to ?? from.bare;
    const self = to === undefined || (origin !== undefined && target.local === from.local && target.domain === from.domain && target.local !== '');
    let handler: IqHandler | undefined;
    if (target.local === '') handler = this.iqHandlers.get(`server:${type}:${payload.xmlns}`);
    else {
      handler = this.iqHandlers.get(`account:${type}:${payload.xmlns}`);
      // An IQ without 'to' is handled by the server on behalf of the account (RFC 6120 §10.3.3):
      // server-wide services (disco, ping, version) answer it too.
      if (!handler && to === undefined) handler = this.iqHandlers.get(`server:${type}:${payload.xmlns}`);
    }
    if (!handler) {
      this.bounce(stanza, new StanzaError('service-unavailable'), origin);
      return;
    }
    const ctx: IqContext = { stanza, type, payload, from, to: target, origin, self };
    let result: ReturnType<IqHandler>;
    try {
      result = handler(ctx);
    } catch (err) {
      this.iqFailed(stanza, err, origin);
      return;
    }
    if (result instanceof Promise) {
      result.then(
        (r) => this.iqResult(stanza, r ?? undefined, origin),
        (err: unknown) => this.iqFailed(stanza, err, origin),
      );
    } else {
      this.iqResult(stanza, result ?? undefined, origin);
    }
  }

  private toFullJid(stanza: Element, to: JID, origin: Session | undefined): void {
    const s = this.hosts.has(to.domain) ? this.registry.byFullJid(this.hosts.keyOf(to), to.resource) : undefined;
    if (s && !s.closed) {
      s.send(stanza);
      return;
    }
    // RFC 6121 §8.5.3.2.1: IQ to an unavailable full JID gets service-unavailable.
    if (stanza.attrs.type === 'get' || stanza.attrs.type === 'set') this.bounce(stanza, new StanzaError('service-unavailable'), origin);
  }

  private iqResult(stanza: Element, payload: Element | undefined, origin: Session | undefined): void {
    const reply = x('iq', NS.CLIENT, { type: 'result', id: stanza.attrs.id, to: stanza.attrs.from, from: stanza.attrs.to });
    if (payload) reply.append(payload);
    this.reply(reply, origin);
  }

  private iqFailed(stanza: Element, err: unknown, origin: Session | undefined): void {
    if (err instanceof StanzaError) {
      this.bounce(stanza, err, origin);
      return;
    }
    this.log.error({ err, ns: stanza.elements()[0]?.xmlns }, 'IQ handler failed');
    this.bounce(stanza, new StanzaError('internal-server-error'), origin);
  }

  /** Error reply to the sender of `stanza` (never for error stanzas: no error loops). */
  bounce(stanza: Element, err: StanzaError, origin: Session | undefined): void {
    if (stanza.attrs.type === 'error') return;
    const reply = errorReply(stanza, err);
    if (reply.attrs.from === undefined) delete reply.attrs.from;
    this.reply(reply, origin);
  }

  /** Replies go straight back to the originating session when there is one. */
  private reply(el: Element, origin: Session | undefined): void {
    if (origin && !origin.closed) origin.send(el);
    else this.route(el);
  }

  /**
   * Queue delivery behind the session's previous stanza and behind `waits`.
   * A rejected wait marks the event archiveFailed; the message is still routed.
   */
  private chain(session: Session, waits: Promise<unknown>[], deliver?: () => unknown, e?: StanzaEvent): Promise<void> {
    const prev = session.inboundTail;
    let next: Promise<void>;
    if (waits.length === 0) {
      next = prev.then(() => this.safe(deliver));
    } else {
      // Archived messages are also delivered in archive order across all
      // sessions (deliveryTail): ids are assigned in hook order, so a client
      // that sees id N live has already seen every earlier id, and a catch-up
      // "after N" neither repeats nor skips a message.
      this.archivedPending++;
      next = Promise.all([prev, Promise.allSettled(waits), this.deliveryTail]).then(([, results]) => {
        if (e) for (const r of results) if (r.status === 'rejected') e.archiveFailed = true;
        return this.archivedDone(e, this.safe(deliver));
      });
      this.deliveryTail = next;
    }
    session.inboundTail = next;
    return next;
  }


  private archivedDone(e: StanzaEvent | undefined, r: Promise<void> | undefined): Promise<void> | undefined {
    this.archivedPending--;
    try {
      this.onArchivedDelivered?.(e);
    } catch (err) {
      this.log.error({ err }, 'archived delivery observer failed');
    }
    return r;
  }

  /** Run a delivery; when it returns a promise (an external route's commit), wait for it without ever rejecting. */
  private safe(fn: (() => unknown) | undefined): Promise<void> | undefined {
    if (!fn) return undefined;
    try {
      const r = fn();
      if (r instanceof Promise) return r.then(() => undefined, (err: unknown) => this.log.error({ err }, 'external delivery failed'));
    } catch (err) {
      this.log.error({ err }, 'delivery failed');
    }
    return undefined;
  }
}

/** The copy a given session receives, per shape (protocol.md). */
export function buildCopy(msg: Element, shape: CopyShape, s: Session, archiveId: string | undefined, by: string): Element {
  let inner = msg;
  if (archiveId !== undefined) {
    inner = msg.clone();
    inner.children.push(x('stanza-id', NS.SID, { by, id: archiveId }));
  }
  if (shape === 'plain') return inner;
  return x('message', NS.CLIENT, { from: s.jid.bare.toString(), to: s.jid.toString(), type: msg.attrs.type }, [
    x(shape, NS.CARBONS, {}, [x('forwarded', NS.FORWARD, {}, [inner])]),
  ]);
}
