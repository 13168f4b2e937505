/**
 * The MUC service (XEP-0045 1.34) behind the router's ExternalRoute for its
 * domain: every stanza to `conference.<domain>` or a room in it arrives in
 * `send()`, after the sender's own hooks ran. Stanzas the service emits go
 * out through `router.route()`, so the recipients' policies (blocking, their
 * own archive for private messages, MR2/carbons forks of private messages)
 * apply as to any other incoming stanza.
 *
 * Order and archive: a groupchat message is given its room-archive id at
 * once (the shared archive clock), committed with the group commit, and only
 * then fanned out, each room's deliveries chained (Room.tail), so every
 * device sees ids ascending and "everything after my last id" from MAM on the
 * room neither repeats nor skips. The route returns the commit promise: the
 * router waits for it before it counts the stanza handled, so the sender's
 * stream-management ack means "archived" for room messages too.
 */
import { Element, x, serialize } from '../../xml/element.js';
import { parseXml } from '../../xml/parser.js';
import { NS } from '../../core/namespaces.js';
import { StanzaError } from '../../core/errors.js';
import type { ModuleApi } from '../../core/module.js';
import type { ExternalRoute } from '../../core/router.js';
import type { Session } from '../../core/session.js';
import { JID, tryParseJID } from '../../jid/jid.js';
import type { Counter } from '../../metrics/metrics.js';
import type { ArchiveStore } from '../../storage/archive.js';
import type { Affiliation, MucStore, Role, RoomRecord } from '../../storage/muc.js';
import { ArchiveClock, archiveIdFor, parseDateTime, seqToMs, stampOf } from '../mam/ids.js';
import { finElement, parseQuery, queryForm, runQuery, type QueryLimits } from '../mam/query.js';
import { applyConfigForm, configForm, formBool, isRequestForm, NS_DATA, NS_REGISTER_FORM, NS_REQUEST, registerForm, requestFields, roomInfoForm, voiceRequestForm } from './forms.js';
import type { MucOptions } from './options.js';
import { Room, type HistoryEntry, type Occupant } from './room.js';
import {
  canChangeAffiliation,
  canChangeRole,
  canInvite,
  canPrivateMessage,
  canReadArchive,
  canSetSubject,
  canSpeak,
  decideJoin,
  decideRegistration,
  decideVoiceApproval,
  decideVoiceRequest,
  defaultRole,
  isAffiliation,
  isRole,
  roomArchivable,
  selectHistory,
  showsRealJid,
  takeToken,
  type Decision,
} from './rules.js';

export const NS_MUC = 'http://jabber.org/protocol/muc';
export const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
export const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';
export const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';
export const NS_OCCUPANT_ID = 'urn:xmpp:occupant-id:0';
export const NS_CONFERENCE = 'jabber:x:conference';
export const NS_STABLE_ID = 'http://jabber.org/protocol/muc#stable_id';
export const NS_SELF_PING = 'http://jabber.org/protocol/muc#self-ping-optimization';
export const NS_REGISTER = 'jabber:iq:register';
/** §7.12: the disco#info node on a room that tells an account its reserved nick. */
const NODE_ROOMUSER = 'x-roomuser-item';

/** Children of a client's presence that the room does not repeat (it adds its own). */
const OWN_PRESENCE_NS = new Set([NS_MUC, NS_MUC_USER, NS_OCCUPANT_ID, NS.DELAY]);

function fail(d: Decision): void {
  if (!d.ok) throw new StanzaError(d.condition, d.reason);
}

function status(code: number): Element {
  return x('status', NS_MUC_USER, { code: String(code) });
}

export interface MucMetrics {
  messages: Counter;
  copies: Counter;
  joins: Counter;
  refused: Counter;
}

export class MucService implements ExternalRoute {
  readonly kind = 'muc';
  readonly rooms = new Map<string, Room>();
  /** Full JID -> rooms it is in (to leave them when the session ends). */
  private readonly sessionRooms = new Map<string, Set<string>>();
  private readonly metrics: MucMetrics;

  constructor(
    private readonly api: ModuleApi,
    readonly opts: MucOptions,
    private readonly store: MucStore,
    private readonly archive: ArchiveStore | undefined,
    private readonly clock: ArchiveClock,
    private readonly mamLimits: QueryLimits,
  ) {
    this.metrics = {
      messages: api.metrics.counter('verona_muc_messages_total', 'Groupchat messages accepted by rooms, by archived'),
      copies: api.metrics.counter('verona_muc_copies_total', 'Groupchat message copies sent to occupant sessions'),
      joins: api.metrics.counter('verona_muc_joins_total', 'Room joins, by reason'),
      refused: api.metrics.counter('verona_muc_refused_total', 'Stanzas a room refused, by condition'),
    };
  }

  get domain(): string {
    return this.opts.domain;
  }

  /** Load persistent rooms and seed their history from their archives. */
  async load(): Promise<void> {
    for (const rec of await this.store.rooms()) {
      const room = new Room(rec, this.domain);
      this.rooms.set(room.name, room);
      if (!this.archive || !room.config.archive || room.config.historyLength === 0) continue;
      const rows = await this.archive.page({ username: room.jid, order: 'desc', limit: room.config.historyLength });
      for (const r of rows.reverse()) {
        try {
          const el = parseXml(r.stanza);
          room.addHistory({ el, id: r.id, at: seqToMs(r.seq), chars: el.getChildText('body')?.length ?? 0 }, this.opts.historyMax);
        } catch {
          this.api.log.warn({ room: room.jid, id: r.id }, 'unreadable room archive row skipped');
        }
      }
    }
  }

  // ---- the route -------------------------------------------------------------

  send(stanza: Element, from: JID, to: JID, origin: Session | undefined): void | Promise<unknown> {
    if (to.local === '') return this.toService(stanza, from, to, origin);
    const room = this.rooms.get(to.local);
    switch (stanza.name) {
      case 'presence':
        this.onPresence(room, stanza, from, to, origin);
        return undefined;
      case 'message':
        return this.onMessage(room, stanza, from, to, origin);
      case 'iq':
        this.onIq(room, stanza, from, to, origin);
        return undefined;
      default:
        return undefined;
    }
  }

  private out(el: Element): void {
    this.api.router.route(el);
  }

  private refuse(stanza: Element, err: StanzaError, origin: Session | undefined): void {
    this.metrics.refused.inc({ condition: err.condition });
    this.api.router.bounce(stanza, err, origin);
  }

  // ---- service JID -------------------------------------------------------------

  private toService(stanza: Element, from: JID, to: JID, _origin: Session | undefined): void {
    if (stanza.name !== 'iq') {
      if (stanza.attrs.type !== 'error' && stanza.name === 'message') throw new StanzaError('service-unavailable', 'Send messages to a room, not to the service');
      return;
    }
    const type = stanza.attrs.type;
    if (type !== 'get' && type !== 'set') return;
    const payload = stanza.elements()[0];
    const reply = (children: Element[]): void => this.out(x('iq', NS.CLIENT, { type: 'result', id: stanza.attrs.id, from: to.toString(), to: from.toString() }, children));
    if (type === 'get' && payload?.is('query', NS.DISCO_INFO) && payload.attrs.node === undefined) {
      reply([
        x('query', NS.DISCO_INFO, {}, [
          x('identity', NS.DISCO_INFO, { category: 'conference', type: 'text', name: this.opts.name }),
          ...[NS.DISCO_INFO, NS.DISCO_ITEMS, NS_MUC, NS.PING, NS_STABLE_ID, NS_OCCUPANT_ID, NS_SELF_PING].sort().map((f) => x('feature', NS.DISCO_INFO, { var: f })),
        ]),
      ]);
      return;
    }
    if (type === 'get' && payload?.is('query', NS.DISCO_ITEMS) && payload.attrs.node === undefined) {
      const items = [...this.rooms.values()]
        .filter((r) => r.config.public && !r.locked && !r.config.membersOnly)
        .sort((a, b) => a.name.localeCompare(b.name))
        .map((r) => x('item', NS.DISCO_ITEMS, { jid: r.jid, name: r.config.name || r.name }));
      reply([x('query', NS.DISCO_ITEMS, {}, items)]);
      return;
    }
    if (type === 'get' && payload?.is('ping', NS.PING)) {
      reply([]);
      return;
    }
    throw new StanzaError('service-unavailable');
  }

  // ---- presence: join, change, leave -----------------------------------------------

  private onPresence(room: Room | undefined, stanza: Element, from: JID, to: JID, origin: Session | undefined): void {
    const type = stanza.attrs.type;
    const full = from.toString();
    if (type === 'unavailable' || type === 'error') {
      const occ = room?.bySession.get(full);
      if (room && occ) this.leave(room, occ, full, stanza.getChildText('status'));
      return;
    }
    if (type !== undefined) return; // subscription requests and probes mean nothing to a room
    try {
      if (to.resource === '') throw new StanzaError('jid-malformed', 'Join with a nickname: room@service/nick');
      const occ = room?.bySession.get(full);
      if (room && occ) {
        if (occ.nick === to.resource) this.presenceUpdate(room, occ, full, stanza);
        else this.changeNick(room, occ, to.resource);
        return;
      }
      this.join(room, stanza, from, to);
    } catch (err) {
      if (!(err instanceof StanzaError)) throw err;
      this.metrics.refused.inc({ condition: err.condition });
      const reply = x('presence', NS.CLIENT, { type: 'error', from: to.toString(), to: full }, [x('x', NS_MUC), err.toElement()]);
      if (origin && !origin.closed) origin.send(reply);
      else this.out(reply);
    }
  }

  private createRoom(name: string, owner: string): Room {
    if (this.rooms.size >= this.opts.maxRooms) throw new StanzaError('resource-constraint', 'This service has as many rooms as it may have');
    let owned = 0;
    for (const r of this.rooms.values()) if (r.affiliationOf(owner) === 'owner') owned++;
    if (owned >= this.opts.maxRoomsPerAccount) throw new StanzaError('policy-violation', `You own ${owned} rooms; the limit is ${this.opts.maxRoomsPerAccount}`, 'cancel');
    const rec: RoomRecord = {
      room: name,
      config: { ...this.opts.roomDefaults },
      affiliations: [{ jid: owner, affiliation: 'owner' }],
      subject: undefined,
      salt: (Math.random().toString(36) + Date.now().toString(36) + Math.random().toString(36)).slice(2),
      createdAt: Date.now(),
    };
    const room = new Room(rec, this.domain);
    room.locked = true;
    this.rooms.set(name, room);
    return room;
  }

  private join(existing: Room | undefined, stanza: Element, from: JID, to: JID): void {
    const bare = from.bare.toString();
    const full = from.toString();
    const nick = to.resource;
    const created = existing === undefined;
    const room = existing ?? this.createRoom(to.local, bare);
    const mucX = stanza.getChild('x', NS_MUC);
    const holder = room.occupants.get(nick);
    const affiliation = room.affiliationOf(bare);
    const d = decideJoin(
      {
        affiliation,
        locked: room.locked,
        password: mucX?.getChildText('password') ?? undefined,
        nickInUseByOther: holder !== undefined && holder.bare !== bare,
        nickReservedByOther: room.reservedByOther(nick, bare),
        sameAccountSameNick: holder !== undefined && holder.bare === bare,
        occupants: room.occupants.size,
        sessionsOfNick: holder?.sessions.size ?? 0,
        maxSessionsPerNick: this.opts.maxSessionsPerNick,
      },
      room.config,
    );
    fail(d);
    // One account, one nick: a second nick of the same account would split its devices' view.
    const other = room.occupantOf(bare);
    if (other && other.nick !== nick) throw new StanzaError('conflict', `You are in this room as ${other.nick}; join with that nick`);
    this.metrics.joins.inc({ reason: d.reason });
    const presence = this.cleanPresence(stanza);
    let occ = holder;
    if (occ) {
      occ.sessions.set(full, presence);
      occ.latest = full;
    } else {
      occ = {
        nick,
        bare,
        role: defaultRole(affiliation, room.config),
        sessions: new Map([[full, presence]]),
        occupantId: room.occupantIdOf(bare),
        bucket: { tokens: this.opts.messageBurst, at: Date.now() },
        latest: full,
      };
    }
    const newOccupant = holder === undefined;
    // 1. the others' presence to the newcomer (§7.2.3)
    const me = occ;
    for (const o of room.occupants.values()) if (o !== me) this.out(this.presenceOf(room, o, me, full, []));
    room.occupants.set(nick, occ);
    room.bySession.set(full, occ);
    let set = this.sessionRooms.get(full);
    if (!set) this.sessionRooms.set(full, (set = new Set()));
    set.add(room.name);
    // 2. the newcomer's presence to everyone else (a further device of a present nick changes nothing for them)
    if (newOccupant) this.broadcastPresence(room, occ, [], full);
    // 3. self-presence with 110 (and 201 for a new room)
    const codes = [110];
    if (room.config.whois === 'anyone') codes.push(100);
    if (room.config.archive && this.archive) codes.push(170);
    if (created) codes.push(201);
    this.out(this.presenceOf(room, occ, occ, full, codes));
    // 4. history, 5. subject (always, empty when none: clients take it as "join complete")
    const hist = mucX?.getChild('history', NS_MUC);
    const sinceText = hist?.attrs.since;
    const num = (s: string | undefined): number | undefined => (s === undefined || !/^\d+$/.test(s) ? undefined : Number(s));
    const entries = selectHistory(
      room.history,
      { maxStanzas: num(hist?.attrs.maxstanzas), maxChars: num(hist?.attrs.maxchars), seconds: num(hist?.attrs.seconds), since: sinceText === undefined ? undefined : parseDateTime(sinceText) },
      room.config.historyLength,
      Date.now(),
    );
    for (const h of entries) this.out(this.historyCopy(room, h, full));
    const subj = room.subject;
    this.out(
      x('message', NS.CLIENT, { type: 'groupchat', from: subj && subj.nick !== '' ? `${room.jid}/${subj.nick}` : room.jid, to: full, id: `subject-${Date.now()}` }, [
        x('subject', NS.CLIENT, {}, subj ? [subj.text] : []),
        subj ? x('delay', NS.DELAY, { from: room.jid, stamp: stampOf(subj.stamp) }) : undefined,
      ]),
    );
  }

  /** The client's presence without what the room adds itself. */
  private cleanPresence(stanza: Element): Element {
    const p = x('presence', NS.CLIENT);
    for (const c of stanza.children) if (typeof c !== 'string' && !OWN_PRESENCE_NS.has(c.xmlns)) p.append(c.clone());
    return p;
  }

  /** `occ`'s presence as `receiver` sees it, addressed to one session of the receiver. */
  private presenceOf(room: Room, occ: Occupant, receiver: Occupant, to: string, codes: number[], extra: Element[] = [], type?: string): Element {
    const base = type === 'unavailable' ? undefined : occ.sessions.get(occ.latest);
    const p = x('presence', NS.CLIENT, { from: `${room.jid}/${occ.nick}`, to, type });
    if (base) for (const c of base.children) p.append(typeof c === 'string' ? c : c.clone());
    const item = x('item', NS_MUC_USER, {
      affiliation: room.affiliationOf(occ.bare),
      role: type === 'unavailable' ? 'none' : occ.role,
      jid: showsRealJid(receiver, room.config.whois) ? occ.latest : undefined,
    });
    // §8.2/§9.1: <actor/> and <reason/> belong in the item; <destroy/> beside it.
    const inItem = (e: Element): boolean => e.name === 'actor' || e.name === 'reason';
    for (const e of extra) if (inItem(e)) item.append(e.clone());
    p.append(x('x', NS_MUC_USER, {}, [item, ...extra.filter((e) => !inItem(e)), ...codes.map(status)]));
    p.append(x('occupant-id', NS_OCCUPANT_ID, { id: occ.occupantId }));
    return p;
  }

  /** Send `occ`'s presence to every session of every occupant; `occ`'s own sessions get 110 added. */
  private broadcastPresence(room: Room, occ: Occupant, codes: number[], skip?: string, extra: Element[] = [], type?: string, itemExtra?: (item: Element) => void): void {
    for (const o of room.occupants.values()) {
      for (const s of o.sessions.keys()) {
        if (s === skip) continue;
        const p = this.presenceOf(room, occ, o, s, o === occ ? [110, ...codes] : codes, extra, type);
        if (itemExtra) itemExtra(p.getChild('x', NS_MUC_USER)?.getChild('item') as Element);
        this.out(p);
      }
    }
  }

  private presenceUpdate(room: Room, occ: Occupant, full: string, stanza: Element): void {
    occ.sessions.set(full, this.cleanPresence(stanza));
    occ.latest = full;
    this.broadcastPresence(room, occ, []);
  }

  private changeNick(room: Room, occ: Occupant, nick: string): void {
    const holder = room.occupants.get(nick);
    if (holder && holder !== occ) throw new StanzaError('conflict', 'That nickname is in use by another occupant');
    if (room.reservedByOther(nick, occ.bare)) throw new StanzaError('conflict', 'That nickname is reserved by another user');
    // §7.6: unavailable with 303 and the new nick, then available under the new nick.
    this.broadcastPresence(room, occ, [303], undefined, [], 'unavailable', (item) => item.setAttr('nick', nick));
    room.occupants.delete(occ.nick);
    occ.nick = nick;
    room.occupants.set(nick, occ);
    this.broadcastPresence(room, occ, []);
  }

  /** One device leaves; the occupant leaves when it was its last. */
  private leave(room: Room, occ: Occupant, full: string, statusText: string | undefined, codes: number[] = [], extra: Element[] = []): void {
    const last = occ.sessions.size <= 1;
    if (!last) {
      // Only the leaving device hears it; for everyone else the nick is still there.
      this.out(this.presenceOf(room, occ, occ, full, [110, ...codes], extra, 'unavailable'));
      occ.sessions.delete(full);
      if (occ.latest === full) occ.latest = occ.sessions.keys().next().value as string;
    } else {
      const st = statusText === undefined ? [] : [x('status', NS.CLIENT, {}, [statusText])];
      for (const o of room.occupants.values()) {
        for (const s of o.sessions.keys()) {
          const p = this.presenceOf(room, occ, o, s, o === occ ? [110, ...codes] : codes, extra, 'unavailable');
          for (const e of st) p.children.unshift(e.clone());
          this.out(p);
        }
      }
      room.occupants.delete(occ.nick);
      occ.sessions.clear();
    }
    room.bySession.delete(full);
    this.sessionRooms.get(full)?.delete(room.name);
    if (this.sessionRooms.get(full)?.size === 0) this.sessionRooms.delete(full);
    this.maybeDispose(room);
  }

  /** Remove every device of an occupant (kick, ban, removed membership, destroy). */
  private remove(room: Room, occ: Occupant, codes: number[], extra: Element[]): void {
    for (const full of [...occ.sessions.keys()]) {
      if (occ.sessions.size > 1) {
        this.out(this.presenceOf(room, occ, occ, full, [110, ...codes], extra, 'unavailable'));
        occ.sessions.delete(full);
        room.bySession.delete(full);
        this.sessionRooms.get(full)?.delete(room.name);
      } else {
        this.leave(room, occ, full, undefined, codes, extra);
      }
    }
  }

  /** A temporary room goes when its last occupant leaves; a locked one too (§10.1.3). */
  private maybeDispose(room: Room): void {
    if (room.occupants.size > 0 || room.destroyed) return;
    if (room.config.persistent && !room.locked) return;
    room.destroyed = true;
    this.rooms.delete(room.name);
    void this.store.remove(room.name).catch((err: unknown) => this.api.log.error({ err, room: room.jid }, 'could not remove room'));
  }

  /** A session ended without saying goodbye to its rooms (the roster module usually sends unavailable first). */
  sessionEnded(full: string): void {
    const names = this.sessionRooms.get(full);
    if (!names) return;
    for (const n of [...names]) {
      const room = this.rooms.get(n);
      const occ = room?.bySession.get(full);
      if (room && occ) this.leave(room, occ, full, undefined);
    }
    this.sessionRooms.delete(full);
  }

  private save(room: Room): void {
    if (room.destroyed || !room.config.persistent) return;
    void this.store.save(room.record()).catch((err: unknown) => this.api.log.error({ err, room: room.jid }, 'could not store room'));
  }

  // ---- messages ----------------------------------------------------------------------

  private onMessage(room: Room | undefined, stanza: Element, from: JID, to: JID, origin: Session | undefined): void | Promise<unknown> {
    const type = stanza.attrs.type ?? 'normal';
    if (type === 'error') return undefined;
    if (!room) throw new StanzaError('item-not-found', 'No such room');
    const occ = room.bySession.get(from.toString());
    if (to.resource !== '') {
      if (type === 'groupchat') throw new StanzaError('bad-request', 'Send groupchat messages to the room, not to an occupant');
      this.privateMessage(room, occ, stanza, to.resource);
      // The sender's side (its own archive under the computable id, its other devices' 'sent'
      // copies, <archive-failed/>) is the router's, as for every message to another domain.
      return undefined;
    }
    if (type === 'groupchat') return this.groupchat(room, occ, stanza);
    const ux = stanza.getChild('x', NS_MUC_USER);
    if (ux?.getChild('invite')) {
      this.invite(room, occ, from, ux);
      return undefined;
    }
    if (ux?.getChild('decline')) {
      this.decline(room, from, ux);
      return undefined;
    }
    const form = stanza.getChild('x', NS_DATA);
    if (isRequestForm(form)) {
      this.requestForm(room, occ, from, form);
      return undefined;
    }
    void origin;
    throw new StanzaError('bad-request', 'Messages to a room are of type groupchat (or invitations)');
  }

  private strip(el: Element, room: Room): void {
    // XEP-0359 §5 and XEP-0421 §4: only the room says which archive id and which occupant id a message has.
    el.removeChildren((c) => {
      if (c.name === 'occupant-id' && c.xmlns === NS_OCCUPANT_ID) return true;
      if (c.name !== 'stanza-id' || c.xmlns !== NS.SID) return false;
      const by = tryParseJID(c.attrs.by);
      return by === undefined || by.domain === this.domain || by.bare.toString() === room.jid;
    });
  }

  private groupchat(room: Room, occ: Occupant | undefined, stanza: Element): Promise<unknown> | undefined {
    if (!occ) throw new StanzaError('not-acceptable', 'You are not in this room');
    const actor = { affiliation: room.affiliationOf(occ.bare), role: occ.role };
    const subject = stanza.getChild('subject');
    if (subject && !stanza.getChild('body')) {
      fail(canSetSubject(actor, room.config));
      room.subject = { text: subject.text(), nick: occ.nick, stamp: Date.now() };
      this.save(room);
      const msg = x('message', NS.CLIENT, { type: 'groupchat', from: `${room.jid}/${occ.nick}`, id: stanza.attrs.id }, [x('subject', NS.CLIENT, {}, [room.subject.text])]);
      this.fanout(room, msg, undefined);
      return undefined;
    }
    fail(canSpeak(actor));
    const now = Date.now();
    const b = takeToken(occ.bucket, now, this.opts.messageRate, this.opts.messageBurst);
    occ.bucket = { tokens: b.tokens, at: b.at };
    if (!b.ok) throw new StanzaError('policy-violation', `Too many messages: at most ${this.opts.messageRate} per second`, 'wait');

    const msg = stanza.clone();
    delete msg.attrs.to;
    msg.attrs.from = `${room.jid}/${occ.nick}`;
    this.strip(msg, room);
    msg.append(x('occupant-id', NS_OCCUPANT_ID, { id: occ.occupantId }));
    const verdict = roomArchivable(msg);
    const body = msg.getChildText('body');
    if (!verdict.ok || !room.config.archive || !this.archive) {
      this.metrics.messages.inc({ archived: 'false' });
      if (verdict.ok) room.addHistory({ el: msg, id: undefined, at: now, chars: body?.length ?? 0 }, Math.min(room.config.historyLength, this.opts.historyMax));
      this.fanout(room, msg, undefined);
      return undefined;
    }
    const seq = this.clock.next();
    const id = archiveIdFor(seq);
    const entry: HistoryEntry = { el: msg, id: undefined, at: seqToMs(seq), chars: body?.length ?? 0 };
    const commit = this.archive.append({ username: room.jid, seq, id, with: room.jid, withResource: occ.nick, outgoing: false, stanza: serialize(msg, '') });
    const done = commit.then(
      () => {
        entry.id = id;
        this.metrics.messages.inc({ archived: 'true' });
        return true;
      },
      (err: unknown) => {
        this.api.log.error({ err: err instanceof Error ? err.message : String(err), room: room.jid, id }, 'room archive write failed');
        this.metrics.messages.inc({ archived: 'failed' });
        return false;
      },
    );
    room.addHistory(entry, Math.min(Math.max(room.config.historyLength, 1), this.opts.historyMax));
    room.tail = Promise.all([room.tail, done]).then(([, stored]) => this.deliverAll(room, msg, stored ? id : undefined));
    // Settles after the commit; a failed write still delivers (without an id), and the ack still comes.
    return done;
  }

  /** Messages that are not archived still keep the room's order. */
  private fanout(room: Room, msg: Element, id: string | undefined): void {
    room.tail = room.tail.then(() => this.deliverAll(room, msg, id));
  }

  private deliverAll(room: Room, msg: Element, id: string | undefined): void {
    const withId = id === undefined ? msg : msg.clone().append(x('stanza-id', NS.SID, { by: room.jid, id }));
    let n = 0;
    for (const o of room.occupants.values()) {
      for (const s of o.sessions.keys()) {
        const copy = new Element(withId.name, withId.xmlns, { ...withId.attrs, to: s }, [...withId.children]);
        try {
          this.out(copy);
          n++;
        } catch (err) {
          this.api.log.error({ err, room: room.jid }, 'room delivery failed');
        }
      }
    }
    this.metrics.copies.inc(undefined, n);
  }

  private historyCopy(room: Room, h: HistoryEntry, to: string): Element {
    const m = h.el.clone();
    m.attrs.to = to;
    if (h.id !== undefined) m.append(x('stanza-id', NS.SID, { by: room.jid, id: h.id }));
    m.append(x('delay', NS.DELAY, { from: room.jid, stamp: stampOf(h.at) }));
    return m;
  }

  private privateMessage(room: Room, occ: Occupant | undefined, stanza: Element, nick: string): void {
    if (!occ) throw new StanzaError('not-acceptable', 'You are not in this room');
    fail(canPrivateMessage({ affiliation: room.affiliationOf(occ.bare), role: occ.role }, room.config.allowPm));
    const target = room.occupants.get(nick);
    if (!target) throw new StanzaError('item-not-found', 'No such occupant');
    const msg = stanza.clone();
    msg.attrs.from = `${room.jid}/${occ.nick}`;
    this.strip(msg, room);
    if (!msg.getChild('x', NS_MUC_USER)) msg.append(x('x', NS_MUC_USER));
    msg.append(x('occupant-id', NS_OCCUPANT_ID, { id: occ.occupantId }));
    // One copy to the target's latest device: the recipient's server-side rules (archive, MR2,
    // carbons) fork it to the account's other devices, as XEP-0280 §6 lets private MUC messages be.
    msg.attrs.to = target.latest;
    this.out(msg);
  }

  /**
   * A muc#request form sent to the room: a visitor's voice request (§7.13),
   * forwarded as an approval form to every device of every moderator, or a
   * moderator's answer to one (§8.6), which grants voice when it allows it.
   */
  private requestForm(room: Room, occ: Occupant | undefined, from: JID, form: Element): void {
    if (form.attrs.type === 'cancel') return; // a moderator skipped the request (§8.6)
    if (form.attrs.type !== 'submit') throw new StanzaError('bad-request', 'Submit the muc#request form');
    const f = requestFields(form);
    const actor = { affiliation: room.affiliationOf(from.bare.toString()), role: occ?.role ?? ('none' as Role) };
    if (f.has('muc#request_allow')) {
      const nick = f.get('muc#roomnick');
      const jid = tryParseJID(f.get('muc#jid') ?? '');
      const target = nick ? room.occupants.get(nick) : jid ? room.occupantOf(jid.bare.toString()) : undefined;
      const d = decideVoiceApproval(actor, target && { affiliation: room.affiliationOf(target.bare), role: target.role }, formBool(f.get('muc#request_allow')));
      fail(d);
      if (d.reason === 'approved' && target) this.applyRole(room, target, 'participant', []);
      return;
    }
    const now = Date.now();
    const moderators = [...room.occupants.values()].filter((o) => o.role === 'moderator');
    fail(decideVoiceRequest(actor, f.get('muc#role'), occ?.voiceRequestedAt, now, this.opts.voiceRequestInterval * 1000, moderators.length));
    const visitor = occ as Occupant;
    visitor.voiceRequestedAt = now;
    let n = 0;
    for (const m of moderators) {
      for (const s of m.sessions.keys()) {
        this.toSession(s, x('message', NS.CLIENT, { from: room.jid, to: s, id: `voice-${now.toString(36)}-${++n}` }, [voiceRequestForm(visitor.latest, visitor.nick)]));
      }
    }
  }

  /**
   * To one joined device only: a local session directly (routed, a normal message would be
   * forked to the account's other devices and archived), a remote one through the router.
   */
  private toSession(full: string, el: Element): void {
    const to = tryParseJID(full);
    if (!to) return;
    if (to.domain === this.api.domain) this.toRequester(to, el);
    else this.out(el);
  }

  private invite(room: Room, occ: Occupant | undefined, from: JID, ux: Element): void {
    if (!occ) throw new StanzaError('not-acceptable', 'Only occupants invite');
    const actor = { affiliation: room.affiliationOf(occ.bare), role: occ.role };
    fail(canInvite(actor, room.config));
    for (const inv of ux.getChildren('invite', NS_MUC_USER)) {
      const to = tryParseJID(inv.attrs.to);
      if (!to) throw new StanzaError('jid-malformed', 'Invitation without a valid to');
      const bare = to.bare.toString();
      if (room.affiliationOf(bare) === 'outcast') throw new StanzaError('forbidden', `${bare} is banned from this room`);
      // §7.8.2: in a members-only room the invitee becomes a member.
      if (room.config.membersOnly && room.affiliationOf(bare) === 'none') {
        room.setAffiliation(bare, 'member');
        this.save(room);
      }
      const reason = inv.getChildText('reason');
      this.out(
        x('message', NS.CLIENT, { from: room.jid, to: to.toString(), id: `inv-${Date.now()}` }, [
          x('x', NS_MUC_USER, {}, [
            x('invite', NS_MUC_USER, { from: from.bare.toString() }, reason === undefined ? [] : [x('reason', NS_MUC_USER, {}, [reason])]),
            room.config.password === '' ? undefined : x('password', NS_MUC_USER, {}, [room.config.password]),
          ]),
          x('body', NS.CLIENT, {}, [`${from.bare.toString()} invites you to the room ${room.jid}${reason ? `: ${reason}` : ''}`]),
        ]),
      );
    }
  }

  private decline(room: Room, from: JID, ux: Element): void {
    const dec = ux.getChild('decline', NS_MUC_USER) as Element;
    const to = tryParseJID(dec.attrs.to);
    if (!to) throw new StanzaError('jid-malformed', 'Decline without a valid to');
    const reason = dec.getChildText('reason');
    this.out(
      x('message', NS.CLIENT, { from: room.jid, to: to.toString(), id: `dec-${Date.now()}` }, [
        x('x', NS_MUC_USER, {}, [x('decline', NS_MUC_USER, { from: from.bare.toString() }, reason === undefined ? [] : [x('reason', NS_MUC_USER, {}, [reason])])]),
      ]),
    );
  }

  // ---- IQs -----------------------------------------------------------------------------

  private onIq(room: Room | undefined, stanza: Element, from: JID, to: JID, origin: Session | undefined): void {
    const type = stanza.attrs.type;
    if (type !== 'get' && type !== 'set') return; // replies: the room asks nothing
    const payload = stanza.elements()[0];
    if (!payload) throw new StanzaError('bad-request');
    const reply = (p: Element | undefined): void => {
      this.out(x('iq', NS.CLIENT, { type: 'result', id: stanza.attrs.id, from: to.toString(), to: from.toString() }, p ? [p] : []));
    };
    const run = async (): Promise<Element | undefined> => {
      if (to.resource !== '') return this.iqToOccupant(room, payload, from, to);
      if (!room) throw new StanzaError('item-not-found', 'No such room');
      const key = `${type}:${payload.xmlns}`;
      switch (key) {
        case `get:${NS.DISCO_INFO}`:
          if (payload.attrs.node === NODE_ROOMUSER) return this.reservedNick(room, from);
          return this.roomInfo(room);
        case `get:${NS_REGISTER}`:
          return this.registerGet(room, from);
        case `set:${NS_REGISTER}`:
          return this.registerSet(room, payload, from);
        case `get:${NS.DISCO_ITEMS}`:
          return x('query', NS.DISCO_ITEMS);
        case `get:${NS.PING}`:
          return undefined;
        case `get:${NS_MUC_OWNER}`:
          return this.ownerGet(room, from);
        case `set:${NS_MUC_OWNER}`:
          return this.ownerSet(room, payload, from);
        case `get:${NS_MUC_ADMIN}`:
          return this.adminGet(room, payload, from);
        case `set:${NS_MUC_ADMIN}`:
          return this.adminSet(room, payload, from);
        case `set:${NS.MAM}`:
        case `get:${NS.MAM}`:
          return this.mam(room, stanza, payload, from, type);
        default:
          throw new StanzaError('service-unavailable');
      }
    };
    run().then(reply, (err: unknown) => {
      if (!(err instanceof StanzaError)) this.api.log.error({ err, room: room?.jid }, 'room IQ failed');
      this.refuse(stanza, err instanceof StanzaError ? err : new StanzaError('internal-server-error'), origin);
    });
  }

  /** XEP-0410: a ping to one's own occupant JID says whether one is still joined. */
  private async iqToOccupant(room: Room | undefined, payload: Element, from: JID, to: JID): Promise<Element | undefined> {
    const occ = room?.bySession.get(from.toString());
    if (!room || !occ) throw new StanzaError('not-acceptable', 'You are not joined to this room with this resource');
    if (occ.nick === to.resource && (payload.is('ping', NS.PING) || payload.is('query', NS.DISCO_INFO))) {
      return payload.is('ping', NS.PING) ? undefined : x('query', NS.DISCO_INFO, {}, [x('identity', NS.DISCO_INFO, { category: 'client', type: 'pc' })]);
    }
    if (!room.occupants.has(to.resource)) throw new StanzaError('item-not-found', 'No such occupant');
    // IQs between occupants are not relayed (the room would have to track every id).
    throw new StanzaError('feature-not-implemented', 'IQs to other occupants are not relayed');
  }

  /** §7.12: the asking account's reserved nick as an identity name, or no identity when it has none. */
  private reservedNick(room: Room, from: JID): Element {
    const nick = room.affiliations.get(from.bare.toString())?.nick;
    return x('query', NS.DISCO_INFO, { node: NODE_ROOMUSER }, nick === undefined ? [] : [x('identity', NS.DISCO_INFO, { category: 'conference', type: 'text', name: nick })]);
  }

  /** §7.10: the registration form, or the registered nick when there is one (XEP-0077 <registered/>). */
  private registerGet(room: Room, from: JID): Element {
    const bare = from.bare.toString();
    const aff = room.affiliationOf(bare);
    const nick = room.affiliations.get(bare)?.nick;
    if (nick !== undefined) return x('query', NS_REGISTER, {}, [x('registered', NS_REGISTER), x('username', NS_REGISTER, {}, [nick])]);
    fail(decideRegistration(aff, room.config, 'probe', false));
    return x('query', NS_REGISTER, {}, [x('instructions', NS_REGISTER, {}, ['Submit the form to reserve a nickname.']), registerForm(room.config.name || room.name)]);
  }

  /**
   * §7.10: register (reserve) a nick, which makes a stranger a member; XEP-0077 <remove/>
   * gives the nick up (and the membership it brought, for plain members).
   */
  private registerSet(room: Room, payload: Element, from: JID): undefined {
    const bare = from.bare.toString();
    const aff = room.affiliationOf(bare);
    if (payload.getChild('remove', NS_REGISTER)) {
      const rec = room.affiliations.get(bare);
      if (!rec?.nick) throw new StanzaError('item-not-found', 'You have no nickname registered here');
      if (rec.affiliation === 'member') this.applyAffiliation(room, bare, 'none', undefined, []);
      else room.affiliations.set(bare, { ...rec, nick: undefined });
      this.save(room);
      return undefined;
    }
    const form = payload.getChild('x', NS_DATA);
    if (form?.attrs.type === 'cancel') return undefined;
    if (!form || form.attrs.type !== 'submit') throw new StanzaError('bad-request', 'Submit the muc#register form');
    const fields = requestFields(form);
    if (fields.has('FORM_TYPE') && fields.get('FORM_TYPE') !== NS_REGISTER_FORM) throw new StanzaError('bad-request', `FORM_TYPE must be ${NS_REGISTER_FORM}`);
    const nick = fields.get('muc#register_roomnick');
    const holder = nick === undefined ? undefined : room.occupants.get(nick);
    const taken = nick !== undefined && (room.reservedByOther(nick, bare) || (holder !== undefined && holder.bare !== bare));
    fail(decideRegistration(aff, room.config, nick, taken));
    if (aff === 'none') this.applyAffiliation(room, bare, 'member', undefined, []);
    const rec = room.affiliations.get(bare);
    if (rec) room.affiliations.set(bare, { ...rec, nick });
    this.save(room);
    return undefined;
  }

  private roomInfo(room: Room): Element {
    const c = room.config;
    const features = [
      NS_MUC,
      NS.DISCO_INFO,
      NS.DISCO_ITEMS,
      NS_STABLE_ID,
      NS_OCCUPANT_ID,
      NS_SELF_PING,
      NS.SID,
      NS_REQUEST,
      NS_REGISTER,
      c.persistent ? 'muc_persistent' : 'muc_temporary',
      c.public ? 'muc_public' : 'muc_hidden',
      c.membersOnly ? 'muc_membersonly' : 'muc_open',
      c.moderated ? 'muc_moderated' : 'muc_unmoderated',
      c.password !== '' ? 'muc_passwordprotected' : 'muc_unsecured',
      c.whois === 'anyone' ? 'muc_nonanonymous' : 'muc_semianonymous',
    ];
    if (c.archive && this.archive) features.push(NS.MAM, NS.MAM_EXTENDED);
    return x('query', NS.DISCO_INFO, {}, [
      x('identity', NS.DISCO_INFO, { category: 'conference', type: 'text', name: c.name || room.name }),
      ...features.sort().map((f) => x('feature', NS.DISCO_INFO, { var: f })),
      roomInfoForm(c, room.occupants.size, room.subject?.text ?? ''),
    ]);
  }

  private requireAffiliation(room: Room, from: JID, min: 'owner' | 'admin'): Affiliation {
    const a = room.affiliationOf(from.bare.toString());
    if (a === 'owner' || (min === 'admin' && a === 'admin')) return a;
    throw new StanzaError('forbidden', min === 'owner' ? 'Only owners do this' : 'Only admins and owners do this');
  }

  private ownerGet(room: Room, from: JID): Element {
    this.requireAffiliation(room, from, 'owner');
    return x('query', NS_MUC_OWNER, {}, [configForm(room.config, this.opts.maxOccupantsPerRoom, this.opts.historyMax)]);
  }

  private async ownerSet(room: Room, payload: Element, from: JID): Promise<undefined> {
    this.requireAffiliation(room, from, 'owner');
    const destroy = payload.getChild('destroy', NS_MUC_OWNER);
    if (destroy) {
      await this.destroy(room, destroy);
      return undefined;
    }
    const form = payload.getChild('x', NS_DATA);
    if (!form) throw new StanzaError('bad-request', 'Send a configuration form or <destroy/>');
    if (form.attrs.type === 'cancel') {
      // §10.1.3: cancelling the configuration of a new room destroys it.
      if (room.locked) await this.destroy(room, undefined);
      return undefined;
    }
    const before = room.config;
    const next = applyConfigForm(before, form, this.opts.maxOccupantsPerRoom, this.opts.historyMax);
    room.config = next;
    const wasLocked = room.locked;
    room.locked = false;
    if (before.persistent && !next.persistent) {
      await this.store.remove(room.name);
      this.maybeDispose(room);
    } else {
      this.save(room);
    }
    if (!wasLocked) {
      // §10.2.1: occupants hear that the configuration changed (and how, where it concerns privacy).
      const codes = [104];
      if (before.archive !== next.archive) codes.push(next.archive ? 170 : 171);
      if (before.whois !== next.whois) codes.push(next.whois === 'anyone' ? 172 : 173);
      this.fanout(room, x('message', NS.CLIENT, { type: 'groupchat', from: room.jid, id: `cfg-${Date.now()}` }, [x('x', NS_MUC_USER, {}, codes.map(status))]), undefined);
    }
    if (next.membersOnly && !before.membersOnly) {
      // §9.3/§10.2: becoming members-only removes those who are not members (322).
      for (const o of [...room.occupants.values()]) {
        if (room.affiliationOf(o.bare) === 'none') this.remove(room, o, [322], []);
      }
    }
    // Making a room moderated changes the role of those who enter from now on; present
    // participants keep their voice until a moderator revokes it (§8.4).
    return undefined;
  }

  private async destroy(room: Room, destroy: Element | undefined): Promise<void> {
    const extra = destroy ? [x('destroy', NS_MUC_USER, { jid: destroy.attrs.jid }, destroy.getChild('reason') ? [x('reason', NS_MUC_USER, {}, [destroy.getChildText('reason') ?? ''])] : [])] : [];
    room.destroyed = true;
    for (const o of [...room.occupants.values()]) {
      for (const full of o.sessions.keys()) {
        const p = this.presenceOf(room, o, o, full, [110], extra, 'unavailable');
        this.out(p);
        room.bySession.delete(full);
        this.sessionRooms.get(full)?.delete(room.name);
      }
    }
    room.occupants.clear();
    this.rooms.delete(room.name);
    await this.store.remove(room.name);
    // The archive goes with the room: a new room of the same name starts empty. Its rows are
    // under the room's JID in the archive's owner column, which deleteUserData clears.
    if (this.archive) {
      await this.archive.flush();
      await this.api.storage.deleteUserData(room.jid);
    }
  }

  private adminGet(room: Room, payload: Element, from: JID): Element {
    const item = payload.getChild('item', NS_MUC_ADMIN);
    const aff = item?.attrs.affiliation;
    const role = item?.attrs.role;
    if (isAffiliation(aff) && aff !== 'none') {
      this.requireAffiliation(room, from, 'admin');
      const items = [...room.affiliations.values()]
        .filter((a) => a.affiliation === aff)
        .map((a) => x('item', NS_MUC_ADMIN, { affiliation: a.affiliation, jid: a.jid, nick: a.nick }, a.reason ? [x('reason', NS_MUC_ADMIN, {}, [a.reason])] : []));
      return x('query', NS_MUC_ADMIN, {}, items);
    }
    if (isRole(role) && role !== 'none') {
      const me = room.bySession.get(from.toString());
      if (!me || me.role !== 'moderator') throw new StanzaError('forbidden', 'Only moderators list roles');
      const items = [...room.occupants.values()]
        .filter((o) => o.role === role)
        .map((o) => x('item', NS_MUC_ADMIN, { role: o.role, affiliation: room.affiliationOf(o.bare), nick: o.nick, jid: showsRealJid(me, room.config.whois) ? o.latest : undefined }));
      return x('query', NS_MUC_ADMIN, {}, items);
    }
    throw new StanzaError('bad-request', 'Ask for an affiliation or a role');
  }

  private async adminSet(room: Room, payload: Element, from: JID): Promise<undefined> {
    const bare = from.bare.toString();
    const me = room.bySession.get(from.toString()) ?? room.occupantOf(bare);
    const actor = { affiliation: room.affiliationOf(bare), role: me?.role ?? ('none' as Role) };
    const items = payload.getChildren('item', NS_MUC_ADMIN);
    if (items.length === 0) throw new StanzaError('bad-request', 'No item');
    // Check every item before changing anything: a list is applied whole or not at all.
    const plan: Array<() => void> = [];
    let owners = room.owners().length;
    for (const item of items) {
      const reason = item.getChildText('reason', NS_MUC_ADMIN);
      const actorEl = x('actor', NS_MUC_USER, { nick: me?.nick });
      const reasonEl = reason === undefined ? undefined : x('reason', NS_MUC_USER, {}, [reason]);
      const aff = item.attrs.affiliation;
      const role = item.attrs.role;
      if (aff !== undefined) {
        if (!isAffiliation(aff)) throw new StanzaError('bad-request', `Unknown affiliation ${aff}`);
        let target: string | undefined;
        if (item.attrs.jid !== undefined) target = tryParseJID(item.attrs.jid)?.bare.toString();
        else if (item.attrs.nick !== undefined) target = room.occupants.get(item.attrs.nick)?.bare;
        if (target === undefined) throw new StanzaError(item.attrs.jid !== undefined ? 'jid-malformed' : 'item-not-found', 'No such user');
        const current = room.affiliationOf(target);
        fail(canChangeAffiliation(actor.affiliation, current, aff));
        if (current === 'owner' && aff !== 'owner' && --owners < 1) throw new StanzaError('conflict', 'A room keeps at least one owner');
        if (aff === 'owner' && current !== 'owner') owners++;
        const t = target;
        plan.push(() => this.applyAffiliation(room, t, aff, reason, [actorEl, ...(reasonEl ? [reasonEl] : [])]));
      } else if (role !== undefined) {
        if (!isRole(role)) throw new StanzaError('bad-request', `Unknown role ${role}`);
        const nick = item.attrs.nick;
        const occ = nick === undefined ? undefined : room.occupants.get(nick);
        if (!occ) throw new StanzaError('item-not-found', 'No such occupant');
        fail(canChangeRole(actor, { affiliation: room.affiliationOf(occ.bare), role: occ.role }, role, occ === me));
        plan.push(() => this.applyRole(room, occ, role, [actorEl, ...(reasonEl ? [reasonEl] : [])]));
      } else {
        throw new StanzaError('bad-request', 'An item changes an affiliation or a role');
      }
    }
    for (const p of plan) p();
    this.save(room);
    return undefined;
  }

  private applyRole(room: Room, occ: Occupant, role: Role, extra: Element[]): void {
    if (!room.occupants.has(occ.nick)) return;
    if (role === 'none') {
      this.remove(room, occ, [307], extra);
      return;
    }
    occ.role = role;
    this.broadcastPresence(room, occ, [], undefined, extra.filter((e) => e.name === 'reason'));
  }

  private applyAffiliation(room: Room, bare: string, aff: Affiliation, reason: string | undefined, extra: Element[]): void {
    room.setAffiliation(bare, aff, reason);
    const occ = room.occupantOf(bare);
    if (!occ) return;
    if (aff === 'outcast') {
      this.remove(room, occ, [301], extra);
      return;
    }
    if (aff === 'none' && room.config.membersOnly) {
      this.remove(room, occ, [321], extra);
      return;
    }
    const r = defaultRole(aff, room.config);
    // A participant given voice by a moderator keeps it when its affiliation changes only if that raises it.
    occ.role = aff === 'none' && occ.role === 'participant' ? occ.role : r;
    this.broadcastPresence(room, occ, [], undefined, []);
  }

  /**
   * Query results go to the asking device only: routed like a message they would be forked
   * (MR2, carbons) to the account's other devices, which did not ask.
   */
  private toRequester(to: JID, el: Element): void {
    const s = this.api.router.hosts.has(to.domain) ? this.api.sessions.byFullJid(this.api.router.hosts.keyOf(to), to.resource) : undefined;
    if (s && !s.closed) this.api.router.sendToSession(s, el);
  }

  private async mam(room: Room, stanza: Element, payload: Element, from: JID, type: 'get' | 'set'): Promise<Element | undefined> {
    const occ = room.bySession.get(from.toString());
    fail(canReadArchive(room.affiliationOf(from.bare.toString()), occ !== undefined, { ...room.config, archive: room.config.archive && this.archive !== undefined }));
    const store = this.archive as ArchiveStore;
    if (type === 'get') {
      if (payload.name === 'query') return queryForm();
      if (payload.name === 'metadata') {
        await store.flush();
        const b = await store.bounds(room.jid);
        if (!b) return x('metadata', NS.MAM);
        return x('metadata', NS.MAM, {}, [
          x('start', NS.MAM, { id: b.first.id, timestamp: stampOf(seqToMs(b.first.seq)) }),
          x('end', NS.MAM, { id: b.last.id, timestamp: stampOf(seqToMs(b.last.seq)) }),
        ]);
      }
      throw new StanzaError('feature-not-implemented');
    }
    if (payload.name !== 'query') throw new StanzaError('feature-not-implemented');
    const plan = parseQuery(payload, room.jid, this.mamLimits);
    await store.flush();
    const outcome = await runQuery(store, plan);
    const items = plan.flip ? outcome.items.slice().reverse() : outcome.items;
    let n = 0;
    for (const rec of items) {
      let inner: Element;
      try {
        inner = parseXml(rec.stanza);
      } catch {
        continue;
      }
      this.toRequester(
        from,
        x('message', NS.CLIENT, { from: room.jid, to: from.toString(), id: `${stanza.attrs.id ?? 'mam'}-${++n}` }, [
          x('result', NS.MAM, { queryid: plan.queryId, id: rec.id }, [x('forwarded', NS.FORWARD, {}, [x('delay', NS.DELAY, { stamp: stampOf(seqToMs(rec.seq)) }), inner])]),
        ]),
      );
    }
    return finElement(outcome);
  }
}

export type { JID };
export { ArchiveClock };
