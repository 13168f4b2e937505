/**
 * A cluster member: the Redis side of the session registry (src/cluster/registry.ts).
 *
 * - Membership: `verona:nodes` lists the members; each refreshes `verona:hb:<node>` (expiring
 *   after cluster.nodeTimeout) every cluster.heartbeat seconds. A member whose heartbeat is gone
 *   is reaped by whichever node takes `verona:reap:<node>` first: its sessions leave the
 *   registry and their contacts get unavailable presence (the 'session/ended' hooks run for
 *   them on the reaping node, as if they had ended there).
 * - Sessions: each node keeps its own in the hash `verona:sess:<node>` and announces every change
 *   on `verona:events`; every node mirrors all others' in memory and answers the router from it.
 *   Events carry a per-node sequence number, also stored in the hash, so that reloading a node's
 *   hash while its events keep coming neither resurrects nor loses a session.
 * - Delivery: a stanza for a session of another node is published to that node's inbox channel.
 *   Pub/sub, not streams: the durable copy of a message is the archive, committed before it is
 *   routed (an ack means archived), so a live copy lost with Redis is what a client gets from MAM
 *   anyway; pub/sub keeps order per publishing connection and costs no trimming
 *   (docs/operations.md, Cluster; measured in docs/benchmarks.md).
 * - Redis outages: ioredis reconnects; on reconnect the node writes its state again, says hello,
 *   and reloads everybody else's (a Redis restarted without persistence comes back empty).
 */
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from '../core/logger.js';
import type { Session } from '../core/session.js';
import type { Metrics, Counter } from '../metrics/metrics.js';
import { parseXml } from '../xml/parser.js';
import type { ClusterLink, ClusterRegistry, RemoteSession } from './registry.js';
import { KEYS, LANES, decodeEvent, decodeInbox, decodeSnapshot, sessionField, splitSessionField, type EventMsg, type InboxMsg, type SessionSnapshot } from './wire.js';

export interface ClusterOptions {
  url: string;
  /** Node name ('' = host name, PID and a random suffix). */
  node: string;
  heartbeatMs: number;
  timeoutMs: number;
}

/** What the node needs from the server around it. */
export interface ClusterHost {
  log: Logger;
  metrics: Metrics;
  /** End a local session (a node asked: conflict, kick, account removal). */
  endLocal(session: Session, reason: string): void;
  /** Run 'session/ended' for a session of a dead node (contacts get unavailable presence). */
  endedRemote(session: RemoteSession): void;
  /** This node's archive-clock lane changed. */
  onLane(index: number, count: number): void;
  /** Another node asks for a stream-management session (sm module's SmHandover); true when handed over. */
  smGive(user: string, id: string): Promise<boolean>;
  /** A dead node's resumable sessions (live checkpoints) kept here: `user\0resource` keys, which do not end. */
  smAdopt(node: string): Promise<Set<string>>;
}

/** Sequence field in a node's session hash (cannot be a `user/resource`). */
const SEQ_FIELD = '#q';

type Seq = { q: number };

/** Archive-id order across nodes (src/cluster/order-gate.ts): what the node tells it. */
export interface OrderLink {
  members(nodes: string[]): void;
  up(node: string): void;
  gone(node: string): void;
  mark(node: string, w: number): void;
  /** Another node asks for this node's mark (at least `seq`). */
  asked(seq: number): void;
  /** A stanza (serialised) goes to another node's session. */
  sentCopy(xml: string): void;
}

export class ClusterNode implements ClusterLink {
  readonly id: string;
  private readonly cmd: Redis;
  private readonly sub: Redis;
  private timer: NodeJS.Timeout | undefined;
  private seq = Date.now() * 1000;
  private lane = -1;
  private started = false;
  private stopped = false;
  /** Nodes being reloaded: their events wait here, applied after the snapshot when newer. */
  private readonly loading = new Map<string, Array<EventMsg & Partial<Seq>>>();
  private readonly sent: Counter;
  private readonly received: Counter;
  private readonly failures: Counter;
  private resyncing: Promise<void> | undefined;
  /** Handover requests waiting for answers: key -> nodes still to answer and the resolver. */
  private readonly asks = new Map<string, { waiting: Set<string>; done: (ok: boolean) => void }>();
  /** Archive-id order across nodes; set before start(). */
  order: OrderLink | undefined;

  constructor(private readonly opts: ClusterOptions, private readonly registry: ClusterRegistry, private readonly host: ClusterHost) {
    this.id = opts.node !== '' ? opts.node : `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const common = {
      lazyConnect: true,
      // A command waits through two reconnect attempts, then fails (counted, logged): a node keeps
      // serving its own sessions while Redis is away and never piles up unbounded retries.
      maxRetriesPerRequest: 2,
      retryStrategy: (times: number) => Math.min(100 * times, 2000),
      connectionName: `verona:${this.id}`,
    };
    this.cmd = new Redis(opts.url, common);
    this.sub = new Redis(opts.url, common);
    const m = host.metrics;
    this.sent = m.counter('verona_cluster_sent_total', 'Messages published to other cluster nodes, by kind');
    this.received = m.counter('verona_cluster_received_total', 'Messages received from other cluster nodes, by kind');
    this.failures = m.counter('verona_cluster_redis_failures_total', 'Redis commands of the cluster that failed, by operation');
    m.gauge('verona_cluster_remote_sessions', 'Sessions of other cluster nodes in this node\'s registry', () => this.registry.remoteCount());
    for (const [name, c] of [['command', this.cmd], ['subscriber', this.sub]] as const) {
      // Without a listener an 'error' event would throw: Redis going away must never take a node down.
      c.on('error', (err: Error) => this.host.log.warn({ err: err.message, connection: name }, 'cluster: redis connection error'));
    }
  }

  async start(): Promise<void> {
    await this.cmd.connect();
    await this.sub.connect();
    this.sub.on('message', (channel: string, text: string) => {
      try {
        if (channel === KEYS.events) this.onEvent(text);
        else this.onInbox(text);
      } catch (err) {
        this.host.log.error({ err }, 'cluster: message handling failed');
      }
    });
    await this.sub.subscribe(KEYS.events, KEYS.inbox(this.id));
    this.registry.link = this;
    // A previous run under this name died within cluster.nodeTimeout (a quick restart): its
    // sessions are not ours, they end now, so that their contacts see them go.
    if ((await this.cmd.hlen(KEYS.sessions(this.id))) > 1) await this.reap(this.id);
    await this.register();
    this.started = true;
    // After the first connection, every 'ready' is a reconnection: Redis may have lost everything.
    this.cmd.on('ready', () => {
      if (this.started && !this.stopped) void this.resync('redis reconnected');
    });
    this.timer = setInterval(() => void this.tick(), this.opts.heartbeatMs);
    this.timer.unref();
    this.host.log.info({ node: this.id, lane: this.lane }, 'cluster: joined');
  }

  /** Leave the cluster cleanly: this node's sessions are already ended (Server.close). */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    try {
      const m = this.cmd.multi().del(KEYS.heartbeat(this.id)).del(KEYS.sessions(this.id)).hdel(KEYS.nodes, this.id);
      if (this.lane >= 0) m.del(KEYS.lane(this.lane));
      m.publish(KEYS.events, JSON.stringify({ t: 'dead', n: this.id }));
      await m.exec();
    } catch (err) {
      this.host.log.warn({ err }, 'cluster: could not leave cleanly (the others reap this node)');
    }
    this.sub.disconnect();
    this.cmd.disconnect();
  }

  // ---- ClusterLink ------------------------------------------------------------------------------

  sendTo(node: string, msg: InboxMsg): void {
    this.sent.inc({ kind: msg.t });
    if (msg.t === 'send') this.order?.sentCopy(msg.x);
    this.cmd.publish(KEYS.inbox(node), JSON.stringify(msg)).catch((err: unknown) => this.failed('publish', err));
  }

  /** Publish this node's order mark to every node (on the connection that carries its deliveries). */
  publishMark(w: number): void {
    this.sent.inc({ kind: 'wm' });
    this.cmd.publish(KEYS.events, JSON.stringify({ t: 'wm', n: this.id, w })).catch((err: unknown) => this.failed('publish', err));
  }

  sessionUp(user: string, resource: string, snap: SessionSnapshot): void {
    const q = ++this.seq;
    const ev = JSON.stringify({ t: 'up', n: this.id, u: user, r: resource, s: snap, q });
    this.cmd
      .multi()
      .hset(KEYS.sessions(this.id), sessionField(user, resource), JSON.stringify(snap), SEQ_FIELD, String(q))
      .publish(KEYS.events, ev)
      .exec()
      .catch((err: unknown) => this.failed('session-up', err));
  }

  sessionDown(user: string, resource: string): void {
    const q = ++this.seq;
    this.cmd
      .multi()
      .hdel(KEYS.sessions(this.id), sessionField(user, resource))
      .hset(KEYS.sessions(this.id), SEQ_FIELD, String(q))
      .publish(KEYS.events, JSON.stringify({ t: 'down', n: this.id, u: user, r: resource, q }))
      .exec()
      .catch((err: unknown) => this.failed('session-down', err));
  }

  private failed(op: string, err: unknown): void {
    this.failures.inc({ op });
    this.host.log.debug({ err, op }, 'cluster: redis command failed');
  }

  // ---- membership ------------------------------------------------------------------------------

  /** Write this node's membership and sessions, say hello, load the others. */
  private async register(): Promise<void> {
    await this.claimLane();
    await this.cmd
      .multi()
      .set(KEYS.heartbeat(this.id), '1', 'PX', this.opts.timeoutMs)
      .hset(KEYS.nodes, this.id, JSON.stringify({ since: Date.now() }))
      .del(KEYS.sessions(this.id))
      .hset(KEYS.sessions(this.id), SEQ_FIELD, String(this.seq))
      .exec();
    this.registry.republishAll();
    await this.cmd.publish(KEYS.events, JSON.stringify({ t: 'hello', n: this.id }));
    await this.loadAll();
  }

  private resync(why: string): Promise<void> {
    if (this.resyncing) return this.resyncing;
    this.host.log.warn({ node: this.id, why }, 'cluster: writing this node\'s state to Redis again');
    this.resyncing = this.register()
      .catch((err: unknown) => this.failed('resync', err))
      .finally(() => {
        this.resyncing = undefined;
      });
    return this.resyncing;
  }

  /** Take a free archive-clock lane (or keep ours). */
  private async claimLane(): Promise<void> {
    const ttl = this.opts.timeoutMs * 3;
    if (this.lane >= 0) {
      const ok = await this.cmd.set(KEYS.lane(this.lane), this.id, 'PX', ttl, 'NX');
      if (ok === 'OK' || (await this.cmd.get(KEYS.lane(this.lane))) === this.id) {
        await this.cmd.pexpire(KEYS.lane(this.lane), ttl);
        return;
      }
    }
    for (let i = 0; i < LANES; i++) {
      const ok = await this.cmd.set(KEYS.lane(i), this.id, 'PX', ttl, 'NX');
      if (ok === 'OK') {
        if (this.lane !== i) this.host.onLane(i, LANES);
        this.lane = i;
        return;
      }
    }
    throw new Error(`cluster: all ${LANES} archive lanes are taken (at most ${LANES} nodes)`);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.resyncing) return;
    try {
      const ttl = this.opts.timeoutMs * 3;
      const res = await this.cmd
        .multi()
        .set(KEYS.heartbeat(this.id), '1', 'PX', this.opts.timeoutMs)
        .hset(KEYS.nodes, this.id, JSON.stringify({ since: Date.now() }))
        .get(KEYS.lane(this.lane))
        .exec();
      const added = res?.[1]?.[1];
      const laneOwner = res?.[2]?.[1];
      // A new field: we had been reaped (a long pause), or Redis came back empty.
      if (added === 1) return void (await this.resync('this node was missing from the member list'));
      if (laneOwner !== this.id) await this.claimLane();
      else await this.cmd.pexpire(KEYS.lane(this.lane), ttl);
      this.registry.flushAll();
      await this.reapDead();
    } catch (err) {
      this.failed('heartbeat', err);
    }
  }

  private async reapDead(): Promise<void> {
    const members = await this.cmd.hkeys(KEYS.nodes);
    for (const n of members) {
      if (n === this.id) continue;
      if ((await this.cmd.exists(KEYS.heartbeat(n))) === 1) continue;
      const got = await this.cmd.set(KEYS.reaping(n), this.id, 'PX', this.opts.timeoutMs, 'NX');
      if (got === 'OK') await this.reap(n);
    }
    // A node in our mirror that is no member any more and has no heartbeat (it died while Redis
    // was away and came back empty): forget its sessions here.
    const known = new Set(members);
    for (const n of this.registry.remoteNodes()) {
      if (known.has(n) || (await this.cmd.exists(KEYS.heartbeat(n))) === 1) continue;
      this.host.log.warn({ node: n }, 'cluster: dropping sessions of a node that is gone');
      this.registry.dropNode(n);
      this.order?.gone(n);
    }
  }

  /** `node` is dead: its sessions end (contacts hear unavailable), then it leaves the member list. */
  private async reap(node: string): Promise<void> {
    await this.reloadNode(node);
    const gone = this.registry.dropNode(node);
    this.order?.gone(node);
    // Resumable sessions with a live checkpoint wait for their clients here instead of ending.
    let kept = new Set<string>();
    try {
      kept = await this.host.smAdopt(node);
    } catch (err) {
      this.host.log.error({ err, node }, 'cluster: keeping a dead node\'s resumable sessions failed; they end');
    }
    this.host.log.warn({ node, sessions: gone.length, kept: kept.size }, 'cluster: node is dead, ending its sessions');
    for (const s of gone) {
      if (kept.has(`${s.username}\0${s.resource}`)) continue;
      try {
        this.host.endedRemote(s);
      } catch (err) {
        this.host.log.error({ err }, 'cluster: ending a dead node\'s session failed');
      }
    }
    await this.cmd
      .multi()
      .del(KEYS.sessions(node))
      .hdel(KEYS.nodes, node)
      .publish(KEYS.events, JSON.stringify({ t: 'dead', n: node }))
      .exec();
  }

  private async loadAll(): Promise<void> {
    const members = new Set(await this.cmd.hkeys(KEYS.nodes));
    members.delete(this.id);
    this.order?.members([...members]);
    for (const n of members) await this.reloadNode(n);
  }

  /** Replace the mirror of `node` with its hash; events that arrive meanwhile are applied after, when newer. */
  private async reloadNode(node: string): Promise<void> {
    if (this.loading.has(node)) return;
    this.loading.set(node, []);
    try {
      const h = await this.cmd.hgetall(KEYS.sessions(node));
      const snapQ = Number(h[SEQ_FIELD] ?? 0);
      const seen = new Set<string>();
      for (const [f, v] of Object.entries(h)) {
        const k = splitSessionField(f);
        if (!k) continue;
        let snap: SessionSnapshot | undefined;
        try {
          snap = decodeSnapshot(JSON.parse(v));
        } catch {
          snap = undefined;
        }
        if (!snap) continue;
        seen.add(f);
        this.registry.upsertRemote(node, k.u, k.r, snap);
      }
      for (const s of this.registry.remoteOf(node)) {
        if (!seen.has(sessionField(s.username, s.resource))) this.registry.removeRemote(node, s.username, s.resource);
      }
      const later = this.loading.get(node) ?? [];
      this.loading.delete(node);
      for (const ev of later) if (ev.q === undefined || ev.q > snapQ) this.apply(ev);
    } finally {
      this.loading.delete(node);
    }
  }

  // ---- incoming --------------------------------------------------------------------------------

  private onEvent(text: string): void {
    const ev = decodeEvent(text);
    if (!ev || ev.n === this.id) return;
    this.received.inc({ kind: ev.t });
    if (ev.t === 'wm') return void this.order?.mark(ev.n, ev.w);
    if (ev.t === 'hello') this.order?.up(ev.n);
    if (ev.t === 'hello') return void this.reloadNode(ev.n).catch((err: unknown) => this.failed('reload', err));
    const q = (JSON.parse(text) as { q?: unknown }).q;
    const withSeq: EventMsg & Partial<Seq> = typeof q === 'number' ? { ...ev, q } : ev;
    const buf = this.loading.get(ev.n);
    if (buf && ev.t !== 'dead') return void buf.push(withSeq);
    this.apply(withSeq);
  }

  private apply(ev: EventMsg): void {
    switch (ev.t) {
      case 'up':
        this.registry.upsertRemote(ev.n, ev.u, ev.r, ev.s);
        break;
      case 'down':
        this.registry.removeRemote(ev.n, ev.u, ev.r);
        break;
      case 'dead':
        this.registry.dropNode(ev.n);
        this.order?.gone(ev.n);
        break;
      case 'hello':
      case 'wm':
        break;
    }
  }

  /**
   * Ask `nodes` to hand over the SM session `id` of `user` (a client resumes it here): true once
   * one of them wrote it to storage, false when none had it or nobody answered within `timeoutMs`.
   */
  askHandover(nodes: readonly string[], user: string, id: string, timeoutMs: number): Promise<boolean> {
    const waiting = new Set(nodes.filter((n) => n !== this.id));
    if (waiting.size === 0) return Promise.resolve(false);
    const k = randomBytes(9).toString('base64url');
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(false), timeoutMs);
      const finish = (ok: boolean): void => {
        clearTimeout(timer);
        this.asks.delete(k);
        resolve(ok);
      };
      this.asks.set(k, { waiting, done: finish });
      for (const n of waiting) this.sendTo(n, { t: 'sm-give', u: user, r: '', id, f: this.id, k });
    });
  }

  private onSmInbox(msg: Extract<InboxMsg, { t: 'sm-give' | 'sm-given' }>): void {
    if (msg.t === 'sm-give') {
      const reply = (ok: boolean): void => this.sendTo(msg.f, { t: 'sm-given', u: msg.u, r: '', k: msg.k, f: this.id, ok });
      this.host.smGive(msg.u, msg.id).then(reply, (err: unknown) => {
        this.host.log.error({ err }, 'cluster: handing a session over failed');
        reply(false);
      });
      return;
    }
    const a = this.asks.get(msg.k);
    if (!a) return;
    if (msg.ok) return a.done(true);
    a.waiting.delete(msg.f);
    if (a.waiting.size === 0) a.done(false);
  }

  private onInbox(text: string): void {
    const msg = decodeInbox(text);
    if (!msg) return;
    this.received.inc({ kind: msg.t });
    if (msg.t === 'sm-give' || msg.t === 'sm-given') return this.onSmInbox(msg);
    if (msg.t === 'wm-ask') return void this.order?.asked(msg.w);
    const s = this.registry.local.byFullJid(msg.u, msg.r);
    if (!s || s.closed) return; // gone meanwhile: a message is in the archive, a presence is stale
    if (msg.t === 'send') {
      let el;
      try {
        el = parseXml(msg.x);
      } catch {
        this.host.log.warn({ node: this.id }, 'cluster: unparsable stanza from another node dropped');
        return;
      }
      s.send(el);
      return;
    }
    this.host.endLocal(s, msg.c === 'conflict' ? 'replaced' : 'ended-by-cluster');
    s.stream.closeWith(msg.c, msg.m);
  }
}
