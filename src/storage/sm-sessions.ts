/**
 * Hibernated stream-management sessions (XEP-0198): a resumable session that
 * outlives its process. At a graceful stop every resumable session is written
 * here (its counters, unacked queue and what it needs to be restored); the
 * node restarted under the same name, or any node of a cluster the client
 * resumes on, takes it back (docs/stream-management.md, "Across restarts").
 *
 * The record's `state` is opaque here (JSON owned by src/modules/sm/persist.ts);
 * the store only keys, lists and hands it out. `take` is the one way to get a
 * session back: it removes the row in the same statement, so when two nodes
 * race for one session exactly one of them gets it.
 *
 * MemorySmSessionStore is the reference implementation (conformance suite).
 */

export interface SmSessionRecord {
  /** Owning account key (src/core/vhosts.ts). */
  username: string;
  /** The resumption id of `<enabled id=…/>`. */
  id: string;
  /** The resource it was bound to. */
  resource: string;
  /** Name of the node that wrote it (cluster.node; '' on an unnamed or single node). */
  node: string;
  /** When the session ends unless resumed (ms since epoch). */
  deadline: number;
  /** When it was written (ms since epoch). */
  savedAt: number;
  /** The session, serialised by the sm module (JSON). */
  state: string;
}

export interface SmSessionStore {
  /** Write (or replace) a hibernated session. */
  put(rec: SmSessionRecord): Promise<void>;
  /**
   * Write (or replace) several rows in one transaction: the live checkpoints of running sessions
   * (src/modules/sm/checkpoint.ts), one commit per batch whatever its size.
   */
  putMany(recs: readonly SmSessionRecord[]): Promise<void>;
  /** Forget a row (the session ended for good); no error when there is none. */
  remove(username: string, id: string): Promise<void>;
  /** Read without taking (for tests and diagnostics). */
  get(username: string, id: string): Promise<SmSessionRecord | undefined>;
  /** Remove and return it: of several callers at once, exactly one gets the record. */
  take(username: string, id: string): Promise<SmSessionRecord | undefined>;
  /** Every record written by `node` (restored by that node when it starts again). */
  byNode(node: string): Promise<SmSessionRecord[]>;
  /** Records whose deadline is before `before` (ms), oldest first, at most `limit`. */
  expired(before: number, limit: number): Promise<SmSessionRecord[]>;
}

export class MemorySmSessionStore implements SmSessionStore {
  private readonly rows = new Map<string, SmSessionRecord>();

  async put(rec: SmSessionRecord): Promise<void> {
    this.rows.set(`${rec.username}\0${rec.id}`, { ...rec });
  }

  async putMany(recs: readonly SmSessionRecord[]): Promise<void> {
    for (const r of recs) this.rows.set(`${r.username}\0${r.id}`, { ...r });
  }

  async remove(username: string, id: string): Promise<void> {
    this.rows.delete(`${username}\0${id}`);
  }

  async get(username: string, id: string): Promise<SmSessionRecord | undefined> {
    const r = this.rows.get(`${username}\0${id}`);
    return r && { ...r };
  }

  async take(username: string, id: string): Promise<SmSessionRecord | undefined> {
    const k = `${username}\0${id}`;
    const r = this.rows.get(k);
    this.rows.delete(k);
    return r;
  }

  async byNode(node: string): Promise<SmSessionRecord[]> {
    return [...this.rows.values()].filter((r) => r.node === node).map((r) => ({ ...r }));
  }

  async expired(before: number, limit: number): Promise<SmSessionRecord[]> {
    return [...this.rows.values()]
      .filter((r) => r.deadline < before)
      .sort((a, b) => a.deadline - b.deadline)
      .slice(0, limit)
      .map((r) => ({ ...r }));
  }

  deleteUser(username: string): void {
    for (const [k, r] of this.rows) if (r.username === username) this.rows.delete(k);
  }
}
