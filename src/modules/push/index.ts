/**
 * XEP-0357 Push Notifications (urn:xmpp:push:0, version 0.4) with the
 * urn:xmpp:push:summary form: wakes a phone exactly when something arrives
 * that it must see (the decision: decide.ts, pure and table-tested).
 *
 * - enable/disable from the device's own session: app server JID, node and the
 *   publish-options form (which carries the client's secret: stored and passed
 *   on to the app server, never logged). One registration per (app server,
 *   node); several per account, each remembering the device (resource).
 * - After a message to the account is archived and delivered, each
 *   registration gets a decision: push, coalesce (one is outstanding) or skip,
 *   with a reason; reasons are counted.
 * - A session with a registration hibernates for `hibernation` seconds
 *   (72 h) instead of its own resumption timeout, until its first push.
 * - The device coming back (bind, resumption, CSI active) ends the
 *   outstanding push and its pending counts.
 * - A registration is dropped after `maxErrors` consecutive errors whose type
 *   is not `wait`.
 * - Read state: a conversation read on another device (MDS, see
 *   src/modules/mds.ts) clears what is pending for it with a push showing the
 *   new count, or raises nothing when nothing was pending.
 */
import { x, type Element } from '../../xml/element.js';
import { parseXml } from '../../xml/parser.js';
import { NS } from '../../core/namespaces.js';
import { PRIORITY, type StanzaEvent } from '../../core/events.js';
import { StanzaError } from '../../core/errors.js';
import { tryParseJID } from '../../jid/jid.js';
import type { ModuleApi, VeronaModule } from '../../core/module.js';
import type { Session } from '../../core/session.js';
import { MemoryPushStore, type PushRegistration, type PushStore } from '../../storage/push.js';
import { SM_CONTROL_SERVICE, type SmControl } from '../sm/index.js';
import { decidePush, pushContent, type DeviceState, type PushContent } from './decide.js';
import { parsePushOptions, type PushOptions } from './options.js';

export const NS_PUSH = 'urn:xmpp:push:0';
export const NS_PUSH_SUMMARY = 'urn:xmpp:push:summary';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';
/** Session data key: this session enabled push (it hibernates long). */
const DATA = 'push';
/** Message keys remembered per registration for "never twice for one message". */
const REMEMBER = 256;

/** What the MDS module tells push (service 'push'). */
export interface PushService {
  /** `username` read `conversation` (a bare JID) on the device `byResource`. */
  readElsewhere(username: string, conversation: string, byResource: string): void;
}
export const PUSH_SERVICE = 'push';

interface RegState {
  reg: PushRegistration;
  errors: number;
  /** ms since epoch of the outstanding push; 0 = none. */
  outstandingSince: number;
  /** Unseen messages per conversation (bare JID) since the device was last here. */
  pending: Map<string, number>;
  lastSender: string;
  lastBody: string;
  pushed: Set<string>;
}

function summaryForm(count: number, sender: string, body: string | undefined): Element {
  const field = (v: string, value: string): Element => x('field', NS.DATA_FORMS, { var: v }, [x('value', NS.DATA_FORMS, {}, [value])]);
  const form = x('x', NS.DATA_FORMS, { type: 'submit' }, [field('FORM_TYPE', NS_PUSH_SUMMARY), field('message-count', String(count))]);
  if (sender) form.append(field('last-message-sender', sender));
  if (body !== undefined && body !== '') form.append(field('last-message-body', body));
  return form;
}

class Push {
  private readonly opts: PushOptions;
  private readonly store: PushStore;
  /** Accounts with registrations: every other account's messages cost one Set lookup. */
  private readonly accounts = new Set<string>();
  private readonly cache = new Map<string, Promise<RegState[]>>();
  /** Resources that got a copy of a message being decided (keyed by the stanza). */
  private readonly delivered = new WeakMap<Element, Set<string>>();
  private sm: SmControl | undefined;
  private readonly m;

  constructor(private readonly api: ModuleApi) {
    this.opts = parsePushOptions(api.options);
    this.store = api.storage.push ?? new MemoryPushStore();
    const mt = api.metrics;
    this.m = {
      sent: mt.counter('verona_push_sent_total', 'Push notifications the app server accepted'),
      failed: mt.counter('verona_push_failed_total', 'Push notifications that failed, by error condition (or timeout)'),
      coalesced: mt.counter('verona_push_coalesced_total', 'Messages folded into an outstanding push'),
      decisions: mt.counter('verona_push_decisions_total', 'Push decisions per message and registration, by reason'),
      dropped: mt.counter('verona_push_registrations_dropped_total', 'Registrations dropped after repeated errors'),
    };
  }

  async load(): Promise<void> {
    const api = this.api;
    for (const u of await this.store.usernames()) this.accounts.add(u);
    api.discoFeature(NS_PUSH, 'account');
    api.discoFeature(NS_PUSH);
    api.iq('account', 'set', NS_PUSH, (ctx) => this.command(ctx.origin, ctx.self, ctx.payload));
    api.iq('server', 'set', NS_PUSH, (ctx) => this.command(ctx.origin, ctx.self || ctx.to.local === '', ctx.payload));

    this.sm = api.service<SmControl>(SM_CONTROL_SERVICE);
    if (this.sm) {
      this.sm.hibernationFor = (s) => (this.pushEnabled(s) ? this.opts.hibernation : undefined);
      this.sm.onResumed((s) => this.deviceBack(s));
    }
    api.hook('session/bound', ({ session }) => {
      if (!this.accounts.has(session.username)) return;
      void this.regs(session.username).then(() => this.deviceBack(session));
    });
    // Observe CSI <active/> (never consume it: the csi module handles it).
    api.hook('stream/nonza', (e) => {
      if (e.el.xmlns === NS.CSI && e.el.name === 'active' && e.stream.session) this.deviceBack(e.stream.session);
      return false;
    }, PRIORITY.BEFORE_ARCHIVE);
    api.hook('message/deliver', (e) => {
      this.delivered.get(e.stanza)?.add(e.session.resource);
    }, PRIORITY.OBSERVE);
    api.hook('message/in', (e) => this.messageIn(e), PRIORITY.OBSERVE);
    api.provide(PUSH_SERVICE, { readElsewhere: (u, c, r) => void this.readElsewhere(u, c, r) } satisfies PushService);
  }

  private pushEnabled(s: Session): boolean {
    return s.data.get(DATA) === true;
  }

  private regs(username: string): Promise<RegState[]> {
    let p = this.cache.get(username);
    if (!p) {
      p = this.store.list(username).then((list) =>
        list.map((reg) => ({ reg, errors: 0, outstandingSince: 0, pending: new Map(), lastSender: '', lastBody: '', pushed: new Set<string>() })),
      );
      p.catch(() => this.cache.delete(username));
      this.cache.set(username, p);
    }
    return p;
  }

  // ---- enable / disable (XEP-0357 §5, §6) ------------------------------------

  private async command(origin: Session | undefined, self: boolean, payload: Element): Promise<undefined> {
    // Only the device itself registers (its resource is the registration's device).
    if (!origin || !self) throw new StanzaError('forbidden');
    const jid = tryParseJID(payload.attrs.jid);
    if (!jid) throw new StanzaError('bad-request', 'A valid jid attribute is required');
    const node = payload.attrs.node;
    const username = origin.username;
    const list = await this.regs(username);
    if (payload.name === 'enable') {
      if (node === undefined || node === '') throw new StanzaError('bad-request', 'A node attribute is required');
      const form = payload.getChild('x', NS.DATA_FORMS);
      if (form) {
        const ft = form.getChildren('field').find((f) => f.attrs.var === 'FORM_TYPE')?.getChildText('value');
        if (ft !== PUBLISH_OPTIONS) throw new StanzaError('bad-request', `The form must be ${PUBLISH_OPTIONS}`);
      }
      const reg: PushRegistration = { username, jid: jid.toString(), node, resource: origin.resource, options: form ? form.toString() : '', createdAt: Date.now() };
      await this.store.put(reg);
      const i = list.findIndex((r) => r.reg.jid === reg.jid && r.reg.node === node);
      const st: RegState = { reg, errors: 0, outstandingSince: 0, pending: new Map(), lastSender: '', lastBody: '', pushed: new Set() };
      if (i >= 0) list[i] = st;
      else list.push(st);
      this.accounts.add(username);
      origin.data.set(DATA, true);
      // The secret in the form is never logged: only where the pushes go.
      this.api.log.info({ user: username, resource: origin.resource, app: reg.jid }, 'push enabled');
      return undefined;
    }
    if (payload.name === 'disable') {
      await this.store.remove(username, jid.toString(), node || undefined);
      this.forget(username, list, (r) => r.reg.jid === jid.toString() && (!node || r.reg.node === node));
      if (!list.some((r) => r.reg.resource === origin.resource)) origin.data.delete(DATA);
      this.api.log.info({ user: username, app: jid.toString() }, 'push disabled');
      return undefined;
    }
    throw new StanzaError('bad-request');
  }

  private forget(username: string, list: RegState[], pred: (r: RegState) => boolean): void {
    for (let i = list.length - 1; i >= 0; i--) if (pred(list[i] as RegState)) list.splice(i, 1);
    if (list.length === 0) this.accounts.delete(username);
  }

  // ---- deciding ----------------------------------------------------------------

  private messageIn(e: StanzaEvent): void {
    const username = this.api.router.hosts.keyOf(e.to);
    if (!this.accounts.has(username)) return;
    const content = pushContent(e.stanza);
    if (content === 'none') return;
    this.delivered.set(e.stanza, new Set());
    // After the archive commit and the delivery that follows it (a macrotask later than both).
    void Promise.allSettled(e.waits).then(() => {
      setImmediate(() => {
        this.decide(username, e, content).catch((err: unknown) => this.api.log.error({ err }, 'push: decision failed'));
      });
    });
  }

  private deviceState(username: string, resource: string): { state: DeviceState; session: Session | undefined } {
    const s = this.api.sessions.byFullJid(username, resource);
    if (!s || s.closed) return { state: 'offline', session: undefined };
    if (this.sm?.isHibernating(s)) return { state: 'hibernated', session: s };
    return { state: s.csiInactive ? 'csi-inactive' : 'active', session: s };
  }

  private async decide(username: string, e: StanzaEvent, content: PushContent): Promise<void> {
    const got = this.delivered.get(e.stanza) ?? new Set<string>();
    const key = e.recipientArchiveId ?? (e.stanza.attrs.id !== undefined ? `${e.from.toString()}#${e.stanza.attrs.id}` : undefined);
    const now = Date.now();
    for (const r of await this.regs(username)) {
      const { state, session } = this.deviceState(username, r.reg.resource);
      const d = decidePush({
        content,
        archived: e.recipientArchiveId !== undefined,
        device: state,
        deliveredLive: got.has(r.reg.resource) && state === 'active',
        outstanding: r.outstandingSince > 0 && now - r.outstandingSince < this.opts.coalesceWindow * 1000,
        alreadyPushed: key !== undefined && r.pushed.has(key),
      });
      this.m.decisions.inc({ reason: d.reason });
      if (d.action === 'skip') continue;
      if (key !== undefined) {
        r.pushed.add(key);
        if (r.pushed.size > REMEMBER) r.pushed.delete(r.pushed.values().next().value as string);
      }
      const conv = e.from.bare.toString();
      r.pending.set(conv, (r.pending.get(conv) ?? 0) + 1);
      r.lastSender = e.from.toString();
      r.lastBody = e.stanza.getChildText('body') ?? '';
      if (d.action === 'coalesce') {
        this.m.coalesced.inc();
        continue;
      }
      this.send(r, session);
    }
  }

  private deviceBack(s: Session): void {
    const p = this.cache.get(s.username);
    if (!p) return;
    void p.then((list) => {
      for (const r of list) {
        if (r.reg.resource !== s.resource) continue;
        r.outstandingSince = 0;
        r.pending.clear();
        s.data.set(DATA, true);
      }
    });
  }

  private async readElsewhere(username: string, conversation: string, byResource: string): Promise<void> {
    if (!this.accounts.has(username)) return;
    for (const r of await this.regs(username)) {
      if (r.reg.resource === byResource || !r.pending.has(conversation)) {
        this.m.decisions.inc({ reason: r.reg.resource === byResource ? 'read-here' : 'read-nothing-pending' });
        continue;
      }
      r.pending.delete(conversation);
      // Nothing left unseen: the phone's notification is gone, so the next message is news again
      // (not folded into a push the phone no longer shows).
      if (r.pending.size === 0) r.outstandingSince = 0;
      const { state, session } = this.deviceState(username, r.reg.resource);
      if (state === 'active') continue;
      this.m.decisions.inc({ reason: 'read-elsewhere' });
      // The clearing push carries the new count (maybe 0) and no sender or body.
      this.send(r, session, true);
    }
  }

  // ---- publishing (XEP-0357 §7) -----------------------------------------------

  private send(r: RegState, session: Session | undefined, clearing = false): void {
    let count = 0;
    for (const n of r.pending.values()) count += n;
    const notification = x('notification', NS_PUSH, {}, [
      summaryForm(count, clearing ? '' : r.lastSender, this.opts.includeBody && !clearing ? r.lastBody : undefined),
    ]);
    const pubsub = x('pubsub', NS_PUBSUB, {}, [x('publish', NS_PUBSUB, { node: r.reg.node }, [x('item', NS_PUBSUB, {}, [notification])])]);
    if (r.reg.options) {
      try {
        pubsub.append(x('publish-options', NS_PUBSUB, {}, [parseXml(r.reg.options)]));
      } catch {
        this.api.log.warn({ user: r.reg.username, app: r.reg.jid }, 'push: stored publish-options unreadable; sent without');
      }
    }
    const from = this.api.router.hosts.bareOf(r.reg.username);
    const iq = x('iq', NS.CLIENT, { type: 'set', from, to: r.reg.jid }, [pubsub]);
    if (!clearing) r.outstandingSince = Date.now();
    // The first push ends the long hibernation: from now on the session's own timeout applies.
    if (session && this.sm?.isHibernating(session)) this.sm.endLongHibernation(session);
    this.api.router.request(iq, this.opts.timeout * 1000).then(
      (res) => this.answered(r, res),
      () => this.m.failed.inc({ reason: 'timeout' }),
    );
  }

  private answered(r: RegState, res: Element): void {
    if (res.attrs.type === 'result') {
      r.errors = 0;
      this.m.sent.inc();
      return;
    }
    const err = res.getChild('error');
    const type = err?.attrs.type ?? 'cancel';
    const condition = err?.elements().find((c) => c.xmlns === NS.STANZA_ERRORS && c.name !== 'text')?.name ?? 'undefined-condition';
    this.m.failed.inc({ reason: condition });
    // 'wait' is the app server asking to try later: it never counts towards dropping.
    if (type === 'wait') return;
    if (++r.errors < this.opts.maxErrors) return;
    this.m.dropped.inc();
    this.api.log.info({ user: r.reg.username, app: r.reg.jid, condition }, 'push: registration dropped after repeated errors');
    void this.store.remove(r.reg.username, r.reg.jid, r.reg.node).then(async () => {
      this.forget(r.reg.username, await this.regs(r.reg.username), (x2) => x2 === r);
    });
  }
}

export const pushModule: VeronaModule = {
  name: 'push',
  async load(api) {
    await new Push(api).load();
  },
};
