/**
 * Helpers for the MR2 / carbons / MAM / offline integration tests: clients of
 * the three kinds (MR2 stream, legacy with carbons, plain legacy) on the raw
 * XML test client, and small readers for copies, stanza-ids and MAM pages.
 */
import type { Element } from '@xmpp/xml';
import { connectClient, nextId, type TestClient } from '../helpers/client.js';

export type Kind = 'mr2' | 'carbons' | 'plain';

export interface Dev extends TestClient {
  kind: Kind;
  user: string;
  /** The id of the server's stream header on the current stream (the archive id prefix for MR2). */
  streamId: string;
}

export const NS_MR2 = 'urn:xmpp:mr2:0';
export const NS_CARBONS = 'urn:xmpp:carbons:2';
export const NS_FORWARD = 'urn:xmpp:forward:0';
export const NS_SID = 'urn:xmpp:sid:0';
export const NS_MAM = 'urn:xmpp:mam:2';

export interface DevOptions {
  port: number;
  user: string;
  password: string;
  resource: string;
  kind: Kind;
  priority?: number;
  /** Send initial presence (default true). */
  presence?: boolean;
  /** The server's domain (default localhost). */
  domain?: string;
  /** Address to connect to (default 127.0.0.1; cluster tests give each node its own). */
  host?: string;
}

export async function device(o: DevOptions): Promise<Dev> {
  const c = (await connectClient({
    port: o.port,
    host: o.host,
    user: o.user,
    password: o.password,
    resource: o.resource,
    domain: o.domain,
    preBind:
      o.kind === 'mr2'
        ? async (raw) => {
            raw.send(`<enable xmlns='${NS_MR2}'/>`);
            const r = await raw.next((el) => el.attrs.xmlns === NS_MR2);
            if (r.name !== 'enabled') throw new Error(`MR2 enable failed: ${r.toString()}`);
          }
        : undefined,
  })) as Dev;
  c.kind = o.kind;
  c.user = o.user;
  c.streamId = String(c.header?.attrs.id);
  if (o.kind === 'carbons') {
    const id = nextId();
    c.send(`<iq type='set' id='${id}'><enable xmlns='${NS_CARBONS}'/></iq>`);
    const r = await c.next((el) => el.name === 'iq' && el.attrs.id === id);
    if (r.attrs.type !== 'result') throw new Error(`carbons enable failed: ${r.toString()}`);
  }
  if (o.presence !== false) {
    c.send(o.priority ? `<presence><priority>${o.priority}</priority></presence>` : '<presence/>');
    // Our own presence comes back once the server has processed it (RFC 6121 §4.2.2).
    await c.next((el) => el.name === 'presence' && el.attrs.from === c.jid);
  }
  return c;
}

/** Is this a message (plain or carbon) whose inner message has `body`? */
export function bodyOf(el: Element): string | undefined {
  if (el.name !== 'message') return undefined;
  const inner = innerMessage(el);
  return inner.getChildText('body') ?? undefined;
}

/** The shape of a received copy: 'plain', 'sent', 'received', or 'other'. */
export function shapeOf(el: Element): 'plain' | 'sent' | 'received' | 'other' {
  if (el.name !== 'message') return 'other';
  if (el.getChild('sent', NS_CARBONS)) return 'sent';
  if (el.getChild('received', NS_CARBONS)) return 'received';
  return 'plain';
}

export function innerMessage(el: Element): Element {
  const w = el.getChild('sent', NS_CARBONS) ?? el.getChild('received', NS_CARBONS);
  const inner = w?.getChild('forwarded', NS_FORWARD)?.getChild('message');
  return inner ?? el;
}

/** The <stanza-id/> of a copy (inside the carbon for carbons), as by/id. */
export function stanzaId(el: Element): { by: string; id: string } | undefined {
  const sid = innerMessage(el).getChild('stanza-id', NS_SID);
  return sid ? { by: String(sid.attrs.by), id: String(sid.attrs.id) } : undefined;
}

/** Waits for the copy of the message with this body (any shape). */
export function copyWithBody(c: Dev, body: string, timeoutMs = 3000): Promise<Element> {
  return c.next((el) => el.name === 'message' && bodyOf(el) === body, timeoutMs);
}

export interface MamItem {
  id: string;
  body: string | undefined;
  message: Element;
  stamp: string | undefined;
}

export interface MamPage {
  items: MamItem[];
  fin: Element;
  complete: boolean;
  first: string | undefined;
  last: string | undefined;
  count: string | undefined;
}

/** One MAM query on the raw client: form fields and RSM as XML fragments. */
export async function mamQuery(c: Dev, opts: { fields?: Record<string, string | string[]>; rsm?: string; flip?: boolean; timeoutMs?: number } = {}): Promise<MamPage> {
  const qid = nextId();
  const iqId = nextId();
  const fields = Object.entries(opts.fields ?? {})
    .map(([k, v]) => `<field var='${k}'>${(Array.isArray(v) ? v : [v]).map((x) => `<value>${x}</value>`).join('')}</field>`)
    .join('');
  const form = fields ? `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS_MAM}</value></field>${fields}</x>` : '';
  c.send(`<iq type='set' id='${iqId}'><query xmlns='${NS_MAM}' queryid='${qid}'>${form}${opts.rsm ? `<set xmlns='http://jabber.org/protocol/rsm'>${opts.rsm}</set>` : ''}${opts.flip ? '<flip-page/>' : ''}</query></iq>`);
  const iq = await c.next((el) => el.name === 'iq' && el.attrs.id === iqId, opts.timeoutMs ?? 10000);
  if (iq.attrs.type !== 'result') {
    const cond = iq.getChild('error')?.children.find((ch) => typeof ch !== 'string' && (ch as Element).attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas') as Element | undefined;
    const err = new Error(`MAM query failed: ${cond?.name ?? iq.toString()}`) as Error & { condition?: string };
    err.condition = cond?.name;
    throw err;
  }
  // Every result arrived before the IQ result (the server sends them first, on the same stream).
  const items: MamItem[] = [];
  for (;;) {
    const i = c.received.findIndex((el) => el.name === 'message' && el.getChild('result', NS_MAM)?.attrs.queryid === qid);
    if (i < 0) break;
    const el = c.received.splice(i, 1)[0] as Element;
    const res = el.getChild('result', NS_MAM) as Element;
    const fwd = res.getChild('forwarded', NS_FORWARD);
    const msg = fwd?.getChild('message') as Element;
    items.push({ id: String(res.attrs.id), body: msg?.getChildText('body') ?? undefined, message: msg, stamp: fwd?.getChild('delay')?.attrs.stamp as string | undefined });
  }
  const fin = iq.getChild('fin', NS_MAM) as Element;
  const set = fin.getChild('set');
  return {
    items,
    fin,
    complete: fin.attrs.complete === 'true',
    first: set?.getChildText('first') ?? undefined,
    last: set?.getChildText('last') ?? undefined,
    count: set?.getChildText('count') ?? undefined,
  };
}

/** Resolves when none of `clients` receives a message matching `pred` within `ms`. */
export async function nobodyGets(clients: Dev[], pred: (el: Element) => boolean, ms = 300): Promise<void> {
  await Promise.all(clients.map((c) => c.nothing((el) => el.name === 'message' && pred(el), ms)));
}

export function stanzaErrorCondition(el: Element): string | undefined {
  const err = el.getChild('error');
  const cond = err?.children.find((ch) => typeof ch !== 'string' && (ch as Element).attrs.xmlns === 'urn:ietf:params:xml:ns:xmpp-stanzas') as Element | undefined;
  return cond?.name;
}
