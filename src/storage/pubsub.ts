/**
 * Publish-subscribe storage for PEP (XEP-0163 on XEP-0060): the nodes of
 * each account with their configuration and affiliations, the persisted
 * items of each node in publish order, and the entity capabilities cache
 * (XEP-0115: features per verified `ver`, shared by every account).
 *
 * The store only keeps data; what a configuration means (who may read, how
 * many items to keep) is decided by the PEP module, which passes the
 * resolved limits in (e.g. `putItem(..., keep)`).
 *
 * Every backend implements PubsubStore; MemoryPubsubStore below is the
 * reference used by the conformance test and by backends without one.
 */

/** XEP-0060 §4.5 access models this server implements for PEP nodes. */
export type AccessModel = 'open' | 'presence' | 'whitelist';

/** When the last item goes to a new (implicit) subscriber (XEP-0060 §16.4.3 pubsub#send_last_published_item). */
export type SendLastPublished = 'never' | 'on_sub' | 'on_sub_and_presence';

/** Node configuration (XEP-0060 §16.4.3 pubsub#node_config), the fields PEP implements. */
export interface NodeConfig {
  accessModel: AccessModel;
  /** pubsub#persist_items: false makes the node transient (notifications only). */
  persistItems: boolean;
  /** pubsub#max_items: a count, or 'max' (the server's limit, XEP-0060 §16.4.3 since 1.16). */
  maxItems: number | 'max';
  /** pubsub#notify_retract: retraction notifications when the retract request does not say. */
  notifyRetract: boolean;
  /** pubsub#notify_delete. */
  notifyDelete: boolean;
  sendLastPublishedItem: SendLastPublished;
  /** pubsub#deliver_notifications: false sends no event at all. */
  deliverNotifications: boolean;
  /** pubsub#deliver_payloads: false sends notifications without the item payload. */
  deliverPayloads: boolean;
  /** pubsub#notification_type: the message type of notifications. */
  notificationType: 'headline' | 'normal';
  title: string;
}

/**
 * Affiliations other than the owner's (XEP-0060 §4.1). PEP uses them for the
 * whitelist model: 'member' and 'publisher' may read, 'outcast' may not even under
 * the open model. Publishing stays with the owner.
 */
export type Affiliation = 'member' | 'publisher' | 'outcast';

export interface PubsubNode {
  /** Prepared localpart of the owning account. */
  owner: string;
  node: string;
  config: NodeConfig;
  /** Bare JID -> affiliation. */
  affiliations: Record<string, Affiliation>;
  createdAt: number;
}

export interface PubsubItem {
  id: string;
  /** Bare JID of the publisher. */
  publisher: string;
  /** ms since the epoch. */
  publishedAt: number;
  /** The item's payload element as XML text. */
  payload: string;
}

export interface ItemQuery {
  /** Only these ids (in publish order; missing ones are skipped). */
  ids?: string[];
  /** The most recent `max` items. */
  max?: number;
}

/** Features (and the identities' category/type pairs) of one verified caps `ver`. */
export interface CapsRecord {
  features: string[];
  identities: string[];
}

export interface PubsubStore {
  /** Nodes of an account, by name. */
  nodes(owner: string): Promise<PubsubNode[]>;
  getNode(owner: string, node: string): Promise<PubsubNode | undefined>;
  /** Returns false (and changes nothing) when the node exists. */
  createNode(owner: string, node: string, config: NodeConfig, affiliations?: Record<string, Affiliation>): Promise<boolean>;
  /** Returns false when the node does not exist. */
  updateNode(owner: string, node: string, config: NodeConfig, affiliations: Record<string, Affiliation>): Promise<boolean>;
  /** Removes the node and its items; false when it did not exist. */
  deleteNode(owner: string, node: string): Promise<boolean>;
  /**
   * Store an item (an existing id is replaced and becomes the newest) and keep
   * only the `keep` newest items of the node. Returns the ids dropped by that trim.
   */
  putItem(owner: string, node: string, item: PubsubItem, keep: number): Promise<string[]>;
  /** Items in publish order (oldest first). */
  items(owner: string, node: string, query?: ItemQuery): Promise<PubsubItem[]>;
  /** Returns false when there was no such item. */
  retract(owner: string, node: string, id: string): Promise<boolean>;
  /** Keep only the `keep` newest items (0 empties the node); returns the ids removed. */
  trim(owner: string, node: string, keep: number): Promise<string[]>;
  capsGet(hash: string, ver: string): Promise<CapsRecord | undefined>;
  capsPut(hash: string, ver: string, rec: CapsRecord): Promise<void>;
}

const cloneNode = (n: PubsubNode): PubsubNode => ({ ...n, config: { ...n.config }, affiliations: { ...n.affiliations } });

/** In-memory reference implementation (tests, embedding, backends without a pubsub store). */
export class MemoryPubsubStore implements PubsubStore {
  private readonly nodeMap = new Map<string, Map<string, PubsubNode>>();
  /** owner \0 node -> items in publish order. */
  private readonly itemMap = new Map<string, PubsubItem[]>();
  private readonly caps = new Map<string, CapsRecord>();

  private key(owner: string, node: string): string {
    return `${owner}\0${node}`;
  }

  async nodes(owner: string): Promise<PubsubNode[]> {
    return [...(this.nodeMap.get(owner)?.values() ?? [])].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0)).map(cloneNode);
  }

  async getNode(owner: string, node: string): Promise<PubsubNode | undefined> {
    const n = this.nodeMap.get(owner)?.get(node);
    return n && cloneNode(n);
  }

  async createNode(owner: string, node: string, config: NodeConfig, affiliations: Record<string, Affiliation> = {}): Promise<boolean> {
    let m = this.nodeMap.get(owner);
    if (!m) this.nodeMap.set(owner, (m = new Map()));
    if (m.has(node)) return false;
    m.set(node, cloneNode({ owner, node, config, affiliations, createdAt: Date.now() }));
    return true;
  }

  async updateNode(owner: string, node: string, config: NodeConfig, affiliations: Record<string, Affiliation>): Promise<boolean> {
    const n = this.nodeMap.get(owner)?.get(node);
    if (!n) return false;
    n.config = { ...config };
    n.affiliations = { ...affiliations };
    return true;
  }

  async deleteNode(owner: string, node: string): Promise<boolean> {
    const m = this.nodeMap.get(owner);
    if (!m?.delete(node)) return false;
    this.itemMap.delete(this.key(owner, node));
    return true;
  }

  async putItem(owner: string, node: string, item: PubsubItem, keep: number): Promise<string[]> {
    const k = this.key(owner, node);
    const list = (this.itemMap.get(k) ?? []).filter((i) => i.id !== item.id);
    list.push({ ...item });
    this.itemMap.set(k, list);
    return this.trim(owner, node, keep);
  }

  async items(owner: string, node: string, query: ItemQuery = {}): Promise<PubsubItem[]> {
    let list = this.itemMap.get(this.key(owner, node)) ?? [];
    if (query.ids) {
      const want = new Set(query.ids);
      list = list.filter((i) => want.has(i.id));
    }
    if (query.max !== undefined) list = query.max <= 0 ? [] : list.slice(-query.max);
    return list.map((i) => ({ ...i }));
  }

  async retract(owner: string, node: string, id: string): Promise<boolean> {
    const k = this.key(owner, node);
    const list = this.itemMap.get(k) ?? [];
    const next = list.filter((i) => i.id !== id);
    this.itemMap.set(k, next);
    return next.length !== list.length;
  }

  async trim(owner: string, node: string, keep: number): Promise<string[]> {
    const k = this.key(owner, node);
    const list = this.itemMap.get(k) ?? [];
    if (list.length <= keep) return [];
    const cut = list.length - Math.max(0, keep);
    this.itemMap.set(k, list.slice(cut));
    return list.slice(0, cut).map((i) => i.id);
  }

  async capsGet(hash: string, ver: string): Promise<CapsRecord | undefined> {
    const r = this.caps.get(`${hash}\0${ver}`);
    return r && { features: [...r.features], identities: [...r.identities] };
  }

  async capsPut(hash: string, ver: string, rec: CapsRecord): Promise<void> {
    this.caps.set(`${hash}\0${ver}`, { features: [...rec.features], identities: [...rec.identities] });
  }

  /** Drop an account's nodes (deleteUserData of a memory backend). */
  deleteUser(owner: string): void {
    for (const n of this.nodeMap.get(owner)?.keys() ?? []) this.itemMap.delete(this.key(owner, n));
    this.nodeMap.delete(owner);
  }
}
