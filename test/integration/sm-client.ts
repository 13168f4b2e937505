/**
 * A raw XEP-0198 client for the stream management, CSI and crash tests: it
 * counts what it receives (its `h`), answers the server's <r/> (unless told
 * not to), keeps its own unacked outbound queue, and can resume. Parsing is
 * xmpp.js's (ltx), independent of Verona's parser.
 */
import net from 'node:net';
import { Parser, type Element } from '@xmpp/xml';

export const SM = 'urn:xmpp:sm:3';
type Pred = (el: Element) => boolean;

export interface SmConnectOptions {
  port: number;
  user: string;
  password: string;
  resource?: string;
  /** Enable urn:xmpp:mr2:0 before binding. */
  mr2?: boolean;
  /** 'resume' (default), 'plain' (no resumption) or false (no SM). */
  sm?: 'resume' | 'plain' | false;
  /** Ask for this resumption timeout (XEP-0198 max). */
  max?: number;
  /** Resume this session instead of binding a new one. */
  resume?: { previd: string; h: number };
  presence?: boolean;
  /** The server's XMPP domain (default localhost). */
  domain?: string;
  /** Address to connect to (default 127.0.0.1). */
  host?: string;
}

export interface Outbound {
  xml: string;
  /** Caller's tag (e.g. the message id). */
  tag: string;
}

export class SmClient {
  socket!: net.Socket;
  private parser!: Parser;
  private buffer: Element[] = [];
  private waiters: Array<{ pred: Pred; resolve: (el: Element) => void }> = [];
  private headerWaiters: Array<(attrs: Record<string, string>) => void> = [];
  private header: Record<string, string> | undefined;
  closed = false;
  private closeWaiters: Array<() => void> = [];

  jid = '';
  /** The last <stream:features/>. */
  features: Element | undefined;
  /** id attribute of the server's current stream header (the archive id prefix under MR2). */
  streamId = '';
  /** SM state. */
  smOn = false;
  smId: string | undefined;
  /** Stanzas received since enable (our h). */
  h = 0;
  /** Answer <r/> automatically. */
  autoAck = true;
  /** <r/> received from the server. */
  requests = 0;
  /** Outbound stanzas not yet acked by the server, oldest first. */
  unacked: Outbound[] = [];
  /** Everything the server acked, in order. */
  readonly acked: Outbound[] = [];
  private outAcked = 0;
  lastResult: Element | undefined;
  /** The resume in flight: our count goes on from the h we told the server (XEP-0198 §5). */
  private resuming: { previd: string; h: number } | undefined;
  private domain = 'localhost';
  /** Stream error condition, if the server sent one. */
  streamError: string | undefined;

  static async connect(o: SmConnectOptions): Promise<SmClient> {
    const c = new SmClient();
    await c.start(o);
    return c;
  }

  async start(o: SmConnectOptions): Promise<void> {
    if (o.domain) this.domain = o.domain;
    await new Promise<void>((resolve, reject) => {
      this.socket = net.connect({ port: o.port, host: o.host ?? '127.0.0.1' }, () => resolve());
      this.socket.once('error', reject);
    });
    this.socket.on('error', () => undefined);
    this.socket.on('data', (d: Buffer) => this.parser.write(d.toString('utf8')));
    this.socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
    await this.open();
    const creds = Buffer.from(`\0${o.user}\0${o.password}`).toString('base64');
    this.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${creds}</auth>`);
    const r = await this.next((el) => el.name === 'success' || el.name === 'failure');
    if (r.name !== 'success') throw new Error(`auth failed: ${r.toString()}`);
    await this.open();
    if (o.resume) {
      this.resuming = o.resume;
      this.send(`<resume xmlns='${SM}' previd='${o.resume.previd}' h='${o.resume.h}'/>`);
      const res = await this.next((el) => el.attrs.xmlns === SM && (el.name === 'resumed' || el.name === 'failed'));
      this.lastResult = res;
      if (res.name !== 'resumed') throw Object.assign(new Error(`resume failed: ${res.toString()}`), { result: res });
      this.smId = o.resume.previd;
      // The server's count of our stanzas goes on from its <resumed h/>.
      this.outAcked = Number(res.attrs.h);
      return;
    }
    if (o.mr2) {
      this.send("<enable xmlns='urn:xmpp:mr2:0'/>");
      await this.next((el) => el.name === 'enabled' && el.attrs.xmlns === 'urn:xmpp:mr2:0');
    }
    await this.bind(o.resource);
    if (o.sm !== false) await this.enable(o.sm !== 'plain', o.max);
    if (o.presence) this.send('<presence/>');
  }

  async bind(resource?: string): Promise<string> {
    this.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${resource ? `<resource>${resource}</resource>` : ''}</bind></iq>`);
    const res = await this.next((el) => el.name === 'iq' && el.attrs.id === 'bind1');
    const jid = res.getChild('bind')?.getChildText('jid');
    if (res.attrs.type !== 'result' || !jid) throw new Error(`bind failed: ${res.toString()}`);
    this.jid = jid;
    return jid;
  }

  async enable(resume = true, max?: number): Promise<Element> {
    this.send(`<enable xmlns='${SM}'${resume ? " resume='true'" : ''}${max !== undefined ? ` max='${max}'` : ''}/>`);
    const res = await this.next((el) => el.attrs.xmlns === SM && (el.name === 'enabled' || el.name === 'failed'));
    if (res.name === 'enabled') this.smId = res.attrs.id;
    return res;
  }

  private open(): Promise<Record<string, string>> {
    this.header = undefined;
    this.parser = new Parser();
    this.parser.on('start', (el: Element) => {
      this.header = el.attrs as Record<string, string>;
      this.streamId = this.header.id ?? '';
      for (const w of this.headerWaiters.splice(0)) w(this.header);
    });
    this.parser.on('element', (el: Element) => this.onElement(el));
    this.parser.on('error', () => undefined);
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${this.domain}' version='1.0'>`);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no stream header')), 5000);
      this.headerWaiters.push((h) => {
        clearTimeout(t);
        void this.next((el) => el.name === 'stream:features' || el.name === 'features').then((f) => {
          this.features = f;
          resolve(h);
        }, reject);
      });
    });
  }

  private onElement(el: Element): void {
    // Counting starts with <enabled/> / goes on after <resumed/>: set before any stanza of the same chunk is parsed.
    if (el.attrs.xmlns === SM && el.name === 'enabled') {
      this.smOn = true;
      this.h = 0;
    } else if (el.attrs.xmlns === SM && el.name === 'resumed' && this.resuming) {
      this.smOn = true;
      this.h = this.resuming.h;
    }
    if (el.attrs.xmlns === SM && el.name === 'r') {
      this.requests++;
      if (this.autoAck) this.ack();
      return;
    }
    if (el.attrs.xmlns === SM && el.name === 'a') {
      this.onAck(Number(el.attrs.h));
      this.deliver(el);
      return;
    }
    if (el.name === 'stream:error') {
      const cond = el.children.find((c): c is Element => typeof c !== 'string' && c.name !== 'text');
      this.streamError = cond?.name;
    }
    if (this.smOn && this.isStanza(el)) this.h = (this.h + 1) % 2 ** 32;
    this.deliver(el);
  }

  private isStanza(el: Element): boolean {
    return el.name === 'message' || el.name === 'presence' || el.name === 'iq';
  }

  private deliver(el: Element): void {
    const i = this.waiters.findIndex((w) => w.pred(el));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w?.resolve(el);
    } else this.buffer.push(el);
  }

  /** The server acked `h` of our stanzas. */
  private onAck(h: number): void {
    const n = (h - (this.outAcked % 2 ** 32) + 2 ** 32) % 2 ** 32;
    // An h behind what was acked already (a server that lost its count) acks nothing new.
    if (n > this.unacked.length) return;
    for (let i = 0; i < n && this.unacked.length > 0; i++) {
      this.acked.push(this.unacked.shift() as Outbound);
      this.outAcked++;
    }
  }

  /** Apply the h of <resumed/> or <failed h/> to our queue; returns what the server never handled. */
  settle(h: number): Outbound[] {
    this.onAck(h);
    return this.unacked.splice(0);
  }

  send(xml: string): void {
    if (!this.closed) this.socket.write(xml);
  }

  /** Send a stanza counted by SM (kept until the server acks it). */
  sendStanza(xml: string, tag = ''): void {
    if (this.smOn) this.unacked.push({ xml, tag });
    this.send(xml);
  }

  ack(): void {
    this.send(`<a xmlns='${SM}' h='${this.h}'/>`);
  }

  /** Ask the server for an ack and wait for it. */
  async requestAck(timeoutMs = 5000): Promise<number> {
    this.send(`<r xmlns='${SM}'/>`);
    const a = await this.next((el) => el.name === 'a' && el.attrs.xmlns === SM, timeoutMs);
    return Number(a.attrs.h);
  }

  next(pred: Pred | string = () => true, timeoutMs = 5000): Promise<Element> {
    const p: Pred = typeof pred === 'string' ? (el) => el.name === pred : pred;
    const i = this.buffer.findIndex(p);
    if (i >= 0) return Promise.resolve(this.buffer.splice(i, 1)[0] as Element);
    return new Promise((resolve, reject) => {
      const w = {
        pred: p,
        resolve: (el: Element) => {
          clearTimeout(t);
          resolve(el);
        },
      };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timeout waiting for ${typeof pred === 'string' ? pred : 'element'}; unconsumed:\n${this.buffer.map(String).join('\n')}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Resolve when nothing matching arrives within `ms`. */
  async nothing(pred: Pred = () => true, ms = 300): Promise<void> {
    try {
      const el = await this.next(pred, ms);
      throw new Error(`unexpected element: ${el.toString()}`);
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('timeout')) return;
      throw e;
    }
  }

  /** Take every element received so far that matches. */
  drain(pred: Pred = () => true): Element[] {
    const out = this.buffer.filter(pred);
    this.buffer = this.buffer.filter((e) => !pred(e));
    return out;
  }

  /** Collect `n` elements matching `pred`, in arrival order. */
  async collect(n: number, pred: Pred, timeoutMs = 5000): Promise<Element[]> {
    const out: Element[] = [];
    for (let i = 0; i < n; i++) out.push(await this.next(pred, timeoutMs));
    return out;
  }

  waitClose(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('connection not closed')), timeoutMs);
      this.closeWaiters.push(() => {
        clearTimeout(t);
        resolve();
      });
    });
  }

  /** The connection dies (no </stream:stream>): the server may keep the session for resumption. */
  kill(): void {
    this.socket.destroy();
  }

  /** Clean close: </stream:stream>. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.socket.end('</stream:stream>');
    await this.waitClose().catch(() => this.socket.destroy());
  }
}

/** Resume, returning the client and the <resumed/>, or the <failed/> element. */
export async function tryResume(o: SmConnectOptions): Promise<{ client: SmClient; result: Element }> {
  if (!o.resume) throw new Error('tryResume needs resume: { previd, h }');
  const c = new SmClient();
  try {
    await c.start(o);
  } catch (err) {
    const result = (err as { result?: Element }).result;
    if (!result) throw err;
    return { client: c, result };
  }
  return { client: c, result: c.lastResult as Element };
}

const MAM = 'urn:xmpp:mam:2';
const RSM = 'http://jabber.org/protocol/rsm';
let qn = 0;

/** Every message of the client's own archive after `afterId` (all when undefined), oldest first, paging with RSM. */
export async function mamAll(c: SmClient, afterId?: string, pageSize = 250): Promise<Array<{ id: string; msg: Element }>> {
  const out: Array<{ id: string; msg: Element }> = [];
  let after = afterId;
  for (;;) {
    const qid = `mam${++qn}`;
    c.sendStanza(
      `<iq type='set' id='${qid}'><query xmlns='${MAM}' queryid='${qid}'><set xmlns='${RSM}'><max>${pageSize}</max>${after ? `<after>${after}</after>` : ''}</set></query></iq>`,
    );
    let last: string | undefined;
    for (;;) {
      const el = await c.next((e) => (e.name === 'iq' && e.attrs.id === qid) || e.getChild('result', MAM)?.attrs.queryid === qid, 15000);
      if (el.name === 'iq') {
        if (el.attrs.type !== 'result') throw new Error(`MAM query failed: ${el.toString()}`);
        const fin = el.getChild('fin', MAM);
        if (fin?.attrs.complete === 'true') return out;
        last = fin?.getChild('set', RSM)?.getChildText('last') ?? undefined;
        break;
      }
      const r = el.getChild('result', MAM) as Element;
      out.push({ id: r.attrs.id as string, msg: r.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message') as Element });
    }
    if (!last) return out;
    after = last;
  }
}

/** Is this id in the client's own archive? (XEP-0313 #extended `ids`; item-not-found when it is not.) */
export async function mamHas(c: SmClient, id: string): Promise<boolean> {
  const qid = `ids${++qn}`;
  c.sendStanza(
    `<iq type='set' id='${qid}'><query xmlns='${MAM}' queryid='${qid}'><x xmlns='jabber:x:data' type='submit'>` +
      `<field var='FORM_TYPE' type='hidden'><value>${MAM}</value></field><field var='ids'><value>${id}</value></field></x></query></iq>`,
  );
  let found = false;
  for (;;) {
    const el = await c.next((e) => (e.name === 'iq' && e.attrs.id === qid) || e.getChild('result', MAM)?.attrs.queryid === qid, 15000);
    if (el.name !== 'iq') {
      found = true;
      continue;
    }
    if (el.attrs.type === 'result') return found;
    if (el.getChild('error')?.getChild('item-not-found')) return false;
    throw new Error(`MAM ids query failed: ${el.toString()}`);
  }
}
