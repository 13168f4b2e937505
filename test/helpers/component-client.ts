/**
 * A raw XEP-0114 component client over a real TCP socket (no component
 * library is installed): stream header, handshake, stanzas. Parses with
 * xmpp.js's parser (ltx), an implementation independent of Verona's.
 */
import net from 'node:net';
import { createHash } from 'node:crypto';
import { Parser, type Element } from '@xmpp/xml';

export class ComponentClient {
  private readonly parser = new Parser();
  readonly received: Element[] = [];
  private waiters: Array<{ pred: (el: Element) => boolean; resolve: (el: Element) => void }> = [];
  streamId = '';
  closed = false;
  private closeWaiters: Array<() => void> = [];
  private headerWaiter: ((id: string) => void) | undefined;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => this.parser.write(d.toString('utf8')));
    socket.on('close', () => {
      this.closed = true;
      for (const w of this.closeWaiters.splice(0)) w();
    });
    socket.on('error', () => undefined);
    this.parser.on('start', (el: Element) => {
      this.streamId = String(el.attrs.id ?? '');
      this.headerWaiter?.(this.streamId);
    });
    this.parser.on('element', (el: Element) => {
      const i = this.waiters.findIndex((w) => w.pred(el));
      if (i >= 0) this.waiters.splice(i, 1)[0]?.resolve(el);
      else this.received.push(el);
    });
    this.parser.on('error', () => undefined);
  }

  send(xml: string): void {
    this.socket.write(xml);
  }

  next(pred: (el: Element) => boolean = () => true, timeoutMs = 10000): Promise<Element> {
    const i = this.received.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.received.splice(i, 1)[0] as Element);
    return new Promise((resolve, reject) => {
      const w = { pred, resolve: (el: Element) => { clearTimeout(t); resolve(el); } };
      const t = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        reject(new Error(`component: timeout; unconsumed: ${this.received.map(String).join('\n')}`));
      }, timeoutMs);
      this.waiters.push(w);
    });
  }

  /** Resolve when nothing matching arrives within `ms`. */
  async nothing(pred: (el: Element) => boolean, ms = 500): Promise<void> {
    try {
      const el = await this.next(pred, ms);
      throw new Error(`unexpected element: ${el.toString()}`);
    } catch (e) {
      if (e instanceof Error && e.message.startsWith('component: timeout')) return;
      throw e;
    }
  }

  waitClose(timeoutMs = 10000): Promise<void> {
    if (this.closed) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('component connection not closed')), timeoutMs);
      this.closeWaiters.push(() => { clearTimeout(t); resolve(); });
    });
  }

  /** Open the stream for `domain` and wait for the server's header. */
  open(domain: string): Promise<string> {
    const p = new Promise<string>((r) => (this.headerWaiter = r));
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:component:accept' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}'>`);
    return p;
  }

  /** Send the handshake for `secret`; resolves with the server's answer (<handshake/> or a stream error). */
  async handshake(secret: string): Promise<Element> {
    const digest = createHash('sha1').update(this.streamId + secret).digest('hex');
    this.send(`<handshake>${digest}</handshake>`);
    return this.next((el) => el.name === 'handshake' || el.name === 'stream:error');
  }

  close(): void {
    if (!this.closed) this.socket.end('</stream:stream>');
  }
}

export async function connectComponent(port: number, domain: string, secret: string): Promise<ComponentClient> {
  const c = await new Promise<ComponentClient>((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(new ComponentClient(s)));
    s.once('error', reject);
  });
  await c.open(domain);
  const r = await c.handshake(secret);
  if (r.name !== 'handshake') throw new Error(`component handshake failed: ${r.toString()}`);
  return c;
}
