/**
 * Blocklist storage (XEP-0191 Blocking Command): the JIDs each account has
 * blocked, as prepared JID strings (full, bare, domain/resource or domain).
 *
 * The blocking module decides in synchronous hooks, so it loads every
 * non-empty list once at start (`all()`) and keeps them in memory; this store
 * is the durable copy it writes through. Blocklists are short and most are
 * empty, so the whole set stays small.
 *
 * MemoryBlocklistStore is the reference implementation (store conformance
 * test, backends without a blocklist table).
 */

export interface BlocklistStore {
  /** The blocked JIDs of an account (sorted). */
  list(username: string): Promise<string[]>;
  /** Block JIDs; returns those that were not blocked before (in the order given). */
  add(username: string, jids: readonly string[]): Promise<string[]>;
  /** Unblock JIDs; returns those that were blocked (in the order given). */
  remove(username: string, jids: readonly string[]): Promise<string[]>;
  /** Unblock everything; returns what was blocked (sorted). */
  clear(username: string): Promise<string[]>;
  /** Every non-empty blocklist, by account. */
  all(): Promise<Map<string, string[]>>;
}

export class MemoryBlocklistStore implements BlocklistStore {
  private readonly lists = new Map<string, Set<string>>();

  async list(username: string): Promise<string[]> {
    return [...(this.lists.get(username) ?? [])].sort();
  }

  async add(username: string, jids: readonly string[]): Promise<string[]> {
    let set = this.lists.get(username);
    if (!set) this.lists.set(username, (set = new Set()));
    const added: string[] = [];
    for (const j of jids) {
      if (set.has(j)) continue;
      set.add(j);
      added.push(j);
    }
    if (set.size === 0) this.lists.delete(username);
    return added;
  }

  async remove(username: string, jids: readonly string[]): Promise<string[]> {
    const set = this.lists.get(username);
    if (!set) return [];
    const removed = jids.filter((j) => set.delete(j));
    if (set.size === 0) this.lists.delete(username);
    return removed;
  }

  async clear(username: string): Promise<string[]> {
    const was = await this.list(username);
    this.lists.delete(username);
    return was;
  }

  async all(): Promise<Map<string, string[]>> {
    const out = new Map<string, string[]>();
    for (const [u, set] of this.lists) if (set.size > 0) out.set(u, [...set].sort());
    return out;
  }
}
