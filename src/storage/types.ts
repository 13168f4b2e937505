/**
 * Storage interfaces. Every backend (sqlite/ now, postgres/ later) implements
 * these; protocol modules see only these types. Methods are async at the
 * edge so that a networked backend fits without changing callers, even though
 * the SQLite implementation answers synchronously underneath.
 */
import type { RosterStore } from './roster.js';
import type { SmStateStore } from './sm-state.js';
import type { SmSessionStore } from './sm-sessions.js';
import type { ArchiveStore } from './archive.js';
import type { OfflineStore } from './offline.js';
import type { BlocklistStore } from './blocklist.js';
import type { PubsubStore } from './pubsub.js';
import type { MucStore } from './muc.js';
import type { PushStore } from './push.js';
import type { FastTokenStore } from './fast.js';

/** SCRAM credentials for one hash function (RFC 5802 §3). Never a plaintext password. */
export interface ScramCredential {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

export interface AccountRecord {
  username: string; // prepared localpart
  createdAt: number; // ms since epoch
  scram: { 'SHA-1': ScramCredential; 'SHA-256': ScramCredential };
}

export interface AccountStore {
  get(username: string): Promise<AccountRecord | undefined>;
  exists(username: string): Promise<boolean>;
  /** Throws AccountExistsError when taken. */
  create(record: AccountRecord): Promise<void>;
  setCredentials(username: string, scram: AccountRecord['scram']): Promise<boolean>;
  /** Removes the account and (through the onDelete hooks of other stores) all its data. */
  delete(username: string): Promise<boolean>;
  list(): Promise<string[]>;
}

export class AccountExistsError extends Error {}

/** Generic per-account key/value store (vcard, private XML, PEP nodes, settings). */
export interface KeyValueStore {
  get(username: string, store: string, key: string): Promise<string | undefined>;
  set(username: string, store: string, key: string, value: string | undefined): Promise<void>;
  keys(username: string, store: string): Promise<string[]>;
}

/**
 * The storage root: one object per backend. Stores added by later issues
 * (roster, archive, offline) are added as optional members here and
 * implemented per backend.
 */
/** What background maintenance reports, for logs and metrics. */
export interface MaintenanceEvents {
  /** The WAL was started over while archive commits were held for `ms` (see sqlite/checkpointer.ts). */
  onWalReset?(r: { ms: number; frames: number; ok: boolean }): void;
}

export interface Storage {
  readonly accounts: AccountStore;
  readonly kv: KeyValueStore;
  /** Rosters and pending subscription requests (RFC 6121); optional until every backend has one. */
  readonly roster?: RosterStore;
  /** Final `h` of ended resumable stream-management sessions (XEP-0198); optional per backend. */
  readonly smState?: SmStateStore;
  /** Hibernated resumable SM sessions, kept across a restart and taken over by any cluster node; optional per backend. */
  readonly smSessions?: SmSessionStore;
  /** Message archive (XEP-0313) with group commit; optional per backend. */
  readonly archive?: ArchiveStore;
  /** Offline messages (XEP-0160); optional per backend. */
  readonly offline?: OfflineStore;
  /** Blocked JIDs per account (XEP-0191); optional per backend. */
  readonly blocklist?: BlocklistStore;
  /** PEP nodes, items and the caps cache (XEP-0163, XEP-0115); optional per backend. */
  readonly pubsub?: PubsubStore;
  /** Persistent multi-user chat rooms (XEP-0045); optional per backend. */
  readonly muc?: MucStore;
  /** XEP-0357 push registrations; optional per backend. */
  readonly push?: PushStore;
  /** XEP-0484 FAST tokens (hashed); optional per backend. */
  readonly fastTokens?: FastTokenStore;
  /** Remove every piece of data of an account (all stores). */
  deleteUserData(username: string): Promise<void>;
  /**
   * Does a commit reach stable storage before it returns (survives power loss)? Read from the
   * live connection (SQLite: `PRAGMA synchronous` is FULL or EXTRA in WAL mode). Exported as the
   * gauge verona_storage_durable_commits, since "an ack means archived" rests on it.
   */
  durableCommits?(): boolean;
  /** Background maintenance for a long-running server (e.g. SQLite WAL checkpoints on a worker thread). */
  startMaintenance?(events?: MaintenanceEvents): void;
  /** Flush pending writes and close. */
  close(): Promise<void>;
}
