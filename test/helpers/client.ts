/**
 * A raw XML test client over a real TCP socket. It parses with xmpp.js's
 * parser (ltx), not Verona's, so the server's output is checked by an
 * independent implementation.
 */
import net from 'node:net';
import tls from 'node:tls';
import { Parser, type Element } from '@xmpp/xml';

export type Pred = string | ((el: Element) => boolean);

function matches(el: Element, p: Pred): boolean {
  return typeof p === 'string' ? el.name === p || el.getName() === p : p(el);
}

export class RawConnection {
  socket: net.Socket;
  private parser = new Parser();
  readonly received: Element[] = [];
  private waiters: Array<{ pred: Pred; resolve: (el: Element) => void }> = [];
  header: Element | undefined;
  private headerWaiters: Array<(el: Element) => void> = [];
  closed = false;
  ended = false;
  private closeWaiters: Array<() => void> = [];
  /** Everything the server wrote, as text (for exact-output assertions). */
  raw = '';

  constructor(socket: net.Socket) {
    this.socket = socket;
    this.attach(socket);
    this.attachParser();
  }

  private attach(socket: net.Socket): void {
    socket.on('data', (d: Buffer) => {
      const s = d.toString('utf8');
      this.raw += s;
      this.parser.write(s);
    });
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
  }

  private push(el: Element): void {
    const i = this.waiters.findIndex((w) => matches(el, w.pred));
    if (i >= 0) {
      const [w] = this.waiters.splice(i, 1);
      w?.resolve(el);
    } else this.received.push(el);
  }

  send(xml: string | Buffer): void {
    this.socket.write(xml);
  }

  /** The next element matching `pred` (already received or arriving within `timeoutMs`). */
  next(pred: Pred = () => true, timeoutMs = 5000): Promise<Element> {
    const i = this.received.findIndex((el) => matches(el, pred));
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0] as Element);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (el: Element) => { clearTimeout(t); resolve(el); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`timeout waiting for ${typeof pred === 'string' ? pred : 'element'}; unconsumed: ${this.received.map(String).join('\n')}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Resolve when nothing matching arrives within `ms` (for "must not receive" assertions). */
  async nothing(pred: Pred = () => true, ms = 300): Promise<void> {
    try {
      const el = await this.next(pred, ms);
      throw new Error(`unexpected element: ${el.toString()}`);
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('timeout')) return;
      throw e;
    }
  }

  waitHeader(timeoutMs = 5000): Promise<Element> {
    if (this.header) return Promise.resolve(this.header);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no stream header')), timeoutMs);
      this.headerWaiters.push((el) => { clearTimeout(t); resolve(el); });
    });
  }

  waitClose(timeoutMs = 5000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('connection not closed')), timeoutMs);
      this.closeWaiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  /** Begin a new stream (after connect, STARTTLS or SASL success). */
  async open(domain = 'localhost'): Promise<Element> {
    this.header = undefined;
    this.parser = new Parser();
    this.attachParser();
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`);
    await this.waitHeader();
    return this.next('stream:features');
  }

  private attachParser(): void {
    this.parser.on('start', (el) => {
      this.header = el;
      for (const w of this.headerWaiters.splice(0)) w(el);
    });
    this.parser.on('element', (el) => this.push(el));
    this.parser.on('end', () => {
      this.ended = true;
    });
    this.parser.on('error', () => undefined);
  }

  /** Upgrade to TLS (after <proceed/>). */
  async starttls(): Promise<void> {
    this.socket.removeAllListeners('data');
    const sec = tls.connect({ socket: this.socket, rejectUnauthorized: false, servername: 'localhost' });
    await new Promise<void>((r, j) => {
      sec.once('secureConnect', () => r());
      sec.once('error', j);
    });
    this.socket = sec;
    this.attach(sec);
  }

  close(): void {
    if (!this.closed) this.socket.end('</stream:stream>');
  }

  destroy(): void {
    this.socket.destroy();
  }
}

export function connectRaw(port: number, host = '127.0.0.1'): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host }, () => resolve(new RawConnection(s)));
    s.once('error', reject);
  });
}

export interface ClientOptions {
  port: number;
  /** Address to connect to (default 127.0.0.1). */
  host?: string;
  user: string;
  password: string;
  resource?: string;
  domain?: string;
  /** Nonzas to send after SASL and before bind (e.g. MR2 enable). */
  preBind?: (c: RawConnection) => Promise<void>;
  /** Send initial presence after binding. */
  presence?: boolean;
}

export interface TestClient extends RawConnection {
  jid: string;
  features: Element;
}

let idc = 0;
export function nextId(): string {
  return `t${++idc}`;
}

/** Send an IQ with a fresh id and wait for the answer of that id (result or error). */
export async function sendIq(c: RawConnection, body: string, attrs = "type='set'"): Promise<Element> {
  const id = nextId();
  c.send(`<iq ${attrs} id='${id}'>${body}</iq>`);
  return c.next((el) => el.is('iq') && el.attrs.id === id);
}

/** The defined condition of a stanza error (RFC 6120 §8.3.3), or undefined. */
export function stanzaErrorOf(el: Element): string | undefined {
  return el
    .getChild('error')
    ?.getChildElements()
    .find((c) => c.getNS() === 'urn:ietf:params:xml:ns:xmpp-stanzas' && c.getName() !== 'text')
    ?.getName();
}

/** Connect, authenticate with SASL PLAIN (tests run with allowPlainWithoutTls), bind. */
export async function connectClient(o: ClientOptions): Promise<TestClient> {
  const domain = o.domain ?? 'localhost';
  const c = (await connectRaw(o.port, o.host)) as TestClient;
  await c.open(domain);
  const creds = Buffer.from(`\0${o.user}\0${o.password}`).toString('base64');
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${creds}</auth>`);
  const r = await c.next((el) => el.name === 'success' || el.name === 'failure');
  if (r.name !== 'success') throw new Error(`auth failed: ${r.toString()}`);
  c.features = await c.open(domain);
  if (o.preBind) await o.preBind(c);
  const id = nextId();
  c.send(`<iq type='set' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'>${o.resource ? `<resource>${o.resource}</resource>` : ''}</bind></iq>`);
  const res = await c.next((el) => el.name === 'iq' && el.attrs.id === id);
  const jid = res.getChild('bind')?.getChildText('jid');
  if (res.attrs.type !== 'result' || !jid) throw new Error(`bind failed: ${res.toString()}`);
  c.jid = jid;
  if (o.presence) c.send('<presence/>');
  return c;
}
