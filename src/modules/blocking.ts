/**
 * XEP-0191 Blocking Command (urn:xmpp:blocking).
 *
 * Wiring:
 *   IQ    account get blocklist, set block / unblock (only the account itself)
 *   hooks 'message/out', 'presence/out'  a local client sends to a JID it blocks:
 *                                        <not-acceptable/> + <blocked xmlns='urn:xmpp:blocking:errors'/>
 *         'message/in', 'presence/in'    to an account that blocks the sender: messages bounce with
 *                                        <service-unavailable/>, presence is dropped silently; stanzas the
 *                                        server sends on behalf of an account to a JID it blocks are dropped
 *                                        (presence broadcasts, probe answers)
 *         'iq/in'                        the same for IQs (get/set bounce, result/error are dropped)
 *   service 'blocking' (BlockingService)
 *
 * The hooks decide synchronously, so every non-empty blocklist is loaded at
 * start and kept in memory; the store is written through before the memory
 * copy changes. JIDs match as XEP-0191 §"JID matching" (XEP-0016 §2.1) says:
 * an item blocks that exact JID, a bare item every resource of it, a domain
 * item the domain and everything at it.
 *
 * Presence: blocking a contact sends it unavailable presence from each
 * available resource (when it could see the user's presence); unblocking sends
 * current presence again and probes the contact. Both go through the roster
 * module's 'roster' service (when it is not loaded, the blocklist still works,
 * without these notifications). Besides what the XEP asks, the user's own
 * resources get unavailable presence from a blocked local contact, since they
 * will hear nothing more from it.
 *
 * Options (moduleOptions.blocking): maxItems (1000) — most JIDs on one blocklist.
 */
import { JID, parseJID, tryParseJID } from '../jid/jid.js';
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { PRIORITY, type StanzaEvent } from '../core/events.js';
import { StanzaError } from '../core/errors.js';
import type { ModuleApi, VeronaModule } from '../core/module.js';
import type { IqContext } from '../core/router.js';
import type { Session } from '../core/session.js';
import { MemoryBlocklistStore, type BlocklistStore } from '../storage/blocklist.js';
import type { RosterApi } from './roster/api.js';

export const NS_BLOCKING = NS.BLOCKING;
export const NS_BLOCKING_ERRORS = 'urn:xmpp:blocking:errors';
const MODULE = 'blocking';

export interface BlockingService {
  /** Does account `owner` block `jid`? */
  blocks(owner: string, jid: JID): boolean;
  /** The account is gone: drop its list from memory (its rows go with deleteUserData). */
  forget(owner: string): void;
}

export interface BlockingOptions {
  maxItems: number;
}

export function blockingOptions(options: Record<string, unknown>): BlockingOptions {
  const v = options.maxItems;
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) {
    throw new Error(`moduleOptions.blocking.maxItems must be a positive integer (got ${JSON.stringify(v)})`);
  }
  for (const k of Object.keys(options)) {
    if (k !== 'maxItems') throw new Error(`moduleOptions.blocking.${k}: unknown option (known: maxItems)`);
  }
  return { maxItems: (v as number | undefined) ?? 1000 };
}

/**
 * XEP-0016 §2.1 matching: the JID itself (full or bare), its bare JID, and
 * its domain. A `domain/resource` item matches only that JID (no localpart),
 * which the first lookup covers.
 */
export function isBlocked(list: ReadonlySet<string> | undefined, jid: JID): boolean {
  if (list === undefined || list.size === 0) return false;
  if (list.has(jid.toString())) return true;
  if (jid.local !== '' && jid.resource !== '' && list.has(jid.bareString())) return true;
  return list.has(jid.domain);
}

/** The error a user gets for sending to a JID it blocks (XEP-0191 §3.3). */
export function blockedError(): StanzaError {
  return new StanzaError('not-acceptable', undefined, 'cancel', x('blocked', NS_BLOCKING_ERRORS));
}

/** Prepared form of a JID an item names; throws jid-malformed. */
function itemJid(item: Element): string {
  const raw = item.attrs.jid;
  if (raw === undefined) throw new StanzaError('jid-malformed', 'An item needs a jid attribute');
  const j = tryParseJID(raw);
  if (!j) throw new StanzaError('jid-malformed', `Not a valid JID: ${raw}`);
  return j.toString();
}

function items(jids: readonly string[]): Element[] {
  return jids.map((j) => x('item', NS_BLOCKING, { jid: j }));
}

function readdress(el: Element, from: string, to: string): Element {
  const c = el.clone();
  c.attrs.from = from;
  c.attrs.to = to;
  return c;
}

export class Blocking implements BlockingService {
  private readonly lists = new Map<string, Set<string>>();
  /** Per-account task chain: requests of one account apply (and push) in order. */
  private readonly queues = new Map<string, Promise<unknown>>();
  /** Stanzas the module itself sends that must pass its own hooks (unavailable on block). */
  private readonly exempt = new WeakSet<Element>();
  private pushIds = 0;

  constructor(
    private readonly api: ModuleApi,
    private readonly store: BlocklistStore,
    private readonly opts: BlockingOptions,
  ) {}

  async load(): Promise<void> {
    for (const [u, jids] of await this.store.all()) this.lists.set(u, new Set(jids));
  }

  // ---- BlockingService ------------------------------------------------------------------

  blocks(owner: string, jid: JID): boolean {
    return isBlocked(this.lists.get(owner), jid);
  }

  forget(owner: string): void {
    this.lists.delete(owner);
  }

  // ---- decisions used by the hooks -----------------------------------------------------------

  private isAccount(j: JID): boolean {
    return this.api.router.hosts.isAccount(j);
  }

  private sameAccount(a: JID, b: JID): boolean {
    return a.local === b.local && a.domain === b.domain;
  }

  /** `to` is an account here that blocks `from`. */
  inboundBlocked(from: JID, to: JID): boolean {
    return this.isAccount(to) && !this.sameAccount(from, to) && this.blocks(this.api.router.hosts.keyOf(to), from);
  }

  /** `from` is an account here that blocks `to`. */
  outboundBlocked(from: JID, to: JID): boolean {
    return this.isAccount(from) && !this.sameAccount(from, to) && this.blocks(this.api.router.hosts.keyOf(from), to);
  }

  onMessageOut(e: StanzaEvent): boolean | void {
    if (!e.origin || this.lists.size === 0) return;
    if (this.outboundBlocked(e.from, e.to)) {
      if (e.stanza.attrs.type === 'error') return true;
      throw blockedError();
    }
  }

  onMessageIn(e: StanzaEvent): boolean | void {
    if (this.lists.size === 0) return;
    if (this.inboundBlocked(e.from, e.to)) {
      // §3.2: the contact gets service-unavailable (as if the user did not exist); errors and
      // headlines are never answered with an error.
      const type = e.stanza.attrs.type;
      if (type === 'error' || type === 'headline') return true;
      throw new StanzaError('service-unavailable');
    }
    // Sent by the server on behalf of a user (the client path was checked in 'message/out').
    if (this.outboundBlocked(e.from, e.to)) return true;
  }

  onPresenceOut(e: StanzaEvent): boolean | void {
    if (!e.origin || e.stanza.attrs.to === undefined || this.lists.size === 0) return;
    if (this.outboundBlocked(e.from, e.to)) {
      if (e.stanza.attrs.type === 'error') return true;
      throw blockedError();
    }
  }

  onPresenceIn(e: StanzaEvent): boolean | void {
    if (this.lists.size === 0) return;
    // §3.2: presence from a blocked JID is dropped without an answer; presence the server sends on
    // the user's behalf (broadcasts, probe answers, subscription steps) never reaches a blocked JID,
    // except the unavailable presence the block itself sends.
    if (this.inboundBlocked(e.from, e.to)) return true;
    if (!this.exempt.has(e.stanza) && this.outboundBlocked(e.from, e.to)) return true;
  }

  onIqIn(e: StanzaEvent): boolean | void {
    if (this.lists.size === 0) return;
    const type = e.stanza.attrs.type;
    const request = type === 'get' || type === 'set';
    if (e.origin && this.outboundBlocked(e.from, e.to)) {
      if (request) this.api.router.bounce(e.stanza, blockedError(), e.origin);
      return true;
    }
    if (this.inboundBlocked(e.from, e.to)) {
      if (request) this.api.router.bounce(e.stanza, new StanzaError('service-unavailable'), e.origin);
      return true;
    }
    if (!e.origin && this.outboundBlocked(e.from, e.to)) return true;
  }

  // ---- IQ handlers -------------------------------------------------------------------------

  private run<T>(user: string, task: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(user) ?? Promise.resolve();
    const next = prev.then(task, task);
    const tail = next.catch(() => undefined);
    this.queues.set(user, tail);
    void tail.then(() => {
      if (this.queues.get(user) === tail) this.queues.delete(user);
    });
    return next;
  }

  get(ctx: IqContext): Element {
    if (!ctx.self || !ctx.origin) throw new StanzaError('service-unavailable');
    if (ctx.payload.name !== 'blocklist') throw new StanzaError('bad-request', 'Expected <blocklist/>');
    // §3.1: a resource that asked for the list gets the pushes from now on.
    ctx.origin.data.set(MODULE, true);
    const list = [...(this.lists.get(ctx.origin.username) ?? [])].sort();
    return x('blocklist', NS_BLOCKING, {}, items(list));
  }

  async set(ctx: IqContext): Promise<undefined> {
    if (!ctx.self || !ctx.origin) throw new StanzaError('forbidden');
    const user = ctx.origin.username;
    const p = ctx.payload;
    if (p.name !== 'block' && p.name !== 'unblock') throw new StanzaError('bad-request', 'Expected <block/> or <unblock/>');
    const jids = [...new Set(p.getChildren('item', NS_BLOCKING).map(itemJid))];
    if (p.name === 'block') {
      // §3.2: a block request without items is an error (an empty unblock means "everything").
      if (jids.length === 0) throw new StanzaError('bad-request', 'A block request needs at least one item');
      await this.run(user, () => this.block(user, jids));
    } else {
      await this.run(user, () => this.unblock(user, jids));
    }
    return undefined;
  }

  private async block(user: string, jids: string[]): Promise<void> {
    const cur = this.lists.get(user);
    const fresh = jids.filter((j) => !cur?.has(j));
    if ((cur?.size ?? 0) + fresh.length > this.opts.maxItems) {
      throw new StanzaError('not-allowed', `The blocklist is full (${this.opts.maxItems} items)`);
    }
    const added = fresh.length > 0 ? await this.store.add(user, fresh) : [];
    if (added.length > 0) {
      let set = this.lists.get(user);
      if (!set) this.lists.set(user, (set = new Set()));
      for (const j of added) set.add(j);
    }
    this.push(user, x('block', NS_BLOCKING, {}, items(jids)));
    if (added.length > 0) await this.afterBlock(user, added);
  }

  private async unblock(user: string, jids: string[]): Promise<void> {
    const removed = jids.length === 0 ? await this.store.clear(user) : await this.store.remove(user, jids);
    const set = this.lists.get(user);
    if (set) {
      for (const j of removed) set.delete(j);
      if (set.size === 0) this.lists.delete(user);
    }
    // §3.3/§3.4: the push names what was asked (an empty <unblock/> for "everything").
    this.push(user, x('unblock', NS_BLOCKING, {}, items(jids)));
    if (removed.length > 0) await this.afterUnblock(user, removed);
  }

  /** §3.2: every resource that requested the blocklist gets the change. */
  private push(user: string, payload: Element): void {
    for (const s of this.api.sessions.byUser(user)) {
      if (s.closed || s.data.get(MODULE) !== true) continue;
      const id = `block-push-${++this.pushIds}`;
      s.send(x('iq', NS.CLIENT, { type: 'set', id, to: s.jid.toString() }, [payload.clone()]));
    }
  }

  // ---- presence side effects ------------------------------------------------------------------

  private roster(): RosterApi | undefined {
    return this.api.service<RosterApi>('roster');
  }

  private available(user: string): Session[] {
    return this.api.sessions.byUser(user).filter((s) => s.available && !s.closed);
  }

  /**
   * Who gets the user's presence, narrowed to the JIDs an item names: the
   * contacts with a subscription to it (the full JID itself for a full-JID
   * item) and the JIDs it sent directed presence to.
   */
  private async presenceTargets(user: string, item: string, sessions: Session[]): Promise<string[]> {
    const one = new Set([item]);
    const itemJ = parseJID(item);
    const out = new Set<string>();
    const roster = this.roster();
    for (const sub of roster ? await roster.presenceSubscribers(user) : []) {
      const c = tryParseJID(sub);
      if (!c) continue;
      if (!itemJ.isBare() && itemJ.bareString() === c.toString()) out.add(item);
      else if (isBlocked(one, c)) out.add(c.toString());
    }
    for (const s of sessions) {
      for (const d of s.directedTo) {
        const dj = tryParseJID(d);
        if (dj && isBlocked(one, dj)) out.add(d);
      }
    }
    return [...out];
  }

  /** Local contacts whose presence the user sees (subscription to/both) that an item names. */
  private async seenContacts(user: string, item: string): Promise<JID[]> {
    const roster = this.roster();
    if (!roster) return [];
    const one = new Set([item]);
    const out: JID[] = [];
    for (const sub of await roster.presenceSubscriptions(user)) {
      const c = tryParseJID(sub);
      if (c && this.isAccount(c) && (isBlocked(one, c) || parseJID(item).bare.equals(c))) out.push(c);
    }
    return out;
  }

  private async afterBlock(user: string, added: string[]): Promise<void> {
    const sessions = this.available(user);
    if (sessions.length === 0) return;
    for (const item of added) {
      const one = new Set([item]);
      // §3.2: the contact stops seeing the user: unavailable from each available resource.
      for (const target of await this.presenceTargets(user, item, sessions)) {
        for (const s of sessions) {
          const el = x('presence', NS.CLIENT, { type: 'unavailable', from: s.jid.toString(), to: target });
          this.exempt.add(el);
          this.api.router.route(el);
        }
      }
      // And the user's resources stop showing the contact as online.
      for (const c of await this.seenContacts(user, item)) {
        for (const cs of this.api.sessions.byUser(this.api.router.hosts.keyOf(c))) {
          if (!cs.available || cs.closed || !isBlocked(one, cs.jid)) continue;
          for (const s of sessions) {
            if (!s.closed) s.send(x('presence', NS.CLIENT, { type: 'unavailable', from: cs.jid.toString(), to: s.jid.toString() }));
          }
        }
      }
    }
  }

  private async afterUnblock(user: string, removed: string[]): Promise<void> {
    const sessions = this.available(user);
    if (sessions.length === 0) return;
    for (const item of removed) {
      // §3.3: the contact gets the user's current presence again (when it may see it)...
      for (const target of await this.presenceTargets(user, item, [])) {
        for (const s of sessions) {
          if (s.presence && !this.blocks(user, parseJID(target))) this.api.router.route(readdress(s.presence, s.jid.toString(), target));
        }
      }
      // ...and the user learns the contact's presence again by probing it.
      for (const c of await this.seenContacts(user, item)) {
        if (this.blocks(user, c)) continue; // still blocked by another item (e.g. its domain)
        for (const s of sessions) {
          this.api.router.route(x('presence', NS.CLIENT, { type: 'probe', from: s.jid.toString(), to: c.toString() }));
        }
      }
    }
  }
}

export const blockingModule: VeronaModule = {
  name: MODULE,
  async load(api) {
    const opts = blockingOptions(api.options);
    let store: BlocklistStore | undefined = api.storage.blocklist;
    if (!store) {
      api.log.warn('storage backend has no blocklist store; blocklists are kept in memory only');
      store = new MemoryBlocklistStore();
    }
    const b = new Blocking(api, store, opts);
    await b.load();

    // Conversations and others look for the feature on the server (XEP-0191 §4).
    api.discoFeature(NS_BLOCKING);
    api.iq('account', 'get', NS_BLOCKING, (ctx) => b.get(ctx));
    api.iq('account', 'set', NS_BLOCKING, (ctx) => b.set(ctx));

    api.hook('message/out', (e) => b.onMessageOut(e), PRIORITY.BLOCKING);
    api.hook('message/in', (e) => b.onMessageIn(e), PRIORITY.BLOCKING);
    api.hook('presence/out', (e) => b.onPresenceOut(e), PRIORITY.BLOCKING);
    api.hook('presence/in', (e) => b.onPresenceIn(e), PRIORITY.BLOCKING);
    api.hook('iq/in', (e) => b.onIqIn(e), PRIORITY.BLOCKING);
    api.provide('blocking', b satisfies BlockingService);
  },
};
