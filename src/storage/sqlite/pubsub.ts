/**
 * PEP nodes, items and the caps cache in SQLite (schema: PUBSUB_MIGRATION_SQL,
 * appended to migrations.ts). Items are ordered by `seq` (the rowid, one clock
 * for all nodes), so "newest N" is an index range scan on (username, node, seq);
 * republishing an id deletes the old row and inserts a new one, which makes it
 * the newest as XEP-0060 §7.1.2 expects of an overwritten item.
 */
import type { Database, Statement, Transaction } from 'better-sqlite3';
import type { Affiliation, CapsRecord, ItemQuery, NodeConfig, PubsubItem, PubsubNode, PubsubStore } from '../pubsub.js';

export const PUBSUB_MIGRATION_SQL = `
  CREATE TABLE pubsub_nodes (
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    config TEXT NOT NULL,
    affiliations TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (username, node)
  ) WITHOUT ROWID;
  CREATE TABLE pubsub_items (
    seq INTEGER PRIMARY KEY,
    username TEXT NOT NULL,
    node TEXT NOT NULL,
    id TEXT NOT NULL,
    publisher TEXT NOT NULL,
    published_at INTEGER NOT NULL,
    payload TEXT NOT NULL
  );
  CREATE UNIQUE INDEX pubsub_items_by_id ON pubsub_items (username, node, id);
  CREATE INDEX pubsub_items_by_node ON pubsub_items (username, node, seq);
  CREATE TABLE caps_cache (
    hash TEXT NOT NULL,
    ver TEXT NOT NULL,
    features TEXT NOT NULL,
    identities TEXT NOT NULL,
    added_at INTEGER NOT NULL,
    PRIMARY KEY (hash, ver)
  ) WITHOUT ROWID;
`;

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

export class SqlitePubsubStore implements PubsubStore {
  private readonly listNodes: Statement<[string], NodeRow>;
  private readonly getNodeStmt: Statement<[string, string], NodeRow>;
  private readonly insertNode: Statement<[string, string, string, string, number]>;
  private readonly updateNodeStmt: Statement<[string, string, string, string]>;
  private readonly deleteNodeStmt: Statement<[string, string]>;
  private readonly deleteNodeItems: Statement<[string, string]>;
  private readonly deleteItem: Statement<[string, string, string]>;
  private readonly insertItem: Statement<[string, string, string, string, number, string]>;
  private readonly allItems: Statement<[string, string], ItemRow>;
  private readonly newestItems: Statement<[string, string, number], ItemRow>;
  private readonly oldIds: Statement<[string, string, number], { id: string }>;
  private readonly capsGetStmt: Statement<[string, string], { features: string; identities: string }>;
  private readonly capsPutStmt: Statement<[string, string, string, string, number]>;
  private readonly deleteNodeTx: Transaction<(o: string, n: string) => boolean>;
  private readonly putTx: Transaction<(o: string, n: string, item: PubsubItem, keep: number) => string[]>;
  private readonly trimTx: Transaction<(o: string, n: string, keep: number) => string[]>;

  constructor(db: Database) {
    this.listNodes = db.prepare('SELECT node, config, affiliations, created_at FROM pubsub_nodes WHERE username = ? ORDER BY node');
    this.getNodeStmt = db.prepare('SELECT node, config, affiliations, created_at FROM pubsub_nodes WHERE username = ? AND node = ?');
    this.insertNode = db.prepare(
      'INSERT INTO pubsub_nodes (username, node, config, affiliations, created_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    );
    this.updateNodeStmt = db.prepare('UPDATE pubsub_nodes SET config = ?, affiliations = ? WHERE username = ? AND node = ?');
    this.deleteNodeStmt = db.prepare('DELETE FROM pubsub_nodes WHERE username = ? AND node = ?');
    this.deleteNodeItems = db.prepare('DELETE FROM pubsub_items WHERE username = ? AND node = ?');
    this.deleteItem = db.prepare('DELETE FROM pubsub_items WHERE username = ? AND node = ? AND id = ?');
    this.insertItem = db.prepare(
      'INSERT INTO pubsub_items (username, node, id, publisher, published_at, payload) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.allItems = db.prepare('SELECT id, publisher, published_at, payload FROM pubsub_items WHERE username = ? AND node = ? ORDER BY seq');
    this.newestItems = db.prepare(
      'SELECT * FROM (SELECT seq, id, publisher, published_at, payload FROM pubsub_items WHERE username = ? AND node = ? ORDER BY seq DESC LIMIT ?) ORDER BY seq',
    );
    // Everything but the `keep` newest: OFFSET skips them from the newest end.
    this.oldIds = db.prepare('SELECT id FROM pubsub_items WHERE username = ? AND node = ? ORDER BY seq DESC LIMIT -1 OFFSET ?');
    this.capsGetStmt = db.prepare('SELECT features, identities FROM caps_cache WHERE hash = ? AND ver = ?');
    this.capsPutStmt = db.prepare(
      'INSERT INTO caps_cache (hash, ver, features, identities, added_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING',
    );

    this.deleteNodeTx = db.transaction((o: string, n: string) => {
      this.deleteNodeItems.run(o, n);
      return this.deleteNodeStmt.run(o, n).changes > 0;
    });
    this.trimTx = db.transaction((o: string, n: string, keep: number) => {
      // Oldest first, as the reference store (MemoryPubsubStore) returns them.
      const ids = this.oldIds.all(o, n, Math.max(0, keep)).map((r) => r.id).reverse();
      for (const id of ids) this.deleteItem.run(o, n, id);
      return ids;
    });
    this.putTx = db.transaction((o: string, n: string, item: PubsubItem, keep: number) => {
      this.deleteItem.run(o, n, item.id);
      this.insertItem.run(o, n, item.id, item.publisher, item.publishedAt, item.payload);
      return this.trimTx(o, n, keep);
    });
  }

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
    return this.listNodes.all(owner).map((r) => this.toNode(owner, r));
  }

  async getNode(owner: string, node: string): Promise<PubsubNode | undefined> {
    const r = this.getNodeStmt.get(owner, node);
    return r && this.toNode(owner, r);
  }

  async createNode(owner: string, node: string, config: NodeConfig, affiliations: Record<string, Affiliation> = {}): Promise<boolean> {
    return this.insertNode.run(owner, node, JSON.stringify(config), JSON.stringify(affiliations), Date.now()).changes > 0;
  }

  async updateNode(owner: string, node: string, config: NodeConfig, affiliations: Record<string, Affiliation>): Promise<boolean> {
    return this.updateNodeStmt.run(JSON.stringify(config), JSON.stringify(affiliations), owner, node).changes > 0;
  }

  async deleteNode(owner: string, node: string): Promise<boolean> {
    return this.deleteNodeTx.immediate(owner, node);
  }

  async putItem(owner: string, node: string, item: PubsubItem, keep: number): Promise<string[]> {
    return this.putTx.immediate(owner, node, item, keep);
  }

  async items(owner: string, node: string, query: ItemQuery = {}): Promise<PubsubItem[]> {
    let rows: ItemRow[];
    if (query.max !== undefined && query.ids === undefined) rows = query.max <= 0 ? [] : this.newestItems.all(owner, node, query.max);
    else rows = this.allItems.all(owner, node);
    if (query.ids) {
      const want = new Set(query.ids);
      rows = rows.filter((r) => want.has(r.id));
      if (query.max !== undefined) rows = query.max <= 0 ? [] : rows.slice(-query.max);
    }
    return rows.map(toItem);
  }

  async retract(owner: string, node: string, id: string): Promise<boolean> {
    return this.deleteItem.run(owner, node, id).changes > 0;
  }

  async trim(owner: string, node: string, keep: number): Promise<string[]> {
    return this.trimTx.immediate(owner, node, keep);
  }

  async capsGet(hash: string, ver: string): Promise<CapsRecord | undefined> {
    const r = this.capsGetStmt.get(hash, ver);
    return r && { features: JSON.parse(r.features) as string[], identities: JSON.parse(r.identities) as string[] };
  }

  async capsPut(hash: string, ver: string, rec: CapsRecord): Promise<void> {
    this.capsPutStmt.run(hash, ver, JSON.stringify(rec.features), JSON.stringify(rec.identities), Date.now());
  }
}
