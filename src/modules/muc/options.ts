/**
 * Options of the `muc` module (config `moduleOptions.muc`), validated at load.
 * Documented in docs/muc.md and docs/configuration.md. Turn the service off
 * with `modules.disabled: [muc]`.
 */
import type { RoomConfig } from '../../storage/muc.js';

export interface MucOptions {
  /** The service's domain; '' = `conference.<domain>`. */
  domain: string;
  /** Service name in disco. */
  name: string;
  /** Rooms one account may own at once (creating a room makes you its owner). */
  maxRoomsPerAccount: number;
  /** Upper bound of a room's maxUsers (occupants = distinct nicknames). */
  maxOccupantsPerRoom: number;
  /** Devices (sessions) of one account under one nick. */
  maxSessionsPerNick: number;
  /** Groupchat messages per second per occupant (token bucket refill rate). */
  messageRate: number;
  /** Burst size of that bucket. */
  messageBurst: number;
  /** Most history messages a room keeps in memory for new occupants. */
  historyMax: number;
  /** Rooms total on the service. */
  maxRooms: number;
  /** Seconds an occupant waits between two voice requests (XEP-0045 §7.13), so visitors cannot flood moderators. */
  voiceRequestInterval: number;
  /** Defaults of a new room's configuration. */
  roomDefaults: RoomConfig;
}

export const ROOM_DEFAULTS: RoomConfig = {
  name: '',
  description: '',
  persistent: false,
  public: true,
  membersOnly: false,
  moderated: false,
  password: '',
  maxUsers: 200,
  whois: 'moderators',
  changeSubject: false,
  allowInvites: false,
  allowPm: 'anyone',
  archive: true,
  historyLength: 20,
};

const NUMERIC = ['maxRoomsPerAccount', 'maxOccupantsPerRoom', 'maxSessionsPerNick', 'messageRate', 'messageBurst', 'historyMax', 'maxRooms', 'voiceRequestInterval'] as const;

export function parseMucOptions(raw: Record<string, unknown>, serverDomain: string): MucOptions {
  const out: MucOptions = {
    domain: `conference.${serverDomain}`,
    name: 'Chatrooms',
    maxRoomsPerAccount: 100,
    maxOccupantsPerRoom: 1000,
    maxSessionsPerNick: 10,
    messageRate: 10,
    messageBurst: 30,
    historyMax: 50,
    maxRooms: 10000,
    voiceRequestInterval: 60,
    roomDefaults: { ...ROOM_DEFAULTS },
  };
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'domain' || k === 'name') {
      if (typeof v !== 'string') throw new Error(`moduleOptions.muc.${k}: expected a string, got ${JSON.stringify(v)}`);
      if (k === 'domain' && v !== '') out.domain = v.toLowerCase();
      if (k === 'name') out.name = v;
    } else if ((NUMERIC as readonly string[]).includes(k)) {
      if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw new Error(`moduleOptions.muc.${k}: expected a number > 0, got ${JSON.stringify(v)}`);
      out[k as (typeof NUMERIC)[number]] = v;
    } else if (k === 'roomDefaults') {
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('moduleOptions.muc.roomDefaults: expected a mapping');
      for (const [rk, rv] of Object.entries(v as Record<string, unknown>)) {
        if (!Object.hasOwn(ROOM_DEFAULTS, rk)) throw new Error(`moduleOptions.muc.roomDefaults.${rk}: unknown option (known: ${Object.keys(ROOM_DEFAULTS).join(', ')})`);
        const want = typeof ROOM_DEFAULTS[rk as keyof RoomConfig];
        if (typeof rv !== want) throw new Error(`moduleOptions.muc.roomDefaults.${rk}: expected a ${want}, got ${JSON.stringify(rv)}`);
        (out.roomDefaults as unknown as Record<string, unknown>)[rk] = rv;
      }
      if (!['moderators', 'anyone'].includes(out.roomDefaults.whois)) throw new Error('moduleOptions.muc.roomDefaults.whois: moderators or anyone');
      if (!['anyone', 'participants', 'moderators', 'none'].includes(out.roomDefaults.allowPm)) throw new Error('moduleOptions.muc.roomDefaults.allowPm: anyone, participants, moderators or none');
    } else {
      throw new Error(`moduleOptions.muc.${k}: unknown option (known: domain, name, ${NUMERIC.join(', ')}, roomDefaults)`);
    }
  }
  if (out.domain === serverDomain) throw new Error('moduleOptions.muc.domain must differ from the server domain');
  out.roomDefaults.maxUsers = Math.min(out.roomDefaults.maxUsers, out.maxOccupantsPerRoom);
  out.roomDefaults.historyLength = Math.min(out.roomDefaults.historyLength, out.historyMax);
  return out;
}
