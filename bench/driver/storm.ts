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
import { now, type LoginOptions, type XmppConn } from './conn.js';
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

function next(w: Worker): Promise<FromWorker> {
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

  // 2. The storm's clients log in once (slowly: this is not measured) and get their tickets.
  const first = o.start + nStream;
  const conns: Array<XmppConn | null> = new Array(o.count).fill(null);
  let primeFails = 0;
  const tp = now();
  await pool(range(0, o.count), 100, async (k) => {
    const [u, p] = t.user(first + k);
    const c = mkConn(t, u, p, 'storm');
    try {
      await c.login(login);
      conns[k] = c;
    } catch (e) {
      if (++primeFails < 5) log(`prime login ${u}: ${(e as Error).message}`);
      c.destroy();
    }
  });
  const primeSecs = (now() - tp) / 1000;
  log(`storm: ${o.count - primeFails} clients online in ${primeSecs.toFixed(1)} s`);
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
  for (const c of conns) c?.destroy();
  const ready = new DoubleList();
  const loginLat = new DoubleList();
  let fails = 0;
  let resumed = 0;
  let full = 0;
  const errors = new Map<string, number>();
  await pool(range(0, o.count), o.concurrency, async (k) => {
    const [u, p] = t.user(first + k);
    const c = mkConn(t, u, p, 'storm');
    const ts = now();
    try {
      await c.login(login);
      const tr = now();
      ready.push(tr - t0);
      loginLat.push(tr - ts);
      if (c.tlsInfo?.resumed) resumed++;
      else if (c.tlsInfo) full++;
      conns[k] = c;
    } catch (e) {
      fails++;
      const m = (e as Error).message.slice(0, 80);
      errors.set(m, (errors.get(m) ?? 0) + 1);
      c.destroy();
      conns[k] = null;
    }
  });
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
    scenario: 'storm', count: o.count, concurrency: o.concurrency, mech: t.mech, prime_secs: round(primeSecs, 2), prime_fails: primeFails,
    fails, errors: Object.fromEntries(errors), storm_secs: round(stormSecs, 2), logins_per_s: round((o.count - fails) / stormSecs, 1),
    time_to_ready: latSummary(ready.view()), login_latency: latSummary(loginLat.view()), tls_resumed: resumed, tls_full: full,
    rss_online_kb: rssOnline, rss_peak_kb: rssPeak, rss_after_kb: rssAfter,
    stream: { rate: o.rate, pairs: o.pairs, baseline: base, storm: during, after: fin.summaries['after'], p99_ratio: ratio },
    ...cpuw,
  };
  await Promise.all(conns.map((c) => c?.close(2000)));
  return res;
}
