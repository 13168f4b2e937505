/**
 * The s2s fuzz target: each input is an inbound server-to-server
 * conversation (turns of bytes, test/fuzz/corpus/s2s/, mutated) written over
 * a real loopback TCP socket into the listener startS2S opened, that is
 * S2SManager.accept -> S2SConn -> IncomingStream, on an in-process server
 * for `localhost`. A second in-process server, `peer.example`, is the
 * authoritative server for dialback: a <db:result/> makes localhost open
 * its real outgoing stream (STARTTLS, SASL EXTERNAL with certificates from
 * a throwaway test CA) and send <db:verify/> to it. No DNS: peers come from
 * s2s.hosts. peer.example is in localhost's s2s.insecureDomains, so dialback
 * works on the plain socket for it and is refused (tls-required) for others.
 *
 * The harness fills in what a real peer would know: `DBKEY` becomes the
 * valid dialback key of peer.example for the stream id localhost just gave,
 * `VKEY` the key localhost itself would have issued for `<db:verify
 * from='peer.example' to='localhost' id='fuzz-verify-id'>`. When localhost
 * answers <proceed/>, the harness does the TLS handshake, presenting
 * peer.example's certificate (so SASL EXTERNAL can succeed after STARTTLS).
 *
 * What must hold for every input:
 *   - nothing escapes: no uncaught exception or unhandled rejection, nothing
 *     logged at error level by either server, no internal-server-error;
 *   - what localhost writes is well-formed XMPP (attacker text it echoes is escaped);
 *   - no authentication without proof: no SASL <success/> on the plain socket,
 *     a <db:result type='valid'/> on it only for the key the peer's server
 *     made for this stream, a <db:verify type='valid'/> only for the key
 *     localhost made;
 *   - the stream ends: after the client's half-close localhost closes the socket;
 *   - localhost still serves: every 100 inputs a well-formed <db:verify/> gets type='valid';
 *   - nothing is left behind: the manager's incoming streams, their domains,
 *     the per-address counts, the queues and the pending dialback verifications
 *     return to empty (S2SManager.holdings).
 */
import fc from 'fast-check';
import net from 'node:net';
import tls from 'node:tls';
import { readFileSync } from 'node:fs';
import { defaultConfig } from '../../src/config/defaults.js';
import { Server } from '../../src/core/server.js';
import { createLogger } from '../../src/core/logger.js';
import { NS } from '../../src/core/namespaces.js';
import { openStorage } from '../../src/storage/index.js';
import { allModules } from '../../src/modules/index.js';
import { deriveAllScram } from '../../src/sasl/credentials.js';
import { startS2S } from '../../src/s2s/index.js';
import type { S2SManager } from '../../src/s2s/manager.js';
import { dialbackKey } from '../../src/s2s/dialback.js';
import { NS_DIALBACK } from '../../src/s2s/ns.js';
import { createStreamParser } from '../../src/xml/parser.js';
import type { Element } from '../../src/xml/element.js';
import type { StreamParser } from '../../src/xml/stream-parser.contract.js';
import { makeCA, type TestCA } from '../helpers/s2s-servers.js';
import { corpus, mutated, split, turns } from './mutate.js';
import { ErrorLog } from './error-log.js';
import type { Target } from './targets.js';

export const LOCAL = 'localhost';
export const PEER = 'peer.example';
/** From the helper's loopback range: the servers listen here, the fuzz client connects from CLIENT_ADDR. */
const HOST = '127.0.5.1';
const CLIENT_ADDR = '127.0.5.2';
const LOCAL_SECRET = 'fuzz-secret-of-localhost';
const PEER_SECRET = 'fuzz-secret-of-peer.example';
export const VERIFY_ID = 'fuzz-verify-id';
/** Waits on a loaded machine: long enough never to fire when the server works, short enough to report a hang. */
const CLOSE_WAIT_MS = 10_000;
/** How long a turn that should be answered waits for the first byte when localhost is not busy with a verification. */
const ANSWER_WAIT_MS = 50;

export interface S2SPair {
  local: Server;
  peer: Server;
  /** localhost's s2s manager (the one fuzzed). */
  m: S2SManager;
  /** localhost's s2s port on HOST. */
  port: number;
  uses: number;
  /** peer.example's certificate and key, presented by the fuzz client in its TLS handshake. */
  peerCert: { cert: string; key: string };
}

let ca: TestCA | undefined;
let pair: S2SPair | undefined;
const errorLog = new ErrorLog();
const crashes: string[] = [];
const onCrash = (err: unknown): void => {
  crashes.push(err instanceof Error ? (err.stack ?? err.message) : String(err));
};

async function fedServer(domain: string, secret: string, hosts: Record<string, string>, insecure: string[]): Promise<{ s: Server; m: S2SManager }> {
  if (!ca) throw new Error('no test CA');
  const config = defaultConfig();
  config.domain = domain;
  config.storage.sqlite.path = ':memory:';
  config.log.level = 'error';
  // Outside the validated range on purpose: the account below costs no PBKDF2.
  config.auth.scramIterations = 1;
  Object.assign(config.s2s, { host: HOST, port: 0, tlsPort: -1, ca: [ca.ca], hosts, dialbackSecret: secret, insecureDomains: insecure, connectTimeout: 5 });
  const storage = await openStorage(config);
  const s = new Server(config, storage, createLogger('error', errorLog));
  const leaf = ca.leaf(domain);
  s.tlsCredentials = { cert: readFileSync(leaf.cert, 'utf8'), key: readFileSync(leaf.key, 'utf8') };
  await s.loadModules(allModules);
  await storage.accounts.create({ username: 'user', createdAt: 0, scram: await deriveAllScram('pencil', 1) });
  const m = await startS2S(s);
  if (!m) throw new Error(`s2s did not start for ${domain}`);
  return { s, m };
}

/** Both servers (localhost, the fuzzed one; peer.example, its dialback authority), and the crash watch. */
export async function startS2SPair(): Promise<S2SPair> {
  if (pair) return pair;
  ca ??= makeCA();
  if (!process.listeners('uncaughtException').includes(onCrash)) {
    process.on('uncaughtException', onCrash);
    process.on('unhandledRejection', onCrash);
  }
  const peer = await fedServer(PEER, PEER_SECRET, {}, []);
  const local = await fedServer(LOCAL, LOCAL_SECRET, { [PEER]: `${HOST}:${peer.s.ports.s2s}`, 'gone.example': `${HOST}:1` }, [PEER]);
  // The peer reaches localhost through s2s.hosts too (it never has to: localhost authenticates with EXTERNAL).
  peer.s.config.s2s.hosts[LOCAL] = `${HOST}:${local.s.ports.s2s}`;
  const leaf = ca.leaf(PEER);
  const peerCert = { cert: readFileSync(leaf.cert, 'utf8'), key: readFileSync(leaf.key, 'utf8') };
  pair = { local: local.s, peer: peer.s, m: local.m, port: local.s.ports.s2s as number, uses: 0, peerCert };
  return pair;
}

export async function stopS2SPair(): Promise<void> {
  const p = pair;
  pair = undefined;
  if (p) await Promise.all([p.local.close(), p.peer.close()]);
  process.removeListener('uncaughtException', onCrash);
  process.removeListener('unhandledRejection', onCrash);
  ca?.cleanup();
  ca = undefined;
}

/** New servers every so often: the in-memory archive and offline store grow with the stanzas delivered. */
async function freshPair(): Promise<S2SPair> {
  if (pair && ++pair.uses > 1000) {
    const p = pair;
    pair = undefined;
    await Promise.all([p.local.close(), p.peer.close()]);
  }
  return startS2SPair();
}

/** The harness's placeholders, filled in as a real peer would (see the file comment). */
export function fill(turn: Buffer, streamId: string): Buffer {
  const t = turn.toString('latin1');
  if (!t.includes('DBKEY') && !t.includes('VKEY')) return turn;
  return Buffer.from(t.replace(/DBKEY/g, dialbackKey(PEER_SECRET, LOCAL, PEER, streamId)).replace(/VKEY/g, dialbackKey(LOCAL_SECRET, PEER, LOCAL, VERIFY_ID)), 'latin1');
}

/** What localhost wrote on one socket layer (the plain one, then the TLS one after STARTTLS), parsed. */
interface Segment {
  secure: boolean;
  headers: Array<Record<string, string>>;
  elements: Element[];
  malformed?: string;
  ended: boolean;
  raw: string[];
}

const OUT_LIMITS = { maxStanzaSize: 8 * 1048576, maxDepth: 64, maxAttributes: 64 };
const nextTurn = (): Promise<void> => new Promise((r) => setImmediate(r));
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** One fuzz client connection to localhost's s2s port. */
export class S2SClient {
  socket: net.Socket | tls.TLSSocket;
  readonly segments: Segment[] = [];
  closed = false;
  /** Bytes received so far (settle watches it). */
  received = 0;
  private parser: StreamParser | undefined;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.layer(socket, false);
  }

  static connect(port: number): Promise<S2SClient> {
    return new Promise((resolve, reject) => {
      const sock = net.connect({ host: HOST, port, localAddress: CLIENT_ADDR });
      sock.once('error', reject);
      sock.once('connect', () => {
        sock.removeListener('error', reject);
        resolve(new S2SClient(sock));
      });
    });
  }

  get segment(): Segment {
    return this.segments[this.segments.length - 1] as Segment;
  }

  /** The id of the last stream header localhost sent (dialback keys are bound to it). */
  get streamId(): string {
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const h = this.segments[i]?.headers;
      const last = h?.[h.length - 1];
      if (last?.id !== undefined) return last.id;
    }
    return '';
  }

  private layer(sock: net.Socket, secure: boolean): void {
    const seg: Segment = { secure, headers: [], elements: [], ended: false, raw: [] };
    this.segments.push(seg);
    this.parser?.end();
    const parser = createStreamParser(
      {
        onStreamStart: (_name, _ns, attrs) => seg.headers.push(attrs),
        onElement: (el) => {
          seg.elements.push(el);
          // A peer starts a new stream after SASL success (RFC 6120 §6.4.6); the server sends a new header.
          if (el.is('success', NS.SASL)) parser.reset();
        },
        onStreamEnd: () => {
          seg.ended = true;
        },
        onError: (condition, text) => {
          seg.malformed ??= `${condition}: ${text}`;
        },
      },
      OUT_LIMITS,
    );
    this.parser = parser;
    sock.on('data', (d: Buffer) => {
      this.received += d.length;
      seg.raw.push(d.toString('utf8'));
      if (seg.ended) {
        // Nothing may follow </stream:stream>; whitespace aside.
        if (d.toString('utf8').trim() !== '') seg.malformed ??= `data after </stream:stream>: ${JSON.stringify(d.toString('utf8').slice(0, 200))}`;
        return;
      }
      parser.write(d);
    });
    sock.on('error', () => undefined);
    sock.on('close', () => {
      if (this.socket === sock) this.closed = true;
    });
  }

  write(b: Buffer): void {
    if (!this.closed && !this.socket.destroyed) this.socket.write(b);
  }

  /** localhost said <proceed/> on the plain socket and the client has not switched yet. */
  get proceedPending(): boolean {
    const s = this.segment;
    return !s.secure && s.elements.some((e) => e.is('proceed', NS.TLS));
  }

  /** The client side of STARTTLS, with peer.example's certificate; false when localhost closed instead. */
  async upgrade(cert: { cert: string; key: string }): Promise<boolean> {
    const plain = this.socket;
    plain.removeAllListeners('data');
    const sec = tls.connect({ socket: plain, servername: LOCAL, rejectUnauthorized: false, cert: cert.cert, key: cert.key });
    this.socket = sec;
    this.layer(sec, true);
    const r = await new Promise<'ok' | 'failed' | 'hang'>((resolve) => {
      const t = setTimeout(() => resolve('hang'), CLOSE_WAIT_MS);
      sec.once('secureConnect', () => {
        clearTimeout(t);
        resolve('ok');
      });
      sec.once('error', () => {
        clearTimeout(t);
        resolve('failed');
      });
      sec.once('close', () => {
        clearTimeout(t);
        resolve('failed');
      });
    });
    if (r === 'hang') throw new Error('the TLS handshake after <proceed/> neither completed nor failed');
    if (r === 'failed') this.closed = true;
    return r === 'ok';
  }

  /**
   * Let localhost answer: until nothing new arrived for 3 turns of the event loop and no dialback
   * verification is on its way (`busy`: the first one opens the outgoing stream to peer.example,
   * TCP, TLS and EXTERNAL). When an answer is expected, up to ANSWER_WAIT_MS for its first bytes:
   * everything else localhost does for a turn happens within a few turns (same process, loopback),
   * and a mutated turn often gets no answer at all (an unfinished tag).
   */
  async settle(expectMore: boolean, busy: () => boolean): Promise<void> {
    const start = this.received;
    const until = Date.now() + (expectMore ? ANSWER_WAIT_MS : 0);
    const give = Date.now() + CLOSE_WAIT_MS;
    let seen = start;
    let quiet = 0;
    for (let i = 0; Date.now() < give; i++) {
      if (i < 60) await nextTurn();
      else await sleep(2);
      if (this.received !== seen) {
        seen = this.received;
        quiet = 0;
      } else quiet++;
      if (busy()) quiet = 0;
      else if (quiet >= 3 && (!expectMore || this.closed || this.received > start || Date.now() >= until)) return;
    }
  }

  /** Half-close (as a peer ending its stream does) and wait for localhost to close the socket. */
  async end(): Promise<void> {
    if (!this.closed) this.socket.end();
    const until = Date.now() + CLOSE_WAIT_MS;
    while (!this.closed && Date.now() < until) await sleep(5);
    if (!this.closed) throw new Error(`localhost did not close the socket within ${CLOSE_WAIT_MS / 1000} s of the peer's half-close`);
  }

  destroy(): void {
    this.socket.destroy();
    this.parser?.end();
  }

  /** Everything localhost wrote, for failure reports. */
  transcript(): string {
    return this.segments.map((s) => `[${s.secure ? 'tls' : 'plain'}] ${s.raw.join('')}`).join('\n');
  }
}

/** Expect an answer to this turn (a header, dialback, STARTTLS, SASL); stanzas and <bidi/> may get none. */
function answered(turn: Buffer): boolean {
  return /<stream:stream|<db:|<starttls|<auth|:result|:verify/.test(turn.toString('latin1'));
}

function check(c: S2SClient, sent: readonly string[], label: unknown): void {
  const fail = (why: string): never => {
    throw new Error(`${why}\ninput: ${JSON.stringify(label)}\nlocalhost wrote:\n${c.transcript()}`);
  };
  const all = sent.join('');
  for (const seg of c.segments) {
    if (seg.malformed !== undefined) fail(`localhost wrote malformed XML (${seg.malformed})`);
    for (const el of seg.elements) {
      if (el.name === 'error' && el.getChild('internal-server-error') !== undefined) fail('internal-server-error');
      if (!seg.secure && el.is('success', NS.SASL)) fail('SASL success on a socket without TLS');
      if (el.xmlns === NS_DIALBACK && el.attrs.type === 'valid') {
        const asker = el.attrs.to ?? '';
        const ours = el.attrs.from ?? '';
        if (el.name === 'verify') {
          const key = dialbackKey(LOCAL_SECRET, asker, ours, el.attrs.id ?? '');
          if (!all.includes(key)) fail(`<db:verify type='valid'/> for a key localhost never made (${asker} -> ${ours})`);
        } else if (!seg.secure) {
          // On a plain socket only the authoritative server's key proves the domain (no certificate).
          const ids = c.segments.flatMap((s) => s.headers.map((h) => h.id ?? ''));
          if (asker !== PEER || !ids.some((id) => all.includes(dialbackKey(PEER_SECRET, ours, PEER, id)))) fail(`<db:result type='valid'/> for ${asker} without its key`);
        }
      }
    }
  }
  for (const o of c.segments.flatMap((s) => s.raw)) if (o.includes('internal-server-error')) fail('internal-server-error');
}

/** After the socket closed, localhost's s2s manager holds nothing of it (counts polled while closes finish). */
async function checkLeftBehind(m: S2SManager, label: unknown): Promise<void> {
  const empty = (): boolean => {
    const h = m.holdings();
    return m.holdings(CLIENT_ADDR).incoming === 0 && h.incoming === 0 && h.incomingDomains === 0 && h.addresses === 0 && h.queued === 0 && h.verifying === 0;
  };
  for (let i = 0; i < 20 && !empty(); i++) await nextTurn();
  // Stanzas queued for peer.example wait for the outgoing stream, and a dialback verdict may still be
  // on its way after the socket closed (what it does then is part of the check): both bounded by connectTimeout.
  const until = Date.now() + CLOSE_WAIT_MS;
  while (!empty() && Date.now() < until) await sleep(10);
  if (!empty()) throw new Error(`left behind in the s2s manager: ${JSON.stringify(m.holdings())}\ninput: ${JSON.stringify(label)}`);
}

function checkErrors(label: unknown): void {
  if (crashes.length > 0) throw new Error(`uncaught in the process for ${JSON.stringify(label)}:\n${crashes.splice(0).join('\n')}`);
  if (errorLog.errors.length > 0) throw new Error(`a server logged an error for ${JSON.stringify(label)}:\n${errorLog.errors.splice(0).join('\n')}`);
}

/** One conversation with localhost's s2s listener; returns the client (its segments) after the checks. */
export async function s2sConversation(input: { turns: Buffer[]; cuts: number[] }): Promise<S2SClient> {
  const p = await freshPair();
  const label = input.turns.map((t) => t.toString('latin1'));
  const c = await S2SClient.connect(p.port);
  const sent: string[] = [];
  try {
    for (const raw of input.turns) {
      if (c.closed) break;
      const turn = fill(raw, c.streamId);
      sent.push(turn.toString('latin1'));
      for (const piece of split(turn, input.cuts)) c.write(piece);
      await c.settle(answered(turn), () => p.m.holdings().verifying > 0);
      if (c.proceedPending && !c.closed) await c.upgrade(p.peerCert);
    }
    await c.end();
    check(c, sent, label);
  } finally {
    c.destroy();
  }
  await checkLeftBehind(p.m, label);
  checkErrors(label);
  return c;
}

const PROBE = [
  `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${PEER}' to='${LOCAL}' version='1.0'>`,
  `<db:verify from='${PEER}' to='${LOCAL}' id='${VERIFY_ID}'>VKEY</db:verify>`,
].map((t) => Buffer.from(t));
let runs = 0;

/** Still serving sanely: a well-formed request after the fuzzed ones gets its right answer. */
async function probe(): Promise<void> {
  const c = await s2sConversation({ turns: PROBE, cuts: [] });
  const ok = c.segments[0]?.elements.some((e) => e.name === 'verify' && e.attrs.type === 'valid');
  if (!ok) throw new Error(`localhost no longer answers a valid <db:verify/>:\n${c.transcript()}`);
}

export const s2s: Target<{ turns: Buffer[]; cuts: number[] }> = {
  name: 's2s',
  arbitrary: fc.record({ turns: mutated(corpus('s2s'), 6).map(turns), cuts: fc.array(fc.nat(), { maxLength: 4 }) }),
  setup: async () => {
    await startS2SPair();
  },
  teardown: stopS2SPair,
  async run(input) {
    await s2sConversation(input);
    if (++runs % 100 === 0) await probe();
  },
};
