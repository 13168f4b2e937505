/**
 * Every hook of the core, declared in one place with its payload, and the
 * priorities modules use, with the reason for each order.
 *
 * Message path (see docs/architecture.md):
 *   c2s stanza -> 'message/out' (sender side: policy, id checks, sender archive)
 *              -> 'message/in'  (recipient side, local accounts: blocking, recipient archive)
 *              -> await event.waits (group commit)
 *              -> delivery: decideIncoming/decideOutgoing (pure) -> Session.send
 *              -> 'message/offline' when nobody took it
 */
import type { Element } from '../xml/element.js';
import type { JID } from '../jid/jid.js';
import type { Session } from './session.js';
import type { C2SStreamApi } from './stream-api.js';

export interface StanzaEvent {
  stanza: Element;
  from: JID;
  to: JID;
  /** The local session that sent it; undefined for server-generated stanzas. */
  origin: Session | undefined;
  /** Promises that must settle before delivery (archive commits). A rejection means "archive failed". */
  waits: Promise<unknown>[];
  /** Archive ids assigned during the hooks (set by MAM). */
  senderArchiveId?: string;
  recipientArchiveId?: string;
  /** Set when a wait rejected: the message is still routed (protocol.md). */
  archiveFailed?: boolean;
  /**
   * Set by MAM when an archivable message was deliberately not stored in the
   * sender's archive (the sender's XEP-0441 preferences exclude the contact):
   * an MR2 sender is told, as for a failure, that its computable id is not there.
   */
  senderNotArchived?: 'preferences';
  /** Resources of the recipient that must not get a copy (e.g. already delivered). */
  skipResources?: Set<string>;
}

export interface FeaturesEvent {
  stream: C2SStreamApi;
  /** 'pre-auth' after TLS (or when TLS is not offered), 'post-auth' after SASL success. */
  stage: 'pre-auth' | 'post-auth';
  features: Element;
}

export interface NonzaEvent {
  stream: C2SStreamApi;
  el: Element;
}

export interface SessionEvent {
  session: Session;
}

export interface SessionEndEvent {
  session: Session;
  /**
   * 'closed' (clean </stream>), 'disconnected' (connection lost without a footer), 'error', 'replaced',
   * 'shutdown', 'timeout', 'resume-expired'; SM adds 'sm-overflow', 'sm-bad-ack'.
   */
  reason: string;
}

export interface HookEvents {
  /** Stream features being built; modules append their feature elements. */
  'stream/features': FeaturesEvent;
  /** A top-level element that is not a stanza (sm, csi, mr2 nonzas). Return true when handled. */
  'stream/nonza': NonzaEvent;
  /** A resource was bound (the session is in the registry). */
  'session/bound': SessionEvent;
  /** A session ended for good (not when it merely waits for resumption). */
  'session/ended': SessionEndEvent;
  /**
   * The stream under a session went away; SM may keep the session for resumption (return true).
   * Also fired with reason 'shutdown' at a graceful stop: SM writes a resumable session down (true).
   */
  'session/detached': SessionEndEvent;
  /** Modules loaded and the cluster joined, before the listeners accept anyone (SM restores hibernated sessions). */
  'server/ready': Record<string, never>;
  /** A local user sends a message (sender side). */
  'message/out': StanzaEvent;
  /** A message to a local account (recipient side), before delivery. */
  'message/in': StanzaEvent;
  /** A message addressed to the server's own domain. */
  'message/server': StanzaEvent;
  /** Nobody took a chat/normal message: offline storage returns true when it stored it. */
  'message/offline': StanzaEvent;
  /** A local user sends presence (any `to`). Return true when handled (the presence module does). */
  'presence/out': StanzaEvent;
  /** Presence to a local account. Return true when handled. */
  'presence/in': StanzaEvent;
  /**
   * An IQ addressed to an account (bare or full JID, any type), before it is dispatched to a handler or
   * delivered. Not fired for IQs to the server itself. Return true when handled: the handler replies
   * itself (e.g. blocking bounces or drops it).
   */
  'iq/in': StanzaEvent;
  /** A copy is about to be delivered to one session (after the routing decision). Return true to drop it. */
  'message/deliver': StanzaEvent & { session: Session; copy: Element; shape: string };
  /**
   * Any stanza from a bound client session, `from` stamped, before routing. Fired with rethrow: a
   * StanzaError bounces the stanza. Return true when the handler took it (it routes it later itself).
   * Used by the per-session/per-account limits (src/limits/stanza-limits.ts, priority VALIDATE).
   * Stream management (priority VALIDATE + 10, first: a duplicate is never limited) takes a message a
   * client sends again after a crash resumption that the archive already holds (src/modules/sm/rebuild.ts).
   */
  'stanza/client': ClientStanzaEvent;
}

export interface ClientStanzaEvent {
  session: Session;
  stanza: Element;
  /** The client's address (limits.exemptAddresses are not limited). */
  remoteAddress: string;
}

/**
 * Hook priorities, highest runs first. Order on the message path:
 * policy and validation before archiving, archiving before delivery, so that
 * a bounced message is never archived and every delivered copy carries the id.
 */
export const PRIORITY = {
  /** Reject malformed/forbidden input first (MR2 id checks, stanza-id spoof stripping). */
  VALIDATE: 100,
  /** Blocking (XEP-0191) drops blocked traffic before anything is stored. */
  BLOCKING: 50,
  /**
   * After policy, before archiving: MDS server assist publishes a displayed marker to PEP
   * (src/modules/mds.ts); push observes CSI <active/> before the csi module consumes it.
   */
  BEFORE_ARCHIVE: 10,
  /** MAM archives after policy and before delivery. */
  ARCHIVE: 0,
  /** Anything that observes the final stanza. */
  OBSERVE: -50,
} as const;
