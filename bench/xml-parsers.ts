/**
 * XML stream parser candidates for Verona, measured on one realistic XMPP
 * client stream and checked against the requirements of the stream layer.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/xml-parsers.js [--quick]
 *
 * Each candidate is wrapped in the same StreamParser contract (the thinnest
 * adapter that yields namespace-resolved Elements and applies the limits), and
 * each measurement runs in its own child process so that JIT state and heap
 * of one candidate do not colour another's numbers.
 *
 * Candidates: verona (src/xml/parser.ts), saxes 6 (xmlns mode, StringDecoder),
 * ltx 3 (its own SaxLtx tokenizer, StringDecoder, namespaces resolved in the
 * adapter) and node-expat 2.4 (libexpat, fed bytes, namespaces resolved in
 * the adapter).
 */
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { cpus, totalmem } from 'node:os';
import { StringDecoder } from 'node:string_decoder';
import { fileURLToPath } from 'node:url';
import { SaxesParser, type SaxesTagNS } from 'saxes';
import { Element, NS_CLIENT, NS_STREAM, serialize } from '../src/xml/element.js';
import { createStreamParser } from '../src/xml/parser.js';
import type {
  ParserErrorCondition,
  ParserLimits,
  StreamParser,
  StreamParserEvents,
} from '../src/xml/stream-parser.contract.js';

const require = createRequire(import.meta.url);
const NS_XML = 'http://www.w3.org/XML/1998/namespace';

const LIMITS: ParserLimits = { maxStanzaSize: 256 * 1024, maxDepth: 32, maxAttributes: 64 };

// ---------------------------------------------------------------------------
// Adapters

/**
 * Builds Elements from name/attribute events of a namespace-unaware tokenizer
 * (ltx, node-expat): resolves prefixes, applies depth/attribute limits, checks
 * end tags and top-level text. Shared so that both pay the same JS cost.
 */
class TreeBuilder {
  qnames: string[] = [];
  nss: string[] = [];
  pfxs: (Map<string, string> | null)[] = [];
  els: Element[] = [];
  failed = false;
  ended = false;
  constructor(
    private readonly ev: StreamParserEvents,
    public limits: ParserLimits,
  ) {}

  fail(c: ParserErrorCondition, t: string): void {
    if (this.failed || this.ended) return;
    this.failed = true;
    this.ev.onError(c, t);
  }

  get live(): boolean {
    return !this.failed && !this.ended;
  }

  start(qname: string, raw: Record<string, string>): void {
    if (!this.live) return;
    const depth = this.qnames.length;
    let ns = depth > 0 ? (this.nss[depth - 1] as string) : '';
    let pfx = depth > 0 ? (this.pfxs[depth - 1] as Map<string, string> | null) : null;
    const attrs: Record<string, string> = {};
    let n = 0;
    for (const k in raw) {
      if (++n > this.limits.maxAttributes) return this.fail('policy-violation', 'too many attributes');
      const v = raw[k] as string;
      if (k === 'xmlns') {
        ns = v;
        if (depth > 0) continue;
      } else if (k.startsWith('xmlns:')) {
        pfx = new Map(pfx ?? undefined);
        pfx.set(k.slice(6), v);
      }
      attrs[k] = v;
    }
    let local = qname;
    let elNs = ns;
    const colon = qname.indexOf(':');
    if (colon > 0) {
      const px = qname.slice(0, colon);
      const uri = px === 'xml' ? NS_XML : pfx?.get(px);
      if (uri === undefined) return this.fail('not-well-formed', 'unbound prefix');
      local = qname.slice(colon + 1);
      elNs = uri;
    }
    if (depth > this.limits.maxDepth) return this.fail('policy-violation', 'too deep');
    this.qnames.push(qname);
    this.nss.push(ns);
    this.pfxs.push(pfx);
    if (depth === 0) {
      this.ev.onStreamStart(local, elNs, attrs);
      return;
    }
    const el = new Element(local, elNs, attrs);
    if (depth > 1) (this.els[this.els.length - 1] as Element).children.push(el);
    this.els.push(el);
  }

  end(qname: string): void {
    if (!this.live) return;
    const q = this.qnames.pop();
    if (q !== qname) return this.fail('not-well-formed', 'mismatched end tag');
    this.nss.pop();
    this.pfxs.pop();
    const depth = this.qnames.length;
    if (depth === 0) {
      this.ended = true;
      this.ev.onStreamEnd();
      return;
    }
    const el = this.els.pop() as Element;
    if (depth === 1) this.ev.onElement(el);
  }

  text(t: string): void {
    if (!this.live) return;
    if (this.qnames.length < 2) {
      if (/[^ \t\r\n]/.test(t)) this.fail('not-well-formed', 'text at top level');
      return;
    }
    const ch = (this.els[this.els.length - 1] as Element).children;
    const last = ch.length - 1;
    if (last >= 0 && typeof ch[last] === 'string') ch[last] = (ch[last] as string) + t;
    else ch.push(t);
  }

  /** True while a top-level element is open. */
  get inStanza(): boolean {
    return this.qnames.length >= 2;
  }
}

interface LtxSax {
  on(ev: 'startElement', f: (name: string, attrs: Record<string, string>) => void): void;
  on(ev: 'endElement', f: (name: string) => void): void;
  on(ev: 'text', f: (t: string) => void): void;
  write(s: string): void;
}
const SaxLtx = require('ltx/lib/parsers/ltx.js') as new () => LtxSax;

class LtxAdapter implements StreamParser {
  private dec = new StringDecoder('utf8');
  private sax!: LtxSax;
  private tb!: TreeBuilder;
  private fed = 0;
  private stanzaFed = -1;
  constructor(
    private readonly ev: StreamParserEvents,
    private limits: ParserLimits,
  ) {
    this.init();
  }
  private init(): void {
    const tb = (this.tb = new TreeBuilder(this.ev, this.limits));
    const sax = (this.sax = new SaxLtx());
    sax.on('startElement', (n, a) => {
      if (tb.qnames.length === 1) this.stanzaFed = this.fed;
      tb.start(n, a);
    });
    sax.on('endElement', (n) => {
      tb.end(n);
      if (!tb.inStanza) this.stanzaFed = -1;
    });
    sax.on('text', (t) => tb.text(t));
  }
  write(chunk: Buffer): void {
    if (!this.tb.live) return;
    const s = this.dec.write(chunk);
    try {
      this.sax.write(s);
    } catch (e) {
      this.tb.fail('not-well-formed', (e as Error).message);
    }
    this.fed += s.length;
    // ltx gives no positions: the size is known at chunk granularity only.
    if (this.stanzaFed >= 0 && this.fed - this.stanzaFed > this.limits.maxStanzaSize) this.tb.fail('policy-violation', 'stanza too large');
  }
  setLimits(l: ParserLimits): void {
    this.limits = l;
    this.tb.limits = l;
  }
  reset(): void {
    this.dec = new StringDecoder('utf8');
    this.fed = 0;
    this.stanzaFed = -1;
    this.init();
  }
  end(): void {
    this.tb.failed = true;
  }
}

interface ExpatParser {
  on(ev: 'startElement', f: (name: string, attrs: Record<string, string>) => void): void;
  on(ev: 'endElement', f: (name: string) => void): void;
  on(ev: 'text', f: (t: string) => void): void;
  on(ev: 'comment' | 'processingInstruction' | 'entityDecl' | 'startCdata', f: () => void): void;
  on(ev: 'error', f: (e: string) => void): void;
  write(b: Buffer): boolean;
  stop(): boolean;
  getCurrentByteIndex(): number;
}
let expatModule: { Parser: new (enc: string) => ExpatParser } | undefined;
function loadExpat(): { Parser: new (enc: string) => ExpatParser } | undefined {
  if (expatModule === undefined) {
    try {
      expatModule = require('node-expat') as { Parser: new (enc: string) => ExpatParser };
    } catch {
      return undefined;
    }
  }
  return expatModule;
}

class ExpatAdapter implements StreamParser {
  private p!: ExpatParser;
  private tb!: TreeBuilder;
  private stanzaStart = -1;
  private fed = 0;
  constructor(
    private readonly ev: StreamParserEvents,
    private limits: ParserLimits,
  ) {
    this.init();
  }
  private init(): void {
    const mod = loadExpat();
    if (mod === undefined) throw new Error('node-expat not available');
    const p = (this.p = new mod.Parser('UTF-8'));
    const tb = (this.tb = new TreeBuilder(this.ev, this.limits));
    p.on('startElement', (n, a) => {
      if (tb.qnames.length === 1) this.stanzaStart = p.getCurrentByteIndex();
      tb.start(n, a);
    });
    p.on('endElement', (n) => {
      tb.end(n);
      if (!tb.inStanza) this.stanzaStart = -1;
    });
    p.on('text', (t) => tb.text(t));
    const restricted = (): void => {
      tb.fail('restricted-xml', 'restricted');
      p.stop();
    };
    p.on('comment', restricted);
    p.on('processingInstruction', restricted);
    p.on('entityDecl', restricted);
    p.on('error', (e) => tb.fail('not-well-formed', String(e)));
  }
  write(chunk: Buffer): void {
    if (!this.tb.live) return;
    this.p.write(chunk);
    this.fed += chunk.length;
    if (this.stanzaStart >= 0 && this.fed - this.stanzaStart > this.limits.maxStanzaSize) this.tb.fail('policy-violation', 'stanza too large');
  }
  setLimits(l: ParserLimits): void {
    this.limits = l;
    this.tb.limits = l;
  }
  reset(): void {
    this.stanzaStart = -1;
    this.fed = 0;
    this.init();
  }
  end(): void {
    this.tb.failed = true;
  }
}

class SaxesAdapter implements StreamParser {
  private dec = new StringDecoder('utf8');
  private p!: SaxesParser<{ xmlns: true }>;
  private failed = false;
  private ended = false;
  private els: Element[] = [];
  private depth = 0;
  private stanzaStart = -1;
  constructor(
    private readonly ev: StreamParserEvents,
    private limits: ParserLimits,
  ) {
    this.init();
  }
  private fail(c: ParserErrorCondition, t: string): void {
    if (this.failed || this.ended) return;
    this.failed = true;
    this.ev.onError(c, t);
  }
  private init(): void {
    const p = (this.p = new SaxesParser({ xmlns: true }));
    this.failed = false;
    this.ended = false;
    this.els = [];
    this.depth = 0;
    this.stanzaStart = -1;
    p.on('error', (e) => this.fail('not-well-formed', e.message));
    p.on('doctype', () => this.fail('restricted-xml', 'doctype'));
    p.on('comment', () => this.fail('restricted-xml', 'comment'));
    p.on('processinginstruction', () => this.fail('restricted-xml', 'PI'));
    p.on('opentagstart', () => {
      if (this.depth === 1) this.stanzaStart = p.position;
    });
    p.on('opentag', (node: SaxesTagNS) => {
      if (this.failed) return;
      const depth = this.depth++;
      if (depth > this.limits.maxDepth) return this.fail('policy-violation', 'too deep');
      const attrs: Record<string, string> = {};
      let n = 0;
      for (const k in node.attributes) {
        if (++n > this.limits.maxAttributes) return this.fail('policy-violation', 'too many attributes');
        if (k === 'xmlns' && depth > 0) continue;
        attrs[k] = (node.attributes[k] as { value: string }).value;
      }
      if (depth === 0) {
        this.ev.onStreamStart(node.local, node.uri, attrs);
        return;
      }
      const el = new Element(node.local, node.uri, attrs);
      if (depth > 1) (this.els[this.els.length - 1] as Element).children.push(el);
      this.els.push(el);
    });
    p.on('closetag', () => {
      if (this.failed || this.ended) return;
      const depth = --this.depth;
      if (depth === 0) {
        this.ended = true;
        this.ev.onStreamEnd();
        return;
      }
      const el = this.els.pop() as Element;
      if (depth === 1) {
        if (p.position - this.stanzaStart > this.limits.maxStanzaSize) return this.fail('policy-violation', 'stanza too large');
        this.stanzaStart = -1;
        this.ev.onElement(el);
      }
    });
    const text = (t: string): void => {
      if (this.failed) return;
      if (this.depth < 2) {
        if (/[^ \t\r\n]/.test(t)) this.fail('not-well-formed', 'text at top level');
        return;
      }
      const ch = (this.els[this.els.length - 1] as Element).children;
      const last = ch.length - 1;
      if (last >= 0 && typeof ch[last] === 'string') ch[last] = (ch[last] as string) + t;
      else ch.push(t);
    };
    p.on('text', text);
    p.on('cdata', text);
  }
  write(chunk: Buffer): void {
    if (this.failed || this.ended) return;
    this.p.write(this.dec.write(chunk));
    if (this.stanzaStart >= 0 && this.p.position - this.stanzaStart > this.limits.maxStanzaSize) this.fail('policy-violation', 'stanza too large');
  }
  setLimits(l: ParserLimits): void {
    this.limits = l;
  }
  reset(): void {
    this.dec = new StringDecoder('utf8');
    this.init();
  }
  end(): void {
    this.failed = true;
  }
}

type Factory = (ev: StreamParserEvents, limits: ParserLimits) => StreamParser;
const CANDIDATES: Record<string, Factory> = {
  verona: createStreamParser,
  saxes: (ev, l) => new SaxesAdapter(ev, l),
  ltx: (ev, l) => new LtxAdapter(ev, l),
  'node-expat': (ev, l) => new ExpatAdapter(ev, l),
};

// ---------------------------------------------------------------------------
// Workload

/** Deterministic PRNG (mulberry32) so every candidate gets the same chunks. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const DECL = "<?xml version='1.0'?>";
const STREAM_TAG =
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='capulet.lit' version='1.0' xml:lang='en'>";
const HEADER = DECL + STREAM_TAG;

/** A client stream: ~300-byte chat messages with namespaced children, some presence and IQ, whitespace keepalives. */
function makeStream(stanzas: number): { bytes: Buffer; stanzas: number } {
  const r = rng(42);
  const parts: string[] = [HEADER];
  for (let i = 0; i < stanzas; i++) {
    const k = r();
    const id = `m${i.toString(36)}-${Math.floor(r() * 1e9).toString(36)}`;
    if (k < 0.8) {
      parts.push(
        `<message to='juliet@capulet.lit/balcony' from='romeo@montague.lit/orchard' type='chat' id='${id}' xml:lang='en'>` +
          `<body>Wherefore art thou &amp; why ${i}? Ünïcødé 💬 &lt;3</body>` +
          `<active xmlns='http://jabber.org/protocol/chatstates'/>` +
          `<request xmlns='urn:xmpp:receipts'/>` +
          `<origin-id xmlns='urn:xmpp:sid:0' id='${id}'/>` +
          `<markable xmlns='urn:xmpp:chat-markers:0'/>` +
          `</message>`,
      );
    } else if (k < 0.9) {
      parts.push(
        `<presence id='${id}'><show>away</show><status>At the balcony ${i}</status><priority>5</priority>` +
          `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/></presence>`,
      );
    } else {
      parts.push(
        `<iq type='get' id='${id}' to='capulet.lit'><query xmlns='urn:xmpp:mam:2' queryid='q${i}'>` +
          `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>` +
          `<field var='with'><value>juliet@capulet.lit</value></field></x></query></iq>`,
      );
    }
    if (i % 100 === 99) parts.push(' \n');
  }
  return { bytes: Buffer.from(parts.join('')), stanzas };
}

/** Chunk boundaries: log-uniform sizes in [min, max]. */
function chunk(bytes: Buffer, min: number, max: number, seed: number): Buffer[] {
  const r = rng(seed);
  const out: Buffer[] = [];
  for (let i = 0; i < bytes.length; ) {
    const n = Math.max(min, Math.floor(Math.exp(Math.log(min) + r() * (Math.log(max) - Math.log(min)))));
    out.push(bytes.subarray(i, i + n));
    i += n;
  }
  return out;
}

function countingEvents(counter: { n: number; err: string }): StreamParserEvents {
  return {
    onStreamStart() {},
    onElement() {
      counter.n++;
    },
    onStreamEnd() {},
    onError(c, t) {
      counter.err = `${c}: ${t}`;
    },
  };
}

// ---------------------------------------------------------------------------
// Child-process modes

function runThroughput(name: string, quick: boolean): void {
  const make = CANDIDATES[name] as Factory;
  const { bytes, stanzas } = makeStream(quick ? 4000 : 20000);
  const profiles: [string, number, number][] = [
    ['1B-16KiB', 1, 16384],
    ['1B-64B', 1, 64],
  ];
  const result: Record<string, { mbps: number; stanzasPerSec: number }> = {};
  for (const [label, min, max] of profiles) {
    const chunks = chunk(bytes, min, max, 7);
    const times: number[] = [];
    const passes = quick ? 3 : 9;
    for (let pass = 0; pass < passes + 1; pass++) {
      const counter = { n: 0, err: '' };
      const p = make(countingEvents(counter), LIMITS);
      // CPU time of the process (all threads, so GC helpers count): wall time is
      // meaningless on a machine shared with other jobs.
      const c0 = process.cpuUsage();
      for (const c of chunks) p.write(c);
      const c1 = process.cpuUsage(c0);
      const dt = (c1.user + c1.system) / 1e6;
      if (counter.err !== '' || counter.n !== stanzas) throw new Error(`${name}: ${counter.n}/${stanzas} stanzas, ${counter.err}`);
      if (pass > 0) times.push(dt); // pass 0 warms the JIT
    }
    times.sort((a, b) => a - b);
    const med = times[Math.floor(times.length / 2)] as number;
    result[label] = { mbps: bytes.length / med / 1e6, stanzasPerSec: stanzas / med };
  }
  process.stdout.write(JSON.stringify({ bytes: bytes.length, stanzas, result }));
}

function runMemory(name: string): void {
  const make = CANDIDATES[name] as Factory;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  const N = 5000;
  const first = Buffer.from(
    HEADER + "<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>",
  );
  // Warm up code paths so that compiled code is not counted as per-instance memory.
  for (let i = 0; i < 200; i++) make(countingEvents({ n: 0, err: '' }), LIMITS).write(first);
  gc();
  gc();
  const m0 = process.memoryUsage();
  const keep: StreamParser[] = [];
  for (let i = 0; i < N; i++) {
    const p = make(countingEvents({ n: 0, err: '' }), LIMITS);
    // Each parser gets its own copy of the bytes, as from its own socket.
    p.write(Buffer.from(first));
    keep.push(p);
  }
  gc();
  gc();
  const m1 = process.memoryUsage();
  const per = (k: 'heapUsed' | 'external' | 'rss'): number => Math.round((m1[k] - m0[k]) / N);
  process.stdout.write(JSON.stringify({ heap: per('heapUsed'), external: per('external'), rss: per('rss'), kept: keep.length }));
}

/**
 * What a long-lived element costs when it came from a big read: each parser
 * gets one 60 KB chunk (header, a presence, then messages) and only the
 * presence element is kept, as a server keeps a session's last presence.
 */
function runRetain(name: string): void {
  const make = CANDIDATES[name] as Factory;
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc === undefined) throw new Error('run with --expose-gc');
  const N = 500;
  const chunkFor = (i: number): Buffer => {
    let s = HEADER + `<presence><status>At the balcony, and this is status number ${i}</status></presence>`;
    while (s.length < 60_000) s += `<message to='juliet@capulet.lit/balcony' id='x${s.length}'><body>Wherefore art thou ${i}</body></message>`;
    return Buffer.from(s);
  };
  for (let i = 0; i < 20; i++) make(countingEvents({ n: 0, err: '' }), LIMITS).write(chunkFor(i));
  gc();
  gc();
  const m0 = process.memoryUsage().heapUsed;
  const keep: unknown[] = [];
  for (let i = 0; i < N; i++) {
    let first: Element | undefined;
    const p = make(
      {
        onStreamStart() {},
        onElement(el) {
          first ??= el;
        },
        onStreamEnd() {},
        onError() {},
      },
      LIMITS,
    );
    p.write(chunkFor(i));
    keep.push(p, first);
  }
  gc();
  gc();
  process.stdout.write(JSON.stringify({ retained: Math.round((process.memoryUsage().heapUsed - m0) / N), kept: keep.length }));
}

// ---------------------------------------------------------------------------
// Correctness matrix

const HEAD = Buffer.from(HEADER);
interface Case {
  name: string;
  /** Bytes after the stream header (or the whole stream when `raw`). */
  input: Buffer;
  raw?: boolean;
  limits?: ParserLimits;
  /** Expected: serialized elements (joined by '|'), or an error condition. */
  expect: string;
  /** Feed one byte at a time. */
  bytewise?: boolean;
}
const b = (s: string): Buffer => Buffer.from(s);
const CASES: Case[] = [
  {
    name: 'fed byte by byte (XML decl, multi-byte text)',
    input: b("<message><body>Ünïcødé 💬 &amp; &#x1F600;</body></message>"),
    bytewise: true,
    expect: '<message><body>Ünïcødé 💬 &amp; 😀</body></message>',
  },
  {
    name: 'prefixed element and attribute',
    input: b("<message><x:y xmlns:x='urn:x' x:a='1'/></message>"),
    expect: '<message><y xmlns="urn:x" xmlns:x="urn:x" x:a="1"/></message>',
  },
  { name: 'stream: prefix -> streams namespace', input: b('<stream:features/>'), expect: `ns=${NS_STREAM}` },
  { name: 'top level inherits jabber:client', input: b('<message/>'), expect: `ns=${NS_CLIENT}` },
  { name: 'whitespace keepalive ignored', input: b(' \n <message/> \t\r\n <iq/>'), expect: '<message/>|<iq/>' },
  { name: 'stream end event', input: b('<message/></stream:stream>'), expect: '<message/>|END' },
  { name: 'DOCTYPE', raw: true, input: b(DECL + '<!DOCTYPE stream:stream>' + STREAM_TAG + '<message/>'), expect: 'restricted-xml' },
  {
    name: 'internal entity declaration',
    raw: true,
    input: b(DECL + "<!DOCTYPE stream:stream [<!ENTITY a 'x'>]>" + STREAM_TAG + '<message>&a;</message>'),
    expect: 'restricted-xml',
  },
  { name: 'comment', input: b('<message><!-- hi --></message>'), expect: 'restricted-xml' },
  { name: 'processing instruction', input: b('<message><?foo bar?></message>'), expect: 'restricted-xml' },
  { name: 'undefined entity', input: b('<message><body>&nbsp;</body></message>'), expect: 'not-well-formed' },
  { name: 'mismatched end tag', input: b('<message><body></message>'), expect: 'not-well-formed' },
  { name: 'unquoted attribute value', input: b('<message to=a/>'), expect: 'not-well-formed' },
  { name: 'no space between attributes', input: b("<message to='a'id='b'/>"), expect: 'not-well-formed' },
  { name: 'duplicate attribute', input: b("<message id='a' id='b'/>"), expect: 'not-well-formed' },
  { name: "'<' in attribute value", input: b("<message id='<'/>"), expect: 'not-well-formed' },
  { name: 'unbound prefix', input: b('<foo:bar/>'), expect: 'not-well-formed' },
  { name: 'text at top level', input: b('hello<message/>'), expect: 'not-well-formed' },
  { name: 'control character', input: b('<message><body>\x01</body></message>'), expect: 'not-well-formed' },
  { name: 'invalid UTF-8', input: Buffer.concat([b('<message><body>'), Buffer.from([0xff, 0xfe]), b('</body></message>')]), expect: 'not-well-formed' },
  { name: '&#0; reference', input: b('<message><body>&#0;</body></message>'), expect: 'not-well-formed' },
  {
    name: 'stanza never closes (size limit)',
    input: b('<message><body>' + 'a'.repeat(3000)),
    limits: { maxStanzaSize: 1000, maxDepth: 32, maxAttributes: 64 },
    expect: 'policy-violation',
  },
  { name: 'depth limit', input: b('<a>'.repeat(40) + '</a>'.repeat(40)), expect: 'policy-violation' },
  {
    name: 'attribute count limit',
    input: b('<message ' + Array.from({ length: 70 }, (_, i) => `a${i}='1'`).join(' ') + '/>'),
    expect: 'policy-violation',
  },
];

function runCase(make: Factory, c: Case): string {
  const out: string[] = [];
  let err = '';
  const ev: StreamParserEvents = {
    onStreamStart() {},
    onElement(el) {
      out.push(c.expect.startsWith('ns=') ? `ns=${el.xmlns}` : serialize(el, NS_CLIENT));
    },
    onStreamEnd() {
      out.push('END');
    },
    onError(cond) {
      if (err === '') err = cond;
    },
  };
  try {
    const p = make(ev, c.limits ?? LIMITS);
    const input = c.raw ? c.input : Buffer.concat([HEAD, c.input]);
    if (c.bytewise) for (let i = 0; i < input.length; i++) p.write(input.subarray(i, i + 1));
    else p.write(input);
  } catch (e) {
    return `threw ${(e as Error).message.slice(0, 40)}`;
  }
  return err !== '' ? err : out.join('|');
}

function runMatrix(): { rows: string[][]; names: string[] } {
  const names = Object.keys(CANDIDATES).filter((n) => n !== 'node-expat' || loadExpat() !== undefined);
  const rows: string[][] = [];
  for (const c of CASES) {
    const row = [c.name];
    for (const n of names) {
      const got = runCase(CANDIDATES[n] as Factory, c);
      row.push(got === c.expect ? 'ok' : `**${got === '' ? 'accepted' : got.length > 30 ? got.slice(0, 30) + '…' : got}**`);
    }
    rows.push(row);
  }
  return { rows, names };
}

// ---------------------------------------------------------------------------
// Main

function child(args: string[]): unknown {
  const r = spawnSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), ...args], { encoding: 'utf8' });
  if (r.status !== 0) return { error: (r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ') };
  return JSON.parse(r.stdout) as unknown;
}

function main(): void {
  const args = process.argv.slice(2);
  const quick = args.includes('--quick');
  const mode = args[0];
  if (mode === '--run') return runThroughput(args[1] as string, quick);
  if (mode === '--mem') return runMemory(args[1] as string);
  if (mode === '--retain') return runRetain(args[1] as string);

  console.log(`node ${process.version}, ${cpus()[0]?.model ?? '?'} x${cpus().length}, ${Math.round(totalmem() / 2 ** 30)} GiB`);
  const { rows, names } = runMatrix();
  console.log('\n## Correctness (expected result or what the candidate did instead)\n');
  console.log(`| case | ${names.join(' | ')} |`);
  console.log(`| --- |${names.map(() => ' --- |').join('')}`);
  for (const r of rows) console.log(`| ${r.join(' | ')} |`);

  console.log('\n## Throughput (median of passes, CPU time, one child process per candidate)\n');
  const tp: Record<string, unknown> = {};
  for (const n of names) tp[n] = child(['--run', n, ...(quick ? ['--quick'] : [])]);
  const first = Object.values(tp).find((v) => (v as { bytes?: number }).bytes !== undefined) as { bytes: number; stanzas: number } | undefined;
  if (first) console.log(`stream: ${(first.bytes / 1e6).toFixed(2)} MB, ${first.stanzas} stanzas (${Math.round(first.bytes / first.stanzas)} B/stanza)\n`);
  console.log('| parser | MB/s (chunks 1B-16KiB) | stanzas/s | MB/s (chunks 1-64B) | stanzas/s |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const n of names) {
    const r = tp[n] as { result?: Record<string, { mbps: number; stanzasPerSec: number }>; error?: string };
    if (r.result === undefined) {
      console.log(`| ${n} | error: ${r.error ?? '?'} | | | |`);
      continue;
    }
    const a = r.result['1B-16KiB'] as { mbps: number; stanzasPerSec: number };
    const s = r.result['1B-64B'] as { mbps: number; stanzasPerSec: number };
    console.log(
      `| ${n} | ${a.mbps.toFixed(1)} | ${Math.round(a.stanzasPerSec).toLocaleString('en')} | ${s.mbps.toFixed(1)} | ${Math.round(s.stanzasPerSec).toLocaleString('en')} |`,
    );
  }

  console.log('\n## Memory per parser instance after stream header + one stanza (5000 instances)\n');
  console.log('| parser | JS heap B | external B | RSS B | heap B: parser + last presence kept from a 60 KB read |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const n of names) {
    const r = child(['--mem', n]) as { heap?: number; external?: number; rss?: number; error?: string };
    const k = child(['--retain', n]) as { retained?: number; error?: string };
    if (r.heap === undefined) console.log(`| ${n} | error: ${r.error ?? '?'} | | | |`);
    else console.log(`| ${n} | ${r.heap} | ${r.external} | ${r.rss} | ${k.retained ?? k.error} |`);
  }
}

main();
