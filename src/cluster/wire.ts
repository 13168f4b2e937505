/**
 * What cluster nodes tell each other over Redis, as plain data: the snapshot
 * of a session that the fork table and the presence, blocking and PEP code
 * need on every node, and the messages on the two kinds of channel.
 *
 * Everything that arrives is checked here (decode* return undefined for a
 * message that is not one of ours): a Redis shared with something else, or a
 * node of another version, must never crash a node.
 */

/** Redis keys and channels (one cluster per Redis database). */
export const KEYS = {
  /** Hash: node id -> JSON {since}. Members of the cluster, alive or not yet reaped. */
  nodes: 'verona:nodes',
  /** String with expiry: present while the node is alive. */
  heartbeat: (node: string) => `verona:hb:${node}`,
  /** Hash: `user/resource` -> SessionSnapshot JSON, the sessions bound on that node. */
  sessions: (node: string) => `verona:sess:${node}`,
  /** String with expiry: held by the node that reaps a dead node (one reaper only). */
  reaping: (node: string) => `verona:reap:${node}`,
  /** String with expiry: archive-clock lane `i` (see ArchiveClock.setLane), value the owning node. */
  lane: (i: number) => `verona:lane:${i}`,
  /** Channel every node listens to: session changes, hello, dead. */
  events: 'verona:events',
  /** Channel of one node: stanzas for its sessions and commands. */
  inbox: (node: string) => `verona:node:${node}`,
} as const;

/** Number of archive-clock lanes: the most nodes one cluster can have. */
export const LANES = 64;

/** Module state that decides deliveries made on other nodes (keys of Session.data). */
export interface DataSnapshot {
  /** blocking: the resource requested the blocklist (gets blocking pushes). */
  blocking?: boolean;
  /** push: XEP-0357 enabled on the resource. */
  push?: boolean;
  /** pep: available for PEP and the nodes it wants notifications of (null: caps not known yet). */
  pep?: { available: boolean; notify: string[] | null };
}

/** The session as other nodes see it. Short keys: one is published per change. */
export interface SessionSnapshot {
  /** Stream id (the session's current one). */
  sid: string;
  priority: number;
  available: boolean;
  /** Last broadcast available presence, serialised; undefined when none. */
  presence?: string;
  interested: boolean;
  mr2: boolean;
  carbons: boolean;
  csiInactive: boolean;
  data: DataSnapshot;
}

export type EventMsg =
  | { t: 'up'; n: string; u: string; r: string; s: SessionSnapshot }
  | { t: 'down'; n: string; u: string; r: string }
  | { t: 'hello'; n: string }
  | { t: 'dead'; n: string }
  /** Order mark of node n (src/cluster/order.ts): its archived deliveries with seq <= w are all out, none follows. */
  | { t: 'wm'; n: string; w: number };

export type InboxMsg =
  | { t: 'send'; u: string; r: string; x: string }
  | { t: 'close'; u: string; r: string; c?: string; m?: string }
  /** Stream management: hand the session with resumption id `id` over (write it to storage); answer to node `f` under key `k`. */
  | { t: 'sm-give'; u: string; r: ''; id: string; f: string; k: string }
  /** The answer of node `f`: `ok` when the session was there and is now in storage. */
  | { t: 'sm-given'; u: string; r: ''; k: string; f: string; ok: boolean }
  /** Node `f` holds a delivery with seq `w`: publish this node's order mark (at least `w` once delivered up to it). */
  | { t: 'wm-ask'; u: ''; r: ''; f: string; w: number };

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const str = (v: unknown): v is string => typeof v === 'string';
const bool = (v: unknown): v is boolean => typeof v === 'boolean';
/** An archive seq (microseconds): a non-negative safe integer. */
const seqNumber = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;

function decodeData(v: unknown): DataSnapshot | undefined {
  if (!isObj(v)) return undefined;
  const out: DataSnapshot = {};
  if (bool(v.blocking)) out.blocking = v.blocking;
  if (bool(v.push)) out.push = v.push;
  const pep = v.pep;
  if (isObj(pep) && bool(pep.available)) {
    const n = pep.notify;
    if (n === null) out.pep = { available: pep.available, notify: null };
    else if (Array.isArray(n) && n.every(str)) out.pep = { available: pep.available, notify: n };
  }
  return out;
}

export function decodeSnapshot(v: unknown): SessionSnapshot | undefined {
  if (!isObj(v)) return undefined;
  const { sid, priority, available, presence, interested, mr2, carbons, csiInactive } = v;
  if (!str(sid) || typeof priority !== 'number' || !Number.isInteger(priority)) return undefined;
  if (!bool(available) || !bool(interested) || !bool(mr2) || !bool(carbons) || !bool(csiInactive)) return undefined;
  if (presence !== undefined && !str(presence)) return undefined;
  const data = decodeData(v.data);
  if (!data) return undefined;
  const s: SessionSnapshot = { sid, priority, available, interested, mr2, carbons, csiInactive, data };
  if (presence !== undefined) s.presence = presence;
  return s;
}

function parse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function decodeEvent(text: string): EventMsg | undefined {
  const v = parse(text);
  if (!isObj(v) || !str(v.n) || v.n === '') return undefined;
  switch (v.t) {
    case 'up': {
      if (!str(v.u) || !str(v.r)) return undefined;
      const s = decodeSnapshot(v.s);
      return s ? { t: 'up', n: v.n, u: v.u, r: v.r, s } : undefined;
    }
    case 'down':
      return str(v.u) && str(v.r) ? { t: 'down', n: v.n, u: v.u, r: v.r } : undefined;
    case 'hello':
    case 'dead':
      return { t: v.t, n: v.n };
    case 'wm':
      return seqNumber(v.w) ? { t: 'wm', n: v.n, w: v.w } : undefined;
    default:
      return undefined;
  }
}

export function decodeInbox(text: string): InboxMsg | undefined {
  const v = parse(text);
  if (!isObj(v) || !str(v.u) || !str(v.r)) return undefined;
  if (v.t === 'send') return str(v.x) ? { t: 'send', u: v.u, r: v.r, x: v.x } : undefined;
  if (v.t === 'sm-give') return str(v.id) && str(v.f) && str(v.k) ? { t: 'sm-give', u: v.u, r: '', id: v.id, f: v.f, k: v.k } : undefined;
  if (v.t === 'wm-ask') return str(v.f) && seqNumber(v.w) ? { t: 'wm-ask', u: '', r: '', f: v.f, w: v.w } : undefined;
  if (v.t === 'sm-given') return str(v.k) && str(v.f) && bool(v.ok) ? { t: 'sm-given', u: v.u, r: '', k: v.k, f: v.f, ok: v.ok } : undefined;
  if (v.t === 'close') {
    const m: InboxMsg = { t: 'close', u: v.u, r: v.r };
    if (str(v.c)) m.c = v.c;
    if (str(v.m)) m.m = v.m;
    return m;
  }
  return undefined;
}

/** Field of a session in its node's hash. '/' cannot be in a localpart (RFC 7622 §3.3.1). */
export function sessionField(user: string, resource: string): string {
  return `${user}/${resource}`;
}

export function splitSessionField(f: string): { u: string; r: string } | undefined {
  const i = f.indexOf('/');
  return i <= 0 ? undefined : { u: f.slice(0, i), r: f.slice(i + 1) };
}
