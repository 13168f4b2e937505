/**
 * Login storm: what a server sees after a restart or a network blip. `count` clients are online;
 * all their connections drop at the same moment and every client reconnects at once (at most
 * `concurrency` in flight), over whatever transport the target uses (TLS: with the tickets of the
 * previous connection when the target keeps them). Meanwhile `pairs` other users, online all
 * along, exchange `rate` msg/s: the question is whether PBKDF2 and TLS handshakes starve the
 * delivery of their messages, so their latency is reported for a quiet baseline (the `count`
 * sessions online and idle) and for the storm, separately.
 *
 * The stream runs in a worker thread, with its own event loop: in the main thread, the driver's
 * own handshakes for thousands of reconnecting clients delayed the stream's timestamps by
 * hundreds of milliseconds, which would have been charged to the server.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { TlsSessionStore, now, tlsCounters, type LoginOptions, type XmppConn } from './conn.js';
import { CpuMeter, readRssKb } from './proc.js';
import { log, mkConn, pool, range, round, type Result, type Target } from './scenarios.js';
import { DoubleList, latSummary } from './stats.js';

export interface StormOpts extends LoginOptions {
  start: number;
  /** clients that drop and reconnect */
  count: number;
  /** reconnections in flight at once (count = all at once) */
  concurrency: number;
  /** users (2 x pairs, numbered first) exchanging the concurrent stream */
  pairs: number;
  /** msg/s of the concurrent stream, in total */
  rate: number;
  /** seconds of stream measured before the storm */
  baseline: number;
  /** seconds to wait after the storm before the final RSS reading */
  settle: number;
  /**
   * Worker threads the storm's clients are spread over (default 1). One thread driving 10,000
   * TLS clients was the busier side of a storm (93% of a core on a quiet machine while the
   * server used 70%): its own event loop then timed the server out.
   */
  threads?: number;
}

/** Latency of the concurrent stream, by the phase each message was sent in. */
class Stream {
  private readonly sentAt: number[] = [];
  private readonly phaseOf: string[] = [];
  private readonly got: Uint8Array[] = [];
  private phase = 'warmup';
  private readonly lat = new Map<string, DoubleList>();
  private seq = 0;
  private timer: NodeJS.Timeout | null = null;
  received = 0;

  constructor(
    private readonly conns: XmppConn[],
    private readonly rate: number,
  ) {
    conns.forEach((c) => {
      c.onStanza = (el) => {
        if (el.local !== 'message' || el.attrs['type'] === 'error') return;
        const id = el.attrs['id'] ?? '';
        if (id.charCodeAt(0) !== 115 /* s */) return;
        const k = Number(id.slice(1));
        const t = this.sentAt[k];
        const chunk = this.got[k >> 16];
        if (t === undefined || chunk === undefined || chunk[k & 0xffff] === 1) return;
        chunk[k & 0xffff] = 1;
        this.received++;
        const ph = this.phaseOf[k] as string;
        let l = this.lat.get(ph);
        if (l === undefined) this.lat.set(ph, (l = new DoubleList()));
        l.push(now() - t);
      };
    });
  }

  setPhase(p: string): void {
    this.phase = p;
  }

  /** Open loop: every 10 ms, send what is due (no catch-up bursts after a stall of the driver). */
  start(): void {
    const n = this.conns.length;
    let base = now();
    let sent = 0;
    const tick = (): void => {
      const due = Math.floor(((now() - base) / 1000) * this.rate);
      if (due - sent > this.rate) {
        // More than a second behind: the driver stalled; start counting again from here.
        base = now() - (sent / this.rate) * 1000;
      }
      while (sent < Math.floor(((now() - base) / 1000) * this.rate)) {
        const k = this.seq++;
        if ((k & 0xffff) === 0) this.got.push(new Uint8Array(0x10000));
        this.sentAt[k] = now();
        this.phaseOf[k] = this.phase;
        const ui = k % n;
        const from = this.conns[ui] as XmppConn;
        const to = this.conns[ui ^ 1] as XmppConn;
        from.send(`<message to='${to.bare}' type='chat' id='s${k}'><body>stream ${k} ${'z'.repeat(70)}</body></message>`);
        sent++;
      }
      this.timer = setTimeout(tick, 10);
    };
    tick();
  }

  stop(): void {
    if (this.timer !== null) clearTimeout(this.timer);
  }

  get sent(): number {
    return this.seq;
  }

  summary(phase: string): Result {
    let sent = 0;
    let lost = 0;
    for (let k = 0; k < this.seq; k++) {
      if (this.phaseOf[k] !== phase) continue;
      sent++;
      if ((this.got[k >> 16] as Uint8Array)[k & 0xffff] !== 1) lost++;
    }
    return { sent, lost, ...latSummary(this.lat.get(phase)?.view() ?? []) };
  }
}

/** What the main thread tells the stream's worker, and what it answers. */
type ToWorker = { phase: string } | { stop: true };
type FromWorker = { ready: true } | { error: string } | { summaries: Record<string, Result> };

interface StreamWorkerData {
  stormStream: true;
  host: string;
  port: number;
  domain: string;
  mech: Target['mech'];
  tls: Target['tls'];
  users: Array<[string, string]>;
  rate: number;
}

/** The worker's side: log the stream's users in, send and time, report per phase. */
async function streamWorker(d: StreamWorkerData): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  try {
    const t: Target = { host: d.host, port: d.port, domain: d.domain, mech: d.mech, pid: 0, user: (i) => d.users[i - 1] as [string, string], ...(d.tls ? { tls: d.tls } : {}) };
    const conns: XmppConn[] = [];
    for (const i of range(1, d.users.length)) {
      const [u, p] = t.user(i);
      const c = mkConn(t, u, p, 'stream');
      await c.login({ presence: true });
      conns.push(c);
    }
    const stream = new Stream(conns, d.rate);
    stream.start();
    port.on('message', (m: ToWorker) => {
      if ('phase' in m) {
        stream.setPhase(m.phase);
        return;
      }
      stream.stop();
      void (async () => {
        // Let the last stream messages arrive before counting them lost.
        const td = now();
        while (now() - td < 5000 && stream.received < stream.sent) await sleep(100);
        const summaries = { baseline: stream.summary('baseline'), storm: stream.summary('storm'), after: stream.summary('after') };
        await Promise.all(conns.map((c) => c.close(2000)));
        port.postMessage({ summaries } satisfies FromWorker);
      })();
    });
    port.postMessage({ ready: true } satisfies FromWorker);
  } catch (e) {
    port.postMessage({ error: (e as Error).message } satisfies FromWorker);
  }
}

if (!isMainThread && (workerData as StreamWorkerData | null)?.stormStream) void streamWorker(workerData as StreamWorkerData);


/** A slice of the storm's clients, in a worker thread of its own. */
interface ClientsWorkerData {
  stormClients: true;
  host: string;
  port: number;
  domain: string;
  mech: Target['mech'];
  tls: Target['tls'];
  resume: boolean;
  localAddrs: string[];
  users: Array<[string, string]>;
  login: LoginOptions;
  /** logins in flight in this slice, for the storm and for the (unmeasured) first login */
  concurrency: number;
  primeConcurrency: number;
}

/** Milliseconds on a clock that every thread of the process shares. */
const wallMs = (): number => performance.timeOrigin + performance.now();

interface SliceResult {
  ready: number[];
  loginLat: number[];
  fails: number;
  resumed: number;
  full: number;
  errors: Record<string, number>;
  tls: typeof tlsCounters;
}
type ToClients = { go: 'prime' } | { go: 'blip'; t0: number } | { go: 'close' };
type FromClients = { primed: number } | { stormed: SliceResult } | { closed: true } | { error: string };

async function clientsWorker(d: ClientsWorkerData): Promise<void> {
  const port = parentPort;
  if (port === null) return;
  const t: Target = {
    host: d.host, port: d.port, domain: d.domain, mech: d.mech, pid: 0, user: (i) => d.users[i] as [string, string], localAddrs: d.localAddrs,
    ...(d.tls ? { tls: d.tls } : {}), ...(d.resume ? { tlsSessions: new TlsSessionStore() } : {}),
  };
  const conns: Array<XmppConn | null> = new Array(d.users.length).fill(null);
  const post = (m: FromClients): void => port.postMessage(m);
  port.on('message', (m: ToClients) => {
    void (async () => {
      if (m.go === 'prime') {
        let fails = 0;
        await pool(range(0, d.users.length), d.primeConcurrency, async (k) => {
          const [u, p] = t.user(k);
          const c = mkConn(t, u, p, 'storm');
          try {
            await c.login(d.login);
            conns[k] = c;
          } catch (e) {
            if (++fails < 5) log(`prime login ${u}: ${(e as Error).message}`);
            c.destroy();
          }
        });
        post({ primed: fails });
      } else if (m.go === 'blip') {
        for (const c of conns) c?.destroy();
        const r: SliceResult = { ready: [], loginLat: [], fails: 0, resumed: 0, full: 0, errors: {}, tls: tlsCounters };
        await pool(range(0, d.users.length), d.concurrency, async (k) => {
          const [u, p] = t.user(k);
          const c = mkConn(t, u, p, 'storm');
          const ts = now();
          try {
            await c.login(d.login);
            r.ready.push(wallMs() - m.t0);
            r.loginLat.push(now() - ts);
            if (c.tlsInfo?.resumed) r.resumed++;
            else if (c.tlsInfo) r.full++;
            conns[k] = c;
          } catch (e) {
            r.fails++;
            const msg = (e as Error).message.slice(0, 80);
            r.errors[msg] = (r.errors[msg] ?? 0) + 1;
            c.destroy();
            conns[k] = null;
          }
        });
        post({ stormed: r });
      } else {
        await Promise.all(conns.map((c) => c?.close(2000)));
        post({ closed: true });
      }
    })().catch((e: unknown) => post({ error: (e as Error).message }));
  });
}

if (!isMainThread && (workerData as ClientsWorkerData | null)?.stormClients) void clientsWorker(workerData as ClientsWorkerData);

/** Send `msg` to every worker and wait for each one's answer. */
async function all<T>(ws: Worker[], msg: ToClients, pick: (m: FromClients) => T | undefined): Promise<T[]> {
  return Promise.all(
    ws.map(async (w) => {
      const answer = next(w) as Promise<FromClients>;
      w.postMessage(msg);
      const m = await answer;
      if ('error' in m) throw new Error(`storm clients: ${m.error}`);
      const v = pick(m);
      if (v === undefined) throw new Error(`storm clients: unexpected ${JSON.stringify(m).slice(0, 100)}`);
      return v;
    }),
  );
}

function next(w: Worker): Promise<FromWorker | FromClients> {
  return new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
}

export async function storm(t: Target, o: StormOpts): Promise<Result> {
  const login: LoginOptions = { sm: o.sm, carbons: o.carbons, mr2: o.mr2, roster: o.roster, csi: o.csi };
  const nStream = 2 * o.pairs;
  // 1. The users of the concurrent stream log in (in the worker) and stay online throughout.
  const wd: StreamWorkerData = {
    stormStream: true, host: t.host, port: t.port, domain: t.domain, mech: t.mech, tls: t.tls, rate: o.rate,
    users: range(o.start, nStream).map((i) => t.user(i)),
  };
  const worker = new Worker(new URL(import.meta.url), { workerData: wd });
  const hello = await next(worker);
  if ('error' in hello) throw new Error(`stream: ${hello.error}`);
  const stream = { setPhase: (phase: string): void => worker.postMessage({ phase } satisfies ToWorker) };

  // 2. The storm's clients, spread over `threads` workers, log in once (slowly: this is not
  // measured) and get their tickets.
  const first = o.start + nStream;
  const threads = Math.max(1, Math.min(o.threads ?? 1, o.count));
  const slices: Array<Array<[string, string]>> = Array.from({ length: threads }, () => []);
  for (let k = 0; k < o.count; k++) (slices[k % threads] as Array<[string, string]>).push(t.user(first + k));
  const clients = slices.map(
    (users) =>
      new Worker(new URL(import.meta.url), {
        workerData: {
          stormClients: true, host: t.host, port: t.port, domain: t.domain, mech: t.mech, tls: t.tls, resume: t.tlsSessions !== undefined,
          localAddrs: t.localAddrs ?? [], users, login, concurrency: Math.max(1, Math.ceil(o.concurrency / threads)),
          primeConcurrency: Math.max(1, Math.ceil(100 / threads)),
        } satisfies ClientsWorkerData,
      }),
  );
  const tp = now();
  const primeFails = (await all(clients, { go: 'prime' }, (m) => ('primed' in m ? m.primed : undefined))).reduce((x, y) => x + y, 0);
  const primeSecs = (now() - tp) / 1000;
  log(`storm: ${o.count - primeFails} clients online in ${primeSecs.toFixed(1)} s (${threads} client thread${threads > 1 ? 's' : ''})`);
  await sleep(o.settle * 1000);
  const rssOnline = readRssKb(t.pid);

  // 3. Baseline: the stream's latency with everyone online and idle.
  stream.setPhase('baseline');
  await sleep(o.baseline * 1000);

  // 4. The blip: every storm connection drops at once, and every client reconnects at once.
  stream.setPhase('storm');
  let rssPeak = rssOnline ?? 0;
  const sampler = setInterval(() => {
    const r = readRssKb(t.pid);
    if (r !== null && r > rssPeak) rssPeak = r;
  }, 100);
  const cpu = new CpuMeter(t.pid);
  cpu.start();
  const t0 = now();
  const parts = await all(clients, { go: 'blip', t0: wallMs() }, (m) => ('stormed' in m ? m.stormed : undefined));
  const ready = new DoubleList();
  const loginLat = new DoubleList();
  let fails = 0;
  let resumed = 0;
  let full = 0;
  const errors = new Map<string, number>();
  for (const r of parts) {
    r.ready.forEach((x) => ready.push(x));
    r.loginLat.forEach((x) => loginLat.push(x));
    fails += r.fails;
    resumed += r.resumed;
    full += r.full;
    for (const [m, n] of Object.entries(r.errors)) errors.set(m, (errors.get(m) ?? 0) + n);
    // The handshake counters the report prints live in each thread: add the workers' to ours.
    tlsCounters.handshakes += r.tls.handshakes;
    tlsCounters.resumed += r.tls.resumed;
    for (const [k, n] of Object.entries(r.tls.protocols)) tlsCounters.protocols[k] = (tlsCounters.protocols[k] ?? 0) + n;
  }
  const stormSecs = (now() - t0) / 1000;
  const cpuw = cpu.stop();
  stream.setPhase('after');
  await sleep(o.settle * 1000);
  clearInterval(sampler);
  const rssAfter = readRssKb(t.pid);
  const done = next(worker);
  worker.postMessage({ stop: true } satisfies ToWorker);
  const fin = await done;
  await worker.terminate();
  if (!('summaries' in fin)) throw new Error('stream worker: ' + JSON.stringify(fin));
  const base = fin.summaries['baseline'] as Result;
  const during = fin.summaries['storm'] as Result;
  const ratio = typeof base['p99_ms'] === 'number' && typeof during['p99_ms'] === 'number' && base['p99_ms'] > 0 ? round(during['p99_ms'] / base['p99_ms'], 2) : null;
  const res: Result = {
    scenario: 'storm', count: o.count, concurrency: o.concurrency, client_threads: threads, mech: t.mech, prime_secs: round(primeSecs, 2), prime_fails: primeFails,
    fails, errors: Object.fromEntries(errors), storm_secs: round(stormSecs, 2), logins_per_s: round((o.count - fails) / stormSecs, 1),
    time_to_ready: latSummary(ready.view()), login_latency: latSummary(loginLat.view()), tls_resumed: resumed, tls_full: full,
    rss_online_kb: rssOnline, rss_peak_kb: rssPeak, rss_after_kb: rssAfter,
    stream: { rate: o.rate, pairs: o.pairs, baseline: base, storm: during, after: fin.summaries['after'], p99_ratio: ratio },
    ...cpuw,
  };
  await all(clients, { go: 'close' }, (m) => ('closed' in m ? true : undefined));
  await Promise.all(clients.map((w) => w.terminate()));
  return res;
}
