/**
 * Phone login benchmark (not a test): time and round trips from TCP connect
 * to "ready to chat" (authenticated, bound, SM on, forking on, caught up),
 * classic SCRAM vs SASL2 + Bind2 + FAST, on loopback and through a delaying
 * proxy, and logins per second with each.
 *
 *   node dist/bench/phone-login.js [delayMs=25] [seconds=10] [concurrency=16]
 *
 * - classic: header, SCRAM-SHA-256 (2 exchanges), restart, MR2 enable, bind,
 *   SM enable, MAM metadata query (to know where to catch up): each waits for
 *   its answer, as clients do.
 * - fast: header, one <authenticate mechanism='HT-SHA-256-NONE'> carrying
 *   Bind2 with MR2 + SM and the user agent; the <bound/> answer has SM's
 *   <enabled/> and the MAM metadata.
 * The client caches its SCRAM SaltedPassword (as real clients do), so the
 * client's PBKDF2 is not in the SCRAM figures; the server never runs PBKDF2
 * on either path (stored keys; HMAC for the token).
 * The proxy delays every chunk by `delayMs` in each direction (an RTT of
 * 2 x delayMs more than loopback).
 */
import net from 'node:net';
import os from 'node:os';
import { createHash, createHmac, pbkdf2Sync, randomBytes, randomUUID } from 'node:crypto';
import { Parser, type Element } from '@xmpp/xml';
import { startVerona } from '../test/helpers/server.js';

const HEADER = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>";

class Conn {
  private parser = new Parser();
  private queue: Element[] = [];
  private waiter: ((el: Element) => void) | undefined;
  roundTrips = 0;
  constructor(readonly sock: net.Socket) {
    sock.setNoDelay(true);
    sock.on('data', (d: Buffer) => this.parser.write(d.toString('utf8')));
    sock.on('error', () => undefined);
    this.reset();
  }
  reset(): void {
    this.parser = new Parser();
    this.parser.on('element', (el: Element) => {
      if (this.waiter) {
        const w = this.waiter;
        this.waiter = undefined;
        w(el);
      } else this.queue.push(el);
    });
    this.parser.on('error', () => undefined);
  }
  private next(): Promise<Element> {
    const el = this.queue.shift();
    if (el) return Promise.resolve(el);
    return new Promise((r) => (this.waiter = r));
  }
  /** Send, then wait for the first top-level element that matches (one round trip). */
  async ask(xml: string, pred: (el: Element) => boolean = () => true): Promise<Element> {
    this.roundTrips++;
    this.sock.write(xml);
    for (;;) {
      const el = await this.next();
      if (pred(el)) return el;
    }
  }
  close(): void {
    this.sock.destroy();
  }
}

function connect(port: number): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1' }, () => resolve(new Conn(s)));
    s.once('error', reject);
  });
}

const salted = new Map<string, Buffer>();

async function classic(port: number, user: string, password: string): Promise<number> {
  const c = await connect(port);
  await c.ask(HEADER, (el) => el.name === 'stream:features');
  const nonce = randomBytes(18).toString('base64');
  const first = `n=${user},r=${nonce}`;
  const ch = await c.ask(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-256'>${Buffer.from('n,,' + first).toString('base64')}</auth>`);
  const sf = Buffer.from(ch.text(), 'base64').toString();
  const a = Object.fromEntries(sf.split(',').map((p) => [p[0], p.slice(2)]));
  const key = `${user}\0${String(a.s)}`;
  let sp = salted.get(key);
  if (!sp) salted.set(key, (sp = pbkdf2Sync(password, Buffer.from(String(a.s), 'base64'), Number(a.i), 32, 'sha256')));
  const wp = `c=biws,r=${String(a.r)}`;
  const ck = createHmac('sha256', sp).update('Client Key').digest();
  const sig = createHmac('sha256', createHash('sha256').update(ck).digest()).update(`${first},${sf},${wp}`).digest();
  const proof = Buffer.from(ck.map((b, i) => b ^ (sig[i] as number))).toString('base64');
  const ok = await c.ask(`<response xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>${Buffer.from(`${wp},p=${proof}`).toString('base64')}</response>`);
  if (ok.name !== 'success') throw new Error(`classic auth failed: ${ok.toString()}`);
  c.reset();
  await c.ask(HEADER, (el) => el.name === 'stream:features');
  await c.ask(`<enable xmlns='urn:xmpp:mr2:0'/>`);
  await c.ask(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>phone</resource></bind></iq>`);
  await c.ask(`<enable xmlns='urn:xmpp:sm:3' resume='true'/>`);
  await c.ask(`<iq type='get' id='m'><query xmlns='urn:xmpp:mam:2' queryid='m'><metadata/></query></iq>`);
  c.close();
  return c.roundTrips;
}

interface Token {
  token: string;
  agent: string;
}

async function getToken(port: number, user: string, password: string): Promise<Token> {
  const c = await connect(port);
  await c.ask(HEADER, (el) => el.name === 'stream:features');
  const agent = randomUUID();
  const r = await c.ask(
    `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='PLAIN'><initial-response>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</initial-response>` +
      `<user-agent id='${agent}'/><request-token xmlns='urn:xmpp:fast:0' mechanism='HT-SHA-256-NONE'/></authenticate>`,
  );
  c.close();
  const token = r.getChild('token', 'urn:xmpp:fast:0')?.attrs.token;
  if (!token) throw new Error(`no token: ${r.toString()}`);
  return { token: String(token), agent };
}

async function fast(port: number, user: string, t: Token): Promise<number> {
  const c = await connect(port);
  await c.ask(HEADER, (el) => el.name === 'stream:features');
  const mac = createHmac('sha256', Buffer.from(t.token)).update('Initiator').digest();
  const ir = Buffer.concat([Buffer.from(`${user}\0`), mac]).toString('base64');
  const ok = await c.ask(
    `<authenticate xmlns='urn:xmpp:sasl:2' mechanism='HT-SHA-256-NONE'><initial-response>${ir}</initial-response><user-agent id='${t.agent}'/>` +
      `<bind xmlns='urn:xmpp:bind:0'><tag>phone</tag><enable xmlns='urn:xmpp:mr2:0'/><enable xmlns='urn:xmpp:sm:3' resume='true'/></bind><fast xmlns='urn:xmpp:fast:0'/></authenticate>`,
  );
  if (ok.name !== 'success' || !ok.getChild('bound')?.getChild('metadata')) throw new Error(`fast login failed: ${ok.toString()}`);
  c.close();
  return c.roundTrips;
}

/** A TCP proxy that delays every chunk by `ms` in each direction (order kept). */
function delayingProxy(target: number, ms: number): Promise<{ port: number; close: () => void }> {
  const srv = net.createServer((client) => {
    const up = net.connect({ port: target, host: '127.0.0.1' });
    for (const [a, b] of [[client, up], [up, client]] as const) {
      a.setNoDelay(true);
      a.on('data', (d) => setTimeout(() => b.write(d), ms));
      a.on('close', () => setTimeout(() => b.destroy(), ms));
      a.on('error', () => undefined);
    }
  });
  return new Promise((r) => srv.listen(0, '127.0.0.1', () => r({ port: (srv.address() as net.AddressInfo).port, close: () => srv.close() })));
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] as number;
}

async function timeLogins(n: number, f: () => Promise<number>): Promise<{ ms: number; p90: number; rt: number }> {
  const times: number[] = [];
  let rt = 0;
  for (let i = 0; i < n; i++) {
    const t = process.hrtime.bigint();
    rt = await f();
    times.push(Number(process.hrtime.bigint() - t) / 1e6);
  }
  times.sort((a, b) => a - b);
  return { ms: median(times), p90: times[Math.floor(times.length * 0.9)] as number, rt };
}

async function rate(seconds: number, concurrency: number, f: () => Promise<number>): Promise<number> {
  let done = 0;
  const end = Date.now() + seconds * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (Date.now() < end) {
      await f();
      done++;
    }
  }));
  return done / seconds;
}

async function main(): Promise<void> {
  const delay = Number(process.argv[2] ?? 25);
  const seconds = Number(process.argv[3] ?? 10);
  const concurrency = Number(process.argv[4] ?? 16);
  const users: Array<[string, string]> = Array.from({ length: concurrency }, (_, i) => [`p${i}`, `pw${i}`]);
  const v = await startVerona({ users, config: { log: { level: 'warn' }, auth: { failuresPerAddress: 1000000, failuresPerAccount: 1000000 } } });
  try {
    const port = v.ports.c2s as number;
    const tokens = await Promise.all(users.map(([u, p]) => getToken(port, u, p)));
    const [u0, p0] = users[0] as [string, string];
    const t0 = tokens[0] as Token;
    // Warm-up (JIT, SQLite page cache).
    for (let i = 0; i < 20; i++) {
      await classic(port, u0, p0);
      await fast(port, u0, t0);
    }
    const out: Record<string, unknown> = {};
    out.loopback = { classic: await timeLogins(50, () => classic(port, u0, p0)), fast: await timeLogins(50, () => fast(port, u0, t0)) };
    const proxy = await delayingProxy(port, delay);
    out[`delay${delay}msEachWay`] = {
      classic: await timeLogins(10, () => classic(proxy.port, u0, p0)),
      fast: await timeLogins(10, () => fast(proxy.port, u0, t0)),
    };
    proxy.close();
    let k = 0;
    out.loginsPerSecond = {
      concurrency,
      seconds,
      classic: Math.round(await rate(seconds, concurrency, () => { const i = k++ % concurrency; const [u, p] = users[i] as [string, string]; return classic(port, u, p); })),
      fast: Math.round(await rate(seconds, concurrency, () => { const i = k++ % concurrency; return fast(port, (users[i] as [string, string])[0], tokens[i] as Token); })),
    };
    // The machine's load while this ran: the figures are indicative on a shared machine.
    out.loadAverage = os.loadavg().map((l) => Math.round(l * 10) / 10);
    console.log(JSON.stringify(out, null, 2));
  } finally {
    await v.stop();
    v.cleanup();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exitCode = 1;
});
