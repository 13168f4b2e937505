/**
 * XEP-0198 Stream Management (urn:xmpp:sm:3, version 1.6) with Verona's
 * promise: an ack means "archived" (docs/protocol.md, docs/stream-management.md).
 *
 * - Inbound: `h` counts a stanza once the router has handled it (archived
 *   after its group commit, when archivable, and routed); Session.onInbound
 *   hands us that promise. Handling is serialised per session, so `h` only
 *   moves forward in order. An <r/> is answered once everything received
 *   before it is handled.
 * - Outbound: the 'sm' outbound filter runs last (after CSI), so it counts
 *   and queues exactly what reaches the wire; the client's <a h/> releases it.
 * - Resumption: the Session object outlives its stream; on <resume/> it is
 *   attached to the new stream (C2SStream.adopt) with all its state, and the
 *   unacked queue is sent again. Sessions that end for good hand their
 *   unacked stanzas to the rules in undelivered.ts.
 */
import { randomBytes } from 'node:crypto';
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { PRIORITY } from '../../core/events.js';
import { StanzaError } from '../../core/errors.js';
import { tryParseJID } from '../../jid/jid.js';
import type { VeronaModule, ModuleApi } from '../../core/module.js';
import type { Session, OutboundFilter, SessionStream } from '../../core/session.js';
import type { C2SStreamApi } from '../../core/stream-api.js';
import type { ServerContext } from '../../core/context.js';
import type { StanzaEvent } from '../../core/events.js';
import type { Metrics } from '../../metrics/metrics.js';
import { SmCounters, parseH, wireH } from './state.js';
import { parseSmOptions, type SmOptions } from './options.js';
import { classifyUndelivered, DeliveryTracker } from './undelivered.js';
import { decodeHibernation, DetachedStream, encodeHibernation, type Hibernation } from './persist.js';
import { Session as SessionClass } from '../../core/session.js';
import { serialize } from '../../xml/element.js';
import { parseXml } from '../../xml/parser.js';
import { applyData, snapshotOf } from '../../cluster/registry.js';
import type { SmSessionRecord } from '../../storage/sm-sessions.js';
import type { CsiFlush } from '../csi.js';
import type { CrashInfo } from './persist.js';
import { CheckpointWriter, type CheckpointEntry } from './checkpoint.js';
import { archiveIdIn, clientCount, copyShapeFor, deliveredIds, resendKey, sentKeys, type ArchivedRow } from './rebuild.js';
import { buildCopy } from '../../core/router.js';
import type { ArchiveRange } from '../../storage/archive.js';

/** Order of the SM outbound filter: after every other filter (CSI is 100), so it sees what is written. */
export const SM_FILTER_ORDER = 1000;
const DATA = 'sm';
const RESUMING = 'sm-resuming';

/** Service other modules (CSI) use to hand over stanzas a session will never send. */
export type UndeliveredSink = (session: Session, stanzas: Element[], source: string) => void;
export const UNDELIVERED_SERVICE = 'sm-undelivered';

/**
 * What other modules (push, SASL2/Bind2) may ask of stream management
 * (service 'sm-control'). Push keeps a push-enabled phone's session much
 * longer than a plain resumable one until its first push; SASL2 resumes and
 * enables inline, with the answer placed inside its <success/> or <bound/>.
 */
export interface SmControl {
  /** Seconds to keep a detached session instead of its own `max` (undefined: its own). */
  hibernationFor: ((session: Session) => number | undefined) | undefined;
  /** The session waits for resumption (its stream is gone). */
  isHibernating(session: Session): boolean;
  /** Back to the session's own `max` from now (after its first push). */
  endLongHibernation(session: Session): void;
  /** Called after a session was resumed on a new stream. */
  onResumed(fn: (session: Session) => void): void;
  /** Enable SM on a freshly bound session; returns <enabled/> or <failed/> instead of writing it. */
  enableInline(stream: C2SStreamApi, el: Element): Element;
  /** Resume inline: `reply` gets <resumed/> or <failed/>; queued stanzas are written after it. True when resumed. */
  resumeInline(stream: C2SStreamApi, el: Element, reply: (el: Element) => void): Promise<boolean>;
}
export const SM_CONTROL_SERVICE = 'sm-control';

/**
 * Service 'sm-handover': another cluster node asks for a session a client resumes there. The
 * session (attached or hibernating here) is written to storage.smSessions, its stream (if any)
 * gets <conflict/>, and it leaves this node without 'session/ended' (it lives on over there).
 */
export interface SmHandover {
  /** True when the session was here and is now in storage for the asking node to take. */
  give(username: string, id: string): Promise<boolean>;
  /**
   * `node` died (the cluster reaps it): take its live checkpoints and keep those sessions here,
   * waiting for resumption. Returns the `username\0resource` keys kept (they do not end).
   */
  adopt(node: string): Promise<Set<string>>;
}
export const SM_HANDOVER_SERVICE = 'sm-handover';
/** Service 'cluster-sm-ask' (the cluster provides it): ask the other nodes to hand a session over. */
export type ClusterSmAsk = (username: string, id: string) => Promise<boolean>;
export const CLUSTER_SM_ASK_SERVICE = 'cluster-sm-ask';
/** Seconds between looks for hibernated sessions in storage whose deadline passed (nobody took them). */
const EXPIRY_SWEEP_SECONDS = 30;
/**
 * `deadline` column of a live checkpoint: never "expired" for the orphan sweep (its session runs,
 * or its node is dead and the reaper or the restarted node takes it). The real deadline is in the state.
 */
const LIVE_ROW_DEADLINE = Number.MAX_SAFE_INTEGER;
/** Archive rows read at most to rebuild a crashed session's queue or find what it sends again. */
const REBUILD_PAGE = 500;

interface SmSession {
  enabled: boolean;
  c: SmCounters;
  /** Resumption id (only for resumable sessions). */
  id: string | undefined;
  maxSeconds: number;
  /** The client queried MAM on this session (it catches up from the archive). */
  queriedMam: boolean;
  /** We end this session ourselves; never keep it for resumption. */
  noResume: boolean;
  hibernating: boolean;
  timer: NodeJS.Timeout | undefined;
  /** When a hibernating session ends unless resumed (ms since epoch). */
  deadline: number;
  awaitingAck: boolean;
  requestedAt: number;
  oldestUnackedAt: number;
  overflowing: boolean;
  /** Pending <r/> from the client: answer once inHandled reaches target, on that stream only. */
  waiters: Array<{ target: number; stream: SessionStream }>;
  /** Serialises concurrent <resume/> attempts for this session. */
  resumeLock: Promise<void>;
  /** Counted and queued, not yet on the wire: archived stanzas wait for the checkpoint that records them. */
  held: Element[];
  /** Archive id of the newest archived stanza the client acked. */
  ackedId: string | undefined;
  /** When resumable SM was enabled (ms). */
  since: number;
  /** Came back from a crash and not resumed since: the queue is rebuilt from the archive at resumption. */
  rebuild: CrashInfo | undefined;
  /** savedAt of the checkpoint it came back from (ms): start of the window of stanzas it may send again. */
  rebuildSavedAt: number;
  /** After a crash resumption: messages the client sends again that the archive already holds. */
  dedupe: { keys: Set<string>; left: number } | undefined;
  /** Answers to <r/> waiting for the checkpoint that holds their h. */
  acks: Array<{ count: number; stream: SessionStream }>;
}

interface EndedRecord {
  username: string;
  reason: string;
  h: number | undefined;
  /** Settles when `h` is final (every stanza received before the end is handled). */
  ready: Promise<void>;
  at: number;
}

const MAX_ENDED_IN_MEMORY = 10000;

function smEl(name: string, attrs?: Record<string, string | undefined>, children?: Element[]): Element {
  return x(name, NS.SM, attrs, children);
}

function failedEl(condition: string, h?: number, text?: string): Element {
  const f = smEl('failed', { h: h === undefined ? undefined : String(h) }, [x(condition, NS.STANZA_ERRORS)]);
  if (text) f.append(x('text', NS.STANZA_ERRORS, { 'xml:lang': 'en' }, [text]));
  return f;
}

function isStanza(el: Element): boolean {
  return el.xmlns === NS.CLIENT && (el.name === 'message' || el.name === 'presence' || el.name === 'iq');
}

/** Every path that could lose or duplicate a stanza has a counter (docs/stream-management.md). */
function smMetrics(mt: Metrics) {
  return {
    enabled: mt.counter('verona_sm_enabled_total', 'Stream management enabled, by resumable yes/no'),
    resumptions: mt.counter('verona_sm_resumptions_total', 'Resumption attempts by outcome (resumed, unknown, expired, overflow, bad-h, malformed, unexpected)'),
    hibernated: mt.counter('verona_sm_hibernated_total', 'Sessions kept for resumption after their stream went away, by reason'),
    ended: mt.counter('verona_sm_sessions_ended_total', 'SM sessions that ended without resumption, by reason'),
    persisted: mt.counter('verona_sm_persisted_total', 'Resumable sessions written to storage (graceful stop, handed to another node), by reason'),
    restored: mt.counter('verona_sm_restored_total', 'Hibernated sessions read back from storage, by outcome (waiting, expired, unreadable)'),
    dropped: mt.counter('verona_sm_unacked_dropped_total', 'Unacked or held stanzas dropped when their session ended, by source and reason'),
    offline: mt.counter('verona_sm_unacked_offline_total', 'Unacked or held messages sent to offline storage when their session ended, by source and reason'),
    bounced: mt.counter('verona_sm_unacked_bounced_total', 'Unacked or held stanzas answered with an error when their session ended, by source and reason'),
    resent: mt.counter('verona_sm_resent_total', 'Unacked stanzas sent again after a resumption'),
    badAck: mt.counter('verona_sm_bad_acks_total', 'Acks that acknowledged more than was sent (stream error undefined-condition)'),
    ackedUnarchived: mt.counter('verona_sm_acked_unarchived_total', 'Messages handled (routed, and acked under SM) although their archive write failed; MR2 senders got <archive-failed/>'),
    ackTimeouts: mt.counter('verona_sm_ack_timeouts_total', 'Streams closed because an <r/> went unanswered'),
    checkpoints: mt.counter('verona_sm_checkpoint_rows_total', 'Live checkpoint rows written (one transaction per batch)'),
    checkpointBatches: mt.counter('verona_sm_checkpoint_batches_total', 'Live checkpoint transactions, by result'),
    rebuilt: mt.counter('verona_sm_rebuilt_total', 'Stanzas sent again from the archive after a crash resumption'),
    deduped: mt.counter('verona_sm_resent_deduped_total', 'Messages a client sent again after a crash resumption that were already handled (counted, not routed again)'),
  };
}

class StreamManagement {
  private readonly opts: SmOptions;
  private readonly server: ServerContext;
  /** Resumable sessions by resumption id (attached or hibernating). */
  private readonly live = new Map<string, Session>();
  /** Every session with SM enabled (for the ack-request sweep). */
  private readonly enabled = new Set<Session>();
  /** Recently ended resumable sessions (also persisted in storage.smState). */
  private readonly ended = new Map<string, EndedRecord>();
  private readonly pendingWrites = new Set<Promise<void>>();
  readonly tracker = new DeliveryTracker();
  private readonly filter: OutboundFilter;
  private sweeper: NodeJS.Timeout | undefined;
  private control: SmControl | undefined;
  private readonly resumedListeners: Array<(session: Session) => void> = [];
  /** Name hibernated sessions are written under (cluster.node; '' on a single node). */
  private readonly nodeName: string;
  /** Settles once the hibernated sessions of the previous run are back (resumes wait for it). */
  private restoring: Promise<void> = Promise.resolve();
  private sweeps = 0;
  /** Live checkpoints (undefined: no smSessions store, or checkpointLag 0). */
  private readonly writer: CheckpointWriter<Session> | undefined;

  private readonly m: ReturnType<typeof smMetrics>;

  constructor(private readonly api: ModuleApi) {
    this.opts = parseSmOptions(api.options);
    this.nodeName = api.config.cluster.node;
    const server = api.service<ServerContext>('server');
    if (!server) throw new Error('sm: the server context service is missing');
    this.server = server;
    const mt = api.metrics;
    this.m = smMetrics(mt);
    mt.gauge('verona_sm_hibernating', 'Sessions waiting for resumption', () => {
      let n = 0;
      for (const s of this.enabled) if (this.st(s)?.hibernating) n++;
      return n;
    });
    mt.gauge('verona_sm_unacked', 'Outbound stanzas waiting for an ack, all sessions', () => {
      let n = 0;
      for (const s of this.enabled) n += this.st(s)?.c.queue.length ?? 0;
      return n;
    });
    this.filter = { name: 'sm', order: SM_FILTER_ORDER, filter: (el, s) => this.outbound(el, s) };
    const store = api.storage.smSessions;
    if (store && this.opts.checkpointLag > 0) {
      this.writer = new CheckpointWriter<Session>({
        capture: (s) => this.checkpointOf(s),
        write: (recs) => store.putMany(recs as SmSessionRecord[]),
        lagMs: this.opts.checkpointLag,
        onBatch: ({ size, error }) => {
          this.m.checkpointBatches.inc({ result: error === undefined ? 'ok' : 'failed' });
          if (error === undefined) this.m.checkpoints.inc(undefined, size);
          else this.api.log.error({ err: error, size }, 'sm: writing live checkpoints failed; these sessions cannot be resumed after a crash until the next one');
        },
      });
    }
  }

  private st(session: Session): SmSession | undefined {
    return session.getData<SmSession>(DATA);
  }

  // ---- wiring ------------------------------------------------------------

  load(): void {
    const api = this.api;
    api.hook('stream/features', (e) => {
      if (e.stage === 'post-auth') e.features.append(smEl('sm'));
    });
    api.hook('stream/nonza', (e) => {
      if (e.el.xmlns !== NS.SM) return false;
      this.nonza(e.stream, e.el);
      return true;
    });
    api.hook('session/bound', ({ session }) => this.bound(session));
    api.hook('session/detached', (e) => this.detached(e.session, e.reason));
    // Before CSI's handler (which hands over its held queue): older stanzas are disposed first.
    api.hook('session/ended', (e) => this.sessionEnded(e.session, e.reason), 10);
    api.hook('message/deliver', (e) => {
      const st = this.st(e.session);
      this.tracker.delivered(e.stanza, e.copy, e.session, st?.enabled === true);
    }, PRIORITY.OBSERVE);
    // A rejected wait is an archive write that failed; the message is still routed and acked (protocol.md).
    api.hook('message/in', (e) => {
      if (e.waits.length === 0) return;
      void Promise.allSettled(e.waits).then((rs) => {
        if (rs.some((r) => r.status === 'rejected')) this.m.ackedUnarchived.inc();
      });
    }, PRIORITY.OBSERVE);
    const control: SmControl = {
      hibernationFor: undefined,
      isHibernating: (s) => this.st(s)?.hibernating === true,
      endLongHibernation: (s) => this.endLongHibernation(s),
      onResumed: (fn) => void this.resumedListeners.push(fn),
      enableInline: (stream, el) => this.enableEl(stream, el),
      resumeInline: (stream, el, reply) => this.resume(stream, el, reply),
    };
    this.control = control;
    api.provide(SM_CONTROL_SERVICE, control);
    api.provide(UNDELIVERED_SERVICE, ((session, stanzas, source) => this.dispose(session, stanzas, source)) satisfies UndeliveredSink);

    api.provide(SM_HANDOVER_SERVICE, { give: (u, id) => this.give(u, id), adopt: (node) => this.adopt(node) } satisfies SmHandover);
    // After a crash resumption: a message sent again that the archive already holds was handled
    // before the crash; counted (true: handled here), not routed twice.
    api.hook('stanza/client', (e) => this.resentDuplicate(e.session, e.stanza), PRIORITY.VALIDATE + 10);
    api.hook('server/ready', () => {
      this.restoring = this.restoreOwn().catch((err: unknown) => api.log.error({ err }, 'sm: restoring hibernated sessions failed'));
    });

    this.sweeper = setInterval(() => this.sweep(), 1000);
    this.sweeper.unref();
    const store = api.storage.smState;
    if (store) {
      store.prune(Date.now() - this.opts.keepEnded * 1000).catch((err: unknown) => api.log.warn({ err }, 'sm: pruning ended sessions failed'));
    }
    api.onClose(() => this.close());
  }

  private bound(session: Session): void {
    const st: SmSession = {
      enabled: false,
      c: new SmCounters(),
      id: undefined,
      maxSeconds: 0,
      queriedMam: false,
      noResume: false,
      hibernating: false,
      timer: undefined,
      deadline: 0,
      awaitingAck: false,
      requestedAt: 0,
      oldestUnackedAt: 0,
      overflowing: false,
      waiters: [],
      resumeLock: Promise.resolve(),
      held: [],
      ackedId: undefined,
      since: 0,
      rebuild: undefined,
      rebuildSavedAt: 0,
      dedupe: undefined,
      acks: [],
    };
    session.data.set(DATA, st);
    session.onInbound = (el, handled) => this.inbound(session, st, el, handled);
  }

  // ---- nonzas ------------------------------------------------------------

  private nonza(stream: C2SStreamApi, el: Element): void {
    switch (el.name) {
      case 'enable':
        return this.enable(stream, el);
      case 'resume':
        void this.resume(stream, el).catch((err: unknown) => {
          this.api.log.error({ err }, 'sm: resume failed');
          if (stream.open) stream.write(failedEl('internal-server-error'));
        });
        return;
      case 'r':
        return this.requested(stream);
      case 'a':
        return this.acked(stream, el);
      default:
        // Unknown SM element: answer with <failed/> rather than killing the stream.
        stream.write(failedEl('feature-not-implemented'));
    }
  }

  private enable(stream: C2SStreamApi, el: Element): void {
    stream.write(this.enableEl(stream, el));
  }

  private enableEl(stream: C2SStreamApi, el: Element): Element {
    const session = stream.session;
    const st = session && this.st(session);
    // XEP-0198 §3: only after resource binding, and only once.
    if (!session || !st || st.enabled) return failedEl('unexpected-request');
    let reply: Element;
    st.enabled = true;
    this.enabled.add(session);
    session.addFilter(this.filter);
    const wantsResume = el.attrs.resume === 'true' || el.attrs.resume === '1';
    if (wantsResume && this.opts.resumeTimeout > 0) {
      const asked = Number(el.attrs.max);
      st.maxSeconds = Math.round(Number.isFinite(asked) && asked > 0 ? Math.min(asked, this.opts.maxResumeTimeout) : this.opts.resumeTimeout);
      st.id = randomBytes(18).toString('base64url');
      st.since = Date.now();
      this.live.set(st.id, session);
      this.writer?.mark(session, true);
      reply = smEl('enabled', { id: st.id, resume: 'true', max: String(st.maxSeconds) });
    } else {
      reply = smEl('enabled');
    }
    this.m.enabled.inc({ resumable: st.id ? 'yes' : 'no' });
    return reply;
  }

  /** <r/> from the client: answer when every stanza received before it is handled. */
  private requested(stream: C2SStreamApi): void {
    const session = stream.session;
    const st = session && this.st(session);
    if (!session || !st?.enabled) return; // XEP-0198: not counted before enable; nothing to answer
    if (st.c.inHandled >= st.c.inReceived) {
      this.answer(session, st, session.stream);
      return;
    }
    st.waiters.push({ target: st.c.inReceived, stream: session.stream });
  }

  /**
   * Answer an <r/> with the current h. With live checkpoints the answer waits for the commit of a
   * checkpoint holding at least that h: a <resumed h/> after a crash is then never below an h the
   * client was told (it drops what an ack covers and could not send it again).
   */
  private answer(session: Session, st: SmSession, stream: SessionStream): void {
    if (this.writer && this.checkpointing(st)) {
      st.acks.push({ count: st.c.inHandled, stream });
      this.writer.mark(session, true);
      return;
    }
    stream.write(smEl('a', { h: String(st.c.h) }));
  }

  /** <a h/> from the client. */
  private acked(stream: C2SStreamApi, el: Element): void {
    const session = stream.session;
    const st = session && this.st(session);
    if (!session || !st?.enabled) return;
    const h = parseH(el.attrs.h);
    if (h === undefined) {
      this.badAck(session, st, `The h attribute must be an unsigned 32-bit integer, got ${JSON.stringify(el.attrs.h ?? '')}`);
      return;
    }
    const r = st.c.ack(h);
    if (!r.ok) {
      this.badAck(session, st, `You acknowledged ${r.claimed} stanzas, but I only sent you ${r.sent} so far.`);
      return;
    }
    for (const a of r.acked) this.tracker.acked(a, session);
    if (this.noteAcked(session, st, r.acked)) this.writer?.mark(session, false);
    st.awaitingAck = false;
    st.oldestUnackedAt = st.c.queue.length > 0 ? Date.now() : 0;
  }

  /** Remember the newest acked archived stanza (the crash rebuild starts after it); true when it moved. */
  private noteAcked(session: Session, st: SmSession, acked: readonly Element[]): boolean {
    if (this.writer === undefined || st.id === undefined) return false;
    const account = session.jid.bare.toString();
    let moved = false;
    for (const a of acked) {
      const id = archiveIdIn(a, account);
      if (id !== undefined) {
        st.ackedId = id;
        moved = true;
      }
    }
    return moved;
  }

  /** XEP-0198 §4: an h larger than what was sent is a stream error undefined-condition. */
  private badAck(session: Session, st: SmSession, text: string): void {
    this.m.badAck.inc();
    st.noResume = true;
    session.stream.closeWith('undefined-condition', text);
    this.server.endSession(session, 'sm-bad-ack');
  }

  // ---- inbound counting -----------------------------------------------

  private inbound(session: Session, st: SmSession, el: Element, handled: Promise<void>): void {
    if (!st.queriedMam && el.name === 'iq' && (el.attrs.type === 'get' || el.attrs.type === 'set') && el.getChild('query', NS.MAM)) {
      st.queriedMam = true;
    }
    if (!st.enabled) return;
    st.c.received();
    const done = (): void => this.handledOne(session, st);
    // The router never rejects this promise; a rejection still counts so h cannot stall forever.
    handled.then(done, done);
  }

  private handledOne(session: Session, st: SmSession): void {
    st.c.handled();
    if (st.id !== undefined) this.writer?.mark(session, false);
    if (st.waiters.length === 0 || (st.waiters[0] as { target: number }).target > st.c.inHandled) return;
    let stream: SessionStream | undefined;
    while (st.waiters.length > 0 && (st.waiters[0] as { target: number }).target <= st.c.inHandled) {
      stream = (st.waiters.shift() as { stream: SessionStream }).stream;
    }
    // One <a/> for every request it satisfies; only on the stream that asked.
    if (stream && !st.hibernating) this.answer(session, st, stream);
  }

  // ---- outbound counting ----------------------------------------------

  private outbound(el: Element, session: Session): Element | null {
    const st = this.st(session);
    if (!st?.enabled || !isStanza(el)) return el;
    const n = st.c.sent(el);
    if (n === 1) st.oldestUnackedAt = Date.now();
    this.toWire(session, st, el);
    if (n > this.opts.maxQueue) {
      this.overflow(session, st);
    } else if (!st.hibernating && !st.awaitingAck && n >= this.opts.requestEvery) {
      this.requestAck(session, st);
    }
    return null;
  }

  /**
   * Write a counted stanza to the client. While live checkpoints are on, an archived stanza (and
   * whatever follows it, to keep order) waits for the commit of the checkpoint that records its
   * number and archive id: after a crash the server then knows from the client's h exactly which
   * archived stanzas it had (rebuild.ts).
   */
  private toWire(session: Session, st: SmSession, el: Element): void {
    if (this.writer && !st.hibernating && this.checkpointing(st) && (st.held.length > 0 || archiveIdIn(el, session.jid.bare.toString()) !== undefined)) {
      st.held.push(el);
      this.writer.mark(session, true);
      return;
    }
    session.stream.writeWire(el);
  }

  private checkpointing(st: SmSession): boolean {
    return this.writer !== undefined && st.enabled && st.id !== undefined && !st.noResume && !st.overflowing && st.maxSeconds > 0;
  }

  /** The live checkpoint row of a session as it is now (CheckpointWriter.capture). */
  private checkpointOf(session: Session): CheckpointEntry<SmSessionRecord> | undefined {
    const st = this.st(session);
    if (!st || session.closed) return undefined;
    if (!this.checkpointing(st) || st.id === undefined) {
      // No longer kept across a crash (overflow, bad ack): what waited for a checkpoint goes now.
      for (const a of st.acks.splice(0)) if (!st.hibernating && a.stream === session.stream) a.stream.write(smEl('a', { h: String(wireH(a.count)) }));
      for (const el of st.held.splice(0)) if (!st.hibernating) session.stream.writeWire(el);
      return undefined;
    }
    const account = session.jid.bare.toString();
    let crash: CrashInfo;
    if (st.rebuild) {
      // Not resumed since the crash: what it had then still decides the rebuild.
      crash = { ...st.rebuild, live: true, deadline: st.hibernating ? st.deadline : 0, at: st.rebuildSavedAt };
    } else {
      const pending: Array<[number, string]> = [];
      st.c.queue.forEach((q, i) => {
        const id = archiveIdIn(q, account);
        if (id !== undefined) pending.push([st.c.outAcked + i + 1, id]);
      });
      crash = { live: true, ackedId: st.ackedId, pending, since: st.since, deadline: st.hibernating ? st.deadline : 0, at: 0 };
    }
    const hib = { ...this.capture(session, st), out: st.c.outAcked, acked: st.c.outAcked, queue: [], crash };
    const rec: SmSessionRecord = {
      username: session.username,
      id: st.id,
      resource: session.resource,
      node: this.nodeName,
      deadline: LIVE_ROW_DEADLINE,
      savedAt: Date.now(),
      state: encodeHibernation(hib),
    };
    const held = st.held;
    const n = held.length;
    const handled = st.c.inHandled;
    return {
      rec,
      after: () => {
        // Acks up to the recorded h may go out now, on the stream that asked.
        while (st.acks.length > 0 && (st.acks[0] as { count: number }).count <= handled) {
          const a = st.acks.shift() as { count: number; stream: SessionStream };
          if (!st.hibernating && a.stream === session.stream) a.stream.write(smEl('a', { h: String(wireH(a.count)) }));
        }
        // Recorded: these may go to the wire now (unless the stream went away meanwhile: they are queued).
        if (n === 0 || st.held !== held || session.closed) return;
        for (const el of held.splice(0, n)) session.stream.writeWire(el);
      },
    };
  }

  private requestAck(session: Session, st: SmSession): void {
    st.awaitingAck = true;
    st.requestedAt = Date.now();
    session.stream.write(smEl('r'));
  }

  /** Too many unacked stanzas: the session cannot be kept (XEP-0198 resource-constraint). */
  private overflow(session: Session, st: SmSession): void {
    if (st.overflowing) return;
    st.overflowing = true;
    st.noResume = true;
    // Not inside the send that overflowed: the router may be iterating this account's sessions.
    setImmediate(() => {
      if (session.closed) return;
      this.api.log.warn({ jid: session.jid.toString(), unacked: st.c.queue.length }, 'sm: unacked queue full; ending session');
      if (!st.hibernating) session.stream.closeWith('resource-constraint', 'Too many unacknowledged stanzas');
      this.server.endSession(session, 'sm-overflow');
    });
  }

  private sweep(): void {
    const now = Date.now();
    if (++this.sweeps % EXPIRY_SWEEP_SECONDS === 0) void this.endOrphans(now);
    for (const session of this.enabled) {
      const st = this.st(session);
      if (!st || st.hibernating || session.closed) continue;
      if (st.awaitingAck) {
        if (this.opts.ackTimeout > 0 && now - st.requestedAt > this.opts.ackTimeout * 1000) {
          // A client that stops answering is gone; keep the session for resumption.
          this.m.ackTimeouts.inc();
          session.stream.closeWith('connection-timeout', 'No answer to the stream management ack request');
        }
      } else if (st.c.queue.length > 0 && now - st.oldestUnackedAt >= this.opts.requestAfter * 1000) {
        this.requestAck(session, st);
      }
    }
  }

  // ---- hibernation and end ----------------------------------------------

  private detached(session: Session, reason: string): boolean {
    const st = this.st(session);
    // A graceful stop: a resumable session is written down (close()) instead of ending.
    if (reason === 'shutdown') return st !== undefined && this.canPersist(st) && this.keepAtStop(session, st);
    if (!st?.enabled || st.id === undefined || st.noResume || st.maxSeconds <= 0) return false;
    // A client that closes its stream cleanly ends the session (XEP-0198 §5); so do replacement and shutdown.
    if (reason === 'closed' || reason === 'replaced' || reason === 'shutdown') return false;
    if (st.hibernating) return true;
    st.hibernating = true;
    st.waiters = [];
    st.awaitingAck = false;
    // Held stanzas never reached the client; they are in the queue and go out again on resumption.
    st.held = [];
    st.acks = [];
    const secs = this.control?.hibernationFor?.(session) ?? st.maxSeconds;
    this.hibernateFor(session, st, secs);
    this.writer?.mark(session, false);
    this.m.hibernated.inc({ reason });
    this.api.log.info({ jid: session.jid.toString(), reason, unacked: st.c.queue.length, max: secs }, 'sm: waiting for resumption');
    return true;
  }

  private hibernateFor(session: Session, st: SmSession, secs: number): void {
    if (st.timer) clearTimeout(st.timer);
    st.deadline = Date.now() + secs * 1000;
    st.timer = setTimeout(() => {
      if (!session.closed) this.server.endSession(session, 'resume-expired');
    }, secs * 1000);
    st.timer.unref();
  }

  private endLongHibernation(session: Session): void {
    const st = this.st(session);
    if (st?.hibernating && !session.closed) this.hibernateFor(session, st, st.maxSeconds);
  }

  private sessionEnded(session: Session, reason: string): void {
    const st = this.st(session);
    if (!st) return;
    if (st.timer) clearTimeout(st.timer);
    st.timer = undefined;
    st.waiters = [];
    if (!st.enabled) return;
    this.enabled.delete(session);
    this.writer?.forget(session);
    st.held = [];
    this.m.ended.inc({ reason });
    if (st.id !== undefined) {
      this.live.delete(st.id);
      this.remember(session, st, st.id, reason);
    }
    const unacked = st.c.queue.splice(0);
    this.dispose(session, unacked, 'sm');
  }

  /** Keep the final h of an ended resumable session (memory and storage) once it is final. */
  private remember(session: Session, st: SmSession, id: string, reason: string): void {
    const rec: EndedRecord = { username: session.username, reason, h: undefined, at: Date.now(), ready: Promise.resolve() };
    const finish = async (): Promise<void> => {
      rec.h = st.c.h;
      const store = this.api.storage.smState;
      if (store) await store.put({ username: rec.username, id, h: rec.h, reason, endedAt: rec.at });
      // Its live checkpoint goes (after any batch in flight, which could write it again).
      if (this.writer) {
        await this.writer.idle();
        await this.api.storage.smSessions?.remove(rec.username, id);
      }
    };
    // Stanzas still waiting for their commit will be handled: h is final only then.
    rec.ready = session.inboundTail.then(finish).catch((err: unknown) => {
      this.api.log.warn({ err }, 'sm: saving the final h failed');
    });
    const p = rec.ready;
    this.pendingWrites.add(p);
    void p.then(() => this.pendingWrites.delete(p));
    this.ended.set(id, rec);
    if (this.ended.size > MAX_ENDED_IN_MEMORY) {
      const oldest = this.ended.keys().next().value;
      if (oldest !== undefined) this.ended.delete(oldest);
    }
  }

  /** Apply the undelivered rules (undelivered.ts) to stanzas a session will never get. */
  dispose(session: Session, stanzas: Element[], source: string): void {
    if (stanzas.length === 0) return;
    const st = this.st(session);
    const account = session.jid.bare.toString();
    const usesMam = session.mr2 || (st?.queriedMam ?? false);
    for (const el of stanzas) {
      const v = classifyUndelivered(el, {
        account,
        usesMam,
        deliveredElsewhere: this.tracker.elsewhere(el, session),
        alreadyOffline: this.tracker.isOffline(el),
      });
      this.tracker.released(el, session);
      try {
        if (v.action === 'drop') {
          this.m.dropped.inc({ source, reason: v.reason });
        } else if (v.action === 'bounce') {
          this.m.bounced.inc({ source, reason: v.reason });
          this.api.router.bounce(el, new StanzaError('service-unavailable'), undefined);
        } else {
          this.toOffline(el, v.stanza, v.archived, v.reason, source, account);
        }
      } catch (err) {
        this.api.log.error({ err, jid: session.jid.toString() }, 'sm: handling an undelivered stanza failed');
      }
    }
  }

  private toOffline(copy: Element, msg: Element, archived: boolean, reason: string, source: string, account: string): void {
    const stanza = msg.clone();
    const from = tryParseJID(stanza.attrs.from);
    const to = tryParseJID(stanza.attrs.to);
    if (!from || !to) {
      this.m.dropped.inc({ source, reason: 'unaddressed' });
      return;
    }
    // The offline store stamps the archive id itself (and skips archived messages for clients that catch up via MAM).
    let archiveId: string | undefined;
    stanza.removeChildren((c) => {
      if (c.name !== 'stanza-id' || c.xmlns !== NS.SID || c.attrs.by !== account) return false;
      archiveId = c.attrs.id;
      return true;
    });
    const e: StanzaEvent = { stanza, from, to, origin: undefined, waits: [], recipientArchiveId: archiveId };
    if (this.server.hooks.fire('message/offline', e)) {
      this.tracker.markOffline(copy);
      this.m.offline.inc({ source, reason });
      return;
    }
    // No offline storage took it. An archived message stays reachable through MAM; anything else
    // with content is answered with an error so that the sender knows (RFC 6120 §10.4.3 spirit).
    if (!archived && stanza.getChild('body')) {
      this.m.bounced.inc({ source, reason: 'offline-refused' });
      this.api.router.bounce(stanza, new StanzaError('recipient-unavailable'), undefined);
    } else {
      this.m.dropped.inc({ source, reason: 'offline-refused' });
    }
  }

  // ---- resumption -------------------------------------------------------

  /** `reply` writes the <resumed/> or <failed/> answer (SASL2 puts it inside its <success/>). True when resumed. */
  private async resume(stream: C2SStreamApi, el: Element, reply: (el: Element) => void = (r) => stream.write(r)): Promise<boolean> {
    // XEP-0198 §5: after authentication, instead of binding; one attempt at a time.
    if (!stream.authenticated || stream.session || stream.data.has(RESUMING)) {
      this.m.resumptions.inc({ outcome: 'unexpected' });
      reply(failedEl('unexpected-request'));
      return false;
    }
    const previd = el.attrs.previd;
    const h = parseH(el.attrs.h);
    if (!previd || h === undefined) {
      this.m.resumptions.inc({ outcome: 'malformed' });
      reply(failedEl('bad-request', undefined, 'resume needs previd and an unsigned 32-bit h'));
      return false;
    }
    stream.data.set(RESUMING, true);
    try {
      let session = this.live.get(previd);
      // Not here: written down at a restart, or live on another cluster node.
      if (!session) {
        await this.restoring;
        session = this.live.get(previd) ?? (await this.fetch(stream.username as string, previd));
      }
      const st = session && this.st(session);
      if (!session || !st || session.username !== stream.username || session.closed) {
        await this.resumeFailed(stream, previd, reply);
        return false;
      }
      const run = st.resumeLock.then(() => this.doResume(stream, session, st, previd, h, reply));
      st.resumeLock = run.then(() => undefined, () => undefined);
      return await run;
    } finally {
      stream.data.delete(RESUMING);
    }
  }

  private async doResume(stream: C2SStreamApi, session: Session, st: SmSession, previd: string, h: number, reply: (el: Element) => void): Promise<boolean> {
    if (session.closed) return this.resumeFailed(stream, previd, reply);
    if (!stream.open) return false;
    // The old stream, if still open, goes first: it must not take more input while we settle h.
    const old = session.stream;
    if (old !== (stream as unknown)) old.closeWith('conflict', 'Replaced by a resumed stream');
    // <resumed h/> must cover every stanza received on the old stream, including those waiting for their commit.
    let tail: Promise<void>;
    do {
      tail = session.inboundTail;
      await tail;
    } while (tail !== session.inboundTail);
    if (session.closed) return this.resumeFailed(stream, previd, reply);
    if (!stream.open) return false; // the new connection died meanwhile; the session stays hibernating
    const rebuilt = st.rebuild ? await this.rebuildAfterCrash(session, st, h) : undefined;
    if (session.closed) return this.resumeFailed(stream, previd, reply);
    if (!stream.open) return false;
    const r = st.c.ack(h);
    if (!r.ok) {
      this.m.resumptions.inc({ outcome: 'bad-h' });
      this.m.badAck.inc();
      reply(failedEl('undefined-condition', st.c.h, `You acknowledged ${r.claimed} stanzas, but I only sent you ${r.sent} so far.`));
      st.noResume = true;
      this.server.endSession(session, 'sm-bad-ack');
      return false;
    }
    for (const a of r.acked) this.tracker.acked(a, session);
    if (st.timer) clearTimeout(st.timer);
    st.timer = undefined;
    st.hibernating = false;
    st.awaitingAck = false;
    st.waiters = [];
    stream.adopt(session);
    reply(smEl('resumed', { previd, h: String(st.c.h) }));
    // Already counted when first sent: replayed past the filters, not counted again (but through
    // the checkpoint hold: the client may get them now).
    st.held = [];
    st.acks = [];
    for (const q of st.c.queue) this.toWire(session, st, q);
    this.m.resent.inc(undefined, st.c.queue.length);
    // After a crash: what the client missed, from the archive, counted as new stanzas.
    if (rebuilt) {
      for (const el of rebuilt) session.send(el);
      this.m.rebuilt.inc(undefined, rebuilt.length);
    }
    this.writer?.mark(session, true);
    this.m.resumptions.inc({ outcome: 'resumed' });
    st.oldestUnackedAt = st.c.queue.length > 0 ? Date.now() : 0;
    if (st.c.queue.length > 0) this.requestAck(session, st);
    this.api.log.info({ jid: session.jid.toString(), stream: stream.id, resent: st.c.queue.length }, 'sm: session resumed');
    for (const fn of this.resumedListeners) {
      try {
        fn(session);
      } catch (err) {
        this.api.log.error({ err }, 'sm: resumed listener failed');
      }
    }
    return true;
  }

  /**
   * A session back from a crash is resumed with the client's `h`: decide from the checkpoint and
   * the archive what it gets (rebuild.ts). Afterwards its outbound counters start at the client's
   * `h`, its queue is empty, and the returned stanzas are to be sent as new ones.
   */
  private async rebuildAfterCrash(session: Session, st: SmSession, h: number): Promise<Element[]> {
    const crash = st.rebuild as CrashInfo;
    const archive = this.api.storage.archive;
    const account = session.jid.bare.toString();
    const count = clientCount(h, st.c.outAcked);
    const had = deliveredIds(crash.pending, count);
    const out: Element[] = [];
    let dedupe = new Set<string>();
    if (archive) {
      let from: ArchiveRange = { username: session.username, minSeq: crash.since * 1000 };
      if (crash.ackedId !== undefined) {
        const seq = await archive.seqOf(session.username, crash.ackedId).catch(() => undefined);
        if (seq !== undefined) from = { username: session.username, afterSeq: seq };
      }
      const rows = await this.archiveRows(from, this.opts.maxQueue);
      const view = { resource: session.resource, priority: session.priority, available: session.available, mr2: session.mr2, carbons: session.carbons };
      for (const row of rows) {
        if (had.has(row.id)) continue;
        const shape = copyShapeFor(row, view);
        if (shape !== undefined) out.push(buildCopy(row.msg, shape, session, row.id, account));
      }
      // What the client sends again: its own messages archived since shortly before the checkpoint.
      const sent = await this.archiveRows({ username: session.username, minSeq: Math.max(0, st.rebuildSavedAt - 10000) * 1000 }, 5000);
      dedupe = sentKeys(sent, session.jid.toString());
    }
    // Stanzas queued since the session came back: archived ones are among the rebuilt (or the
    // client had them); the others (presence, not archived) go out after them.
    const rebuiltIds = new Set<string>();
    for (const el of out) {
      const id = archiveIdIn(el, account);
      if (id !== undefined) rebuiltIds.add(id);
    }
    for (const q of st.c.queue.splice(0)) {
      const id = archiveIdIn(q, account);
      if (id === undefined || (!rebuiltIds.has(id) && !had.has(id))) out.push(q);
    }
    st.c.outAcked = count;
    st.c.outCount = count;
    st.rebuild = undefined;
    st.dedupe = dedupe.size > 0 ? { keys: dedupe, left: this.opts.maxQueue + dedupe.size } : undefined;
    this.api.log.info({ jid: session.jid.toString(), rebuilt: out.length, clientH: h, recorded: had.size, dedupe: dedupe.size }, 'sm: resuming a session back from a crash');
    return out;
  }

  /** Archive rows of a range, oldest first, at most `max`, parsed. */
  private async archiveRows(range: ArchiveRange, max: number): Promise<ArchivedRow[]> {
    const archive = this.api.storage.archive;
    const out: ArchivedRow[] = [];
    if (!archive) return out;
    let q = range;
    while (out.length < max) {
      const page = await archive.page({ ...q, order: 'asc', limit: Math.min(REBUILD_PAGE, max - out.length) });
      for (const r of page) {
        try {
          out.push({ id: r.id, outgoing: r.outgoing, msg: parseXml(r.stanza) });
        } catch {
          this.api.log.warn({ user: r.username, id: r.id }, 'sm: unparsable archived message skipped in a crash rebuild');
        }
      }
      const last = page[page.length - 1];
      if (!last || page.length < REBUILD_PAGE) break;
      q = { username: range.username, afterSeq: last.seq };
    }
    return out;
  }

  /** After a crash resumption: a message sent again that was handled before the crash (stanza/client hook). */
  private resentDuplicate(session: Session, stanza: Element): boolean {
    const st = this.st(session);
    const d = st?.dedupe;
    if (!st || !d) return false;
    if (--d.left <= 0 || d.keys.size === 0) st.dedupe = undefined;
    const k = resendKey(stanza);
    if (k === undefined || !d.keys.delete(k)) return false;
    this.m.deduped.inc();
    return true;
  }

  /** Unknown, expired or foreign id: <failed/>, with the final h when we know it; the stream goes on. */
  private async resumeFailed(stream: C2SStreamApi, previd: string, reply: (el: Element) => void): Promise<false> {
    const username = stream.username as string;
    let h: number | undefined;
    let reason: string | undefined;
    const rec = this.ended.get(previd);
    if (rec && rec.username === username) {
      await rec.ready;
      h = rec.h;
      reason = rec.reason;
    } else {
      const stored = await this.api.storage.smState?.get(username, previd).catch(() => undefined);
      if (stored) {
        h = stored.h;
        reason = stored.reason;
      }
    }
    const overflow = reason === 'sm-overflow';
    this.m.resumptions.inc({ outcome: reason === undefined ? 'unknown' : overflow ? 'overflow' : 'expired' });
    if (!stream.open) return false;
    reply(failedEl(overflow ? 'resource-constraint' : 'item-not-found', h));
    return false;
  }

  // ---- across restarts and nodes (docs/stream-management.md) ------------------

  /** Can this session be written down for another process to resume? */
  private canPersist(st: SmSession): boolean {
    return this.api.storage.smSessions !== undefined && st.enabled && st.id !== undefined && !st.noResume && !st.overflowing && st.maxSeconds > 0;
  }

  /** Detach the session from its stream for writing it down; its deadline starts now unless it already waits. */
  private keepAtStop(session: Session, st: SmSession): boolean {
    st.held = [];
    st.acks = [];
    if (!st.hibernating) {
      st.hibernating = true;
      st.waiters = [];
      st.awaitingAck = false;
      st.deadline = Date.now() + (this.control?.hibernationFor?.(session) ?? st.maxSeconds) * 1000;
    }
    if (st.timer) clearTimeout(st.timer);
    st.timer = undefined;
    // No stream: what still arrives is counted and queued; the stream's close no longer detaches it.
    if (!(session.stream instanceof DetachedStream)) session.stream = new DetachedStream(session.stream.id);
    return true;
  }

  private capture(session: Session, st: SmSession): Hibernation {
    return {
      jid: session.jid.toString(),
      sid: session.streamId,
      max: st.maxSeconds,
      out: st.c.outCount,
      acked: st.c.outAcked,
      handled: st.c.inHandled,
      queue: st.c.queue.map((el) => serialize(el, '')),
      queriedMam: st.queriedMam,
      session: snapshotOf(session),
      directedTo: [...session.directedTo],
      ...(st.rebuild ? { crash: { ...st.rebuild, live: false, at: st.rebuildSavedAt } } : {}),
    };
  }

  /**
   * Write a detached session to storage.smSessions and let it go from this process without
   * 'session/ended': contacts are told nothing, since it lives on (restart, another node).
   */
  private async writeDown(session: Session, st: SmSession, reason: string): Promise<void> {
    const store = this.api.storage.smSessions;
    const id = st.id;
    if (!store || id === undefined) return;
    // What CSI holds goes into the SM queue first (counted, sent again on resumption).
    this.api.service<CsiFlush>('csi-flush')?.(session);
    // h must cover every stanza received, including those still waiting for their commit.
    let tail: Promise<void>;
    do {
      tail = session.inboundTail;
      await tail;
    } while (tail !== session.inboundTail);
    if (session.closed) return;
    const rec: SmSessionRecord = {
      username: session.username,
      id,
      resource: session.resource,
      node: this.nodeName,
      deadline: st.deadline,
      savedAt: Date.now(),
      state: encodeHibernation(this.capture(session, st)),
    };
    // Nothing more is queued into a session already written down (a later message is in the archive).
    session.closed = true;
    this.server.sessions.remove(session);
    this.enabled.delete(session);
    this.live.delete(id);
    this.writer?.forget(session);
    try {
      // A live checkpoint in flight must not overwrite the write-down.
      await this.writer?.idle();
      await store.put(rec);
      this.m.persisted.inc({ reason });
      this.api.log.info({ jid: session.jid.toString(), unacked: st.c.queue.length, reason }, 'sm: session written down for resumption');
    } catch (err) {
      this.api.log.error({ err, user: rec.username }, 'sm: writing a session down failed; it cannot be resumed');
    }
  }

  /** Another node asks for a session a client resumes there (SmHandover). */
  private async give(username: string, id: string): Promise<boolean> {
    const session = this.live.get(id);
    const st = session && this.st(session);
    if (!session || !st || session.username !== username || session.closed || !this.canPersist(st)) return false;
    const old = session.stream;
    this.keepAtStop(session, st);
    // XEP-0198 §5: the old stream, wherever it is, gets <conflict/>.
    old.closeWith('conflict', 'Resumed on another node');
    await this.writeDown(session, st, 'handover');
    return true;
  }

  /** A resumption id this process does not hold: take it from storage, asking the other nodes first when needed. */
  private async fetch(username: string, id: string): Promise<Session | undefined> {
    const store = this.api.storage.smSessions;
    if (!store) return undefined;
    const ask = this.api.service<ClusterSmAsk>(CLUSTER_SM_ASK_SERVICE);
    // A live checkpoint of another node is that node's running session: it must hand it over. When
    // it does not answer it is dead; its reaper keeps the session (adopt), and is asked next. Past
    // this wait nobody holds it any more and the row is taken here.
    const c = this.api.config.cluster;
    const giveUpAt = Date.now() + (ask ? (c.nodeTimeout + 2 * c.heartbeat) * 1000 + 10000 : 0);
    for (;;) {
      const here = this.live.get(id);
      if (here) return here;
      const cur = await store.get(username, id);
      const liveElsewhere = cur !== undefined && cur.node !== this.nodeName && decodeHibernation(cur.state)?.crash?.live === true;
      let rec: SmSessionRecord | undefined;
      if (cur && !liveElsewhere) {
        rec = await store.take(username, id);
      } else if (ask && (await ask(username, id))) {
        rec = await store.take(username, id);
      } else if (!cur) {
        return undefined;
      } else if (Date.now() >= giveUpAt) {
        this.api.log.warn({ user: username, node: cur.node }, 'sm: taking the live checkpoint of a node that does not answer');
        rec = await store.take(username, id);
      } else {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      if (!rec) return this.live.get(id);
      return this.live.get(id) ?? this.restore(rec);
    }
  }

  /** A dead node's live checkpoints (the cluster reaps it): its resumable sessions wait here. */
  private async adopt(node: string): Promise<Set<string>> {
    const kept = new Set<string>();
    const store = this.api.storage.smSessions;
    if (!store || node === '') return kept;
    await this.restoring;
    for (const r of await store.byNode(node)) {
      if (decodeHibernation(r.state)?.crash?.live !== true) continue;
      const rec = await store.take(r.username, r.id);
      const s = rec && this.restore(rec);
      if (s) kept.add(`${s.username}\0${s.resource}`);
    }
    if (kept.size > 0) this.api.log.info({ node, sessions: kept.size }, 'sm: sessions of a dead node kept for resumption here');
    return kept;
  }

  /** At start: the sessions this node wrote down when it stopped wait for resumption again. */
  private async restoreOwn(): Promise<void> {
    const store = this.api.storage.smSessions;
    if (!store) return;
    let n = 0;
    for (const r of await store.byNode(this.nodeName)) {
      // Taken one by one: another node may be taking one of them for a client right now.
      const rec = await store.take(r.username, r.id);
      if (rec && this.restore(rec)) n++;
    }
    if (n > 0) this.api.log.info({ sessions: n }, 'sm: hibernated sessions restored');
  }

  /** Hibernated sessions nobody took before their deadline (their node never came back): they end here. */
  private async endOrphans(now: number): Promise<void> {
    const store = this.api.storage.smSessions;
    if (!store) return;
    try {
      for (const r of await store.expired(now, 100)) {
        const rec = await store.take(r.username, r.id);
        if (rec) this.restore(rec);
      }
    } catch (err) {
      this.api.log.warn({ err }, 'sm: looking for expired hibernated sessions failed');
    }
  }

  /**
   * A written-down session back as a local session waiting for resumption, exactly like one whose
   * TCP connection dropped. Past its deadline it ends at once (contacts get unavailable presence,
   * its unacked messages the undelivered rules). Undefined when it is not resumable here.
   */
  private restore(rec: SmSessionRecord): Session | undefined {
    const h = decodeHibernation(rec.state);
    const jid = h && tryParseJID(h.jid);
    let queue: Element[] | undefined;
    try {
      queue = h?.queue.map((q) => parseXml(q));
    } catch {
      queue = undefined;
    }
    if (!h || !jid || jid.isBare() || !queue) {
      this.m.restored.inc({ outcome: 'unreadable' });
      this.api.log.warn({ user: rec.username, id: rec.id }, 'sm: unreadable hibernated session dropped');
      return undefined;
    }
    const current = this.server.sessions.byFullJid(rec.username, jid.resource);
    if (current && !current.closed) {
      // The resource was bound again meanwhile: that login replaced this session.
      this.m.restored.inc({ outcome: 'replaced' });
      void this.api.storage.smState?.put({ username: rec.username, id: rec.id, h: h.handled % 2 ** 32, reason: 'replaced', endedAt: Date.now() }).catch(() => undefined);
      return undefined;
    }
    const session = new SessionClass(jid, new DetachedStream(h.sid), rec.username);
    const snap = h.session;
    session.priority = snap.priority;
    session.available = snap.available;
    session.interested = snap.interested;
    session.mr2 = snap.mr2;
    session.carbons = snap.carbons;
    session.csiInactive = snap.csiInactive;
    if (snap.presence !== undefined) {
      try {
        session.presence = parseXml(snap.presence);
      } catch {
        session.presence = undefined;
      }
    }
    applyData(session, snap.data);
    for (const d of h.directedTo) session.directedTo.add(d);
    this.server.sessions.add(session);
    this.server.hooks.fire('session/bound', { session });
    const st = this.st(session) as SmSession;
    st.enabled = true;
    st.id = rec.id;
    st.maxSeconds = h.max;
    st.queriedMam = h.queriedMam;
    st.c.outCount = h.out;
    st.c.outAcked = h.acked;
    st.c.inReceived = h.handled;
    st.c.inHandled = h.handled;
    st.c.queue.push(...queue);
    st.hibernating = true;
    st.oldestUnackedAt = queue.length > 0 ? Date.now() : 0;
    st.since = h.crash?.since ?? Date.now();
    let deadline = rec.deadline;
    if (h.crash) {
      // Back from a crash (a live checkpoint), or written down since without being resumed: the
      // queue that died with the process is rebuilt from the archive when the client resumes.
      st.rebuild = h.crash;
      st.rebuildSavedAt = h.crash.at > 0 ? h.crash.at : rec.savedAt;
      // A live row's session was waiting already (its own deadline) or had its connection: then
      // its time starts now (the moment of the crash is unknown, and the client could not resume
      // while nobody held the session; an idle session's last checkpoint may be old).
      if (h.crash.live) deadline = h.crash.deadline > 0 ? h.crash.deadline : Date.now() + h.max * 1000;
    }
    this.enabled.add(session);
    session.addFilter(this.filter);
    this.live.set(rec.id, session);
    const left = (deadline - Date.now()) / 1000;
    if (left <= 0) {
      this.m.restored.inc({ outcome: 'expired' });
      this.server.endSession(session, 'resume-expired');
      return undefined;
    }
    this.hibernateFor(session, st, left);
    this.m.restored.inc({ outcome: h.crash?.live ? 'crashed' : 'waiting' });
    // Its row was taken: a live checkpoint under this node's name at once, for the next crash.
    this.writer?.mark(session, true);
    return session;
  }

  // ---- shutdown -----------------------------------------------------------

  private async close(): Promise<void> {
    if (this.sweeper) clearInterval(this.sweeper);
    // Resumable sessions are written down for the next run (or another node); the others end.
    const writes: Array<Promise<void>> = [];
    for (const s of [...this.enabled]) {
      if (s.closed) continue;
      const st = this.st(s);
      if (st && this.canPersist(st) && this.keepAtStop(s, st)) writes.push(this.writeDown(s, st, 'shutdown'));
      else this.server.endSession(s, 'shutdown');
    }
    // Final h values and hibernated sessions are written once pending commits settle; do not wait forever for a stuck store.
    const all = Promise.allSettled([...this.pendingWrites, ...writes]);
    let t: NodeJS.Timeout | undefined;
    await Promise.race([all, new Promise((r) => (t = setTimeout(r, 10000)))]);
    if (t) clearTimeout(t);
    this.writer?.close();
  }
}

export const smModule: VeronaModule = {
  name: 'sm',
  load(api) {
    new StreamManagement(api).load();
  },
};
