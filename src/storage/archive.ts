/**
 * Message archive storage (XEP-0313 MAM). One row per message per archive:
 * a message between two local accounts is stored twice, once in each
 * account's archive, under different ids.
 *
 * Two keys per row:
 * - `seq`, the order key: an integer that grows with time (microseconds since
 *   the epoch, made strictly increasing by the archive clock), so that "id
 *   order = time order" and time filters are ranges of the same index;
 * - `id`, the archive id clients see: server-made and time-ordered for the
 *   recipient's copy, `<stream id>-<message id>` (computable by the client)
 *   for a copy the account itself sent on an MR2 stream. Ids are unique per
 *   archive; lookups by id find the row's `seq`.
 *
 * Every query is answered from an index on (username, seq) or
 * (username, with, seq); none scans an archive.
 */

export interface ArchiveRecord {
  /** Owner of the archive (prepared localpart). */
  username: string;
  /** Order key, microseconds since the epoch, strictly increasing; floor(seq / 1000) is the archive time in ms. */
  seq: number;
  /** Archive id, unique within the owner's archive. */
  id: string;
  /** Bare JID of the other party (the owner's own bare JID for messages to oneself). */
  with: string;
  /** Resource of the other party's JID ('' when none). */
  withResource: string;
  /** True when the owner sent the message. */
  outgoing: boolean;
  /** The message as routed (XML, jabber:client namespace). */
  stanza: string;
}

export interface ArchiveRange {
  username: string;
  /** Bare JID filter. */
  with?: string;
  /** With a `with`: also match this resource exactly (XEP-0313 §4.1.1: full JID filters match the full JID). */
  withResource?: string;
  /** Inclusive bounds on seq (from `start`/`end`). */
  minSeq?: number;
  maxSeq?: number;
  /** Exclusive bounds on seq (from after-id/before-id and RSM after/before). */
  afterSeq?: number;
  beforeSeq?: number;
}

export interface ArchivePage extends ArchiveRange {
  /** 'asc' = oldest first from the lower bound; 'desc' = newest first from the upper bound. */
  order: 'asc' | 'desc';
  limit: number;
  /** Rows to skip first (RSM <index/>); costs an index walk of that length. */
  offset?: number;
}

export type ArchiveDefault = 'always' | 'never' | 'roster';

export interface ArchivePrefs {
  default: ArchiveDefault;
  /** Bare JIDs always archived (whatever the default). */
  always: string[];
  /** Bare JIDs never archived (wins over `always`). */
  never: string[];
}

export interface ArchiveStore {
  /** Store one row; resolves once committed (group commit), rejects when it could not be stored. */
  append(rec: ArchiveRecord): Promise<void>;
  /** Order key of an id in an archive, or undefined when the archive has no such id. */
  seqOf(username: string, id: string): Promise<number | undefined>;
  /** One page of rows, in the requested order. */
  page(q: ArchivePage): Promise<ArchiveRecord[]>;
  /** Number of rows in the range when it is at most `cap`; undefined when larger (counting is an index walk). */
  count(q: ArchiveRange, cap: number): Promise<number | undefined>;
  /** The rows with these ids (unknown ids are left out), oldest first. */
  byIds(username: string, ids: readonly string[]): Promise<ArchiveRecord[]>;
  /** First and last row of an archive (XEP-0313 metadata). */
  bounds(username: string): Promise<{ first: ArchiveRecord; last: ArchiveRecord } | undefined>;
  /** The highest seq ever stored (the clock never goes below it, even when the system clock does). */
  highWater(): Promise<number>;
  /** Preferences (XEP-0441); undefined = never set (default always). */
  getPrefs(username: string): Promise<ArchivePrefs | undefined>;
  setPrefs(username: string, prefs: ArchivePrefs): Promise<void>;
  /** Every account's stored preferences (small: only accounts that changed them), for an in-memory cache. */
  allPrefs(): Promise<Map<string, ArchivePrefs>>;
  /** Commit what is queued now (shutdown, tests). */
  flush(): Promise<void>;
}
