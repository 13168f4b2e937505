/**
 * What an operator may do to a running server: list sessions, end one or all
 * of an account's sessions, create, delete, disable and re-enable accounts,
 * change passwords, and announce to everyone online.
 *
 * One service, two doors: the local admin socket (src/admin/socket.ts, used by
 * the `verona` CLI) and XEP-0133 ad-hoc commands (src/modules/adhoc/). Both
 * only translate their input into these calls, so the rules (an account
 * deleted with every trace, sessions ended when the password changes, ...)
 * live in one place.
 */
import { JIDError, parseJID, prepareLocal } from '../jid/jid.js';
import { deriveAllScram } from '../sasl/credentials.js';
import { saslprep } from '../sasl/saslprep.js';
import { AccountExistsError, type AccountRecord } from '../storage/types.js';
import type { ServerContext } from '../core/context.js';
import type { Session } from '../core/session.js';
import { x } from '../xml/element.js';
import { NS } from '../core/namespaces.js';

/** KV store and key that mark an account as disabled (a per-account row: it goes with the account). */
export const DISABLED_STORE = 'admin';
export const DISABLED_KEY = 'disabled';

/** A failed admin action: `code` says which kind (the socket and ad-hoc commands map it to their errors). */
export class AdminError extends Error {
  constructor(
    readonly code: 'bad-request' | 'item-not-found' | 'conflict' | 'not-allowed',
    message: string,
  ) {
    super(message);
  }
}

export interface SessionInfo {
  jid: string;
  address: string;
  transport: string;
  /** ms since epoch. */
  since: number;
  available: boolean;
  priority: number;
}

/** Data about a session, never the object (the socket and ad-hoc commands serialise it). */
function describe(s: Session): SessionInfo {
  return {
    jid: s.jid.toString(),
    address: s.stream.remoteAddress,
    transport: s.stream.transportKind,
    since: s.createdAt,
    available: s.available,
    priority: s.priority,
  };
}

/** How the account-removal of XEP-0077 ends presence and subscriptions (the register module provides it). */
export interface AccountRemoval {
  removeAccount(username: string): Promise<void>;
}

/** The server as the admin actions need it. */
export interface AdminServer extends ServerContext {
  readonly services: Map<string, unknown>;
}

export class AdminActions {
  /** Disabled accounts with the reason given (read at start, then kept here; checked at every login). */
  private readonly disabled = new Map<string, string>();

  constructor(private readonly server: AdminServer) {}

  /** Read which accounts are disabled (once, at start). */
  async load(): Promise<void> {
    const { accounts, kv } = this.server.storage;
    for (const u of await accounts.list()) {
      const reason = await kv.get(u, DISABLED_STORE, DISABLED_KEY);
      if (reason !== undefined) this.disabled.set(u, reason);
    }
  }

  /** The reason when the account is disabled (SASL then answers <account-disabled/>), else undefined. */
  disabledReason(username: string): string | undefined {
    return this.disabled.get(username);
  }

  private count(action: string): void {
    this.server.metrics.counter('verona_admin_actions_total', 'Administrative actions carried out, by action').inc({ action });
  }

  /** `user` or `user@domain` of the served domain -> prepared username. */
  username(input: string): string {
    try {
      if (!input.includes('@')) return prepareLocal(input);
      const jid = parseJID(input);
      if (jid.local === '' || jid.resource !== '') throw new AdminError('bad-request', `expected a bare JID, not "${input}"`);
      if (!this.server.hosts.has(jid.domain)) throw new AdminError('bad-request', `${jid.bareString()} is not on this server's domain (${this.server.hosts.list().join(', ')})`);
      return this.server.hosts.keyOf(jid);
    } catch (err) {
      if (err instanceof JIDError) throw new AdminError('bad-request', `invalid JID "${input}": ${err.message}`);
      throw err;
    }
  }

  private async mustExist(username: string): Promise<void> {
    if (!(await this.server.storage.accounts.exists(username))) throw new AdminError('item-not-found', `no account ${this.server.hosts.bareOf(username)}`);
  }

  /** Every bound session (optionally of one account), oldest first. */
  sessions(user?: string): SessionInfo[] {
    const list = user === undefined ? [...this.server.sessions.all()] : [...this.server.sessions.byUser(this.username(user))];
    return list.map(describe).sort((a, b) => a.since - b.since || a.jid.localeCompare(b.jid));
  }

  /** Bare JIDs of the accounts with at least one session (XEP-0133 "online users"). */
  onlineUsers(): string[] {
    const users = new Set<string>();
    for (const s of this.server.sessions.all()) users.add(s.jid.bareString());
    return [...users].sort();
  }

  /**
   * End sessions for good (no stream-management resumption): a full JID ends
   * that one, a bare JID every session of the account. Returns the JIDs ended.
   */
  kick(jid: string, condition = 'policy-violation', text = 'Disconnected by an administrator'): string[] {
    let username: string;
    let resource = '';
    try {
      const j = parseJID(jid.includes('@') ? jid : `${jid}@${this.server.domain}`);
      if (!this.server.hosts.isAccount(j)) throw new AdminError('bad-request', `${jid} is not an account of ${this.server.hosts.list().join(', ')}`);
      username = this.server.hosts.keyOf(j);
      resource = j.resource;
    } catch (err) {
      if (err instanceof JIDError) throw new AdminError('bad-request', `invalid JID "${jid}": ${err.message}`);
      throw err;
    }
    const sessions = [...this.server.sessions.byUser(username)].filter((s) => resource === '' || s.resource === resource);
    if (resource !== '' && sessions.length === 0) throw new AdminError('item-not-found', `no session ${jid}`);
    const ended = this.endAll(sessions, 'kicked', condition, text);
    this.count('kick');
    this.server.log.info({ jid, ended: ended.length }, 'admin: sessions ended');
    return ended;
  }

  private endAll(sessions: readonly Session[], reason: string, condition: string, text: string): string[] {
    const ended: string[] = [];
    for (const s of [...sessions]) {
      ended.push(s.jid.toString());
      this.server.endSession(s, reason);
      s.stream.closeWith(condition, text);
    }
    return ended;
  }

  private checkPassword(password: string): void {
    if (password === '') throw new AdminError('bad-request', 'the password must not be empty');
    try {
      saslprep(password);
    } catch (err) {
      throw new AdminError('bad-request', `password refused: ${(err as Error).message}`);
    }
  }

  async addUser(user: string, password: string): Promise<string> {
    const username = this.username(user);
    this.checkPassword(password);
    if (await this.server.storage.accounts.exists(username)) throw new AdminError('conflict', `account ${this.server.hosts.bareOf(username)} already exists`);
    const scram = await deriveAllScram(password, this.server.config.auth.scramIterations);
    try {
      await this.server.storage.accounts.create({ username, createdAt: Date.now(), scram });
    } catch (err) {
      if (err instanceof AccountExistsError) throw new AdminError('conflict', `account ${this.server.hosts.bareOf(username)} already exists`);
      throw err;
    }
    this.count('adduser');
    this.server.log.info({ user: username }, 'admin: account created');
    return this.server.hosts.bareOf(username);
  }

  /**
   * New credentials, then every session of the account ends: whoever was
   * logged in with the old password must log in again with the new one.
   * `password` is derived here; `scram` (already derived by the CLI, so that
   * the password never crosses the socket) is stored as it is.
   */
  async changePassword(user: string, secret: { password: string } | { scram: AccountRecord['scram'] }): Promise<string[]> {
    const username = this.username(user);
    await this.mustExist(username);
    let scram: AccountRecord['scram'];
    if ('password' in secret) {
      this.checkPassword(secret.password);
      scram = await deriveAllScram(secret.password, this.server.config.auth.scramIterations);
    } else {
      scram = secret.scram;
    }
    if (!(await this.server.storage.accounts.setCredentials(username, scram))) throw new AdminError('item-not-found', `no account ${this.server.hosts.bareOf(username)}`);
    const ended = this.endAll(this.server.sessions.byUser(username), 'password-changed', 'not-authorized', 'The password was changed');
    this.count('passwd');
    this.server.log.info({ user: username, ended: ended.length }, 'admin: password changed');
    return ended;
  }

  /**
   * Delete the account and every trace of it: contacts see it go offline and
   * lose their subscriptions (the register module's XEP-0077 removal, when
   * loaded), its sessions end, then every row keyed by the account goes
   * (archive, PEP, offline, roster, vCard, private XML, blocklist, SM state:
   * storage.deleteUserData).
   */
  async deleteUser(user: string): Promise<string[]> {
    const username = this.username(user);
    await this.mustExist(username);
    const ended = this.sessions(username).map((s) => s.jid);
    const removal = this.server.services.get('account-removal') as AccountRemoval | undefined;
    if (removal) {
      await removal.removeAccount(username);
    } else {
      const sessions = [...this.server.sessions.byUser(username)];
      this.endAll(sessions, 'account-removed', 'not-authorized', 'The account was removed');
      await Promise.all(sessions.map((s) => s.inboundTail.catch(() => undefined)));
      await new Promise((r) => setImmediate(r));
      await this.server.storage.archive?.flush();
      await this.server.storage.deleteUserData(username);
    }
    this.disabled.delete(username);
    this.count('deluser');
    this.server.log.info({ user: username }, 'admin: account deleted');
    return ended;
  }

  /** Refuse logins (SASL <account-disabled/>) and end the account's sessions. */
  async disable(user: string, reason = 'Disabled by an administrator'): Promise<string[]> {
    const username = this.username(user);
    await this.mustExist(username);
    await this.server.storage.kv.set(username, DISABLED_STORE, DISABLED_KEY, reason);
    this.disabled.set(username, reason);
    const ended = this.endAll(this.server.sessions.byUser(username), 'account-disabled', 'not-authorized', 'The account was disabled');
    this.count('disable');
    this.server.log.info({ user: username, ended: ended.length }, 'admin: account disabled');
    return ended;
  }

  async enable(user: string): Promise<void> {
    const username = this.username(user);
    await this.mustExist(username);
    await this.server.storage.kv.set(username, DISABLED_STORE, DISABLED_KEY, undefined);
    this.disabled.delete(username);
    this.count('enable');
    this.server.log.info({ user: username }, 'admin: account enabled');
  }

  /** A headline from the server to every online session (XEP-0133 §4.23). Returns how many got it. */
  announce(body: string, subject?: string): number {
    if (body.trim() === '') throw new AdminError('bad-request', 'the announcement is empty');
    let n = 0;
    for (const s of [...this.server.sessions.all()]) {
      if (s.closed) continue;
      const children = [];
      if (subject !== undefined && subject !== '') children.push(x('subject', NS.CLIENT, {}, [subject]));
      children.push(x('body', NS.CLIENT, {}, [body]));
      // Straight to each session: an announcement is for whoever is online now, not for archives or offline storage.
      this.server.router.sendToSession(s, x('message', NS.CLIENT, { type: 'headline', from: this.server.domain, to: s.jid.toString() }, children));
      n++;
    }
    this.count('announce');
    this.server.log.info({ sessions: n }, 'admin: announcement sent');
    return n;
  }
}
