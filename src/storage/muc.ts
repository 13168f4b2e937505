/**
 * Storage of multi-user chat rooms (XEP-0045): what a persistent room must
 * keep across a restart. Occupants (who is in the room now) are not stored:
 * after a restart every client rejoins, as with any XMPP server.
 *
 * The room's messages are not here: they live in the message archive
 * (src/storage/archive.ts) under the room's bare JID as the archive owner,
 * which cannot clash with an account (a localpart never contains '@').
 */

export type Affiliation = 'owner' | 'admin' | 'member' | 'none' | 'outcast';
export type Role = 'moderator' | 'participant' | 'visitor' | 'none';
export type Whois = 'moderators' | 'anyone';
export type AllowPm = 'anyone' | 'participants' | 'moderators' | 'none';

/** muc#roomconfig, as the room keeps it. */
export interface RoomConfig {
  name: string;
  description: string;
  persistent: boolean;
  /** Listed in the service's disco#items. */
  public: boolean;
  membersOnly: boolean;
  /** Only occupants with voice (participant or moderator) may send to everyone. */
  moderated: boolean;
  /** Non-empty: joining needs this password. */
  password: string;
  /** Most occupants (nicks) at once; admins and owners may still join when full. */
  maxUsers: number;
  /** Who sees occupants' real JIDs. */
  whois: Whois;
  /** Participants (not only moderators) may change the subject. */
  changeSubject: boolean;
  /** Occupants (not only admins) may invite in a members-only room. */
  allowInvites: boolean;
  allowPm: AllowPm;
  /** Keep the room's messages in its archive (MAM on the room JID). */
  archive: boolean;
  /** Messages sent to a new occupant as history (at most the service's historyMax). */
  historyLength: number;
}

export interface AffiliationRecord {
  /** Bare JID. */
  jid: string;
  affiliation: Exclude<Affiliation, 'none'>;
  reason?: string;
  /** Reserved nick (XEP-0045 §7.12), if any. */
  nick?: string;
}

export interface RoomRecord {
  /** The room's localpart. */
  room: string;
  config: RoomConfig;
  affiliations: AffiliationRecord[];
  subject: { text: string; nick: string; stamp: number } | undefined;
  /** Per-room secret for occupant ids (XEP-0421): stable across restarts, different per room. */
  salt: string;
  createdAt: number;
}

export interface MucStore {
  /** Every stored (persistent) room, by name. */
  rooms(): Promise<RoomRecord[]>;
  /** Insert or replace a room. */
  save(room: RoomRecord): Promise<void>;
  /** Forget a room (destroyed, or made temporary). */
  remove(room: string): Promise<void>;
}

/** The in-memory reference store (tests, backends without a MUC store). */
export class MemoryMucStore implements MucStore {
  private readonly map = new Map<string, string>();

  async rooms(): Promise<RoomRecord[]> {
    return [...this.map.keys()].sort().map((k) => JSON.parse(this.map.get(k) as string) as RoomRecord);
  }

  async save(room: RoomRecord): Promise<void> {
    // Stored as text so that a caller mutating its object later cannot change what is "on disk".
    this.map.set(room.room, JSON.stringify(room));
  }

  async remove(room: string): Promise<void> {
    this.map.delete(room);
  }
}
