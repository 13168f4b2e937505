/**
 * The stateful part of RFC 6121: applies the pure decisions of states.ts,
 * items.ts, versioning.ts and presence-rules.ts to storage and sessions.
 *
 * Ordering: every change to one account's roster, and every presence side
 * effect addressed to it, runs in that account's task queue (`run`), so the
 * steps of a subscription handshake reach a client in protocol order
 * (e.g. 'subscribed', then the roster push, then the contact's presence).
 * A task never waits for another account's queue; it only appends to it, so
 * two accounts answering each other at the same moment cannot deadlock.
 *
 * Local deliveries between accounts go through `router.route`, which fires
 * 'presence/in' (where e.g. blocking can drop them) and then lands in this
 * module's inbound handler. Presence and subscriptions to remote contacts
 * go through the router's remote route (s2s, src/s2s/); when their server
 * cannot be reached, an outbound subscription request bounces to the
 * sending session after the user's own roster state was updated.
 */
import { randomBytes } from 'node:crypto';
import type { ModuleApi } from '../../core/module.js';
import type { Session } from '../../core/session.js';
import type { StanzaEvent } from '../../core/events.js';
import type { IqContext } from '../../core/router.js';
import { StanzaError } from '../../core/errors.js';
import { NS } from '../../core/namespaces.js';
import type { Counter } from '../../metrics/metrics.js';
import { JID, tryParseJID } from '../../jid/jid.js';
import { serialize, x, type Element } from '../../xml/element.js';
import { parseXml } from '../../xml/parser.js';
import type { PendingRequest, RosterItem, RosterItemData, RosterStore } from '../../storage/roster.js';
import type { PresenceAuth, RosterApi, RosterChangeEvent } from './api.js';
import { hasFrom, hasTo, inbound, isSubscriptionType, outbound, type ContactState, type SubscriptionType } from './states.js';
import { itemElement, parseRosterSet, removedElement, rosterPush, type ItemLimits } from './items.js';
import { decideRosterGet, formatVersion } from './versioning.js';
import { parsePriority, planBroadcast, presenceKind } from './presence-rules.js';

export interface RosterOptions {
  /** Most items per roster (roster set and subscriptions that would add one get `not-allowed`). */
  maxItems: number;
  /** Most stored pending inbound subscription requests per account (more are dropped). */
  maxPending: number;
  limits: ItemLimits;
}

/** The item part of a state is worth storing as a roster item. */
function visible(s: ContactState): boolean {
  return s.subscription !== 'none' || s.pendingOut || s.approved;
}

function stateOf(item: RosterItem | undefined, pending: boolean): ContactState {
  return {
    subscription: item?.subscription ?? 'none',
    pendingOut: item?.ask ?? false,
    pendingIn: pending && !hasFrom(item?.subscription ?? 'none'),
    approved: item?.approved ?? false,
  };
}

/** A copy of `el` addressed from/to the given JIDs. */
function readdress(el: Element, from: string, to: string | undefined): Element {
  const c = el.clone();
  c.attrs.from = from;
  if (to === undefined) delete c.attrs.to;
  else c.attrs.to = to;
  return c;
}

/** A subscription stanza as the server forwards it: bare JIDs, the original payload (status, nick) kept. */
function subscriptionStanza(type: SubscriptionType, from: string, to: string, original?: Element): Element {
  const el = x('presence', NS.CLIENT, { type, from, to, id: original?.attrs.id });
  if (original) for (const c of original.elements()) el.append(c.clone());
  return el;
}

export class RosterService implements RosterApi, PresenceAuth {
  private readonly queues = new Map<string, Promise<void>>();
  private readonly listeners: Array<(ev: RosterChangeEvent) => void> = [];
  private readonly pushPrefix = `rp-${randomBytes(3).toString('hex')}-`;
  private pushSeq = 0;
  private readonly transitions: Counter;

  constructor(
    private readonly api: ModuleApi,
    private readonly store: RosterStore,
    private readonly opts: RosterOptions,
  ) {
    this.transitions = api.metrics.counter(
      'verona_subscription_transitions_total',
      'Presence subscription stanzas processed, by direction, type and reason (RFC 6121 Appendix A)',
    );
  }

  // ---- task queue ------------------------------------------------------------

  /** Run `fn` after every earlier task of `user`. Never rejects: failures are logged. */
  run(user: string, fn: () => Promise<void> | void): Promise<void> {
    const prev = this.queues.get(user) ?? Promise.resolve();
    const next = prev.then(fn).catch((err: unknown) => this.api.log.error({ err, user }, 'roster task failed'));
    this.queues.set(user, next);
    void next.then(() => {
      if (this.queues.get(user) === next) this.queues.delete(user);
    });
    return next;
  }

  /** Like run, but hands the result (or StanzaError) back to the caller. */
  private call<T>(user: string, fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      void this.run(user, async () => {
        try {
          resolve(await fn());
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  /** The bare JID of an account key (virtual hosts: user@domain keys stay as they are). */
  private bare(user: string): string {
    return this.api.router.hosts.bareOf(user);
  }

  private isLocalAccount(jid: JID): boolean {
    return this.api.router.hosts.isAccount(jid);
  }

  /** Route a server-made stanza to a local account behind that account's earlier tasks (keeps protocol order). */
  private routeOrdered(to: JID, el: Element): void {
    if (this.isLocalAccount(to)) void this.run(this.api.router.hosts.keyOf(to), () => this.api.router.route(el));
    else this.api.router.route(el);
  }

  // ---- storage helpers ---------------------------------------------------------

  private async load(user: string, jid: string): Promise<{ item: RosterItem | undefined; pending: PendingRequest | undefined; state: ContactState }> {
    const [item, pending] = await Promise.all([this.store.get(user, jid), this.store.getPending(user, jid)]);
    return { item, pending, state: stateOf(item, pending !== undefined) };
  }

  /** Store `next` for `jid` (creating the item when it becomes visible), clear a settled pending request, push. */
  private async apply(user: string, jid: string, item: RosterItem | undefined, hadPending: boolean, next: ContactState): Promise<void> {
    if (hadPending && !next.pendingIn) await this.store.removePending(user, jid);
    if (!item && !visible(next)) return;
    if (item && item.subscription === next.subscription && item.ask === next.pendingOut && item.approved === next.approved) return;
    const data: RosterItemData = {
      jid,
      name: item?.name,
      groups: item?.groups ?? [],
      subscription: next.subscription,
      ask: next.pendingOut,
      approved: next.approved,
    };
    if (data.name === undefined) delete data.name;
    const ver = await this.store.put(user, data);
    await this.push(user, itemElement(data), ver);
    this.emit({ owner: user, jid, item: { ...data, ver }, previous: item });
  }

  private pushId(): string {
    return this.pushPrefix + (++this.pushSeq).toString(36);
  }

  /** Roster push (RFC 6121 §2.1.6) to every interested resource of `user`. */
  private async push(user: string, item: Element, counter: number): Promise<void> {
    const v = await this.store.version(user);
    const ver = formatVersion(v.epoch, counter);
    for (const s of this.api.sessions.byUser(user)) {
      if (!s.interested || s.closed) continue;
      s.send(rosterPush(s.jid.toString(), this.pushId(), item, ver));
    }
  }

  private emit(ev: RosterChangeEvent): void {
    for (const l of this.listeners) {
      try {
        l(ev);
      } catch (err) {
        this.api.log.error({ err }, 'roster change listener failed');
      }
    }
  }

  // ---- roster IQs (RFC 6121 §2) -------------------------------------------------

  rosterGet(ctx: IqContext): Promise<Element | undefined> {
    const session = ctx.origin;
    // §2.1.5 / §2.2: only the account itself reads its roster; to others it does not exist.
    if (!ctx.self || !session) throw new StanzaError('service-unavailable');
    session.interested = true;
    const user = session.username;
    const clientVer = ctx.payload.attrs.ver;
    return new Promise((resolve, reject) => {
      void this.run(user, async () => {
        try {
          const version = await this.store.version(user);
          const d = decideRosterGet(clientVer, version);
          if (d.kind === 'current') return resolve(undefined);
          if (d.kind === 'diff') {
            const changes = await this.store.changesSince(user, d.since);
            if (changes) {
              const pushes = [
                ...changes.items.map((i) => ({ ver: i.ver, el: itemElement(i) })),
                ...changes.removed.map((r) => ({ ver: r.ver, el: removedElement(r.jid) })),
              ].sort((a, b) => a.ver - b.ver);
              resolve(undefined);
              // XEP-0237 §2.4: the empty result first, then the changes as pushes. Waiting a
              // turn keeps this account's later pushes behind them.
              await new Promise<void>((r) => setImmediate(r));
              for (const p of pushes) {
                if (session.closed) break;
                session.send(rosterPush(session.jid.toString(), this.pushId(), p.el, formatVersion(version.epoch, p.ver)));
              }
              return;
            }
          }
          const all = await this.store.getAll(user);
          // The version goes out even when the client sent none: that is how a client learns its first
          // version (StanzaJS does exactly this), and clients without versioning ignore it.
          const ver = formatVersion(all.version.epoch, all.version.counter);
          resolve(x('query', NS.ROSTER, { ver }, all.items.map(itemElement)));
        } catch (err) {
          reject(err);
        }
      });
    });
  }

  rosterSet(ctx: IqContext): Promise<undefined> {
    // §2.3.3: a roster set from anyone but the account itself is forbidden.
    if (!ctx.self) throw new StanzaError('forbidden');
    const user = this.api.router.hosts.keyOf(ctx.from);
    const req = parseRosterSet(ctx.payload, this.bare(user), this.opts.limits);
    if (!req.ok) throw new StanzaError(req.condition, req.reason);
    return this.call(user, async () => {
      if (req.op === 'remove') {
        await this.removeItem(user, req.jid);
        return undefined;
      }
      const item = await this.store.get(user, req.jid);
      if (!item && (await this.store.count(user)) >= this.opts.maxItems) {
        throw new StanzaError('not-allowed', `The roster is full (${this.opts.maxItems} items)`);
      }
      // §2.1.2: subscription, ask and approved are the server's; a set changes name and groups only.
      const data: RosterItemData = {
        jid: req.jid,
        name: req.name,
        groups: req.groups,
        subscription: item?.subscription ?? 'none',
        ask: item?.ask ?? false,
        approved: item?.approved ?? false,
      };
      if (data.name === undefined) delete data.name;
      const ver = await this.store.put(user, data);
      await this.push(user, itemElement(data), ver);
      this.emit({ owner: user, jid: req.jid, item: { ...data, ver }, previous: item });
      return undefined;
    });
  }

  /** §2.5.2: removing an item cancels the subscriptions both ways, then pushes the removal. */
  private async removeItem(user: string, jid: string): Promise<void> {
    const { item, pending, state } = await this.load(user, jid);
    if (!item && !pending) throw new StanzaError('item-not-found');
    const contact = tryParseJID(jid);
    const from = this.bare(user);
    if (contact) {
      if (hasTo(state.subscription) || state.pendingOut) this.sendSubscription(contact, subscriptionStanza('unsubscribe', from, jid));
      if (hasFrom(state.subscription) || state.pendingIn) {
        this.sendSubscription(contact, subscriptionStanza('unsubscribed', from, jid));
        if (hasFrom(state.subscription)) this.presenceTo(user, contact, 'unavailable');
      }
    }
    if (pending) await this.store.removePending(user, jid);
    if (item) {
      const ver = await this.store.remove(user, jid);
      if (ver !== undefined) await this.push(user, removedElement(jid), ver);
      this.emit({ owner: user, jid, item: undefined, previous: item });
    }
  }

  /** Local contacts get it through 'presence/in'; remote ones through the router's remote route (s2s). */
  private sendSubscription(_contact: JID, el: Element): void {
    this.api.router.route(el);
  }

  // ---- subscriptions (RFC 6121 §3) ---------------------------------------------------

  private async outboundSubscription(session: Session, contact: JID, type: SubscriptionType, stanza: Element): Promise<void> {
    const user = session.username;
    const jid = contact.toString();
    const { item, pending, state } = await this.load(user, jid);
    const t = outbound(state, type);
    this.transitions.inc({ direction: 'out', type, reason: t.reason });
    if (!item && visible(t.next) && (await this.store.count(user)) >= this.opts.maxItems) {
      this.api.router.bounce(stanza, new StanzaError('not-allowed', `The roster is full (${this.opts.maxItems} items)`), session);
      return;
    }
    // §3.1.2: route first, then the roster push.
    if (t.forward) {
      if (this.api.router.hosts.has(contact.domain)) {
        this.api.router.route(subscriptionStanza(type, this.bare(user), jid, stanza));
      } else {
        // A remote contact (s2s): a failure to reach its server bounces to this session (RFC 6120 §8.3.3.13).
        this.api.router.toRemote(subscriptionStanza(type, this.bare(user), jid, stanza), session);
      }
    }
    if (t.changed) await this.apply(user, jid, item, pending !== undefined, t.next);
    if (t.presence) this.presenceTo(user, contact, t.presence);
  }

  private async inboundSubscription(user: string, from: JID, type: SubscriptionType, stanza: Element): Promise<void> {
    const jid = from.bare.toString();
    const own = this.bare(user);
    if (!(await this.api.storage.accounts.exists(user))) {
      // RFC 6121 §8.5.1: a subscription request to no such user is answered 'unsubscribed'.
      if (type === 'subscribe') this.api.router.route(subscriptionStanza('unsubscribed', own, jid));
      return;
    }
    const { item, pending, state } = await this.load(user, jid);
    const t = inbound(state, type);
    this.transitions.inc({ direction: 'in', type, reason: t.reason });
    const forwarded = subscriptionStanza(type, jid, own, stanza);
    if (type === 'subscribe' && t.next.pendingIn) {
      if (!pending && (await this.store.countPending(user)) >= this.opts.maxPending) {
        this.api.log.warn({ user, from: jid }, 'too many pending subscription requests; dropping one');
        return;
      }
      // §3.1.3: keep the complete request (the newest one) until the user answers it.
      await this.store.addPending(user, jid, serialize(forwarded, ''));
    }
    if (t.forward) {
      // §3.1.6 and friends: deliver first, then the roster push.
      for (const s of this.api.sessions.byUser(user)) {
        if (s.closed) continue;
        // §3.1.3: requests go to available resources; the other steps to every resource that
        // would show them (available or interested, §3.1.6, §3.2.3, §3.3.3).
        if (type === 'subscribe' ? s.available : s.available || s.interested) s.send(forwarded);
      }
    }
    if (t.changed) await this.apply(user, jid, item, pending !== undefined, t.next);
    if (t.autoReply) this.api.router.route(subscriptionStanza('subscribed', own, jid));
    if (t.presence) this.presenceTo(user, from.bare, t.presence);
  }

  /** The current presence ('available') or unavailable of each available resource of `user`, to `contact`. */
  private presenceTo(user: string, contact: JID, kind: 'available' | 'unavailable'): void {
    for (const s of this.api.sessions.byUser(user)) {
      if (!s.available || s.closed) continue;
      const el =
        kind === 'available' && s.presence
          ? readdress(s.presence, s.jid.toString(), contact.toString())
          : x('presence', NS.CLIENT, { type: 'unavailable', from: s.jid.toString(), to: contact.toString() });
      this.routeOrdered(contact, el);
    }
  }

  // ---- presence (RFC 6121 §4) -----------------------------------------------------------

  /** 'presence/out': everything a local client sends. */
  onPresenceOut(e: StanzaEvent): boolean {
    const session = e.origin;
    if (!session) return false;
    const kind = presenceKind(e.stanza.attrs.type);
    const addressed = e.stanza.attrs.to !== undefined;
    const user = session.username;
    if (kind === 'invalid') throw new StanzaError('bad-request', 'Unknown presence type');
    if (isSubscriptionType(kind)) {
      const contact = e.to.bare;
      // Subscribing to oneself or to the server means nothing: dropped.
      const pointless = !addressed || (this.api.router.hosts.has(contact.domain) && (contact.bareString() === this.bare(user) || contact.local === ''));
      if (!pointless) void this.run(user, () => this.outboundSubscription(session, contact, kind, e.stanza));
      return true;
    }
    if (kind === 'probe') {
      // §4.3: probes are the server's business; a client probe of a local account is answered like ours.
      if (addressed && this.isLocalAccount(e.to)) {
        const probe = x('presence', NS.CLIENT, { type: 'probe', from: session.jid.toString(), to: e.to.bare.toString() });
        void this.run(user, () => this.api.router.route(probe));
      }
      return true;
    }
    if (kind === 'error') {
      if (addressed) {
        const el = readdress(e.stanza, session.jid.toString(), e.stanza.attrs.to);
        void this.run(user, () => this.api.router.route(el));
      }
      return true;
    }
    if (!addressed) {
      this.onBroadcast(session, e.stanza, kind);
      return true;
    }
    this.onDirected(session, e.stanza, e.to, kind);
    return true;
  }

  private onBroadcast(session: Session, stanza: Element, kind: 'available' | 'unavailable'): void {
    const wasAvailable = session.available;
    const el = readdress(stanza, session.jid.toString(), undefined);
    // Updated at once: the router's delivery decisions read these.
    if (kind === 'available') {
      session.available = true;
      session.priority = parsePriority(stanza);
      session.presence = el;
    } else {
      session.available = false;
      session.presence = undefined;
    }
    const directed = kind === 'unavailable' ? [...session.directedTo] : [];
    if (kind === 'unavailable') session.directedTo.clear();
    void this.run(session.username, () => this.broadcast(session, el, kind, wasAvailable, directed, true));
  }

  /** §4.6: directed presence is delivered as is and remembered, so that unavailable can undo it. */
  private onDirected(session: Session, stanza: Element, to: JID, kind: 'available' | 'unavailable'): void {
    const target = to.toString();
    const own = to.bareString() === session.jid.bareString();
    if (!own && !(this.api.router.hosts.has(to.domain) && to.local === '')) {
      if (kind === 'available') session.directedTo.add(target);
      else session.directedTo.delete(target);
    }
    const el = readdress(stanza, session.jid.toString(), target);
    void this.run(session.username, () => this.api.router.route(el));
  }

  private async broadcast(
    session: Session,
    el: Element,
    kind: 'available' | 'unavailable',
    wasAvailable: boolean,
    directed: string[],
    fromClient: boolean,
  ): Promise<void> {
    const user = session.username;
    const full = session.jid.toString();
    const items = await this.store.items(user);
    const others = this.api.sessions.byUser(user).filter((s) => s !== session && !s.closed);
    const plan = planBroadcast({
      kind,
      wasAvailable,
      contacts: items,
      directedTo: directed,
      others: others.map((s) => ({ resource: s.resource, available: s.available })),
      fromClient,
    });
    for (const c of plan.contacts) this.api.router.route(readdress(el, full, c));
    for (const d of plan.directed) this.api.router.route(readdress(el, full, d));
    for (const r of plan.ownResources) {
      const s = others.find((o) => o.resource === r);
      if (s) s.send(readdress(el, full, s.jid.toString()));
    }
    if (plan.reflect && !session.closed) session.send(readdress(el, full, full));
    for (const r of plan.ownPresenceTo) {
      const s = others.find((o) => o.resource === r);
      if (s?.presence && !session.closed) session.send(readdress(s.presence, s.jid.toString(), full));
    }
    for (const c of plan.probe) {
      const cj = tryParseJID(c);
      // Remote contacts are probed through their server (s2s).
      if (cj && cj.local !== '') this.api.router.route(x('presence', NS.CLIENT, { type: 'probe', from: full, to: c }));
    }
    if (plan.resendPending) {
      // §3.1.3: unanswered requests go to every resource that becomes available.
      for (const p of await this.store.pending(user)) {
        if (session.closed || !session.available) break;
        try {
          const el = parseXml(p.stanza);
          // Requests imported before the import kept their namespace were stored without one and
          // went out as <presence xmlns=""/> (SM does not count that, the client does).
          if (el.xmlns === '') el.xmlns = NS.CLIENT;
          session.send(el);
        } catch (err) {
          this.api.log.warn({ err, user, from: p.jid }, 'stored subscription request unreadable');
        }
      }
    }
  }

  /** 'session/ended': the resource is gone for good (not merely detached for resumption). */
  onSessionEnded(session: Session): void {
    const wasAvailable = session.available;
    const directed = [...session.directedTo];
    session.available = false;
    session.presence = undefined;
    session.directedTo.clear();
    if (!wasAvailable && directed.length === 0) return;
    const el = x('presence', NS.CLIENT, { type: 'unavailable', from: session.jid.toString() });
    void this.run(session.username, () => this.broadcast(session, el, 'unavailable', wasAvailable, directed, false));
  }

  /** 'presence/in': presence addressed to a local account (from another account or the server). */
  onPresenceIn(e: StanzaEvent): boolean {
    const kind = presenceKind(e.stanza.attrs.type);
    const user = this.api.router.hosts.keyOf(e.to);
    if (isSubscriptionType(kind)) {
      void this.run(user, () => this.inboundSubscription(user, e.from, kind, e.stanza));
      return true;
    }
    if (kind === 'probe') {
      void this.answerProbe(user, e.from).catch((err: unknown) => this.api.log.error({ err }, 'probe failed'));
      return true;
    }
    if (kind === 'invalid') return true;
    this.deliverInbound(e);
    return true;
  }

  /** §8.5.2.1.1 / §8.5.3: presence to the bare JID reaches every available resource; to a full JID, that resource only. */
  private deliverInbound(e: StanzaEvent): void {
    const user = this.api.router.hosts.keyOf(e.to);
    if (!e.to.isBare()) {
      const s = this.api.sessions.byFullJid(user, e.to.resource);
      // A gone resource: available/unavailable/error are dropped (§8.5.3.2.1).
      if (s && !s.closed) s.send(e.stanza);
      return;
    }
    for (const s of this.api.sessions.byUser(user)) if (s.available && !s.closed) s.send(e.stanza);
  }

  /** §4.3.2: a probe of `owner` from `asker` is answered with the presence of each available resource. */
  private async answerProbe(owner: string, asker: JID): Promise<void> {
    const ownBare = this.bare(owner);
    const askerBare = asker.bare.toString();
    if (askerBare !== ownBare) {
      const item = (await this.api.storage.accounts.exists(owner)) ? await this.store.get(owner, askerBare) : undefined;
      if (!item || !hasFrom(item.subscription)) {
        // Not allowed to see it: tell the asker its subscription is gone (its server fixes its roster).
        this.routeOrdered(asker.bare, subscriptionStanza('unsubscribed', ownBare, askerBare));
        return;
      }
    }
    // No available resource: no answer (§4.3.2 allows it); the asker shows the contact offline.
    for (const s of this.api.sessions.byUser(owner)) {
      if (!s.available || s.closed || !s.presence || s.jid.equals(asker)) continue;
      this.api.router.route(readdress(s.presence, s.jid.toString(), asker.toString()));
    }
  }

  // ---- services for other modules -------------------------------------------------------------

  async canSeePresence(owner: string, asker: JID): Promise<boolean> {
    if (asker.bareString() === this.bare(owner)) return true;
    const item = await this.store.get(owner, asker.bare.toString());
    return item !== undefined && hasFrom(item.subscription);
  }

  async subscription(owner: string, contact: JID | string): Promise<RosterItem['subscription'] | undefined> {
    const jid = typeof contact === 'string' ? (tryParseJID(contact)?.bare.toString() ?? contact) : contact.bare.toString();
    return (await this.store.get(owner, jid))?.subscription;
  }

  async presenceSubscribers(owner: string): Promise<string[]> {
    return (await this.store.items(owner)).filter((i) => hasFrom(i.subscription)).map((i) => i.jid);
  }

  async presenceSubscriptions(owner: string): Promise<string[]> {
    return (await this.store.items(owner)).filter((i) => hasTo(i.subscription)).map((i) => i.jid);
  }

  async items(owner: string): Promise<RosterItem[]> {
    return this.store.items(owner);
  }

  onChange(listener: (ev: RosterChangeEvent) => void): void {
    this.listeners.push(listener);
  }

  /** Resolves when every queued task has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.queues.size > 0) await Promise.all([...this.queues.values()]);
  }
}
