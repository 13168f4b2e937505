/**
 * PostgreSQL RosterStore (same tables as SQLite, migration '0003-roster').
 * A version bump and the item change it belongs to are one statement (data-
 * modifying CTEs) or one transaction, so an item's `ver` and the account's
 * counter never disagree; the version row's lock orders concurrent changes
 * of one roster, from any node.
 */
import { randomBytes } from 'node:crypto';
import type pg from 'pg';
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
import { KeyedSerializer, transaction, type Queryable } from './db.js';

interface ItemRow {
  jid: string;
  name: string | null;
  subscription: string;
  ask: number;
  approved: number;
  groups: string;
  ver: number;
}

interface PendingRow {
  jid: string;
  stanza: string;
  created_at: number;
}

const SUBSCRIPTIONS = new Set<string>(['none', 'to', 'from', 'both']);
const COLS = 'jid, name, subscription, ask, approved, groups, ver';

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

const toPending = (r: PendingRow): PendingRequest => ({ jid: r.jid, stanza: r.stanza, createdAt: r.created_at });
const newEpoch = (): string => randomBytes(6).toString('base64url');

export class PgRosterStore implements RosterStore {
  /** Changes to one roster get versions in call order, as with SQLite (see KeyedSerializer). */
  private readonly order = new KeyedSerializer();

  constructor(
    private readonly pool: pg.Pool,
    private readonly maxTombstones = MAX_TOMBSTONES,
  ) {}

  /** The version row, created on first use. */
  private async versionOn(q: Queryable, username: string): Promise<RosterVersion> {
    for (let attempt = 0; ; attempt++) {
      const got = await q.query<RosterVersion>('SELECT epoch, counter, floor FROM roster_versions WHERE username = $1', [username]);
      if (got.rows[0]) return { ...got.rows[0] };
      const ins = await q.query<RosterVersion>(
        'INSERT INTO roster_versions (username, epoch, counter, floor) VALUES ($1, $2, 0, 0) ON CONFLICT DO NOTHING RETURNING epoch, counter, floor',
        [username, newEpoch()],
      );
      if (ins.rows[0]) return { ...ins.rows[0] };
      // Another connection created it between our two statements: read it again (once; a
      // snapshot that cannot see it will not see it later either).
      if (attempt > 0) throw new Error(`roster version of ${username} created concurrently; retry`);
    }
  }

  async getAll(username: string): Promise<{ items: RosterItem[]; version: RosterVersion }> {
    // The version row exists before the snapshot is taken (see versionOn); then items and
    // version come from one snapshot, so that they belong together.
    await this.versionOn(this.pool, username);
    return transaction(
      this.pool,
      async (c) => {
        const version = await this.versionOn(c, username);
        const items = (await c.query<ItemRow>(`SELECT ${COLS} FROM roster_items WHERE username = $1 ORDER BY jid`, [username])).rows.map(toItem);
        return { items, version };
      },
      'REPEATABLE READ',
    );
  }

  async items(username: string): Promise<RosterItem[]> {
    const r = await this.pool.query<ItemRow>({ name: 'roster-items', text: `SELECT ${COLS} FROM roster_items WHERE username = $1 ORDER BY jid`, values: [username] });
    return r.rows.map(toItem);
  }

  async get(username: string, jid: string): Promise<RosterItem | undefined> {
    const r = await this.pool.query<ItemRow>({ name: 'roster-get', text: `SELECT ${COLS} FROM roster_items WHERE username = $1 AND jid = $2`, values: [username, jid] });
    return r.rows[0] && toItem(r.rows[0]);
  }

  async count(username: string): Promise<number> {
    return (await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM roster_items WHERE username = $1', [username])).rows[0]?.n ?? 0;
  }

  put(username: string, item: RosterItemData): Promise<number> {
    return this.order.run(username, () => this.putNow(username, item));
  }

  remove(username: string, jid: string): Promise<number | undefined> {
    return this.order.run(username, () => this.removeNow(username, jid));
  }

  private async putNow(username: string, item: RosterItemData): Promise<number> {
    // One statement: bump (or create) the version row, write the item at that version, drop its tombstone.
    const r = await this.pool.query<{ counter: number }>({
      name: 'roster-put',
      text: `WITH v AS (
               INSERT INTO roster_versions AS rv (username, epoch, counter, floor) VALUES ($1, $2, 1, 0)
               ON CONFLICT (username) DO UPDATE SET counter = rv.counter + 1
               RETURNING counter),
             i AS (
               INSERT INTO roster_items (username, jid, name, subscription, ask, approved, groups, ver)
               SELECT $1, $3, $4, $5, $6, $7, $8, v.counter FROM v
               ON CONFLICT (username, jid) DO UPDATE SET name = excluded.name, subscription = excluded.subscription,
                 ask = excluded.ask, approved = excluded.approved, groups = excluded.groups, ver = excluded.ver),
             t AS (DELETE FROM roster_tombstones WHERE username = $1 AND jid = $3)
             SELECT counter FROM v`,
      values: [username, newEpoch(), item.jid, item.name ?? null, item.subscription, item.ask ? 1 : 0, item.approved ? 1 : 0, JSON.stringify(item.groups)],
    });
    return (r.rows[0] as { counter: number }).counter;
  }

  private async removeNow(username: string, jid: string): Promise<number | undefined> {
    await this.versionOn(this.pool, username);
    return transaction(this.pool, async (c) => {
      // The version row first, as put() takes it: the same lock order, no deadlock between them.
      await c.query('SELECT counter FROM roster_versions WHERE username = $1 FOR UPDATE', [username]);
      const del = await c.query('DELETE FROM roster_items WHERE username = $1 AND jid = $2', [username, jid]);
      if ((del.rowCount ?? 0) === 0) return undefined;
      const ver = (await c.query<{ counter: number }>('UPDATE roster_versions SET counter = counter + 1 WHERE username = $1 RETURNING counter', [username]))
        .rows[0]?.counter as number;
      await c.query(
        'INSERT INTO roster_tombstones (username, jid, ver) VALUES ($1, $2, $3) ON CONFLICT (username, jid) DO UPDATE SET ver = excluded.ver',
        [username, jid, ver],
      );
      const n = (await c.query<{ n: number }>('SELECT count(*)::int AS n FROM roster_tombstones WHERE username = $1', [username])).rows[0]?.n ?? 0;
      if (n > this.maxTombstones) {
        // Drop the oldest and raise the floor past them: older versions can no longer be diffed.
        const dropped = await c.query<{ ver: number }>(
          `DELETE FROM roster_tombstones WHERE username = $1 AND jid IN (
             SELECT jid FROM roster_tombstones WHERE username = $1 ORDER BY ver LIMIT $2) RETURNING ver`,
          [username, n - this.maxTombstones],
        );
        const top = Math.max(...dropped.rows.map((d) => d.ver));
        await c.query('UPDATE roster_versions SET floor = GREATEST(floor, $2) WHERE username = $1', [username, top]);
      }
      return ver;
    });
  }

  async version(username: string): Promise<RosterVersion> {
    return this.versionOn(this.pool, username);
  }

  async changesSince(username: string, counter: number): Promise<RosterChanges | undefined> {
    await this.versionOn(this.pool, username);
    return transaction(
      this.pool,
      async (c) => {
        const v = await this.versionOn(c, username);
        if (counter < v.floor || counter > v.counter) return undefined;
        const items = (await c.query<ItemRow>(`SELECT ${COLS} FROM roster_items WHERE username = $1 AND ver > $2 ORDER BY ver`, [username, counter])).rows.map(toItem);
        const removed = (await c.query<{ jid: string; ver: number }>('SELECT jid, ver FROM roster_tombstones WHERE username = $1 AND ver > $2 ORDER BY ver', [username, counter])).rows;
        return { items, removed };
      },
      'REPEATABLE READ',
    );
  }

  async pending(username: string): Promise<PendingRequest[]> {
    const r = await this.pool.query<PendingRow>('SELECT jid, stanza, created_at FROM roster_pending WHERE username = $1 ORDER BY created_at, jid', [username]);
    return r.rows.map(toPending);
  }

  async getPending(username: string, jid: string): Promise<PendingRequest | undefined> {
    const r = await this.pool.query<PendingRow>('SELECT jid, stanza, created_at FROM roster_pending WHERE username = $1 AND jid = $2', [username, jid]);
    return r.rows[0] && toPending(r.rows[0]);
  }

  async countPending(username: string): Promise<number> {
    return (await this.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM roster_pending WHERE username = $1', [username])).rows[0]?.n ?? 0;
  }

  async addPending(username: string, jid: string, stanza: string): Promise<void> {
    await this.pool.query(
      `INSERT INTO roster_pending (username, jid, stanza, created_at) VALUES ($1, $2, $3, $4)
       ON CONFLICT (username, jid) DO UPDATE SET stanza = excluded.stanza`,
      [username, jid, stanza, Date.now()],
    );
  }

  async removePending(username: string, jid: string): Promise<void> {
    await this.pool.query('DELETE FROM roster_pending WHERE username = $1 AND jid = $2', [username, jid]);
  }
}
