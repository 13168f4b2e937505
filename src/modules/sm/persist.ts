/**
 * A resumable session written down, so that it outlives its process
 * (docs/stream-management.md, "Across restarts and nodes"): what the sm
 * module stores in storage.smSessions at a graceful stop, or when another
 * cluster node takes the session over, and reads back to restore it as a
 * session waiting for resumption.
 *
 * Pure: encodeHibernation/decodeHibernation are table-tested; decode checks
 * every field (a row written by another version, or damaged, restores nothing
 * rather than something wrong).
 *
 * MR2's computable ids need no stream id here: the archive id prefix is the
 * stream id of the stream a message arrives on, and a resumed session gets a
 * new stream (src/modules/mr2.ts).
 */
import { decodeSnapshot, type SessionSnapshot } from '../../cluster/wire.js';
import type { SessionStream } from '../../core/session.js';
import type { Element } from '../../xml/element.js';

export interface Hibernation {
  /** Full JID of the session. */
  jid: string;
  /** Id of the stream it was last on. */
  sid: string;
  /** The session's resumption timeout (seconds, XEP-0198 `max`). */
  max: number;
  /** Outbound stanzas counted, of those acked by the client, inbound handled (plain counts, see state.ts). */
  out: number;
  acked: number;
  handled: number;
  /** The unacked outbound stanzas, oldest first, serialised namespace-complete. */
  queue: string[];
  /** The client queried MAM on this session (undelivered.ts: it catches up from the archive). */
  queriedMam: boolean;
  /** Session fields and module flags, in the shape cluster nodes replicate them (cluster/wire.ts). */
  session: SessionSnapshot;
  /** JIDs that got directed presence (RFC 6121 §4.6): told when the session finally ends. */
  directedTo: string[];
  /**
   * Present on a live checkpoint (the session runs in a process that may die without writing it
   * down) and on a session taken back after such a death and not resumed since: what rebuilds its
   * outbound queue from the archive at resumption (docs/stream-management.md, "After a crash").
   */
  crash?: CrashInfo;
}

/** What a checkpoint keeps so that a session survives the death of its process (kill -9). */
export interface CrashInfo {
  /** A running session's checkpoint (counters may lag), not a write-down at a stop or handover. */
  live: boolean;
  /** Archive id of the newest archived stanza the client acked (undefined: none yet). */
  ackedId: string | undefined;
  /** Archived stanzas sent and not yet acked: [outbound count, archive id], oldest first. */
  pending: Array<[number, string]>;
  /** When SM was enabled (ms): with no acked id, the rebuild starts at this archive time. */
  since: number;
  /** When a session waiting for resumption ends (ms); 0 while it has a connection. */
  deadline: number;
  /** When the checkpoint it came back from was written (ms; 0 on a live row: the row's savedAt). */
  at: number;
}

const VERSION = 1;

export function encodeHibernation(h: Hibernation): string {
  return JSON.stringify({ v: VERSION, ...h });
}

const count = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const strings = (v: unknown): v is string[] => Array.isArray(v) && v.every((s) => typeof s === 'string');

/** Undefined when the text is not a hibernated session of this version. */
export function decodeHibernation(text: string): Hibernation | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (o.v !== VERSION || typeof o.jid !== 'string' || typeof o.sid !== 'string') return undefined;
  if (!count(o.max) || !count(o.out) || !count(o.acked) || !count(o.handled)) return undefined;
  if (!strings(o.queue) || !strings(o.directedTo) || typeof o.queriedMam !== 'boolean') return undefined;
  // The queue holds exactly the stanzas sent and not acked.
  if (o.acked > o.out || o.out - o.acked !== o.queue.length) return undefined;
  const session = decodeSnapshot(o.session);
  if (!session) return undefined;
  const h: Hibernation = { jid: o.jid, sid: o.sid, max: o.max, out: o.out, acked: o.acked, handled: o.handled, queue: o.queue, queriedMam: o.queriedMam, session, directedTo: o.directedTo };
  if (o.crash !== undefined) {
    const crash = decodeCrash(o.crash);
    if (!crash) return undefined;
    h.crash = crash;
  }
  return h;
}

function decodeCrash(v: unknown): CrashInfo | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  if (typeof o.live !== 'boolean' || !count(o.since) || !count(o.deadline) || !count(o.at)) return undefined;
  if (o.ackedId !== undefined && typeof o.ackedId !== 'string') return undefined;
  if (!Array.isArray(o.pending)) return undefined;
  const pending: Array<[number, string]> = [];
  for (const p of o.pending as unknown[]) {
    if (!Array.isArray(p) || p.length !== 2 || !count(p[0]) || typeof p[1] !== 'string') return undefined;
    pending.push([p[0], p[1]]);
  }
  return { live: o.live, ackedId: o.ackedId, pending, since: o.since, deadline: o.deadline, at: o.at };
}

/**
 * The stream of a session restored from storage, before a client resumes it:
 * there is no connection. Stanzas still take the session's outbound filters
 * (CSI holds, SM counts and queues them); the wire end writes nothing.
 */
export class DetachedStream implements SessionStream {
  readonly remoteAddress = '';
  readonly transportKind = 'hibernated';
  constructor(readonly id: string) {}
  write(): void {
    /* nothing to write to: stanzas reach the SM queue through Session.send */
  }
  writeWire(_el: Element): void {
    /* no connection */
  }
  closeWith(): void {
    /* no connection to close */
  }
}
