/**
 * XEP-0357 push registrations: one per (account, app server JID, node), each
 * remembering the device (resource) that enabled it and the publish-options
 * form the client gave (it holds the client's secret: stored, passed on to
 * the app server, never logged).
 *
 * MemoryPushStore is the reference implementation (tests, backends without
 * a table).
 */

export interface PushRegistration {
  /** Owning account (prepared localpart). */
  username: string;
  /** The app server's JID (XEP-0357 `jid`). */
  jid: string;
  /** The node on the app server. */
  node: string;
  /** The resource of the device that enabled it. */
  resource: string;
  /** Serialized publish-options data form (jabber:x:data), '' when none. */
  options: string;
  /** ms since epoch. */
  createdAt: number;
}

export interface PushStore {
  list(username: string): Promise<PushRegistration[]>;
  /** Accounts with at least one registration (loaded at start, so messages to others cost nothing). */
  usernames(): Promise<string[]>;
  /** Insert or replace (same username, jid, node). */
  put(reg: PushRegistration): Promise<void>;
  /** Remove one node, or every node of `jid` when `node` is undefined; returns how many. */
  remove(username: string, jid: string, node?: string): Promise<number>;
}

export class MemoryPushStore implements PushStore {
  private readonly rows = new Map<string, PushRegistration[]>();

  async list(username: string): Promise<PushRegistration[]> {
    return (this.rows.get(username) ?? []).map((r) => ({ ...r }));
  }

  async usernames(): Promise<string[]> {
    return [...this.rows.keys()];
  }

  async put(reg: PushRegistration): Promise<void> {
    const list = (this.rows.get(reg.username) ?? []).filter((r) => !(r.jid === reg.jid && r.node === reg.node));
    list.push({ ...reg });
    this.rows.set(reg.username, list);
  }

  async remove(username: string, jid: string, node?: string): Promise<number> {
    const list = this.rows.get(username) ?? [];
    const keep = list.filter((r) => !(r.jid === jid && (node === undefined || r.node === node)));
    if (keep.length === 0) this.rows.delete(username);
    else this.rows.set(username, keep);
    return list.length - keep.length;
  }
}
