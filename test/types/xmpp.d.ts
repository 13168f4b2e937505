// Minimal typings for the xmpp.js packages used as real clients in tests
// (they ship no TypeScript declarations).
declare module '@xmpp/xml' {
  export class Element {
    name: string;
    attrs: Record<string, string | undefined>;
    children: Array<Element | string>;
    parent: Element | null;
    constructor(name: string, attrs?: Record<string, string | undefined>);
    is(name: string, xmlns?: string): boolean;
    getName(): string;
    getNS(): string | undefined;
    getChild(name: string, xmlns?: string): Element | undefined;
    getChildren(name: string, xmlns?: string): Element[];
    getChildElements(): Element[];
    getChildText(name: string, xmlns?: string): string | null;
    getText(): string;
    text(): string;
    c(name: string, attrs?: Record<string, string | undefined>): Element;
    t(text: string): Element;
    up(): Element;
    append(...nodes: Array<Element | string>): Element;
    toString(): string;
  }
  export class Parser {
    constructor();
    on(event: 'start' | 'element' | 'end', fn: (el: Element) => void): void;
    on(event: 'error', fn: (err: Error) => void): void;
    write(data: string): void;
  }
  export function xml(name: string, attrs?: Record<string, string | undefined> | null, ...children: Array<Element | string>): Element;
  export default xml;
}

declare module '@xmpp/client' {
  import type { Element } from '@xmpp/xml';
  export { xml } from '@xmpp/xml';
  export interface XmppClient {
    jid: { toString(): string; local: string; domain: string; resource: string } | null;
    status: string;
    on(event: 'stanza' | 'nonza' | 'element', fn: (el: Element) => void): void;
    on(event: 'online', fn: (jid: { toString(): string }) => void): void;
    on(event: 'error' | 'offline' | 'status', fn: (arg: unknown) => void): void;
    on(event: string, fn: (...args: unknown[]) => void): void;
    once(event: string, fn: (...args: unknown[]) => void): void;
    removeListener(event: string, fn: (...args: never[]) => void): void;
    /** Writes the stream header and waits for the server's (see test/helpers/xmppjs.ts). */
    open(options: { domain?: string; lang?: string }): Promise<Element>;
    timeout: number;
    start(): Promise<unknown>;
    stop(): Promise<unknown>;
    send(...els: Element[]): Promise<void>;
    sendMany(els: Element[]): Promise<void>;
    iqCaller: { request(el: Element, timeout?: number): Promise<Element>; get(el: Element, to?: string, timeout?: number): Promise<Element>; set(el: Element, to?: string, timeout?: number): Promise<Element> };
    streamManagement?: { enabled: boolean; id: string; outbound: number; inbound: number };
    disconnect(timeout?: number): Promise<void>;
    /** XEP-0484 FAST (0.14): token persistence hooks. */
    fast: {
      saveToken(t: FastToken): Promise<void>;
      fetchToken(): Promise<FastToken | undefined>;
    };
  }
  export interface FastToken {
    token: string;
    mechanism: string;
    expiry: string;
  }
  export interface ClientOptions {
    service: string;
    domain?: string;
    resource?: string;
    username?: string;
    password?: string;
    credentials?: unknown;
    timeout?: number;
    /** SASL2 <user-agent id=…/> (XEP-0388). */
    userAgent?: Element;
  }
  export function client(opts: ClientOptions): XmppClient;
}
