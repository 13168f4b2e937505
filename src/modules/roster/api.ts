/**
 * Services the roster module provides to other modules:
 *   api.service<PresenceAuth>('presence-auth')  (disco, PEP: who may see an account's presence)
 *   api.service<RosterApi>('roster')            (subscription lookups, change notifications)
 */
import type { JID } from '../../jid/jid.js';
import type { RosterItem, Subscription } from '../../storage/roster.js';

export type { RosterItem, Subscription };

export interface PresenceAuth {
  /** May `asker` see `owner`'s presence (the account itself, or a contact with subscription from/both)? */
  canSeePresence(owner: string, asker: JID): Promise<boolean>;
}

export interface RosterChangeEvent {
  owner: string;
  /** The contact's JID (bare). */
  jid: string;
  /** The item after the change; undefined when it was removed. */
  item: RosterItem | undefined;
  /** The item before the change; undefined when it is new. */
  previous: RosterItem | undefined;
}

export interface RosterApi {
  /** Subscription state of `contact` in `owner`'s roster; undefined when it is not an item. */
  subscription(owner: string, contact: JID | string): Promise<Subscription | undefined>;
  /** Bare JIDs allowed to see `owner`'s presence (subscription from/both): PEP notification targets. */
  presenceSubscribers(owner: string): Promise<string[]>;
  /** Bare JIDs whose presence `owner` sees (subscription to/both). */
  presenceSubscriptions(owner: string): Promise<string[]>;
  /** All items of `owner`'s roster. */
  items(owner: string): Promise<RosterItem[]>;
  /** Called after every stored item change (set, remove, subscription transitions). */
  onChange(listener: (ev: RosterChangeEvent) => void): void;
}
