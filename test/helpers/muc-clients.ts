/**
 * Helpers for the MUC integration tests on the raw XML client: join a room
 * (collecting what XEP-0045 §7.2 sends a newcomer), configure it, read the
 * status codes, room stanza-ids and occupant ids of what arrives.
 */
import type { Element } from '@xmpp/xml';
import { nextId, sendIq, stanzaErrorOf, type RawConnection } from './client.js';

export const MUC_DOMAIN = 'conference.localhost';
export const NS_MUC = 'http://jabber.org/protocol/muc';
export const NS_MUC_USER = 'http://jabber.org/protocol/muc#user';
export const NS_MUC_ADMIN = 'http://jabber.org/protocol/muc#admin';
export const NS_MUC_OWNER = 'http://jabber.org/protocol/muc#owner';
export const NS_OCCUPANT_ID = 'urn:xmpp:occupant-id:0';
export const NS_SID = 'urn:xmpp:sid:0';
export const NS_MAM = 'urn:xmpp:mam:2';

export type Conn = RawConnection & { jid: string };

export interface Joined {
  self: Element;
  /** Other occupants' presence, in arrival order. */
  others: Element[];
  /** History messages (with <delay/>), oldest first. */
  history: Element[];
  subject: Element;
}

export function statusCodes(el: Element): number[] {
  return (el.getChild('x', NS_MUC_USER)?.getChildren('status') ?? []).map((s) => Number(s.attrs.code));
}

export function itemOf(el: Element): Element | undefined {
  return el.getChild('x', NS_MUC_USER)?.getChild('item');
}

/** The room's <stanza-id/> on a groupchat copy. */
export function roomStanzaId(el: Element, room: string): string | undefined {
  return el.getChildren('stanza-id', NS_SID).find((s) => s.attrs.by === room)?.attrs.id;
}

export function occupantId(el: Element): string | undefined {
  return el.getChild('occupant-id', NS_OCCUPANT_ID)?.attrs.id;
}

export function fromRoom(room: string): (el: Element) => boolean {
  return (el) => typeof el.attrs.from === 'string' && (el.attrs.from === room || el.attrs.from.startsWith(`${room}/`));
}

/** Remove and return every already received element matching `pred`. */
export function drain(c: RawConnection, pred: (el: Element) => boolean): Element[] {
  const out: Element[] = [];
  for (let i = 0; i < c.received.length; ) {
    const el = c.received[i] as Element;
    if (pred(el)) {
      out.push(el);
      c.received.splice(i, 1);
    } else i++;
  }
  return out;
}

export class JoinError extends Error {
  constructor(readonly condition: string | undefined, readonly presence: Element) {
    super(`join failed: ${condition ?? presence.toString()}`);
  }
}

/** Join `room` as `nick`; resolves with what the room sent, rejects with JoinError on an error presence. */
export async function joinRaw(c: Conn, room: string, nick: string, opts: { password?: string; history?: string; timeoutMs?: number } = {}): Promise<Joined> {
  const occ = `${room}/${nick}`;
  // Presence from this occupant JID still unread (an earlier role change) is not the answer to this join.
  drain(c, (el) => el.name === 'presence' && el.attrs.from === occ);
  const inner = `${opts.password !== undefined ? `<password>${opts.password}</password>` : ''}${opts.history ?? ''}`;
  c.send(`<presence to='${occ}'><x xmlns='${NS_MUC}'>${inner}</x></presence>`);
  const t = opts.timeoutMs ?? 10000;
  const self = await c.next((el) => el.name === 'presence' && el.attrs.from === occ && (el.attrs.type === 'error' || statusCodes(el).includes(110)), t);
  if (self.attrs.type === 'error') throw new JoinError(stanzaErrorOf(self), self);
  const subject = await c.next((el) => el.name === 'message' && fromRoom(room)(el) && el.getChild('subject') !== undefined && !el.getChild('body'), t);
  const others = drain(c, (el) => el.name === 'presence' && fromRoom(room)(el) && el.attrs.from !== occ && el.attrs.type === undefined);
  const history = drain(c, (el) => el.name === 'message' && fromRoom(room)(el) && el.getChild('delay', 'urn:xmpp:delay') !== undefined);
  return { self, others, history, subject };
}

/** Create `room` with `nick` and accept the default configuration (XEP-0045 §10.1.2 instant room). */
export async function createRoom(c: Conn, room: string, nick: string, config: Record<string, string> = {}): Promise<Joined> {
  const j = await joinRaw(c, room, nick);
  if (!statusCodes(j.self).includes(201)) throw new Error(`room ${room} already existed`);
  await configure(c, room, config);
  return j;
}

export async function configure(c: Conn, room: string, config: Record<string, string>): Promise<Element> {
  const fields = Object.entries(config)
    .map(([k, v]) => `<field var='${k}'><value>${v}</value></field>`)
    .join('');
  const form = `<x xmlns='jabber:x:data' type='submit'>${fields ? `<field var='FORM_TYPE'><value>http://jabber.org/protocol/muc#roomconfig</value></field>${fields}` : ''}</x>`;
  const r = await sendIq(c, `<query xmlns='${NS_MUC_OWNER}'>${form}</query>`, `type='set' to='${room}'`);
  if (r.attrs.type !== 'result') throw new Error(`configuration refused: ${r.toString()}`);
  return r;
}

export async function admin(c: Conn, room: string, item: string): Promise<Element> {
  return sendIq(c, `<query xmlns='${NS_MUC_ADMIN}'>${item}</query>`, `type='set' to='${room}'`);
}

/** Send a groupchat message and return its id. */
export function say(c: Conn, room: string, body: string): string {
  const id = nextId();
  c.send(`<message to='${room}' type='groupchat' id='${id}'><body>${body}</body></message>`);
  return id;
}

export function groupchatWithBody(c: RawConnection, room: string, body: string, timeoutMs = 10000): Promise<Element> {
  return c.next((el) => el.name === 'message' && el.attrs.type === 'groupchat' && fromRoom(room)(el) && el.getChildText('body') === body && !el.getChild('delay', 'urn:xmpp:delay'), timeoutMs);
}

export interface RoomMamItem {
  id: string;
  body: string | undefined;
  from: string | undefined;
}

/** One MAM query on the room's archive; fields as in XEP-0313, rsm as an XML fragment. */
export async function roomMam(c: Conn, room: string, opts: { afterId?: string; rsm?: string } = {}): Promise<{ items: RoomMamItem[]; complete: boolean; iq: Element }> {
  const qid = nextId();
  const form = opts.afterId
    ? `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS_MAM}</value></field><field var='after-id'><value>${opts.afterId}</value></field></x>`
    : '';
  const iq = await sendIq(c, `<query xmlns='${NS_MAM}' queryid='${qid}'>${form}${opts.rsm ? `<set xmlns='http://jabber.org/protocol/rsm'>${opts.rsm}</set>` : ''}</query>`, `type='set' to='${room}'`);
  if (iq.attrs.type !== 'result') {
    const err = new Error(`room MAM query failed: ${stanzaErrorOf(iq) ?? iq.toString()}`) as Error & { condition?: string };
    err.condition = stanzaErrorOf(iq);
    throw err;
  }
  const items = drain(c, (el) => el.name === 'message' && el.getChild('result', NS_MAM)?.attrs.queryid === qid).map((el) => {
    const res = el.getChild('result', NS_MAM) as Element;
    const msg = res.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message');
    return { id: String(res.attrs.id), body: msg?.getChildText('body') ?? undefined, from: msg?.attrs.from };
  });
  return { items, complete: iq.getChild('fin', NS_MAM)?.attrs.complete === 'true', iq };
}
