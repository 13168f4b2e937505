/**
 * SQLite RosterStore. Every write that bumps the version runs in one
 * transaction with the version row, so an item's `ver` and the account's
 * counter never disagree after a crash.
 *
 * Schema (migration '0003-roster', see ROSTER_MIGRATION_SQL):
 *   roster_items      one row per item; groups as a JSON array (read and written whole)
 *   roster_tombstones removed items, for XEP-0237 diffs (bounded per account)
 *   roster_versions   epoch + counter + floor per account
 *   roster_pending    pending inbound subscription requests (full stanza text)
 */
import { randomBytes } from 'node:crypto';
import type { Database, Statement } from 'better-sqlite3';
import {
  MAX_TOMBSTONES,
  type PendingRequest,
  type RosterChanges,
  type RosterItem,
  type RosterItemData,
  type RosterStore,
  type RosterVersion,
  type Subscription,
} from '../roster.js';

/** The migration that creates the roster tables (append as { id: '0003-roster', sql: ROSTER_MIGRATION_SQL }). */
export const ROSTER_MIGRATION_SQL = `
  CREATE TABLE roster_items (
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    name TEXT,
    subscription TEXT NOT NULL DEFAULT 'none',
    ask INTEGER NOT NULL DEFAULT 0,
    approved INTEGER NOT NULL DEFAULT 0,
    groups TEXT NOT NULL DEFAULT '[]',
    ver INTEGER NOT NULL,
    PRIMARY KEY (username, jid)
  ) WITHOUT ROWID;
  CREATE TABLE roster_tombstones (
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    ver INTEGER NOT NULL,
    PRIMARY KEY (username, jid)
  ) WITHOUT ROWID;
  CREATE TABLE roster_versions (
    username TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    counter INTEGER NOT NULL,
    floor INTEGER NOT NULL DEFAULT 0
  ) WITHOUT ROWID;
  CREATE TABLE roster_pending (
    username TEXT NOT NULL,
    jid TEXT NOT NULL,
    stanza TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (username, jid)
  ) WITHOUT ROWID;
`;

interface ItemRow {
  jid: string;
  name: string | null;
  subscription: string;
  ask: number;
  approved: number;
  groups: string;
  ver: number;
}

interface VersionRow {
  epoch: string;
  counter: number;
  floor: number;
}

const SUBSCRIPTIONS = new Set<string>(['none', 'to', 'from', 'both']);

function toItem(r: ItemRow): RosterItem {
  let groups: string[] = [];
  try {
    const g: unknown = JSON.parse(r.groups);
    if (Array.isArray(g)) groups = g.filter((x): x is string => typeof x === 'string');
  } catch {
    // A damaged groups column loses the groups, not the item.
  }
  const item: RosterItem = {
    jid: r.jid,
    subscription: (SUBSCRIPTIONS.has(r.subscription) ? r.subscription : 'none') as Subscription,
    ask: r.ask !== 0,
    approved: r.approved !== 0,
    groups,
    ver: r.ver,
  };
  if (r.name !== null) item.name = r.name;
  return item;
}

export class SqliteRosterStore implements RosterStore {
  private readonly s: {
    all: Statement<[string], ItemRow>;
    get: Statement<[string, string], ItemRow>;
    count: Statement<[string], { n: number }>;
    upsert: Statement<[string, string, string | null, string, number, number, string, number]>;
    del: Statement<[string, string]>;
    ver: Statement<[string], VersionRow>;
    insVer: Statement<[string, string]>;
    bump: Statement<[string]>;
    setFloor: Statement<[number, string]>;
    tomb: Statement<[string, string, number]>;
    untomb: Statement<[string, string]>;
    tombCount: Statement<[string], { n: number }>;
    tombOldest: Statement<[string, number], { jid: string; ver: number }>;
    itemsSince: Statement<[string, number], ItemRow>;
    tombsSince: Statement<[string, number], { jid: string; ver: number }>;
    pending: Statement<[string], { jid: string; stanza: string; created_at: number }>;
    getPending: Statement<[string, string], { jid: string; stanza: string; created_at: number }>;
    countPending: Statement<[string], { n: number }>;
    addPending: Statement<[string, string, string, number]>;
    delPending: Statement<[string, string]>;
  };
  private readonly putTx: (username: string, item: RosterItemData) => number;
  private readonly removeTx: (username: string, jid: string) => number | undefined;
  private readonly versionTx: (username: string) => VersionRow;
  private readonly readAllTx: (username: string) => { items: RosterItem[]; version: RosterVersion };
  private readonly changesTx: (username: string, counter: number) => RosterChanges | undefined;

  constructor(
    private readonly db: Database,
    private readonly maxTombstones = MAX_TOMBSTONES,
  ) {
    const cols = 'jid, name, subscription, ask, approved, groups, ver';
    this.s = {
      all: db.prepare(`SELECT ${cols} FROM roster_items WHERE username = ? ORDER BY jid`),
      get: db.prepare(`SELECT ${cols} FROM roster_items WHERE username = ? AND jid = ?`),
      count: db.prepare('SELECT count(*) AS n FROM roster_items WHERE username = ?'),
      upsert: db.prepare(
        `INSERT INTO roster_items (username, jid, name, subscription, ask, approved, groups, ver) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (username, jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription, ask = excluded.ask,
           approved = excluded.approved, groups = excluded.groups, ver = excluded.ver`,
      ),
      del: db.prepare('DELETE FROM roster_items WHERE username = ? AND jid = ?'),
      ver: db.prepare('SELECT epoch, counter, floor FROM roster_versions WHERE username = ?'),
      insVer: db.prepare('INSERT OR IGNORE INTO roster_versions (username, epoch, counter, floor) VALUES (?, ?, 0, 0)'),
      bump: db.prepare('UPDATE roster_versions SET counter = counter + 1 WHERE username = ?'),
      setFloor: db.prepare('UPDATE roster_versions SET floor = max(floor, ?) WHERE username = ?'),
      tomb: db.prepare('INSERT OR REPLACE INTO roster_tombstones (username, jid, ver) VALUES (?, ?, ?)'),
      untomb: db.prepare('DELETE FROM roster_tombstones WHERE username = ? AND jid = ?'),
      tombCount: db.prepare('SELECT count(*) AS n FROM roster_tombstones WHERE username = ?'),
      tombOldest: db.prepare('SELECT jid, ver FROM roster_tombstones WHERE username = ? ORDER BY ver LIMIT ?'),
      itemsSince: db.prepare(`SELECT ${cols} FROM roster_items WHERE username = ? AND ver > ? ORDER BY ver`),
      tombsSince: db.prepare('SELECT jid, ver FROM roster_tombstones WHERE username = ? AND ver > ? ORDER BY ver'),
      pending: db.prepare('SELECT jid, stanza, created_at FROM roster_pending WHERE username = ? ORDER BY created_at, jid'),
      getPending: db.prepare('SELECT jid, stanza, created_at FROM roster_pending WHERE username = ? AND jid = ?'),
      countPending: db.prepare('SELECT count(*) AS n FROM roster_pending WHERE username = ?'),
      addPending: db.prepare(
        `INSERT INTO roster_pending (username, jid, stanza, created_at) VALUES (?, ?, ?, ?)
         ON CONFLICT (username, jid) DO UPDATE SET stanza = excluded.stanza`,
      ),
      delPending: db.prepare('DELETE FROM roster_pending WHERE username = ? AND jid = ?'),
    };

    this.versionTx = db.transaction((username: string): VersionRow => {
      const v = this.s.ver.get(username);
      if (v) return v;
      this.s.insVer.run(username, randomBytes(6).toString('base64url'));
      return this.s.ver.get(username) as VersionRow;
    });

    const bump = (username: string): number => {
      this.versionTx(username);
      this.s.bump.run(username);
      return (this.s.ver.get(username) as VersionRow).counter;
    };

    this.putTx = db.transaction((username: string, item: RosterItemData): number => {
      const ver = bump(username);
      this.s.upsert.run(username, item.jid, item.name ?? null, item.subscription, item.ask ? 1 : 0, item.approved ? 1 : 0, JSON.stringify(item.groups), ver);
      this.s.untomb.run(username, item.jid);
      return ver;
    });

    // Items and version read in one transaction, so that they belong together.
    this.readAllTx = db.transaction((username: string) => ({
      items: this.s.all.all(username).map(toItem),
      version: { ...this.versionTx(username) },
    }));
    this.changesTx = db.transaction((username: string, counter: number): RosterChanges | undefined => {
      const v = this.versionTx(username);
      if (counter < v.floor || counter > v.counter) return undefined;
      return { items: this.s.itemsSince.all(username, counter).map(toItem), removed: this.s.tombsSince.all(username, counter) };
    });

    this.removeTx = db.transaction((username: string, jid: string): number | undefined => {
      if (this.s.del.run(username, jid).changes === 0) return undefined;
      const ver = bump(username);
      this.s.tomb.run(username, jid, ver);
      const n = (this.s.tombCount.get(username) as { n: number }).n;
      if (n > this.maxTombstones) {
        const drop = this.s.tombOldest.all(username, n - this.maxTombstones);
        for (const d of drop) this.s.untomb.run(username, d.jid);
        const last = drop[drop.length - 1];
        if (last) this.s.setFloor.run(last.ver, username);
      }
      return ver;
    });
  }

  async getAll(username: string): Promise<{ items: RosterItem[]; version: RosterVersion }> {
    return this.readAllTx(username);
  }

  async items(username: string): Promise<RosterItem[]> {
    // One statement, no transaction: getAll() may have to create the version row (a write),
    // and every login's presence broadcast comes through here.
    return this.s.all.all(username).map(toItem);
  }

  async get(username: string, jid: string): Promise<RosterItem | undefined> {
    const r = this.s.get.get(username, jid);
    return r ? toItem(r) : undefined;
  }

  async count(username: string): Promise<number> {
    return (this.s.count.get(username) as { n: number }).n;
  }

  async put(username: string, item: RosterItemData): Promise<number> {
    return this.putTx(username, item);
  }

  async remove(username: string, jid: string): Promise<number | undefined> {
    return this.removeTx(username, jid);
  }

  async version(username: string): Promise<RosterVersion> {
    return { ...this.versionTx(username) };
  }

  async changesSince(username: string, counter: number): Promise<RosterChanges | undefined> {
    return this.changesTx(username, counter);
  }

  async pending(username: string): Promise<PendingRequest[]> {
    return this.s.pending.all(username).map((r) => ({ jid: r.jid, stanza: r.stanza, createdAt: r.created_at }));
  }

  async getPending(username: string, jid: string): Promise<PendingRequest | undefined> {
    const r = this.s.getPending.get(username, jid);
    return r ? { jid: r.jid, stanza: r.stanza, createdAt: r.created_at } : undefined;
  }

  async countPending(username: string): Promise<number> {
    return (this.s.countPending.get(username) as { n: number }).n;
  }

  async addPending(username: string, jid: string, stanza: string): Promise<void> {
    this.s.addPending.run(username, jid, stanza, Date.now());
  }

  async removePending(username: string, jid: string): Promise<void> {
    this.s.delPending.run(username, jid);
  }
}
