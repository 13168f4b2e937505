/**
 * The stateful part of PEP (XEP-0163 1.2 on XEP-0060 1.26): applies the pure
 * decisions of decide.ts and config.ts to the pubsub store, the sessions and
 * the router.
 *
 * Ordering: every change to one account's nodes runs in that account's task
 * queue (`run`), so two publishes from two resources are stored, answered and
 * notified in one order, and an auto-create cannot race another. Notifications
 * are computed inside the task and sent on the next turn of the event loop,
 * after the IQ result of the request that caused them.
 *
 * Who is notified (XEP-0163 §4): the owner's resources and the resources of
 * accounts that may see its presence, when available, when their caps ask for
 * NODE+notify, and when the access model lets them read the node. Caps are
 * learnt from broadcast presence (<c/>, XEP-0115) and resolved by CapsCache.
 */
import { randomBytes } from 'node:crypto';
import type { ModuleApi } from '../../core/module.js';
import type { Session } from '../../core/session.js';
import type { StanzaEvent } from '../../core/events.js';
import type { IqContext } from '../../core/router.js';
import { StanzaError, type StanzaErrorCondition } from '../../core/errors.js';
import { NS } from '../../core/namespaces.js';
import { JID, tryParseJID } from '../../jid/jid.js';
import { serialize, x, type Element } from '../../xml/element.js';
import { parseXml } from '../../xml/parser.js';
import type { Affiliation, NodeConfig, PubsubItem, PubsubNode, PubsubStore } from '../../storage/pubsub.js';
import type { PresenceAuth, RosterApi, RosterChangeEvent } from '../roster/api.js';
import type { BlockingService } from '../blocking.js';
import type { Counter } from '../../metrics/metrics.js';
import { CapsCache, notifyNodes, parseCaps, type CapsAnnouncement } from './caps.js';
import { configForm, defaultConfig, keepCount, NS_NODE_CONFIG, NS_PUBLISH_OPTIONS, parseConfigFields, readForm, unmetPrecondition } from './config.js';
import { accessDecision, newInterests, notificationTargets, sendLastItem, type Candidate, type LastItemTrigger, type Relation } from './decide.js';

export const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
export const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';
export const NS_PUBSUB_EVENT = 'http://jabber.org/protocol/pubsub#event';
export const NS_PUBSUB_ERRORS = 'http://jabber.org/protocol/pubsub#errors';

export interface PepOptions {
  /** What max_items 'max' means, and the most a node may keep. */
  maxItems: number;
  /** max_items of a node created without saying (Prosody and most clients assume 1). */
  defaultMaxItems: number | 'max';
  /** Most nodes per account. */
  maxNodes: number;
  /** Most verified caps kept in memory. */
  capsCacheSize: number;
  /** How long the server waits for a client's disco#info answer. */
  capsTimeoutMs: number;
}

/** PEP's per-session state (Session.data under 'pep'). */
interface SessionState {
  /** Available presence sent and not withdrawn (tracked here so PEP works without the roster module too). */
  available: boolean;
  /** The caps of the last broadcast presence. */
  caps: CapsAnnouncement | undefined;
  /** Nodes it asks notifications for; undefined until its caps are resolved. */
  notify: Set<string> | undefined;
  /** Bumped by every presence, so that a slow caps answer for an older presence is ignored. */
  gen: number;
}

/** XEP-0060 error: a stanza error with an optional pubsub#errors condition. */
export function pubsubError(condition: StanzaErrorCondition, app?: string, attrs?: Record<string, string>, text?: string): StanzaError {
  return new StanzaError(condition, text, undefined, app ? x(app, NS_PUBSUB_ERRORS, attrs) : undefined);
}

const unsupported = (feature: string): StanzaError => pubsubError('feature-not-implemented', 'unsupported', { feature });

const MAX_NODE_NAME = 1023;

function nodeName(el: Element): string {
  const node = el.attrs.node;
  if (node === undefined || node === '') throw pubsubError('bad-request', 'nodeid-required');
  if (node.length > MAX_NODE_NAME) throw pubsubError('not-acceptable', undefined, undefined, 'Node name too long');
  return node;
}

function attrBool(v: string | undefined): boolean | undefined {
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return undefined;
}

/** A change an account itself made to one of its nodes (conversions such as bookmarks and avatars watch these). */
export type PepChange =
  | { owner: string; node: string; kind: 'publish'; id: string; payload: Element }
  | { owner: string; node: string; kind: 'retract'; ids: string[] }
  | { owner: string; node: string; kind: 'delete' | 'purge' };

export class PepService {
  /** Called after a client's change has been stored and notified; never for serverPublish/serverRetract. */
  private readonly changeListeners: Array<(c: PepChange) => void> = [];
  private readonly queues = new Map<string, Promise<void>>();
  private readonly idPrefix = randomBytes(4).toString('hex');
  private seq = 0;
  private rosterListening = false;
  private readonly notifications: Counter;
  private readonly capsOutcomes: Counter;
  readonly caps: CapsCache;

  constructor(
    private readonly api: ModuleApi,
    private readonly store: PubsubStore,
    private readonly opts: PepOptions,
  ) {
    this.notifications = api.metrics.counter('verona_pep_notifications_total', 'PEP event notifications sent, by kind and reason');
    this.capsOutcomes = api.metrics.counter('verona_caps_lookups_total', 'Entity capabilities lookups (XEP-0115), by outcome');
    this.caps = new CapsCache(
      async (to, node) => {
        const iq = x('iq', NS.CLIENT, { type: 'get', to, id: this.nextId('caps') }, [x('query', NS.DISCO_INFO, { node })]);
        return this.api.router.request(iq, this.opts.capsTimeoutMs);
      },
      store,
      { maxEntries: opts.capsCacheSize },
      (msg, extra) => this.api.log.debug(extra, msg),
    );
    this.caps.onOutcome = (outcome) => this.capsOutcomes.inc({ outcome });
  }

  private nextId(kind: string): string {
    return `${kind}-${this.idPrefix}-${(++this.seq).toString(36)}`;
  }

  // ---- task queue ------------------------------------------------------------

  /** Run `fn` after every earlier task of `owner`; hands the result or error back. */
  private run<T>(owner: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.queues.get(owner) ?? Promise.resolve();
    const result = prev.then(fn);
    const tail = result.then(
      () => undefined,
      () => undefined,
    );
    this.queues.set(owner, tail);
    void tail.then(() => {
      if (this.queues.get(owner) === tail) this.queues.delete(owner);
    });
    return result;
  }

  onChange(fn: (c: PepChange) => void): void {
    this.changeListeners.push(fn);
  }

  private changed(c: PepChange): void {
    for (const fn of this.changeListeners) {
      try {
        fn(c);
      } catch (err) {
        this.api.log.error({ err, node: c.node }, 'PEP change listener failed');
      }
    }
  }

  /** The items of a node, oldest first (empty when there is no such node). */
  async readItems(owner: string, name: string): Promise<PubsubItem[]> {
    return this.run(owner, () => this.store.items(owner, name));
  }

  /**
   * Publish on the account's behalf (a conversion keeping two formats in step):
   * creates the node with `config` when missing, stores the item and notifies
   * like a publish by the account, but fires no change listener.
   */
  serverPublish(owner: string, name: string, id: string, payload: Element, config: Partial<NodeConfig>): Promise<void> {
    return this.run(owner, async () => {
      let node = await this.store.getNode(owner, name);
      if (!node) node = await this.createChecked(owner, name, { ...defaultConfig(this.opts.defaultMaxItems), ...config });
      const rec: PubsubItem = { id, publisher: this.bare(owner), publishedAt: Date.now(), payload: serialize(payload, '') };
      const keep = keepCount(node.config, this.opts.maxItems);
      if (keep > 0) await this.store.putItem(owner, name, rec, keep);
      const event = x('event', NS_PUBSUB_EVENT, {}, [x('items', NS_PUBSUB_EVENT, { node: name }, [this.itemElement(rec, node.config.deliverPayloads)])]);
      await this.notify(owner, node, 'publish', event);
    });
  }

  /** Retract on the account's behalf (see serverPublish). */
  serverRetract(owner: string, name: string, ids: string[]): Promise<void> {
    return this.run(owner, async () => {
      const node = await this.store.getNode(owner, name);
      if (!node) return;
      const removed: string[] = [];
      for (const id of ids) if (await this.store.retract(owner, name, id)) removed.push(id);
      if (removed.length > 0 && node.config.notifyRetract) {
        const items = x('items', NS_PUBSUB_EVENT, { node: name }, removed.map((id) => x('retract', NS_PUBSUB_EVENT, { id })));
        await this.notify(owner, node, 'retract', x('event', NS_PUBSUB_EVENT, {}, [items]));
      }
    });
  }

  /** Resolves when every queued task has finished (tests, shutdown). */
  async idle(): Promise<void> {
    while (this.queues.size > 0) await Promise.all([...this.queues.values()]);
  }

  // ---- relations ---------------------------------------------------------------

  /** The bare JID of an account key (virtual hosts, src/core/vhosts.ts). */
  private bare(owner: string): string {
    return this.api.router.hosts.bareOf(owner);
  }

  private presenceAuth(): PresenceAuth | undefined {
    return this.api.service<PresenceAuth>('presence-auth');
  }

  private roster(): RosterApi | undefined {
    const r = this.api.service<RosterApi>('roster');
    if (r && !this.rosterListening) {
      this.rosterListening = true;
      r.onChange((ev) => this.onRosterChange(ev));
    }
    return r;
  }

  private isOwner(owner: string, jid: JID): boolean {
    return jid.bareString() === this.bare(owner);
  }

  /** The node's affiliation of `jid`; a JID the owner blocks (XEP-0191) counts as an outcast. */
  private affiliation(owner: string, node: PubsubNode | undefined, jid: JID): Affiliation | undefined {
    if (this.api.service<BlockingService>('blocking')?.blocks(owner, jid)) return 'outcast';
    return node?.affiliations[jid.bare.toString()];
  }

  /** The asker's relation to `owner` (without the roster module, only the owner sees presence). */
  private async relation(owner: string, asker: JID, node: PubsubNode | undefined): Promise<Relation> {
    const isOwner = this.isOwner(owner, asker);
    let canSeePresence = isOwner;
    if (!isOwner) {
      const auth = this.presenceAuth();
      canSeePresence = auth ? await auth.canSeePresence(owner, asker) : false;
    }
    return { isOwner, canSeePresence, affiliation: isOwner ? undefined : this.affiliation(owner, node, asker) };
  }

  private async checkAccess(owner: string, asker: JID, node: PubsubNode): Promise<void> {
    const d = accessDecision(node.config.accessModel, await this.relation(owner, asker, node));
    if (d.allowed) return;
    if (d.reason === 'presence-subscription-required') throw pubsubError('not-authorized', 'presence-subscription-required');
    if (d.reason === 'closed-node') throw pubsubError('not-allowed', 'closed-node');
    throw new StanzaError('forbidden');
  }

  private async existingAccount(owner: string): Promise<void> {
    if (!(await this.api.storage.accounts.exists(owner))) throw new StanzaError('service-unavailable');
  }

  private requireOwner(owner: string, ctx: IqContext): void {
    if (!this.isOwner(owner, ctx.from)) throw new StanzaError('forbidden');
  }

  private async requireNode(owner: string, name: string): Promise<PubsubNode> {
    const node = await this.store.getNode(owner, name);
    if (!node) throw new StanzaError('item-not-found');
    return node;
  }

  // ---- session state -------------------------------------------------------------

  private state(s: Session): SessionState {
    let st = s.getData<SessionState>('pep');
    if (!st) {
      st = { available: false, caps: undefined, notify: undefined, gen: 0 };
      s.data.set('pep', st);
    }
    return st;
  }

  /** Resources that could get notifications of `owner`'s nodes: its own, and those of its presence subscribers. */
  private async candidates(owner: string, node: PubsubNode): Promise<Candidate[]> {
    const out: Candidate[] = [];
    const add = (s: Session, rel: Relation): void => {
      if (s.closed) return;
      const st = this.state(s);
      out.push({ jid: s.jid.toString(), available: st.available, notify: st.notify, relation: rel });
    };
    for (const s of this.api.sessions.byUser(owner)) add(s, { isOwner: true, canSeePresence: true, affiliation: undefined });
    const roster = this.roster();
    const subscribers = roster ? await roster.presenceSubscribers(owner) : [];
    for (const b of subscribers) {
      const j = tryParseJID(b);
      if (!j || !this.api.router.hosts.isAccount(j) || j.bareString() === this.bare(owner)) continue;
      for (const s of this.api.sessions.byUser(this.api.router.hosts.keyOf(j))) add(s, { isOwner: false, canSeePresence: true, affiliation: this.affiliation(owner, node, s.jid) });
    }
    return out;
  }

  private eventMessage(owner: string, to: string, config: NodeConfig, event: Element, delay?: number): Element {
    const msg = x('message', NS.CLIENT, { from: this.bare(owner), to, type: config.notificationType, id: this.nextId('pep') }, [event]);
    if (delay !== undefined) msg.append(x('delay', NS.DELAY, { from: this.bare(owner), stamp: new Date(delay).toISOString() }));
    return msg;
  }

  /** Compute the targets now; send on the next turn (after the IQ result). */
  private async notify(owner: string, node: PubsubNode, kind: string, event: Element): Promise<void> {
    const { targets } = notificationTargets(node.node, node.config, await this.candidates(owner, node));
    if (targets.length === 0) return;
    const msgs = targets.map((t) => {
      this.notifications.inc({ kind, reason: t.reason });
      return this.eventMessage(owner, t.jid, node.config, event.clone());
    });
    setImmediate(() => {
      for (const m of msgs) this.api.router.route(m);
    });
  }

  private itemElement(item: PubsubItem, withPayload: boolean): Element {
    const el = x('item', NS_PUBSUB_EVENT, { id: item.id });
    if (withPayload) el.append(parseXml(item.payload));
    return el;
  }

  // ---- pubsub#get -----------------------------------------------------------------

  async pubsubGet(ctx: IqContext): Promise<Element> {
    const owner = this.api.router.hosts.keyOf(ctx.to);
    await this.existingAccount(owner);
    const children = ctx.payload.elements();
    const action = children[0];
    if (!action || children.length !== 1) throw new StanzaError('bad-request');
    switch (action.name) {
      case 'items':
        return this.retrieveItems(owner, ctx.from, action);
      case 'affiliations': {
        // XEP-0060 §5.7: the requesting entity's own affiliations with this service's nodes.
        const mine = x('affiliations', NS_PUBSUB);
        const asker = ctx.from.bare.toString();
        for (const n of await this.store.nodes(owner)) {
          if (action.attrs.node !== undefined && n.node !== action.attrs.node) continue;
          const aff = this.isOwner(owner, ctx.from) ? 'owner' : n.affiliations[asker];
          if (aff) mine.append(x('affiliation', NS_PUBSUB, { node: n.node, affiliation: aff }));
        }
        return x('pubsub', NS_PUBSUB, {}, [mine]);
      }
      case 'subscriptions':
        // PEP subscriptions are implicit (presence + caps), never stored: none to list.
        return x('pubsub', NS_PUBSUB, {}, [x('subscriptions', NS_PUBSUB)]);
      default:
        throw unsupported(action.name === 'options' ? 'subscription-options' : 'retrieve-items');
    }
  }

  private async retrieveItems(owner: string, asker: JID, action: Element): Promise<Element> {
    const name = nodeName(action);
    const node = await this.requireNode(owner, name);
    await this.checkAccess(owner, asker, node);
    const ids = action.getChildren('item', NS_PUBSUB).map((i) => i.attrs.id).filter((id): id is string => id !== undefined && id !== '');
    let max: number | undefined;
    if (action.attrs.max_items !== undefined) {
      if (!/^[0-9]{1,9}$/.test(action.attrs.max_items)) throw new StanzaError('bad-request', 'max_items must be a non-negative integer');
      max = Number(action.attrs.max_items);
    }
    const items = await this.store.items(owner, name, { ids: ids.length > 0 ? ids : undefined, max });
    // Asking for ids that are all gone is asking for something that does not exist (XEP-0060 §6.5.8).
    if (ids.length > 0 && items.length === 0) throw new StanzaError('item-not-found');
    const out = x('items', NS_PUBSUB, { node: name });
    for (const it of items) out.append(x('item', NS_PUBSUB, { id: it.id }, [parseXml(it.payload)]));
    return x('pubsub', NS_PUBSUB, {}, [out]);
  }

  // ---- pubsub#set ------------------------------------------------------------------

  async pubsubSet(ctx: IqContext): Promise<Element | undefined> {
    const owner = this.api.router.hosts.keyOf(ctx.to);
    await this.existingAccount(owner);
    const publish = ctx.payload.getChild('publish', NS_PUBSUB);
    if (publish) {
      this.requireOwner(owner, ctx);
      return this.publish(owner, publish, ctx.payload.getChild('publish-options', NS_PUBSUB));
    }
    const retract = ctx.payload.getChild('retract', NS_PUBSUB);
    if (retract) {
      this.requireOwner(owner, ctx);
      return this.retract(owner, retract);
    }
    const create = ctx.payload.getChild('create', NS_PUBSUB);
    if (create) {
      this.requireOwner(owner, ctx);
      return this.create(owner, create, ctx.payload.getChild('configure', NS_PUBSUB));
    }
    const first = ctx.payload.elements()[0];
    if (first?.name === 'subscribe' || first?.name === 'unsubscribe') throw unsupported('subscribe');
    throw new StanzaError('bad-request');
  }

  /** A configuration patch from a form, and the first field (unknown, or with a value PEP cannot honour) that spoils it. */
  private patchFrom(form: Element | undefined, formType: string): { patch: Partial<NodeConfig>; invalid: string | undefined } {
    const f = readForm(form?.getChild('x', NS.DATA_FORMS));
    if (!f || f.type === 'cancel') return { patch: {}, invalid: undefined };
    if (f.formType !== undefined && f.formType !== formType) throw new StanzaError('bad-request', `FORM_TYPE must be ${formType}`);
    const parsed = parseConfigFields(f.fields, this.opts.maxItems);
    return { patch: parsed.patch, invalid: parsed.errors[0]?.field };
  }

  private async publish(owner: string, publish: Element, optionsEl: Element | undefined): Promise<Element> {
    const name = nodeName(publish);
    const items = publish.getChildren('item', NS_PUBSUB);
    if (items.length === 0) throw pubsubError('bad-request', 'item-required');
    if (items.length > 1) throw pubsubError('bad-request', 'invalid-payload', undefined, 'One item per publish');
    const item = items[0] as Element;
    const payloads = item.elements();
    if (payloads.length === 0) throw pubsubError('bad-request', 'payload-required');
    if (payloads.length > 1) throw pubsubError('bad-request', 'invalid-payload');
    const { patch, invalid } = this.patchFrom(optionsEl, NS_PUBLISH_OPTIONS);
    const id = item.attrs.id !== undefined && item.attrs.id !== '' ? item.attrs.id : this.nextId('item');
    const payload = serialize(payloads[0] as Element, '');

    return this.run(owner, async () => {
      // XEP-0060 §7.1.5: every option is a precondition. One this server cannot honour (an unknown
      // field, which the XEP says to reject, or an unsupported value) can never be met, node or not.
      if (invalid !== undefined) throw pubsubError('conflict', 'precondition-not-met', undefined, `Cannot honour ${invalid}`);
      let node = await this.store.getNode(owner, name);
      if (node) {
        const unmet = unmetPrecondition(node.config, patch, this.opts.maxItems);
        if (unmet !== undefined) throw pubsubError('conflict', 'precondition-not-met', undefined, `${unmet} differs from the node's configuration`);
      } else {
        node = await this.createChecked(owner, name, { ...defaultConfig(this.opts.defaultMaxItems), ...patch });
      }
      const rec: PubsubItem = { id, publisher: this.bare(owner), publishedAt: Date.now(), payload };
      const keep = keepCount(node.config, this.opts.maxItems);
      if (keep > 0) await this.store.putItem(owner, name, rec, keep);
      const event = x('event', NS_PUBSUB_EVENT, {}, [x('items', NS_PUBSUB_EVENT, { node: name }, [this.itemElement(rec, node.config.deliverPayloads)])]);
      await this.notify(owner, node, 'publish', event);
      this.changed({ owner, node: name, kind: 'publish', id, payload: payloads[0] as Element });
      return x('pubsub', NS_PUBSUB, {}, [x('publish', NS_PUBSUB, { node: name }, [x('item', NS_PUBSUB, { id })])]);
    });
  }

  private async createChecked(owner: string, name: string, config: NodeConfig): Promise<PubsubNode> {
    if ((await this.store.nodes(owner)).length >= this.opts.maxNodes) {
      throw new StanzaError('policy-violation', `At most ${this.opts.maxNodes} nodes per account`);
    }
    if (!(await this.store.createNode(owner, name, config))) throw new StanzaError('conflict');
    return (await this.store.getNode(owner, name)) as PubsubNode;
  }

  private async retract(owner: string, retract: Element): Promise<undefined> {
    const name = nodeName(retract);
    const ids = retract.getChildren('item', NS_PUBSUB).map((i) => i.attrs.id);
    if (ids.length === 0 || ids.some((id) => id === undefined || id === '')) throw pubsubError('bad-request', 'item-required');
    const notifyAttr = attrBool(retract.attrs.notify);
    return this.run(owner, async () => {
      const node = await this.requireNode(owner, name);
      const removed: string[] = [];
      for (const id of ids as string[]) if (await this.store.retract(owner, name, id)) removed.push(id);
      if (removed.length === 0) throw new StanzaError('item-not-found');
      if (notifyAttr ?? node.config.notifyRetract) {
        const items = x('items', NS_PUBSUB_EVENT, { node: name }, removed.map((id) => x('retract', NS_PUBSUB_EVENT, { id })));
        await this.notify(owner, node, 'retract', x('event', NS_PUBSUB_EVENT, {}, [items]));
      }
      this.changed({ owner, node: name, kind: 'retract', ids: removed });
      return undefined;
    });
  }

  private async create(owner: string, create: Element, configure: Element | undefined): Promise<Element | undefined> {
    // XEP-0060 §8.1.3 instant nodes (no name) make no sense for PEP, whose node names are protocol namespaces.
    const name = nodeName(create);
    const { patch, invalid } = this.patchFrom(configure, NS_NODE_CONFIG);
    if (invalid !== undefined) throw new StanzaError('not-acceptable', `Unsupported configuration field or value ${invalid}`);
    return this.run(owner, async () => {
      if (await this.store.getNode(owner, name)) throw new StanzaError('conflict');
      await this.createChecked(owner, name, { ...defaultConfig(this.opts.defaultMaxItems), ...patch });
      return undefined;
    });
  }

  // ---- pubsub#owner -------------------------------------------------------------------

  /** The owner namespace is for the account itself only; returns the action element. */
  private async ownerAction(ctx: IqContext): Promise<{ owner: string; action: Element }> {
    const owner = this.api.router.hosts.keyOf(ctx.to);
    await this.existingAccount(owner);
    this.requireOwner(owner, ctx);
    const action = ctx.payload.elements()[0];
    if (!action) throw new StanzaError('bad-request');
    return { owner, action };
  }

  async ownerGet(ctx: IqContext): Promise<Element> {
    const { owner, action } = await this.ownerAction(ctx);
    switch (action.name) {
      case 'configure': {
        const node = await this.requireNode(owner, nodeName(action));
        return x('pubsub', NS_PUBSUB_OWNER, {}, [x('configure', NS_PUBSUB_OWNER, { node: node.node }, [configForm(node.config)])]);
      }
      case 'default':
        return x('pubsub', NS_PUBSUB_OWNER, {}, [x('default', NS_PUBSUB_OWNER, {}, [configForm(defaultConfig(this.opts.defaultMaxItems))])]);
      case 'affiliations': {
        const node = await this.requireNode(owner, nodeName(action));
        const list = x('affiliations', NS_PUBSUB_OWNER, { node: node.node }, [x('affiliation', NS_PUBSUB_OWNER, { jid: this.bare(owner), affiliation: 'owner' })]);
        for (const [jid, aff] of Object.entries(node.affiliations)) list.append(x('affiliation', NS_PUBSUB_OWNER, { jid, affiliation: aff }));
        return x('pubsub', NS_PUBSUB_OWNER, {}, [list]);
      }
      case 'subscriptions':
        throw unsupported('manage-subscriptions');
      default:
        throw new StanzaError('bad-request');
    }
  }

  async ownerSet(ctx: IqContext): Promise<undefined> {
    const { owner, action } = await this.ownerAction(ctx);
    switch (action.name) {
      case 'configure':
        return this.configure(owner, action);
      case 'delete':
        return this.deleteNode(owner, nodeName(action));
      case 'purge':
        return this.purge(owner, nodeName(action));
      case 'affiliations':
        return this.setAffiliations(owner, action);
      case 'subscriptions':
        throw unsupported('manage-subscriptions');
      default:
        throw new StanzaError('bad-request');
    }
  }

  private async configure(owner: string, action: Element): Promise<undefined> {
    const name = nodeName(action);
    const form = readForm(action.getChild('x', NS.DATA_FORMS));
    if (!form) throw new StanzaError('bad-request', 'A data form is required');
    const { patch, invalid } = this.patchFrom(action, NS_NODE_CONFIG);
    if (invalid !== undefined) throw new StanzaError('not-acceptable', `Unsupported configuration field or value ${invalid}`);
    return this.run(owner, async () => {
      const node = await this.requireNode(owner, name);
      const config = { ...node.config, ...patch };
      await this.store.updateNode(owner, name, config, node.affiliations);
      // A lower max_items, or a node made transient, drops the oldest items now.
      await this.store.trim(owner, name, keepCount(config, this.opts.maxItems));
      return undefined;
    });
  }

  private deleteNode(owner: string, name: string): Promise<undefined> {
    return this.run(owner, async () => {
      const node = await this.requireNode(owner, name);
      // Targets are computed before the node goes (its configuration decides who may know).
      if (node.config.notifyDelete) {
        await this.notify(owner, node, 'delete', x('event', NS_PUBSUB_EVENT, {}, [x('delete', NS_PUBSUB_EVENT, { node: name })]));
      }
      await this.store.deleteNode(owner, name);
      this.changed({ owner, node: name, kind: 'delete' });
      return undefined;
    });
  }

  private purge(owner: string, name: string): Promise<undefined> {
    return this.run(owner, async () => {
      const node = await this.requireNode(owner, name);
      await this.store.trim(owner, name, 0);
      if (node.config.notifyRetract) {
        await this.notify(owner, node, 'purge', x('event', NS_PUBSUB_EVENT, {}, [x('purge', NS_PUBSUB_EVENT, { node: name })]));
      }
      this.changed({ owner, node: name, kind: 'purge' });
      return undefined;
    });
  }

  private async setAffiliations(owner: string, action: Element): Promise<undefined> {
    const name = nodeName(action);
    const changes: Array<[string, Affiliation | 'none']> = [];
    for (const a of action.getChildren('affiliation', NS_PUBSUB_OWNER)) {
      const j = tryParseJID(a.attrs.jid);
      const aff = a.attrs.affiliation;
      if (!j) throw new StanzaError('jid-malformed');
      if (this.isOwner(owner, j)) throw new StanzaError('not-acceptable', 'The owner stays the owner');
      if (aff !== 'member' && aff !== 'publisher' && aff !== 'outcast' && aff !== 'none') {
        throw new StanzaError('not-acceptable', `Unsupported affiliation ${aff ?? ''}`);
      }
      changes.push([j.bare.toString(), aff]);
    }
    return this.run(owner, async () => {
      const node = await this.requireNode(owner, name);
      const affs = { ...node.affiliations };
      for (const [jid, aff] of changes) {
        if (aff === 'none') delete affs[jid];
        else affs[jid] = aff;
      }
      await this.store.updateNode(owner, name, node.config, affs);
      return undefined;
    });
  }

  // ---- disco#items of the account --------------------------------------------------------

  /** XEP-0163 §7 / XEP-0060 §5.2, §5.5: the nodes the asker may read, or the item ids of one node. */
  async accountItems(owner: string, asker: JID, nodeName?: string): Promise<Element[]> {
    const items: Element[] = [];
    const jid = this.bare(owner);
    if (nodeName === undefined) {
      for (const n of await this.store.nodes(owner)) {
        if (accessDecision(n.config.accessModel, await this.relation(owner, asker, n)).allowed) {
          items.push(x('item', NS.DISCO_ITEMS, { jid, node: n.node, name: n.config.title || undefined }));
        }
      }
      return items;
    }
    const node = await this.store.getNode(owner, nodeName);
    if (!node || !accessDecision(node.config.accessModel, await this.relation(owner, asker, node)).allowed) {
      throw new StanzaError('item-not-found');
    }
    for (const it of await this.store.items(owner, nodeName)) items.push(x('item', NS.DISCO_ITEMS, { jid, name: it.id }));
    return items;
  }

  // ---- presence: caps and last items ------------------------------------------------------

  /** Observes a local client's presence (never consumes it). */
  onPresenceOut(e: StanzaEvent): boolean {
    const s = e.origin;
    if (!s || e.stanza.attrs.to !== undefined) return false; // broadcast presence only (XEP-0163 §4.3)
    const type = e.stanza.attrs.type;
    const st = this.state(s);
    if (type === 'unavailable') {
      st.available = false;
      st.gen++;
      return false;
    }
    if (type !== undefined) return false;
    const initial = !st.available;
    st.available = true;
    const gen = ++st.gen;
    const caps = parseCaps(e.stanza);
    void this.afterAvailable(s, st, gen, caps, initial).catch((err: unknown) => this.api.log.error({ err }, 'PEP presence handling failed'));
    return false;
  }

  private async afterAvailable(s: Session, st: SessionState, gen: number, caps: CapsAnnouncement | undefined, initial: boolean): Promise<void> {
    this.roster(); // make sure roster changes are followed once the roster module is there
    const before = initial ? undefined : st.notify;
    let notify = st.notify;
    const same = caps && st.caps && caps.hash === st.caps.hash && caps.ver === st.caps.ver && caps.node === st.caps.node;
    if (caps && !(same && notify)) {
      const rec = await this.caps.resolve(s.jid.toString(), caps);
      if (st.gen !== gen || s.closed) return; // a newer presence took over
      notify = rec ? notifyNodes(rec.features) : new Set();
      st.caps = caps;
      st.notify = notify;
    } else if (!caps && notify === undefined) {
      // XEP-0115 §6.3: no caps, no filtered notifications.
      notify = new Set();
      st.notify = notify;
    }
    if (!notify || notify.size === 0) return;
    const fresh = initial ? notify : newInterests(before, notify);
    if (fresh.size === 0) return;
    await this.sendLastItems(s, fresh, initial ? 'presence' : 'subscribe', undefined);
  }

  /**
   * Last items of the nodes in `nodes` to one resource: of its own account and of every
   * account whose presence it may see (or of `onlyOwner`).
   */
  private async sendLastItems(s: Session, nodes: ReadonlySet<string>, trigger: LastItemTrigger, onlyOwner: string | undefined): Promise<void> {
    let owners: string[];
    if (onlyOwner !== undefined) owners = [onlyOwner];
    else {
      owners = [s.username];
      const roster = this.roster();
      for (const b of roster ? await roster.presenceSubscriptions(s.username) : []) {
        const j = tryParseJID(b);
        if (j && this.api.router.hosts.isAccount(j) && this.api.router.hosts.keyOf(j) !== s.username) owners.push(this.api.router.hosts.keyOf(j));
      }
    }
    for (const owner of owners) {
      for (const node of await this.store.nodes(owner)) {
        if (!nodes.has(node.node)) continue;
        const rel = await this.relation(owner, s.jid, node);
        if (!sendLastItem(node.node, node.config, nodes, rel, trigger).send) continue;
        const [last] = await this.store.items(owner, node.node, { max: 1 });
        if (!last || s.closed || !this.state(s).available) continue;
        const event = x('event', NS_PUBSUB_EVENT, {}, [x('items', NS_PUBSUB_EVENT, { node: node.node }, [this.itemElement(last, node.config.deliverPayloads)])]);
        this.notifications.inc({ kind: 'last-published', reason: trigger });
        this.api.router.route(this.eventMessage(owner, s.jid.toString(), node.config, event, last.publishedAt));
      }
    }
  }

  /** A contact newly allowed to see the owner's presence gets the owner's last items (it is now an implicit subscriber). */
  private onRosterChange(ev: RosterChangeEvent): void {
    const had = ev.previous?.subscription === 'from' || ev.previous?.subscription === 'both';
    const has = ev.item?.subscription === 'from' || ev.item?.subscription === 'both';
    if (had || !has) return;
    const contact = tryParseJID(ev.jid);
    if (!contact || !this.api.router.hosts.isAccount(contact) || this.api.router.hosts.keyOf(contact) === ev.owner) return;
    for (const s of this.api.sessions.byUser(this.api.router.hosts.keyOf(contact))) {
      const st = this.state(s);
      if (!st.available || !st.notify || st.notify.size === 0) continue;
      void this.sendLastItems(s, st.notify, 'subscribe', ev.owner).catch((err: unknown) => this.api.log.error({ err }, 'PEP last items failed'));
    }
  }
}
