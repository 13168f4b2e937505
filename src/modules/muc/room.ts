/**
 * A room's live state: the stored part (RoomRecord: configuration,
 * affiliations, subject) and what lives only while the server runs
 * (occupants with their sessions, the history ring, the delivery tail).
 */
import { createHash } from 'node:crypto';
import type { Element } from '../../xml/element.js';
import type { Affiliation, AffiliationRecord, RoomConfig, RoomRecord, Role } from '../../storage/muc.js';

export interface Occupant {
  nick: string;
  /** Real bare JID of the account. */
  bare: string;
  role: Role;
  /** Every device of the account under this nick: full JID -> the last presence it sent. */
  sessions: Map<string, Element>;
  /** XEP-0421 occupant id: stable per account and room, opaque to others. */
  occupantId: string;
  /** Message rate bucket (shared by the account's devices). */
  bucket: { tokens: number; at: number };
  /** The full JID that joined last (its presence is the nick's presence). */
  latest: string;
  /** When this occupant last asked for voice (ms), for the request interval. */
  voiceRequestedAt?: number;
}

export interface HistoryEntry {
  /** The message as archived (from room/nick, no `to`, no stanza-id). */
  el: Element;
  /** Archive id (undefined when the room keeps no archive or the write failed). */
  id: string | undefined;
  /** ms since the epoch. */
  at: number;
  chars: number;
}

export class Room {
  readonly name: string;
  readonly jid: string;
  config: RoomConfig;
  readonly affiliations = new Map<string, AffiliationRecord>();
  subject: RoomRecord['subject'];
  readonly salt: string;
  readonly createdAt: number;
  /** §10.1: a new room is locked until its owner configures it (or accepts the defaults). */
  locked = false;
  readonly occupants = new Map<string, Occupant>();
  readonly bySession = new Map<string, Occupant>();
  history: HistoryEntry[] = [];
  /** Deliveries of this room's messages, in archive order. */
  tail: Promise<void> = Promise.resolve();
  destroyed = false;

  constructor(rec: RoomRecord, service: string) {
    this.name = rec.room;
    this.jid = `${rec.room}@${service}`;
    this.config = { ...rec.config };
    for (const a of rec.affiliations) this.affiliations.set(a.jid, { ...a });
    this.subject = rec.subject;
    this.salt = rec.salt;
    this.createdAt = rec.createdAt;
  }

  record(): RoomRecord {
    return {
      room: this.name,
      config: { ...this.config },
      affiliations: [...this.affiliations.values()].map((a) => ({ ...a })),
      subject: this.subject,
      salt: this.salt,
      createdAt: this.createdAt,
    };
  }

  affiliationOf(bare: string): Affiliation {
    return this.affiliations.get(bare)?.affiliation ?? 'none';
  }

  setAffiliation(bare: string, affiliation: Affiliation, reason?: string): void {
    if (affiliation === 'none') this.affiliations.delete(bare);
    else this.affiliations.set(bare, { jid: bare, affiliation, reason, nick: this.affiliations.get(bare)?.nick });
  }

  owners(): string[] {
    return [...this.affiliations.values()].filter((a) => a.affiliation === 'owner').map((a) => a.jid);
  }

  occupantIdOf(bare: string): string {
    return createHash('sha256').update(this.salt).update('\0').update(bare).digest('base64url').slice(0, 22);
  }

  /** The occupant of this account, if it is in the room (under whatever nick). */
  occupantOf(bare: string): Occupant | undefined {
    for (const o of this.occupants.values()) if (o.bare === bare) return o;
    return undefined;
  }

  /** The nick reserved by another account than `bare`, if `nick` is one. */
  reservedByOther(nick: string, bare: string): boolean {
    for (const a of this.affiliations.values()) if (a.nick === nick && a.jid !== bare) return true;
    return false;
  }

  addHistory(e: HistoryEntry, max: number): void {
    this.history.push(e);
    if (this.history.length > max) this.history.splice(0, this.history.length - max);
  }
}
