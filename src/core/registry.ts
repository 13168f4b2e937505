/**
 * "Where is this JID connected?" One process answers from memory today; a
 * cluster implementation (Redis, PostgreSQL LISTEN) answers the same
 * questions later without the router changing.
 */
import type { Session } from './session.js';

export interface SessionRegistry {
  /** All bound sessions of an account (empty array when none). */
  byUser(username: string): readonly Session[];
  byFullJid(username: string, resource: string): Session | undefined;
  add(session: Session): void;
  remove(session: Session): void;
  count(): number;
  all(): Iterable<Session>;
}

export class LocalSessionRegistry implements SessionRegistry {
  private readonly users = new Map<string, Session[]>();
  private total = 0;
  private static readonly EMPTY: readonly Session[] = Object.freeze([]);

  byUser(username: string): readonly Session[] {
    return this.users.get(username) ?? LocalSessionRegistry.EMPTY;
  }

  byFullJid(username: string, resource: string): Session | undefined {
    const list = this.users.get(username);
    if (!list) return undefined;
    for (const s of list) if (s.resource === resource) return s;
    return undefined;
  }

  add(session: Session): void {
    const list = this.users.get(session.username);
    if (list) list.push(session);
    else this.users.set(session.username, [session]);
    this.total++;
  }

  remove(session: Session): void {
    const list = this.users.get(session.username);
    if (!list) return;
    const i = list.indexOf(session);
    if (i < 0) return;
    list.splice(i, 1);
    this.total--;
    if (list.length === 0) this.users.delete(session.username);
  }

  count(): number {
    return this.total;
  }

  *all(): Iterable<Session> {
    for (const list of this.users.values()) yield* list;
  }
}
