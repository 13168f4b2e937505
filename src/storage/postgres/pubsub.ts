/**
 * PEP nodes, items and the caps cache in PostgreSQL (migration '0008-pubsub',
 * the same tables as SQLite). Items are ordered by `seq` (an identity column,
 * one sequence for all nodes), so "newest N" is a range on
 * (username, node, seq); republishing an id deletes the old row and inserts a
 * new one, which makes it the newest as XEP-0060 §7.1.2 expects.
 *
 * Writes to one node's items take a transaction-scoped advisory lock on the
 * node, so that two publishes at once (from two nodes of a cluster) trim to
 * the same `keep` instead of each seeing the other's row half-written.
 */
import type pg from 'pg';
import type { Affiliation, CapsRecord, ItemQuery, NodeConfig, PubsubItem, PubsubNode, PubsubStore } from '../pubsub.js';
import { KeyedSerializer, transaction } from './db.js';

interface NodeRow {
  node: string;
  config: string;
  affiliations: string;
  created_at: number;
}

interface ItemRow {
  id: string;
  publisher: string;
  published_at: number;
  payload: string;
}

const toItem = (r: ItemRow): PubsubItem => ({ id: r.id, publisher: r.publisher, publishedAt: r.published_at, payload: r.payload });
const ITEM_COLS = 'id, publisher, published_at, payload';

async function lockNode(c: pg.PoolClient, owner: string, node: string): Promise<void> {
  // The two-key form: a key space of its own, apart from the one-key locks elsewhere.
  await c.query('SELECT pg_advisory_xact_lock(hashtext($1), hashtext($2))', [owner, node]);
}

/** Delete all but the `keep` newest items; the ids removed, oldest first. */
async function trimOn(c: pg.PoolClient, owner: string, node: string, keep: number): Promise<string[]> {
  const r = await c.query<{ id: string; seq: number }>(
    `DELETE FROM pubsub_items WHERE seq IN (
       SELECT seq FROM pubsub_items WHERE username = $1 AND node = $2 ORDER BY seq DESC OFFSET $3)
     RETURNING id, seq`,
    [owner, node, Math.max(0, keep)],
  );
  return r.rows.sort((a, b) => a.seq - b.seq).map((x) => x.id);
}

export class PgPubsubStore implements PubsubStore {
  /** Item writes to one node run in call order (publish order is the item order; see KeyedSerializer). */
  private readonly order = new KeyedSerializer();

  constructor(private readonly pool: pg.Pool) {}

  private toNode(owner: string, r: NodeRow): PubsubNode {
    return {
      owner,
      node: r.node,
      config: JSON.parse(r.config) as NodeConfig,
      affiliations: JSON.parse(r.affiliations) as Record<string, Affiliation>,
      createdAt: r.created_at,
    };
  }

  async nodes(owner: string): Promise<PubsubNode[]> {
    const r = await this.pool.query<NodeRow>('SELECT node, config, affiliations, created_at FROM pubsub_nodes WHERE username = $1 ORDER BY node', [owner]);
    return r.rows.map((x) => this.toNode(owner, x));
  }

  async getNode(owner: string, node: string): Promise<PubsubNode | undefined> {
    const r = await this.pool.query<NodeRow>({
      name: 'pubsub-node',
      text: 'SELECT node, config, affiliations, created_at FROM pubsub_nodes WHERE username = $1 AND node = $2',
      values: [owner, node],
    });
    return r.rows[0] && this.toNode(owner, r.rows[0]);
  }

  async createNode(owner: string, node: string, config: NodeConfig, affiliations: Record<string, Affiliation> = {}): Promise<boolean> {
    const r = await this.pool.query(
      'INSERT INTO pubsub_nodes (username, node, config, affiliations, created_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING',
      [owner, node, JSON.stringify(config), JSON.stringify(affiliations), Date.now()],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async updateNode(owner: string, node: string, config: NodeConfig, affiliations: Record<string, Affiliation>): Promise<boolean> {
    const r = await this.pool.query('UPDATE pubsub_nodes SET config = $3, affiliations = $4 WHERE username = $1 AND node = $2', [
      owner,
      node,
      JSON.stringify(config),
      JSON.stringify(affiliations),
    ]);
    return (r.rowCount ?? 0) > 0;
  }

  async deleteNode(owner: string, node: string): Promise<boolean> {
    return this.order.run(`${owner}\0${node}`, () => transaction(this.pool, async (c) => {
      await lockNode(c, owner, node);
      await c.query('DELETE FROM pubsub_items WHERE username = $1 AND node = $2', [owner, node]);
      return ((await c.query('DELETE FROM pubsub_nodes WHERE username = $1 AND node = $2', [owner, node])).rowCount ?? 0) > 0;
    }));
  }

  async putItem(owner: string, node: string, item: PubsubItem, keep: number): Promise<string[]> {
    return this.order.run(`${owner}\0${node}`, () => transaction(this.pool, async (c) => {
      await lockNode(c, owner, node);
      await c.query('DELETE FROM pubsub_items WHERE username = $1 AND node = $2 AND id = $3', [owner, node, item.id]);
      await c.query('INSERT INTO pubsub_items (username, node, id, publisher, published_at, payload) VALUES ($1, $2, $3, $4, $5, $6)', [
        owner,
        node,
        item.id,
        item.publisher,
        item.publishedAt,
        item.payload,
      ]);
      return trimOn(c, owner, node, keep);
    }));
  }

  async items(owner: string, node: string, query: ItemQuery = {}): Promise<PubsubItem[]> {
    let rows: ItemRow[];
    if (query.max !== undefined && query.ids === undefined) {
      if (query.max <= 0) return [];
      const r = await this.pool.query<ItemRow & { seq: number }>(
        `SELECT seq, ${ITEM_COLS} FROM pubsub_items WHERE username = $1 AND node = $2 ORDER BY seq DESC LIMIT $3`,
        [owner, node, query.max],
      );
      rows = r.rows.reverse();
    } else if (query.ids) {
      const r = await this.pool.query<ItemRow>(`SELECT ${ITEM_COLS} FROM pubsub_items WHERE username = $1 AND node = $2 AND id = ANY($3::text[]) ORDER BY seq`, [
        owner,
        node,
        query.ids,
      ]);
      rows = r.rows;
      if (query.max !== undefined) rows = query.max <= 0 ? [] : rows.slice(-query.max);
    } else {
      rows = (await this.pool.query<ItemRow>({ name: 'pubsub-items', text: `SELECT ${ITEM_COLS} FROM pubsub_items WHERE username = $1 AND node = $2 ORDER BY seq`, values: [owner, node] })).rows;
    }
    return rows.map(toItem);
  }

  async retract(owner: string, node: string, id: string): Promise<boolean> {
    return this.order.run(`${owner}\0${node}`, async () => {
      return ((await this.pool.query('DELETE FROM pubsub_items WHERE username = $1 AND node = $2 AND id = $3', [owner, node, id])).rowCount ?? 0) > 0;
    });
  }

  async trim(owner: string, node: string, keep: number): Promise<string[]> {
    return this.order.run(`${owner}\0${node}`, () =>
      transaction(this.pool, async (c) => {
        await lockNode(c, owner, node);
        return trimOn(c, owner, node, keep);
      }),
    );
  }

  async capsGet(hash: string, ver: string): Promise<CapsRecord | undefined> {
    const r = await this.pool.query<{ features: string; identities: string }>({
      name: 'caps-get',
      text: 'SELECT features, identities FROM caps_cache WHERE hash = $1 AND ver = $2',
      values: [hash, ver],
    });
    const row = r.rows[0];
    return row && { features: JSON.parse(row.features) as string[], identities: JSON.parse(row.identities) as string[] };
  }

  async capsPut(hash: string, ver: string, rec: CapsRecord): Promise<void> {
    await this.pool.query('INSERT INTO caps_cache (hash, ver, features, identities, added_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING', [
      hash,
      ver,
      JSON.stringify(rec.features),
      JSON.stringify(rec.identities),
      Date.now(),
    ]);
  }
}
