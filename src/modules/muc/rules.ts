/**
 * XEP-0045 (Multi-User Chat, version 1.34) policy as pure functions: who may
 * join, who may do what to whom, what a room archives. Each returns its
 * verdict with a reason (for errors' text, logs and table tests in
 * test/unit/muc-rules.test.ts); the service applies them.
 */
import type { StanzaErrorCondition } from '../../core/errors.js';
import type { Affiliation, AllowPm, Role, RoomConfig } from '../../storage/muc.js';
import type { Element } from '../../xml/element.js';

export type Decision = { ok: true; reason: string } | { ok: false; condition: StanzaErrorCondition; reason: string };

const ok = (reason: string): Decision => ({ ok: true, reason });
const no = (condition: StanzaErrorCondition, reason: string): Decision => ({ ok: false, condition, reason });

const AFFILIATION_RANK: Record<Affiliation, number> = { outcast: -1, none: 0, member: 1, admin: 2, owner: 3 };
const ROLE_RANK: Record<Role, number> = { none: 0, visitor: 1, participant: 2, moderator: 3 };

export function affiliationRank(a: Affiliation): number {
  return AFFILIATION_RANK[a];
}

export function roleRank(r: Role): number {
  return ROLE_RANK[r];
}

export function isAffiliation(s: string | undefined): s is Affiliation {
  return s !== undefined && Object.hasOwn(AFFILIATION_RANK, s);
}

export function isRole(s: string | undefined): s is Role {
  return s !== undefined && Object.hasOwn(ROLE_RANK, s);
}

/** §5.1.2: the role an occupant gets on entering, from its affiliation and the room's configuration. */
export function defaultRole(affiliation: Affiliation, config: Pick<RoomConfig, 'moderated' | 'membersOnly'>): Role {
  switch (affiliation) {
    case 'owner':
    case 'admin':
      return 'moderator';
    case 'member':
      return 'participant';
    case 'none':
      return config.moderated ? 'visitor' : 'participant';
    case 'outcast':
      return 'none';
  }
}

export interface JoinRequest {
  affiliation: Affiliation;
  /** The room was just created by this request, or is still locked awaiting its owner's configuration. */
  locked: boolean;
  /** Password the client gave (undefined when none). */
  password: string | undefined;
  /** Another account holds this nick in the room now. */
  nickInUseByOther: boolean;
  /** This nick is reserved (registered) by another account. */
  nickReservedByOther: boolean;
  /** The account is already in the room under this nick (another device): a multi-session join. */
  sameAccountSameNick: boolean;
  /** Occupants (distinct nicks) in the room now. */
  occupants: number;
  /** Sessions of this nick in the room now (multi-session). */
  sessionsOfNick: number;
  maxSessionsPerNick: number;
}

/**
 * §7.2: may this user enter the room? The order of checks follows the XEP's
 * error list so that a banned user learns "banned" before "wrong password".
 */
export function decideJoin(req: JoinRequest, config: RoomConfig): Decision {
  if (req.affiliation === 'outcast') return no('forbidden', 'You are banned from this room');
  if (req.locked && req.affiliation !== 'owner') return no('item-not-found', 'This room is locked until its owner configures it');
  if (config.membersOnly && affiliationRank(req.affiliation) < affiliationRank('member')) {
    return no('registration-required', 'This room is members-only');
  }
  // Owners and admins pass the password: they can read it in the configuration anyway.
  if (config.password !== '' && affiliationRank(req.affiliation) < affiliationRank('admin') && req.password !== config.password) {
    return no('not-authorized', req.password === undefined ? 'This room needs a password' : 'Wrong password');
  }
  if (req.nickInUseByOther) return no('conflict', 'That nickname is in use by another occupant');
  if (req.nickReservedByOther) return no('conflict', 'That nickname is reserved by another user');
  if (req.sameAccountSameNick) {
    if (req.sessionsOfNick >= req.maxSessionsPerNick) return no('resource-constraint', `At most ${req.maxSessionsPerNick} devices per nickname`);
    return ok('another-device');
  }
  if (req.occupants >= config.maxUsers && affiliationRank(req.affiliation) < affiliationRank('admin')) {
    return no('service-unavailable', 'The room is full');
  }
  return ok(req.locked ? 'owner-of-locked-room' : 'allowed');
}

export interface Actor {
  affiliation: Affiliation;
  role: Role;
}

/**
 * §8 (moderator use cases): may `actor` set `target`'s role to `role`?
 * Kick = role none, voice = participant, revoke voice = visitor, grant or revoke moderator.
 */
export function canChangeRole(actor: Actor, target: Actor, role: Role, self = false): Decision {
  if (actor.role !== 'moderator') return no('forbidden', 'Only moderators change roles');
  if (target.role === 'none') return no('item-not-found', 'No such occupant');
  const adminTarget = affiliationRank(target.affiliation) >= affiliationRank('admin');
  if (role === 'moderator' || target.role === 'moderator') {
    // §9.6/§9.7: granting and revoking moderator status is an admin's business.
    if (affiliationRank(actor.affiliation) < affiliationRank('admin')) return no('forbidden', 'Only admins and owners grant or revoke moderator');
  }
  if (adminTarget && role !== 'moderator') {
    // §8.2, §8.4: admins and owners are always moderators; they cannot be kicked or silenced.
    if (self && role === 'none') return no('conflict', 'You cannot kick yourself');
    return no('not-allowed', 'Admins and owners cannot be kicked or silenced');
  }
  if (affiliationRank(target.affiliation) > affiliationRank(actor.affiliation)) {
    return no('not-allowed', 'That occupant outranks you');
  }
  return ok(role === 'none' ? 'kick' : role === 'visitor' ? 'revoke-voice' : role === 'participant' ? 'grant-voice' : 'grant-moderator');
}

/**
 * §9 and §10: may `actor` (by affiliation) change `current` to `next`?
 * Admins manage members and outcasts; owners manage everything. Removing the
 * last owner is refused by the service (it needs the owner count).
 */
export function canChangeAffiliation(actor: Affiliation, current: Affiliation, next: Affiliation): Decision {
  if (actor === 'owner') return ok(`owner-sets-${next}`);
  if (actor === 'admin') {
    const low = (a: Affiliation): boolean => a === 'none' || a === 'member' || a === 'outcast';
    if (low(current) && low(next)) return ok(`admin-sets-${next}`);
    return no('not-allowed', 'Only owners grant or revoke admin and owner status');
  }
  return no('forbidden', 'Only admins and owners change affiliations');
}

/**
 * §7.13: may an occupant ask the moderators for voice now? Only visitors
 * need it; one request per `minIntervalMs` per occupant keeps a visitor
 * from flooding the moderators (the XEP leaves throttling to the service).
 */
export function decideVoiceRequest(actor: Actor, requestedRole: string | undefined, lastAt: number | undefined, now: number, minIntervalMs: number, moderatorsPresent: number): Decision {
  if (actor.role === 'none') return no('not-acceptable', 'You are not in this room');
  if (requestedRole !== 'participant') return no('bad-request', 'A voice request asks for muc#role participant');
  if (actor.role !== 'visitor') return no('not-acceptable', 'You have voice already');
  // Nobody could answer: say so rather than let the request vanish.
  if (moderatorsPresent === 0) return no('service-unavailable', 'No moderator is in the room now; ask again later');
  if (lastAt !== undefined && now - lastAt < minIntervalMs) return no('resource-constraint', `One voice request per ${Math.round(minIntervalMs / 1000)} s`);
  return ok('visitor-asks');
}

/**
 * §8.6: a moderator's answer to a voice request. Approval is granting voice
 * (canChangeRole to participant); a denial or an answer about someone who
 * has voice already changes nothing.
 */
export function decideVoiceApproval(actor: Actor, target: Actor | undefined, allow: boolean): Decision {
  if (actor.role !== 'moderator') return no('forbidden', 'Only moderators answer voice requests');
  if (!target) return no('item-not-found', 'That occupant is not in the room');
  if (!allow) return ok('denied');
  if (roleRank(target.role) >= roleRank('participant')) return ok('has-voice-already');
  const d = canChangeRole(actor, target, 'participant');
  return d.ok ? ok('approved') : d;
}

/**
 * §7.10: may this account register (reserve) `nick` in the room? Registering
 * makes it a member, so a members-only room admits only those who are
 * affiliated already; a nick reserved by another account or held by another
 * occupant is a conflict.
 */
export function decideRegistration(affiliation: Affiliation, config: Pick<RoomConfig, 'membersOnly'>, nick: string | undefined, takenByOther: boolean): Decision {
  if (affiliation === 'outcast') return no('forbidden', 'You are banned from this room');
  if (config.membersOnly && affiliationRank(affiliation) < affiliationRank('member')) return no('not-allowed', 'Only members register in a members-only room');
  if (nick === undefined || nick.trim() === '') return no('not-acceptable', 'Give a nickname (muc#register_roomnick)');
  if (takenByOther) return no('conflict', 'That nickname is reserved by or in use by another user');
  return ok(affiliation === 'none' ? 'becomes-member' : 'keeps-affiliation');
}

/** May an occupant with this role and affiliation set the room's subject (§8.1)? */
export function canSetSubject(actor: Actor, config: Pick<RoomConfig, 'changeSubject'>): Decision {
  if (actor.role === 'moderator') return ok('moderator');
  if (config.changeSubject && actor.role === 'participant') return ok('participants-may-change-subject');
  return no('forbidden', 'You may not change the subject of this room');
}

/** May an occupant send a groupchat message (§7.4)? */
export function canSpeak(actor: Actor): Decision {
  if (actor.role === 'none') return no('not-acceptable', 'You are not in this room');
  if (actor.role === 'visitor') return no('forbidden', 'You have no voice in this moderated room');
  return ok(actor.role);
}

/** §7.5: private messages between occupants, as the room configured them. */
export function canPrivateMessage(actor: Actor, allowPm: AllowPm): Decision {
  if (actor.role === 'none') return no('not-acceptable', 'You are not in this room');
  switch (allowPm) {
    case 'anyone':
      return ok('anyone');
    case 'participants':
      return roleRank(actor.role) >= roleRank('participant') ? ok('participant') : no('forbidden', 'Visitors may not send private messages here');
    case 'moderators':
      return actor.role === 'moderator' ? ok('moderator') : no('forbidden', 'Only moderators may send private messages here');
    case 'none':
      return no('forbidden', 'Private messages are off in this room');
  }
}

/** §7.8.2: may an occupant invite others? In a members-only room an invitation makes the invitee a member, so it needs admin rights unless the room allows invites. */
export function canInvite(actor: Actor, config: Pick<RoomConfig, 'membersOnly' | 'allowInvites'>): Decision {
  if (actor.role === 'none') return no('not-acceptable', 'Only occupants invite');
  if (!config.membersOnly) return ok('open-room');
  if (affiliationRank(actor.affiliation) >= affiliationRank('admin')) return ok('admin');
  if (config.allowInvites) return ok('occupants-may-invite');
  return no('forbidden', 'Only admins invite to this members-only room');
}

/**
 * Who may read the room's archive (MAM on the room JID)? Anyone who could
 * join it without a password, or a current occupant: the archive never shows
 * more than joining would.
 */
export function canReadArchive(affiliation: Affiliation, isOccupant: boolean, config: Pick<RoomConfig, 'membersOnly' | 'password' | 'archive'>): Decision {
  if (!config.archive) return no('service-unavailable', 'This room keeps no archive');
  if (affiliation === 'outcast') return no('forbidden', 'You are banned from this room');
  if (isOccupant) return ok('occupant');
  if (config.membersOnly && affiliationRank(affiliation) < affiliationRank('member')) return no('forbidden', 'Members only');
  if (config.password !== '' && affiliationRank(affiliation) < affiliationRank('admin')) return no('forbidden', 'Join the room (with its password) to read its archive');
  return ok('could-join');
}

/** Is the real JID of occupants shown to this receiver (§7.2.3/7.2.4)? */
export function showsRealJid(receiver: Pick<Actor, 'role'>, whois: RoomConfig['whois']): boolean {
  return whois === 'anyone' || receiver.role === 'moderator';
}

const ARCHIVED_PAYLOADS = new Set([
  'urn:xmpp:message-correct:0',
  'urn:xmpp:message-retract:1',
  'urn:xmpp:message-moderate:1',
  'urn:xmpp:reactions:0',
  'eu.siacs.conversations.axolotl',
  'urn:xmpp:omemo:2',
  'urn:xmpp:chat-markers:0',
  'jabber:x:encrypted',
  'urn:xmpp:openpgp:0',
]);

/**
 * Does a groupchat message go into the room's archive (and so carry a
 * <stanza-id by=room/>)? What a reader would miss: bodies, encrypted payloads,
 * corrections, retractions, reactions, markers; not chat states alone, nor a
 * subject change (the subject is room state, sent on every join).
 */
export function roomArchivable(msg: Element): { ok: boolean; reason: string } {
  if (msg.getChild('no-store', 'urn:xmpp:hints') || msg.getChild('no-permanent-store', 'urn:xmpp:hints')) return { ok: false, reason: 'no-store-hint' };
  if (msg.getChild('body')) return { ok: true, reason: 'body' };
  for (const c of msg.children) {
    if (typeof c !== 'string' && ARCHIVED_PAYLOADS.has(c.xmlns)) return { ok: true, reason: 'im-payload' };
  }
  if (msg.getChild('store', 'urn:xmpp:hints')) return { ok: true, reason: 'store-hint' };
  if (msg.getChild('subject')) return { ok: false, reason: 'subject' };
  return { ok: false, reason: 'no-content' };
}

/** History request of a joining client (§7.2.15): at most `maxstanzas`, not older than `seconds` or `since`. */
export interface HistoryRequest {
  maxStanzas: number | undefined;
  maxChars: number | undefined;
  seconds: number | undefined;
  /** ms since the epoch. */
  since: number | undefined;
}

/**
 * Which history entries a new occupant gets: the newest ones within every
 * limit given, oldest first. `entries` are oldest first with their times in ms.
 */
export function selectHistory<T extends { at: number; chars: number }>(entries: readonly T[], req: HistoryRequest, roomLength: number, now: number): T[] {
  let max = Math.min(roomLength, req.maxStanzas ?? roomLength);
  if (req.maxChars === 0) max = 0;
  const out: T[] = [];
  let chars = 0;
  for (let i = entries.length - 1; i >= 0 && out.length < max; i--) {
    const e = entries[i] as T;
    if (req.seconds !== undefined && e.at < now - req.seconds * 1000) break;
    if (req.since !== undefined && e.at < req.since) break;
    if (req.maxChars !== undefined && chars + e.chars > req.maxChars) break;
    chars += e.chars;
    out.push(e);
  }
  return out.reverse();
}

/** A token bucket per occupant: `rate` messages per second, bursts of `burst`. Returns the new state and whether the message may pass. */
export function takeToken(state: { tokens: number; at: number }, now: number, rate: number, burst: number): { tokens: number; at: number; ok: boolean } {
  const tokens = Math.min(burst, state.tokens + ((now - state.at) / 1000) * rate);
  if (tokens >= 1) return { tokens: tokens - 1, at: now, ok: true };
  return { tokens, at: now, ok: false };
}
