/**
 * Roster storage (RFC 6121 §2, XEP-0237 roster versioning): the items of
 * each account, a version counter per account, tombstones of removed items
 * (so that a client with an older version can be sent only the changes), and
 * the pending inbound subscription requests (RFC 6121 §3.1.3: the server
 * keeps the complete request stanza until the user answers it).
 *
 * Pending inbound requests live apart from the items because a request from
 * a JID that is not in the roster must not add it to the roster (§3.1.3).
 *
 * Every backend implements RosterStore; MemoryRosterStore below is the
 * reference used for the store conformance test and for embedding.
 */

export type Subscription = 'none' | 'to' | 'from' | 'both';

/** What the protocol layer writes. */
export interface RosterItemData {
  /** Prepared JID of the contact (normally bare). */
  jid: string;
  name?: string;
  subscription: Subscription;
  /** Pending Out: the user asked for the contact's presence (`ask='subscribe'`). */
  ask: boolean;
  /** Pre-approved (RFC 6121 §3.4): the contact's next subscribe is approved at once. */
  approved: boolean;
  groups: string[];
}

export interface RosterItem extends RosterItemData {
  /** Version counter at which this item last changed. */
  ver: number;
}

export interface RosterVersion {
  /**
   * Random per roster "lifetime" (set when the account's roster is first
   * touched), so that a version cached by a client for a deleted and
   * re-created account never matches.
   */
  epoch: string;
  /** Bumped on every item change. */
  counter: number;
  /**
   * Changes since a counter below this are no longer fully known (old
   * tombstones were pruned): such clients get the whole roster.
   */
  floor: number;
}

export interface RosterChanges {
  /** Items changed after the given counter, ascending by ver. */
  items: RosterItem[];
  /** Items removed after the given counter, ascending by ver. */
  removed: Array<{ jid: string; ver: number }>;
}

export interface PendingRequest {
  jid: string;
  /** The complete inbound subscribe stanza as XML text (its status, nick...). */
  stanza: string;
  createdAt: number;
}

export interface RosterStore {
  /** All items (ordered by jid) and the current version. */
  getAll(username: string): Promise<{ items: RosterItem[]; version: RosterVersion }>;
  /** The items alone (ordered by jid): what presence broadcasts read, without touching the version. */
  items(username: string): Promise<RosterItem[]>;
  get(username: string, jid: string): Promise<RosterItem | undefined>;
  count(username: string): Promise<number>;
  /** Insert or replace one item; bumps the version and returns the new counter (the item's ver). */
  put(username: string, item: RosterItemData): Promise<number>;
  /** Remove one item, leaving a tombstone; returns the new counter, or undefined when there was no such item. */
  remove(username: string, jid: string): Promise<number | undefined>;
  version(username: string): Promise<RosterVersion>;
  /** Changes after `counter`; undefined when they cannot be told (counter below the floor or above the current one). */
  changesSince(username: string, counter: number): Promise<RosterChanges | undefined>;

  /** Pending inbound subscription requests, oldest first. */
  pending(username: string): Promise<PendingRequest[]>;
  getPending(username: string, jid: string): Promise<PendingRequest | undefined>;
  countPending(username: string): Promise<number>;
  /** Record (or replace with the newer) request from `jid`. */
  addPending(username: string, jid: string, stanza: string): Promise<void>;
  removePending(username: string, jid: string): Promise<void>;
}

/** Tombstones kept per account before the oldest are dropped (and the floor raised). */
export const MAX_TOMBSTONES = 500;

function copy(item: RosterItem): RosterItem {
  return { ...item, groups: [...item.groups] };
}

/** In-memory RosterStore: the reference semantics, also usable without a database. */
export class MemoryRosterStore implements RosterStore {
  private readonly byUser = new Map<string, Map<string, RosterItem>>();
  private readonly tombstones = new Map<string, Map<string, number>>();
  private readonly versions = new Map<string, RosterVersion>();
  private readonly pendingMap = new Map<string, Map<string, PendingRequest>>();
  private epochs = 0;

  constructor(private readonly maxTombstones = MAX_TOMBSTONES) {}

  private userItems(u: string): Map<string, RosterItem> {
    let m = this.byUser.get(u);
    if (!m) this.byUser.set(u, (m = new Map()));
    return m;
  }

  private ver(u: string): RosterVersion {
    let v = this.versions.get(u);
    if (!v) this.versions.set(u, (v = { epoch: `m${++this.epochs}${Date.now().toString(36)}`, counter: 0, floor: 0 }));
    return v;
  }

  private bump(u: string): number {
    return ++this.ver(u).counter;
  }

  async getAll(username: string): Promise<{ items: RosterItem[]; version: RosterVersion }> {
    const items = [...this.userItems(username).values()].sort((a, b) => (a.jid < b.jid ? -1 : a.jid > b.jid ? 1 : 0)).map(copy);
    return { items, version: { ...this.ver(username) } };
  }

  async items(username: string): Promise<RosterItem[]> {
    return (await this.getAll(username)).items;
  }

  async get(username: string, jid: string): Promise<RosterItem | undefined> {
    const i = this.byUser.get(username)?.get(jid);
    return i ? copy(i) : undefined;
  }

  async count(username: string): Promise<number> {
    return this.byUser.get(username)?.size ?? 0;
  }

  async put(username: string, item: RosterItemData): Promise<number> {
    const ver = this.bump(username);
    this.userItems(username).set(item.jid, { ...item, groups: [...item.groups], ver });
    this.tombstones.get(username)?.delete(item.jid);
    return ver;
  }

  async remove(username: string, jid: string): Promise<number | undefined> {
    const m = this.byUser.get(username);
    if (!m?.has(jid)) return undefined;
    m.delete(jid);
    const ver = this.bump(username);
    let t = this.tombstones.get(username);
    if (!t) this.tombstones.set(username, (t = new Map()));
    t.set(jid, ver);
    if (t.size > this.maxTombstones) {
      const sorted = [...t.entries()].sort((a, b) => a[1] - b[1]);
      const drop = sorted.slice(0, t.size - this.maxTombstones);
      for (const [j] of drop) t.delete(j);
      const v = this.ver(username);
      v.floor = Math.max(v.floor, (drop[drop.length - 1] as [string, number])[1]);
    }
    return ver;
  }

  async version(username: string): Promise<RosterVersion> {
    return { ...this.ver(username) };
  }

  async changesSince(username: string, counter: number): Promise<RosterChanges | undefined> {
    const v = this.ver(username);
    if (counter < v.floor || counter > v.counter) return undefined;
    const items = [...this.userItems(username).values()].filter((i) => i.ver > counter).sort((a, b) => a.ver - b.ver).map(copy);
    const removed = [...(this.tombstones.get(username) ?? new Map<string, number>()).entries()]
      .filter(([, ver]) => ver > counter)
      .sort((a, b) => a[1] - b[1])
      .map(([jid, ver]) => ({ jid, ver }));
    return { items, removed };
  }

  async pending(username: string): Promise<PendingRequest[]> {
    return [...(this.pendingMap.get(username)?.values() ?? [])].sort((a, b) => a.createdAt - b.createdAt).map((p) => ({ ...p }));
  }

  async getPending(username: string, jid: string): Promise<PendingRequest | undefined> {
    const p = this.pendingMap.get(username)?.get(jid);
    return p ? { ...p } : undefined;
  }

  async countPending(username: string): Promise<number> {
    return this.pendingMap.get(username)?.size ?? 0;
  }

  async addPending(username: string, jid: string, stanza: string): Promise<void> {
    let m = this.pendingMap.get(username);
    if (!m) this.pendingMap.set(username, (m = new Map()));
    const old = m.get(jid);
    m.set(jid, { jid, stanza, createdAt: old?.createdAt ?? Date.now() });
  }

  async removePending(username: string, jid: string): Promise<void> {
    this.pendingMap.get(username)?.delete(jid);
  }

  /** Drop everything of one account (what deleteUserData does for SQL tables). */
  deleteUser(username: string): void {
    this.byUser.delete(username);
    this.tombstones.delete(username);
    this.versions.delete(username);
    this.pendingMap.delete(username);
  }
}
