/**
 * Fuzz targets: each is an input generator (fast-check arbitrary over the
 * committed corpus) and a property that must hold for every input. Shared by
 * the short run in `npm test` (test/fuzz/fuzz.test.ts) and the long run
 * (`npm run fuzz`, bench/fuzz.ts).
 *
 * What every target asserts: no exception escapes (bad input ends in the
 * right error, never a crash), it terminates, and its own invariant:
 *   xml-stream     the same bytes split anywhere give the same events
 *   xml-document   what parses serialises and parses back to the same text
 *   jid            what parses is canonical: parsing its string gives itself
 *   sasl-plain     any bytes end in success/failure, success only with the password
 *   sasl-scram     any client-first/-final ends in a step, never success without the proof
 *   c2s            a real C2SStream on a real Server: no internal-server-error,
 *                  no error logged, stream and session gone after close
 *   websocket      the same through RFC 7395 framing (WebSocketTransport)
 *   bosh           the same through XEP-0124/0206 bodies (BoshManager), one
 *                  response per request at most
 *   s2s            an inbound server-to-server conversation over a real loopback
 *                  socket into S2SManager.accept (s2s-target.ts): well-formed
 *                  output, no internal-server-error, no authentication without
 *                  proof, nothing left in the manager after close
 */
import fc from 'fast-check';
import { EventEmitter } from 'node:events';
import { createStreamParser, parseXml, XmlError } from '../../src/xml/parser.js';
import { serialize, type Element } from '../../src/xml/element.js';
import type { ParserLimits } from '../../src/xml/stream-parser.contract.js';
import { JIDError, parseJID } from '../../src/jid/jid.js';
import { createMechanism } from '../../src/sasl/mechanisms.js';
import type { CredentialLookup } from '../../src/sasl/contract.js';
import type { AccountRecord } from '../../src/storage/types.js';
import { deriveAllScram } from '../../src/sasl/credentials.js';
import { defaultConfig } from '../../src/config/defaults.js';
import { Server } from '../../src/core/server.js';
import { createLogger } from '../../src/core/logger.js';
import { openStorage } from '../../src/storage/index.js';
import { allModules } from '../../src/modules/index.js';
import { C2SStream } from '../../src/c2s/stream.js';
import type { Transport, TransportSink } from '../../src/c2s/transport.js';
import { WebSocketTransport } from '../../src/net/web/websocket.js';
import { WebFront } from '../../src/net/web/http.js';
import type { BoshReply } from '../../src/net/web/bosh.js';
import { bytesFrom, corpus, mutated, split, turns } from './mutate.js';
import { ErrorLog } from './error-log.js';
import { s2s } from './s2s-target.js';
import type { WebSocket } from 'ws';

export interface Target<T> {
  name: string;
  arbitrary: fc.Arbitrary<T>;
  /** Throws (or rejects) when the property fails. */
  run(input: T): void | Promise<void>;
  /** Set up shared state (a server) before a run, and release it after. */
  setup?(): Promise<void>;
  teardown?(): Promise<void>;
}

// ---- XML ------------------------------------------------------------------------

const SMALL: ParserLimits = { maxStanzaSize: 4096, maxDepth: 16, maxAttributes: 16 };

function streamEvents(chunks: readonly Buffer[]): string[] {
  const ev: string[] = [];
  let failed = false;
  const p = createStreamParser(
    {
      onStreamStart: (name, ns, attrs) => ev.push(`start ${name} ${ns} ${JSON.stringify(attrs)}`),
      onElement: (el) => ev.push(`el ${el.toString()}`),
      onStreamEnd: () => ev.push('end'),
      onError: (condition) => {
        if (failed) throw new Error('onError called twice');
        failed = true;
        ev.push(`error ${condition}`);
      },
    },
    SMALL,
  );
  for (const c of chunks) {
    p.write(c);
    if (failed) break;
  }
  p.end();
  return ev;
}

/**
 * Same outcome however the bytes were split: identical events, except that
 * an input ending inside a token may see its error found earlier in one
 * split than the other (a bad entity in an attribute value is caught when
 * the quote is seen in one piece, when the tag ends in another); then the
 * events before it must be the same. (Until the fuzzer found it, a chunk was
 * validated as UTF-8 before it was tokenised, so bad bytes late in a big
 * chunk hid the elements and errors ahead of them; see
 * XmlCore.invalidPiece.)
 */
function sameOutcome(a: readonly string[], b: readonly string[]): boolean {
  if (JSON.stringify(a) === JSON.stringify(b)) return true;
  const err = (e: readonly string[]): boolean => (e[e.length - 1] ?? '').startsWith('error ');
  if (err(a) === err(b)) return false;
  const [withErr, without] = err(a) ? [a, b] : [b, a];
  return JSON.stringify(withErr.slice(0, -1)) === JSON.stringify(without);
}

export const xmlStream: Target<{ bytes: Buffer; cuts: number[] }> = {
  name: 'xml-stream',
  arbitrary: fc.record({ bytes: bytesFrom(corpus('xml-stream')), cuts: fc.array(fc.nat(), { maxLength: 12 }) }),
  run({ bytes, cuts }) {
    const whole = streamEvents([bytes]);
    const pieces = streamEvents(split(bytes, cuts));
    const bytewise = bytes.length <= 600 ? streamEvents([...bytes].map((b) => Buffer.from([b]))) : pieces;
    for (const other of [pieces, bytewise]) {
      if (!sameOutcome(whole, other)) {
        throw new Error(`events depend on how the input is split:\nwhole:  ${JSON.stringify(whole)}\nsplit:  ${JSON.stringify(other)}`);
      }
    }
  },
};

export const xmlDocument: Target<string> = {
  name: 'xml-document',
  arbitrary: fc.oneof(
    { weight: 4, arbitrary: mutated(corpus('xml-document')).map((b) => b.toString('utf8')) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 200 }) },
  ),
  run(text) {
    let el: Element;
    try {
      el = parseXml(text, SMALL);
    } catch (err) {
      if (err instanceof XmlError) return;
      throw err;
    }
    // Serialised as a standalone document (parent namespace ''), so every namespace is written out.
    const once = serialize(el, '');
    const again = serialize(parseXml(once, { ...SMALL, maxStanzaSize: Number.POSITIVE_INFINITY }), '');
    if (once !== again) throw new Error(`serialisation is not stable:\n${once}\n${again}`);
  },
};

// ---- JID ------------------------------------------------------------------------

export const jid: Target<string> = {
  name: 'jid',
  arbitrary: fc.oneof(
    { weight: 3, arbitrary: mutated(corpus('jid'), 4).map((b) => b.toString('utf8')) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 64 }) },
    { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 40 }) },
  ),
  run(input) {
    let j;
    try {
      j = parseJID(input);
    } catch (err) {
      if (err instanceof JIDError) return;
      throw err;
    }
    const s = j.toString();
    const again = parseJID(s);
    if (again.toString() !== s || again.local !== j.local || again.domain !== j.domain || again.resource !== j.resource) {
      throw new Error(`not canonical: ${JSON.stringify(input)} -> ${JSON.stringify(s)} -> ${JSON.stringify(again.toString())}`);
    }
    for (const part of [j.local, j.domain, j.resource]) if (Buffer.byteLength(part) > 1023) throw new Error(`part longer than 1023 bytes: ${JSON.stringify(input)}`);
  },
};

// ---- SASL -----------------------------------------------------------------------

const PASSWORD = 'pencil';
let account: AccountRecord | undefined;
const lookup: CredentialLookup = { getAccount: async (u) => (u === 'user' ? account : undefined) };
// One iteration: the fuzzed code is the parsing and the checks, not PBKDF2's cost.
const MECH_OPTS = { domain: 'localhost', secret: Buffer.alloc(32, 7), fakeIterations: 1 };

async function ensureAccount(): Promise<void> {
  account ??= { username: 'user', createdAt: 0, scram: await deriveAllScram(PASSWORD, 1) };
}

export const saslPlain: Target<Buffer> = {
  name: 'sasl-plain',
  arbitrary: bytesFrom(corpus('sasl-plain')),
  setup: ensureAccount,
  async run(msg) {
    const mech = createMechanism('PLAIN', lookup, MECH_OPTS);
    if (!mech) throw new Error('no PLAIN');
    const r = await mech.start(msg);
    if (r.kind === 'success') {
      // The password is the third NUL-separated field; success without it would be a bypass.
      const parts = msg.toString('utf8').split('\0');
      if (parts[2] !== PASSWORD || r.username !== 'user') throw new Error(`PLAIN success without the password: ${JSON.stringify(msg.toString('latin1'))}`);
    }
    if (r.kind === 'challenge') {
      // PLAIN has no challenges after a non-empty initial response.
      if (msg.length > 0) throw new Error('PLAIN challenged a non-empty response');
    }
  },
};

/** A client-first message, and mutations applied to a well-formed client-final built on the server's nonce. */
export const saslScram: Target<{ hash: 'SCRAM-SHA-1' | 'SCRAM-SHA-256'; first: Buffer; final: Buffer; proof: Uint8Array }> = {
  name: 'sasl-scram',
  arbitrary: fc.record({
    hash: fc.constantFrom('SCRAM-SHA-1' as const, 'SCRAM-SHA-256' as const),
    first: bytesFrom(corpus('sasl-scram')),
    final: mutated([Buffer.from('c=biws,r=NONCE,p=PROOF'), Buffer.from('c=eSws,r=NONCE,p=PROOF'), Buffer.from('c=biws,r=NONCE,x=y,p=PROOF')], 4),
    proof: fc.uint8Array({ minLength: 20, maxLength: 32 }),
  }),
  setup: ensureAccount,
  async run({ hash, first, final, proof }) {
    const mech = createMechanism(hash, lookup, MECH_OPTS);
    if (!mech) throw new Error('no SCRAM');
    const r1 = await mech.start(first);
    if (r1.kind === 'success') throw new Error('SCRAM success on the first message');
    if (r1.kind !== 'challenge') return;
    const nonce = /(?:^|,)r=([^,]*)/.exec(r1.data.toString('utf8'))?.[1] ?? '';
    const msg = Buffer.from(final.toString('latin1').replace('NONCE', nonce).replace('PROOF', Buffer.from(proof).toString('base64')), 'latin1');
    const r2 = await mech.step(msg);
    // A random proof never verifies (2^-160 at worst).
    if (r2.kind === 'success') throw new Error(`SCRAM success with a random proof: ${JSON.stringify(first.toString('latin1'))}`);
    await mech.step(Buffer.from('extra'));
  },
};

// ---- streams on a real server ---------------------------------------------------

let server: Server | undefined;
let front: WebFront | undefined;
const errorLog = new ErrorLog();
let uses = 0;

async function startFuzzServer(): Promise<void> {
  if (server) return;
  const config = defaultConfig();
  config.c2s.requireTls = false;
  config.c2s.allowPlainWithoutTls = true;
  config.c2s.authTimeout = 3600;
  // Outside the validated range on purpose: logins in the fuzzer cost no PBKDF2.
  config.auth.scramIterations = 1;
  config.auth.failuresPerAddress = 0;
  config.auth.failuresPerAccount = 0;
  config.storage.sqlite.path = ':memory:';
  config.web.maxConnectionsPerAddress = 0;
  config.log.level = 'error';
  const storage = await openStorage(config);
  const s = new Server(config, storage, createLogger('error', errorLog));
  await s.loadModules(allModules);
  await storage.accounts.create({ username: 'user', createdAt: 0, scram: await deriveAllScram(PASSWORD, 1) });
  await storage.accounts.create({ username: 'other', createdAt: 0, scram: await deriveAllScram(PASSWORD, 1) });
  server = s;
  front = new WebFront(s);
  uses = 0;
}

async function stopFuzzServer(): Promise<void> {
  const s = server;
  server = undefined;
  // The front was never started, so no listener's close stops its timers: stop both here.
  // (Without ws.close() the WebSocket heartbeat interval kept every replaced server alive.)
  front?.ws?.close();
  front?.bosh?.close();
  front = undefined;
  if (s) await s.close();
}

/** The fuzz server in use, if any (the leak test holds it weakly across a teardown). */
export function fuzzServer(): Server | undefined {
  return server;
}

/** A new server every so often: the archive of an in-memory database would otherwise grow with every run. */
async function freshServer(): Promise<Server> {
  if (server && ++uses > 2000) await stopFuzzServer();
  await startFuzzServer();
  return server as Server;
}

function checkErrors(input: unknown): void {
  if (errorLog.errors.length > 0) {
    const e = errorLog.errors.splice(0);
    throw new Error(`the server logged an error for ${JSON.stringify(input)}:\n${e.join('\n')}`);
  }
}

/**
 * Let SASL (thread pool), archive commits (next turn) and routing settle: at
 * least 3 turns of the event loop, and when an answer is expected, until
 * nothing new was written for 3 turns (at most 60).
 */
async function settle(out: string[], expectMore: boolean): Promise<void> {
  const start = out.length;
  let seen = start;
  let quiet = 0;
  for (let i = 0; i < 60; i++) {
    await new Promise((r) => setImmediate(r));
    if (out.length !== seen) {
      seen = out.length;
      quiet = 0;
    } else quiet++;
    if (quiet >= 3 && (!expectMore || out.length > start)) return;
  }
  // A loaded machine: the thread pool (PBKDF2) may need real time. Up to 0.5 s more, then go on
  // (a mutated turn often gets no answer at all, and each such wait costs the run).
  for (let i = 0; i < 50 && out.length === start; i++) await new Promise((r) => setTimeout(r, 10));
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

/** The Transport interface in memory, bytes through the same parser the TCP transport uses. */
class MemoryTransport implements Transport {
  readonly kind = 'tcp' as const;
  readonly remoteAddress = '127.0.0.91';
  readonly secure = false;
  readonly canStartTls = false;
  readonly out: string[] = [];
  closed = false;
  sink: TransportSink | undefined;
  private limits: ParserLimits;
  private readonly parser;

  constructor(limits: ParserLimits) {
    this.limits = { ...limits };
    this.parser = createStreamParser(
      {
        onStreamStart: (name, ns, attrs) => this.sink?.onStreamStart(attrs, ns, name),
        onElement: (el) => this.sink?.onElement(el),
        onStreamEnd: () => this.sink?.onStreamEnd(),
        onError: (c, t) => this.sink?.onParseError(c, t),
      },
      this.limits,
    );
  }
  feed(b: Buffer): void {
    if (this.closed) return;
    this.sink?.onActivity();
    this.parser.write(b);
  }
  sendHeader(attrs: Record<string, string>): void {
    this.out.push(`<stream:stream ${JSON.stringify(attrs)}>`);
  }
  send(el: Element): void {
    this.out.push(el.toString());
  }
  sendKeepalive(): void {
    this.out.push(' ');
  }
  startTls(): Promise<void> {
    return Promise.reject(new Error('no TLS in memory'));
  }
  restart(): void {
    this.parser.reset();
  }
  setMaxStanzaSize(bytes: number): void {
    this.limits.maxStanzaSize = bytes;
    this.parser.setLimits(this.limits);
  }
  close(): void {
    this.gone('closed');
  }
  gone(reason: string): void {
    if (this.closed) return;
    this.closed = true;
    this.parser.end();
    const sink = this.sink;
    this.sink = undefined;
    sink?.onClosed(reason);
  }
}

/** After a connection ends nothing of it may stay: no stream, and no session (SM's are ended here). */
function checkGone(s: Server, stream: C2SStream, input: unknown): void {
  if (s.streams.has(stream)) throw new Error(`stream still registered after close: ${JSON.stringify(input)}`);
  for (const sess of [...s.sessions.all()]) {
    if (sess.stream === stream) s.endSession(sess, 'fuzz-end');
  }
  if (s.sessions.count() !== 0) throw new Error(`sessions left behind: ${s.sessions.count()}`);
}

function checkOutput(out: readonly string[], input: unknown): void {
  for (const o of out) if (o.includes('internal-server-error')) throw new Error(`internal-server-error for ${JSON.stringify(input)}:\n${out.join('\n')}`);
}

const conversation = (name: string): fc.Arbitrary<Buffer[]> => mutated(corpus(name), 6).map(turns);

export const c2s: Target<{ turns: Buffer[]; cuts: number[] }> = {
  name: 'c2s',
  arbitrary: fc.record({ turns: conversation('c2s'), cuts: fc.array(fc.nat(), { maxLength: 4 }) }),
  setup: startFuzzServer,
  teardown: stopFuzzServer,
  async run(input) {
    await c2sTranscript(input);
  },
};

/** One c2s conversation on the fuzz server; returns what the server wrote (checked as c2s.run says). */
export async function c2sTranscript(input: { turns: Buffer[]; cuts: number[] }): Promise<string[]> {
  {
    const s = await freshServer();
    const c = s.config.c2s;
    const t = new MemoryTransport({ maxStanzaSize: c.maxStanzaSizePreAuth, maxDepth: c.maxDepth, maxAttributes: c.maxAttributes });
    const stream = new C2SStream(t, s);
    t.sink = stream;
    try {
      for (const turn of input.turns) {
        for (const piece of split(turn, input.cuts)) t.feed(piece);
        await settle(t.out, !t.closed && /<auth|<response|<bind|<iq/.test(turn.toString('latin1')));
        if (t.closed) break;
      }
      checkOutput(t.out, input.turns.map(String));
    } finally {
      t.gone('closed');
      checkGone(s, stream, input.turns.map(String));
      checkErrors(input.turns.map(String));
    }
    return t.out;
  }
}

/** Just enough of a `ws` WebSocket for WebSocketTransport: frames in as events, frames out recorded. */
class FakeWs extends EventEmitter {
  readonly OPEN = 1;
  readyState = 1;
  bufferedAmount = 0;
  readonly out: string[] = [];
  send(s: string): void {
    this.out.push(s);
  }
  ping(): void {}
  close(): void {
    if (this.readyState !== 1) return;
    this.readyState = 3;
    this.emit('close', 1000);
  }
  terminate(): void {
    this.close();
  }
}

export const websocket: Target<{ frames: Buffer[]; binary: number }> = {
  name: 'websocket',
  arbitrary: fc.record({ frames: conversation('websocket'), binary: fc.nat() }),
  setup: startFuzzServer,
  teardown: stopFuzzServer,
  async run(input) {
    const s = await freshServer();
    const c = s.config.c2s;
    const ws = new FakeWs();
    const t = new WebSocketTransport(ws as unknown as WebSocket, {
      info: { address: '127.0.0.92', secure: true, https: false, host: 'localhost', untrustedForwarding: false, knownHost: true },
      limits: { maxStanzaSize: c.maxStanzaSizePreAuth, maxDepth: c.maxDepth, maxAttributes: c.maxAttributes },
      log: s.log,
    });
    const stream = new C2SStream(t, s);
    t.attach(stream);
    const label = input.frames.map(String);
    try {
      input.frames.forEach((f, i) => ws.emit('message', f, i === input.binary % (input.frames.length + 8)));
      await settle(ws.out, true);
      checkOutput(ws.out, label);
    } finally {
      ws.close();
      checkGone(s, stream, label);
      checkErrors(label);
    }
  },
};

export const bosh: Target<Buffer[]> = {
  name: 'bosh',
  arbitrary: conversation('bosh'),
  setup: startFuzzServer,
  teardown: stopFuzzServer,
  async run(bodies) {
    const s = await freshServer();
    const manager = front?.bosh;
    if (!manager) throw new Error('BOSH is off');
    const label = bodies.map(String);
    const replies: BoshReply[] = [];
    let sid = 'none';
    let rid = 1000;
    const info = { address: '127.0.0.93', secure: true, https: false, host: 'localhost', untrustedForwarding: false, knownHost: true };
    for (const raw of bodies) {
      // The corpus writes SID and RID; the real ones are filled in (mutations may break the placeholders).
      const body = Buffer.from(raw.toString('latin1').replace(/SID/g, sid).replace(/RID/g, String(rid++)), 'latin1');
      let calls = 0;
      manager.handle(body, info, (r) => {
        if (++calls > 1) throw new Error(`two responses to one request: ${JSON.stringify(label)}`);
        replies.push(r);
        const m = /sid=["']([^"']+)["']/.exec(r.body);
        if (m) sid = m[1] as string;
      });
      await settle(replies.map((r) => r.body), false);
    }
    checkOutput(
      replies.map((r) => r.body),
      label,
    );
    for (const session of [...manager.sessions.values()]) session.close();
    for (const st of [...s.streams]) st.closeWith();
    await settle([], false);
    // A closed session keeps its final answer for one inactivity period; then the manager's tick drops it.
    const later = Date.now() + (manager.opts.inactivity + manager.opts.maxPause + 5) * 1000;
    for (const session of [...manager.sessions.values()]) session.tick(later);
    for (const sess of [...s.sessions.all()]) s.endSession(sess, 'fuzz-end');
    if (manager.sessions.size !== 0) throw new Error(`BOSH sessions left after close: ${manager.sessions.size}`);
    checkErrors(label);
  },
};

export const allTargets: ReadonlyArray<Target<never>> = [xmlStream, xmlDocument, jid, saslPlain, saslScram, c2s, websocket, bosh, s2s] as unknown as ReadonlyArray<Target<never>>;
