/**
 * The session registry of a cluster node: this node's sessions plus a mirror
 * of every other node's, kept from Redis (src/cluster/node.ts).
 *
 * The router and the modules ask the registry synchronously and get Session
 * objects (src/core/registry.ts). A session of another node is a RemoteSession:
 * it carries the data the decisions need (priority, availability, last
 * presence, MR2/carbons/CSI flags, whether it asked for the blocklist, PEP
 * notification interest), and whatever is sent to it (Session.send) travels
 * to its node, which puts it through the real session's outbound filters (CSI,
 * stream management). So the fork table, presence broadcast, roster and
 * blocking pushes and PEP notifications decide on one node exactly as they
 * would with every session local, and deliver across nodes by message.
 *
 * A proxy is never ended here: Server.endSession only forgets it, and
 * closeWith() asks its node to end it (conflict, kick, account removal).
 */
import { splitAccountKey } from '../core/vhosts.js';
import { JID } from '../jid/jid.js';
import { LocalSessionRegistry, type SessionRegistry } from '../core/registry.js';
import { Session, type SessionStream } from '../core/session.js';
import { serialize, type Element } from '../xml/element.js';
import { parseXml } from '../xml/parser.js';
import type { DataSnapshot, InboxMsg, SessionSnapshot } from './wire.js';

/** What the registry needs from the node's Redis side. */
export interface ClusterLink {
  /** Fire-and-forget to another node's inbox (in order per node). */
  sendTo(node: string, msg: InboxMsg): void;
  /** A local session appeared or changed. */
  sessionUp(user: string, resource: string, snap: SessionSnapshot): void;
  /** A local session is gone. */
  sessionDown(user: string, resource: string): void;
}

/** Session fields replicated to the other nodes; a write to one publishes the session again. */
const WATCHED = ['priority', 'available', 'presence', 'interested', 'mr2', 'carbons', 'csiInactive'] as const;

class RemoteStream implements SessionStream {
  readonly remoteAddress = '';
  readonly transportKind = 'cluster';
  constructor(
    public id: string,
    private readonly node: string,
    private readonly user: string,
    private readonly resource: string,
    private readonly link: ClusterLink,
  ) {}

  write(el: Element): void {
    this.writeWire(el);
  }

  writeWire(el: Element): void {
    // Namespace-complete ('' parent): the receiving node parses it on its own.
    this.link.sendTo(this.node, { t: 'send', u: this.user, r: this.resource, x: serialize(el, '') });
  }

  closeWith(condition?: string, text?: string): void {
    const m: InboxMsg = { t: 'close', u: this.user, r: this.resource };
    if (condition !== undefined) m.c = condition;
    if (text !== undefined) m.m = text;
    this.link.sendTo(this.node, m);
  }
}

/** A session bound on another node, as this node sees it. */
export class RemoteSession extends Session {
  private presenceText: string | undefined;

  constructor(jid: JID, readonly node: string, snap: SessionSnapshot, link: ClusterLink) {
    super(jid, new RemoteStream(snap.sid, node, jid.local, jid.resource, link));
    this.apply(snap);
  }

  override get remoteNode(): string {
    return this.node;
  }

  apply(snap: SessionSnapshot): void {
    (this.stream as RemoteStream).id = snap.sid;
    this.priority = snap.priority;
    this.available = snap.available;
    this.interested = snap.interested;
    this.mr2 = snap.mr2;
    this.carbons = snap.carbons;
    this.csiInactive = snap.csiInactive;
    if (snap.presence !== this.presenceText) {
      this.presenceText = snap.presence;
      this.presence = snap.presence === undefined ? undefined : safeParse(snap.presence);
    }
    applyData(this, snap.data);
  }
}

function safeParse(text: string): Element | undefined {
  try {
    return parseXml(text);
  } catch {
    return undefined;
  }
}

/** Module state on a proxy, in the shapes the modules keep it (blocking.ts, push, pep/service.ts). */
export function applyData(s: Session, d: DataSnapshot): void {
  if (d.blocking === true) s.data.set('blocking', true);
  else s.data.delete('blocking');
  if (d.push === true) s.data.set('push', true);
  else s.data.delete('push');
  if (d.pep) s.data.set('pep', { available: d.pep.available, caps: undefined, notify: d.pep.notify === null ? undefined : new Set(d.pep.notify), gen: 0 });
  else s.data.delete('pep');
}

/** What other nodes need to know of a local session (pure; exported for tests). */
export function snapshotOf(s: Session): SessionSnapshot {
  const data: DataSnapshot = {};
  if (s.data.get('blocking') === true) data.blocking = true;
  if (s.data.get('push') === true) data.push = true;
  const pep = s.data.get('pep') as { available?: unknown; notify?: unknown } | undefined;
  if (pep && typeof pep.available === 'boolean') {
    data.pep = { available: pep.available, notify: pep.notify instanceof Set ? [...(pep.notify as Set<string>)].sort() : null };
  }
  const snap: SessionSnapshot = {
    sid: s.streamId,
    priority: s.priority,
    available: s.available,
    interested: s.interested,
    mr2: s.mr2,
    carbons: s.carbons,
    csiInactive: s.csiInactive,
    data,
  };
  if (s.presence) snap.presence = serialize(s.presence, '');
  return snap;
}

export class ClusterRegistry implements SessionRegistry {
  readonly local = new LocalSessionRegistry();
  private readonly remoteByUser = new Map<string, RemoteSession[]>();
  /** byUser answers for accounts with remote sessions (invalidated on any change of the account). */
  private readonly merged = new Map<string, readonly Session[]>();
  /** Last snapshot published per local session (JSON), so that only changes go out. */
  private readonly published = new Map<Session, string>();
  private readonly dirty = new Set<Session>();
  private flushQueued = false;
  link: ClusterLink | undefined;
  /** Called for each local session added (the archive-id order filter, src/cluster/order-gate.ts). */
  onLocal: ((s: Session) => void) | undefined;

  constructor(private readonly domain: string) {}

  // ---- SessionRegistry ----------------------------------------------------------------------

  byUser(username: string): readonly Session[] {
    const remote = this.remoteByUser.get(username);
    if (!remote) return this.local.byUser(username);
    let m = this.merged.get(username);
    if (!m) {
      m = [...this.local.byUser(username), ...remote];
      this.merged.set(username, m);
    }
    return m;
  }

  byFullJid(username: string, resource: string): Session | undefined {
    return this.local.byFullJid(username, resource) ?? this.remoteByUser.get(username)?.find((s) => s.resource === resource);
  }

  add(session: Session): void {
    if (session instanceof RemoteSession) return this.putRemote(session);
    this.local.add(session);
    this.onLocal?.(session);
    this.merged.delete(session.username);
    this.watch(session);
    this.publish(session);
  }

  remove(session: Session): void {
    if (session instanceof RemoteSession) {
      this.dropRemote(session);
      return;
    }
    const before = this.local.count();
    this.local.remove(session);
    if (this.local.count() === before) return;
    this.merged.delete(session.username);
    this.published.delete(session);
    this.dirty.delete(session);
    this.link?.sessionDown(session.username, session.resource);
  }

  /** Sessions of this node (the gauge and the admin's listing are per node). */
  count(): number {
    return this.local.count();
  }

  all(): Iterable<Session> {
    return this.local.all();
  }

  // ---- the mirror of other nodes -------------------------------------------------------------

  /** A session of `node` appeared or changed. */
  upsertRemote(node: string, user: string, resource: string, snap: SessionSnapshot): void {
    const list = this.remoteByUser.get(user);
    const cur = list?.find((s) => s.resource === resource);
    if (cur && cur.node === node) {
      cur.apply(snap);
      return;
    }
    if (cur) this.dropRemote(cur);
    if (!this.link) return;
    let jid: JID;
    try {
      // `user` is the account key: user@domain on a hosted domain other than the primary (src/core/vhosts.ts).
      const { local, domain } = splitAccountKey(this.domain, user);
      jid = new JID(local, domain, resource);
    } catch {
      return;
    }
    this.putRemote(new RemoteSession(jid, node, snap, this.link));
  }

  /** A session of `node` is gone (never one that another node has taken over since). */
  removeRemote(node: string, user: string, resource: string): RemoteSession | undefined {
    const cur = this.remoteByUser.get(user)?.find((s) => s.resource === resource);
    if (!cur || cur.node !== node) return undefined;
    this.dropRemote(cur);
    return cur;
  }

  /** Every proxy of `node` (to replace or drop them all). */
  remoteOf(node: string): RemoteSession[] {
    const out: RemoteSession[] = [];
    for (const list of this.remoteByUser.values()) for (const s of list) if (s.node === node) out.push(s);
    return out;
  }

  /** Forget every proxy of `node`; returns them. */
  dropNode(node: string): RemoteSession[] {
    const gone = this.remoteOf(node);
    for (const s of gone) this.dropRemote(s);
    return gone;
  }

  /** Nodes that have sessions in the mirror. */
  remoteNodes(): Set<string> {
    const out = new Set<string>();
    for (const list of this.remoteByUser.values()) for (const s of list) out.add(s.node);
    return out;
  }

  remoteCount(): number {
    let n = 0;
    for (const list of this.remoteByUser.values()) n += list.length;
    return n;
  }

  private putRemote(s: RemoteSession): void {
    const list = this.remoteByUser.get(s.username);
    if (list) list.push(s);
    else this.remoteByUser.set(s.username, [s]);
    this.merged.delete(s.username);
  }

  private dropRemote(s: RemoteSession): void {
    s.closed = true;
    const list = this.remoteByUser.get(s.username);
    if (!list) return;
    const i = list.indexOf(s);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.remoteByUser.delete(s.username);
    this.merged.delete(s.username);
  }

  // ---- publishing local sessions -------------------------------------------------------------

  /**
   * Make the replicated fields of a local session publish it when written. Module state that is
   * changed in place (PEP's notification set after a caps answer) is caught by flushAll(), which
   * the node runs on every heartbeat.
   */
  private watch(s: Session): void {
    for (const f of WATCHED) {
      let value: unknown = s[f];
      Object.defineProperty(s, f, {
        configurable: true,
        enumerable: true,
        get: () => value,
        set: (v: unknown) => {
          if (v === value) return;
          value = v;
          this.touch(s);
        },
      });
    }
    const data = s.data;
    const set = data.set.bind(data);
    const del = data.delete.bind(data);
    data.set = (k: string, v: unknown) => {
      set(k, v);
      this.touch(s);
      return data;
    };
    data.delete = (k: string) => {
      const had = del(k);
      if (had) this.touch(s);
      return had;
    };
  }

  private touch(s: Session): void {
    this.dirty.add(s);
    if (this.flushQueued) return;
    this.flushQueued = true;
    // One publication per session per turn, however many fields changed.
    queueMicrotask(() => {
      this.flushQueued = false;
      const list = [...this.dirty];
      this.dirty.clear();
      for (const d of list) this.publish(d);
    });
  }

  /** Publish a local session when what others see of it changed. */
  private publish(s: Session): void {
    if (s.closed || this.local.byFullJid(s.username, s.resource) !== s) return;
    const snap = snapshotOf(s);
    const json = JSON.stringify(snap);
    if (this.published.get(s) === json) return;
    this.published.set(s, json);
    this.link?.sessionUp(s.username, s.resource, snap);
  }

  /** Publish whatever changed unnoticed (in-place module state). */
  flushAll(): void {
    for (const s of this.local.all()) this.publish(s);
  }

  /** Publish every local session again (after Redis lost them). */
  republishAll(): void {
    this.published.clear();
    this.flushAll();
  }
}
