/**
 * The driver's scenarios. Each mirrors the mode of the same name in the shared Python driver
 * (/work/shared/bench/driver/xmppbench.py), with the same defaults and the same RESULT fields,
 * so that figures from both drivers can be compared line by line. Additions over the Python
 * driver: `login` (login rate with connection churn), `--mr2`, CPU of driver and server in every
 * result, and latency counted over messages *sent* in the measurement window (so a message that
 * is stuck for long still counts, rather than only the ones that happened to arrive in time).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { NS, XmppConn, XmppError, now, type LoginOptions, type TlsMode, type TlsSessionStore } from './conn.js';
import { CpuMeter, readRssKb } from './proc.js';
import type { Mechanism } from './sasl.js';
import { CopyLedger, DoubleList, chatMasks, latSummary, type LatencySummary } from './stats.js';
import { child, escapeXml, findDeep, type XElement } from './xml.js';

export interface Target {
  host: string;
  port: number;
  domain: string;
  mech: Mechanism;
  /** Credentials of user number i (1-based, like user1/pass1). */
  user: (i: number) => [string, string];
  /** Server PID for RSS and CPU figures (0 = unknown). */
  pid: number;
  /** Source addresses used in turn for new connections (empty: let the kernel choose). */
  localAddrs?: string[];
  /** TLS for every connection ('none': plaintext c2s). */
  tls?: TlsMode;
  /** Present: TLS sessions are kept per user and resumed on the next connection. */
  tlsSessions?: TlsSessionStore;
}

let connCounter = 0;

/** Every connection of every scenario is made here, so source addresses rotate evenly. */
export function mkConn(t: Target, user: string, password: string, resource: string): XmppConn {
  const la = t.localAddrs && t.localAddrs.length > 0 ? t.localAddrs[connCounter++ % t.localAddrs.length] : undefined;
  return new XmppConn({
    host: t.host, port: t.port, domain: t.domain, user, password, resource, mech: t.mech,
    ...(la !== undefined ? { localAddress: la } : {}),
    ...(t.tls !== undefined ? { tls: t.tls } : {}),
    // One ticket per user: a reconnecting client resumes whatever its last connection got.
    ...(t.tlsSessions !== undefined ? { tlsSessions: t.tlsSessions, tlsSessionKey: user } : {}),
  });
}

export type Result = Record<string, unknown>;

export function log(msg: string): void {
  process.stderr.write(msg + '\n');
}

/** Run `fn` over `items` with at most `limit` in flight. */
export async function pool<T>(items: T[], limit: number, fn: (x: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const x = items[next++] as T;
      await fn(x);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

export const range = (start: number, count: number): number[] => Array.from({ length: count }, (_, k) => start + k);

// ------------------------------------------------------------------ register
export interface RegisterOpts {
  start: number;
  count: number;
  concurrency: number;
}

/** XEP-0077 in-band registration of user<i>/pass<i> (for the anchors; Verona uses its CLI). */
export async function register(t: Target, o: RegisterOpts): Promise<Result> {
  let ok = 0;
  let already = 0;
  let fail = 0;
  const t0 = now();
  await pool(range(o.start, o.count), o.concurrency, async (i) => {
    const [u, p] = t.user(i);
    const c = mkConn(t, u, p, 'reg');
    try {
      await c.open();
      await c.iq(
        `<query xmlns='${NS.REGISTER}'><username>${escapeXml(u)}</username><password>${escapeXml(p)}</password></query>`,
      );
      ok++;
    } catch (e) {
      if (String((e as Error).message).includes('conflict')) already++;
      else if (++fail < 5) log(`register ${u}: ${(e as Error).message}`);
    } finally {
      await c.close();
    }
  });
  const secs = (now() - t0) / 1000;
  return { scenario: 'register', ok, already, fail, secs: round(secs, 2), per_s: round((ok + already) / secs, 1) };
}

// ------------------------------------------------------------------ idle
export interface IdleOpts extends LoginOptions {
  start: number;
  checkpoints: number[];
  concurrency: number;
  settle: number;
  hold: number;
}

/** Log users in and keep them idle; logins/s and server RSS per connection at each checkpoint. */
export async function idle(t: Target, o: IdleOpts): Promise<Result> {
  const conns: XmppConn[] = [];
  let fails = 0;
  const base = readRssKb(t.pid);
  const checkpoints: Result[] = [];
  const out: Result = {
    scenario: 'idle', server_pid: t.pid, rss_base_kb: base, sm: !!o.sm, carbons: !!o.carbons, mr2: !!o.mr2,
    csi: o.csi ?? null, mech: t.mech, checkpoints,
  };
  const lat = new DoubleList();
  let done = 0;
  const cps = [...o.checkpoints].sort((a, b) => a - b);
  for (const cp of cps) {
    lat.clear();
    const cpu = new CpuMeter(t.pid);
    cpu.start();
    const t0 = now();
    await pool(range(o.start + done, cp - done), o.concurrency, async (i) => {
      const [u, p] = t.user(i);
      const c = mkConn(t, u, p, 'idle');
      const ts = now();
      try {
        await c.login(o);
        lat.push(now() - ts);
        conns.push(c);
      } catch (e) {
        if (++fails < 5) log(`login ${u}: ${(e as Error).message}`);
        c.destroy();
      }
    });
    const dt = (now() - t0) / 1000;
    const cpuw = cpu.stop();
    await sleep(o.settle * 1000);
    const rss = readRssKb(t.pid);
    const alive = conns.filter((c) => !c.closed).length;
    const rec: Result = {
      n: cp, logged_in: conns.length, alive, fails, login_secs: round(dt, 2), logins_per_s: round((cp - done) / dt, 1),
      login_latency: latSummary(lat.view()), rss_kb: rss, ...cpuw,
    };
    if (base !== null && rss !== null) {
      rec['rss_delta_kb'] = rss - base;
      rec['kb_per_conn'] = round((rss - base) / Math.max(1, alive), 2);
    }
    checkpoints.push(rec);
    log('checkpoint ' + JSON.stringify(rec));
    done = cp;
  }
  if (o.hold > 0) await sleep(o.hold * 1000);
  out['alive_at_end'] = conns.filter((c) => !c.closed).length;
  await Promise.all(conns.map((c) => c.close()));
  return out;
}

// ------------------------------------------------------------------ login
export interface LoginRateOpts extends LoginOptions {
  start: number;
  count: number;
  /** how many distinct users to cycle through (logins reuse them) */
  users: number;
  concurrency: number;
}

/**
 * Login rate with churn: `count` full logins (connect, SASL, bind, presence, ping round trip),
 * `concurrency` in flight, each connection closed right after its login completes.
 */
export async function loginRate(t: Target, o: LoginRateOpts): Promise<Result> {
  let fails = 0;
  const lat = new DoubleList();
  const cpu = new CpuMeter(t.pid);
  const users = Math.max(1, Math.min(o.users, o.count));
  cpu.start();
  const t0 = now();
  await pool(range(0, o.count), o.concurrency, async (k) => {
    const [u, p] = t.user(o.start + (k % users));
    // A distinct resource per attempt: reusing one would make the server kick the previous
    // session (resource conflict) if its close has not been processed yet.
    const c = mkConn(t, u, p, `l${k}`);
    const ts = now();
    try {
      await c.login(o);
      lat.push(now() - ts);
    } catch (e) {
      if (++fails < 5) log(`login ${u}: ${(e as Error).message}`);
    }
    await c.close();
  });
  const secs = (now() - t0) / 1000;
  return {
    scenario: 'login', count: o.count, users, concurrency: o.concurrency, mech: t.mech, fails, secs: round(secs, 2),
    logins_per_s: round((o.count - fails) / secs, 1), login_latency: latSummary(lat.view()), ...cpu.stop(),
  };
}

// ------------------------------------------------------------------ chat
export interface ChatOpts {
  start: number;
  pairs: number;
  resources: number;
  carbons: boolean;
  mr2: boolean;
  sm: boolean;
  /** total msgs/s, open loop; 0 = closed loop with `window` */
  rate: number;
  window: number;
  size: number;
  warmup: number;
  duration: number;
  drain: number;
  concurrency: number;
}

/**
 * Pairs of users message each other's bare JID. Every copy is checked against the ledger:
 * the recipient's R resources each get one, and with carbons/MR2 the sender's other R-1
 * resources each get a sent-copy. Lost, missing and duplicated copies must all be 0.
 */
export async function chat(t: Target, o: ChatOpts): Promise<Result> {
  const R = o.resources;
  const forking = o.carbons || o.mr2 || R > 1;
  const nUsers = 2 * o.pairs;
  const users = range(o.start, nUsers).map((i) => t.user(i));
  const ledger = new CopyLedger();
  const senderOf: number[] = [];
  const inflight = new Int32Array(nUsers);
  const latPrimary = new DoubleList();
  const latAll = new DoubleList();
  const counters = {
    delivered_copies: 0, dups: 0, with_stanza_id: 0, carbon_recv: 0, carbon_sent: 0, direct: 0, unexpected: 0,
    unknown: 0, errors: 0,
  };
  let measuring = false;
  let winFirst = -1; // first sequence number sent in the measurement window
  let winEnd = -1; // first sequence number sent after it
  let deliveredInWindow = 0;
  let copiesInWindow = 0;
  let stopped = false;
  let closedByServer = 0;

  const conns: XmppConn[] = new Array(nUsers * R);
  const loginOpts: LoginOptions = { sm: o.sm, carbons: (o.carbons || R > 1) && !o.mr2, mr2: o.mr2, presence: true };
  const t0 = now();
  await pool(range(0, nUsers * R), o.concurrency, async (ci) => {
    const ui = Math.floor(ci / R);
    const ri = ci % R;
    const [u, p] = users[ui] as [string, string];
    const c = mkConn(t, u, p, `r${ri + 1}`);
    await c.login(loginOpts);
    conns[ci] = c;
  });
  const loginSecs = (now() - t0) / 1000;

  const pad = 'x'.repeat(Math.max(0, o.size - 30));
  const bareOf = users.map(([u]) => `${u}@${t.domain}`);
  const masks = chatMasks(R, 0, forking);

  const sendOne = (ui: number): void => {
    const seq = ledger.sent(now(), masks.expected, masks.primary);
    senderOf[seq] = ui;
    inflight[ui]!++;
    const mid = 'm' + seq;
    (conns[ui * R] as XmppConn).send(
      `<message to='${bareOf[ui ^ 1]}' type='chat' id='${mid}'><body>${mid} ${pad}</body></message>`,
    );
  };
  const pump = (ui: number): void => {
    while (!stopped && (inflight[ui] as number) < o.window) sendOne(ui);
  };

  const handler = (ci: number) => {
    const uj = Math.floor(ci / R);
    const rj = ci % R;
    return (el: XElement): void => {
      if (el.local !== 'message') return;
      const tr = now();
      if (el.attrs['type'] === 'error') {
        counters.errors++;
        return;
      }
      let m: XElement | undefined = el;
      let kind: 'direct' | 'carbon_recv' | 'carbon_sent' = 'direct';
      const rcv = child(el, 'received', NS.CARBONS);
      const snt = rcv ? undefined : child(el, 'sent', NS.CARBONS);
      if (rcv || snt) {
        kind = rcv ? 'carbon_recv' : 'carbon_sent';
        const fw = child((rcv ?? snt) as XElement, 'forwarded', NS.FORWARD);
        m = fw ? child(fw, 'message') : undefined;
      }
      const mid = m?.attrs['id'];
      if (m === undefined || mid === undefined || mid.charCodeAt(0) !== 109 /* m */) {
        counters.unknown++;
        return;
      }
      const seq = Number(mid.slice(1));
      const sender = senderOf[seq];
      if (sender === undefined) {
        counters.unknown++;
        return;
      }
      const slot = uj === sender ? rj : uj === (sender ^ 1) ? R + rj : -1;
      const v = slot < 0 ? 'unexpected' : ledger.received(seq, slot);
      if (v === 'dup') {
        counters.dups++;
        return;
      }
      if (v === 'unexpected' || v === 'unknown') {
        counters.unexpected++;
        return;
      }
      counters[kind]++;
      counters.delivered_copies++;
      if (child(m, 'stanza-id', NS.SID) || child(el, 'stanza-id', NS.SID)) counters.with_stanza_id++;
      const d = tr - ledger.sentTime(seq);
      const inWin = seq >= winFirst && winFirst >= 0 && (winEnd < 0 || seq < winEnd);
      if (inWin) latAll.push(d);
      if (measuring) copiesInWindow++;
      if (v === 'first') {
        if (inWin) latPrimary.push(d);
        if (measuring) deliveredInWindow++;
        inflight[sender]!--;
        if (o.rate <= 0) pump(sender);
      }
    };
  };
  conns.forEach((c, ci) => {
    c.onStanza = handler(ci);
    c.onClose = () => {
      closedByServer++;
    };
  });

  const senders = range(0, nUsers);
  let openLoopTimer: NodeJS.Timeout | null = null;
  if (o.rate > 0) {
    // Open loop: each sender sends every S/rate seconds with a random phase. Because all
    // intervals are equal, the merged schedule is the senders sorted by phase, repeated; one
    // timer walks it, so the rate does not depend on how many timers Node can run.
    const interval = (senders.length / o.rate) * 1000;
    const phases = senders.map((ui) => ({ ui, ph: Math.random() * interval })).sort((a, b) => a.ph - b.ph);
    let base = now();
    let k = 0;
    const S = phases.length;
    const due = (i: number): number => base + Math.floor(i / S) * interval + (phases[i % S] as { ph: number }).ph;
    const tick = (): void => {
      if (stopped) return;
      const tn = now();
      if (tn - due(k) > 1000) {
        // Fell behind by more than a second (driver or socket stalled): do not burst to catch up.
        base = tn - Math.floor(k / S) * interval;
      }
      while (due(k) <= tn) {
        sendOne((phases[k % S] as { ui: number }).ui);
        k++;
      }
      openLoopTimer = setTimeout(tick, Math.max(0, due(k) - now()));
    };
    tick();
  } else {
    for (const ui of senders) pump(ui);
  }

  await sleep(o.warmup * 1000);
  latPrimary.clear();
  latAll.clear();
  const cpu = new CpuMeter(t.pid);
  cpu.start();
  winFirst = ledger.size;
  measuring = true;
  const tm0 = now();
  await sleep(o.duration * 1000);
  measuring = false;
  winEnd = ledger.size;
  const tm = (now() - tm0) / 1000;
  const cpuw = cpu.stop();
  stopped = true;
  if (openLoopTimer !== null) clearTimeout(openLoopTimer);
  const td = now();
  while (now() - td < o.drain * 1000 && ledger.outstanding > 0) await sleep(100);
  const sum = ledger.summary();
  // Primary-copy latency: messages sent in the window that never arrived are not in the
  // percentiles; they are reported as lost instead (and must be 0).
  const res: Result = {
    scenario: 'chat', pairs: o.pairs, resources: R, carbons: forking && !o.mr2, mr2: o.mr2, sm: o.sm,
    mode: o.rate > 0 ? `open-loop ${o.rate} msg/s` : `closed-loop window ${o.window}`, size: o.size,
    login_secs: round(loginSecs, 2), measure_secs: round(tm, 2), sent_in_window: winEnd - winFirst,
    sent_per_s: round((winEnd - winFirst) / tm, 1), delivered_msgs_per_s: round(deliveredInWindow / tm, 1),
    delivered_copies_per_s: round(copiesInWindow / tm, 1), latency_primary: latSummary(latPrimary.view()),
    latency_all_copies: latSummary(latAll.view()), total_sent: sum.total_sent, lost_msgs: sum.lost_msgs,
    missing_copies: sum.missing_copies, dup_copies: sum.dup_copies, copies_expected_per_msg: popcountMask(masks.expected),
    counters, conns_closed_by_server: closedByServer, rss_kb: readRssKb(t.pid), ...cpuw,
  };
  await Promise.all(conns.map((c) => c.close()));
  return res;
}

function popcountMask(m: number): number {
  let n = 0;
  for (let x = m >>> 0; x; x &= x - 1) n++;
  return n;
}

// ------------------------------------------------------------------ MAM
export interface MamOpts {
  src: [string, string];
  dst: [string, string];
  idsFile: string;
}

export interface MamFillOpts extends MamOpts {
  count: number;
  window: number;
  size: number;
}

/** One sender pushes `count` messages to one online receiver; the receiver's stanza-ids go to a file. */
export async function mamfill(t: Target, o: MamFillOpts): Promise<Result> {
  const { writeFileSync } = await import('node:fs');
  const mk = (cred: [string, string]): XmppConn => mkConn(t, cred[0], cred[1], 'fill');
  const src = mk(o.src);
  const dst = mk(o.dst);
  await dst.login();
  await src.login();
  const ids: Array<string | null> = [];
  let inflight = 0;
  let recv = 0;
  let nosid = 0;
  let wake: (() => void) | null = null;
  dst.onStanza = (el) => {
    if (el.local !== 'message' || !child(el, 'body')) return;
    let sid: string | null = null;
    for (const s of el.children) if (s.local === 'stanza-id' && s.ns === NS.SID && s.attrs['by'] === dst.bare) sid = s.attrs['id'] ?? null;
    if (sid === null) nosid++;
    ids.push(sid);
    recv++;
    inflight--;
    const w = wake;
    wake = null;
    w?.();
  };
  src.onStanza = () => undefined;
  const pad = 'y'.repeat(Math.max(0, o.size - 20));
  const to = dst.bare;
  const cpu = new CpuMeter(t.pid);
  cpu.start();
  const t0 = now();
  let lastProgress = t0;
  for (let i = 0; i < o.count; i++) {
    while (inflight >= o.window) await new Promise<void>((r) => (wake = r));
    inflight++;
    src.send(`<message to='${to}' type='chat' id='f${i}'><body>fill ${i} ${pad}</body></message>`);
    if (i % 100000 === 0 && now() - lastProgress > 5000) {
      lastProgress = now();
      log(`mamfill ${i}/${o.count}`);
    }
  }
  const deadline = now() + 30000;
  while (recv < o.count && now() < deadline) await sleep(50);
  const dt = (now() - t0) / 1000;
  writeFileSync(o.idsFile, JSON.stringify(ids));
  const cpuw = cpu.stop();
  await Promise.all([src.close(), dst.close()]);
  return {
    scenario: 'mamfill', count: o.count, received: recv, without_stanza_id: nosid, secs: round(dt, 2),
    msgs_per_s: round(recv / dt, 1), ids_file: o.idsFile, ...cpuw,
  };
}

export interface MamQueryOpts extends MamOpts {
  iterations: number;
  /**
   * Untimed queries of every shape before any timed one. Without them the first pages of a
   * fresh driver process pay for its own JIT warm-up: against Verona the timed last page of 50
   * had a 17-29 ms maximum while a client that does not parse the pages saw at most 5 ms; with 3
   * warm-up queries of that shape alone the maximum was still 7-11 ms, with 10 it was 3-6 ms and
   * still the highest of the five shapes, the first one timed.
   */
  warmup?: number;
}

export async function mamquery(t: Target, o: MamQueryOpts): Promise<Result> {
  const { readFileSync } = await import('node:fs');
  const c = mkConn(t, o.dst[0], o.dst[1], 'q');
  await c.login({ presence: false });
  const ids = JSON.parse(readFileSync(o.idsFile, 'utf8')) as Array<string | null>;
  let n = 0;
  c.onStanza = (el) => {
    if (el.local === 'message' && child(el, 'result', NS.MAM)) n++;
  };
  const rsm = (inner: string): string => `<set xmlns='${NS.RSM}'>${inner}</set>`;
  const formWith = (w: string): string =>
    `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>${NS.MAM}</value></field>` +
    `<field var='with'><value>${escapeXml(w)}</value></field></x>`;
  const len = ids.length;
  const idAt = (k: number): string => escapeXml(ids[Math.max(0, Math.min(len - 1, k))] ?? '');
  const queries: Record<string, string> = {
    last_page_50: rsm('<max>50</max><before/>'),
    after_id_mid_50: rsm(`<max>50</max><after>${idAt(len >> 1)}</after>`),
    after_id_near_end_50: rsm(`<max>50</max><after>${idAt(len - 1000)}</after>`),
    first_page_50: rsm('<max>50</max>'),
    with_peer_last_page_50: formWith(`${o.src[0]}@${t.domain}`) + rsm('<max>50</max><before/>'),
  };
  const results: Record<string, LatencySummary & { results_per_query?: number[]; rsm_count?: string | null }> = {};
  // Warm-up: every shape, before any is timed, so the first shape timed is not the one that
  // pays for the rest of the driver's warming.
  for (let k = 0; k < (o.warmup ?? 0); k++) {
    for (const inner of Object.values(queries)) await c.iq(`<query xmlns='${NS.MAM}' queryid='w${k}'>${inner}</query>`, 'set', undefined, 120000);
  }
  const cpu = new CpuMeter(t.pid);
  cpu.start();
  for (const [name, inner] of Object.entries(queries)) {
    const lat = new DoubleList();
    const counts = new Set<number>();
    let fin: XElement | undefined;
    for (let k = 0; k < o.iterations; k++) {
      n = 0;
      const ts = now();
      const r = await c.iq(`<query xmlns='${NS.MAM}' queryid='mq${k}'>${inner}</query>`, 'set', undefined, 120000);
      lat.push(now() - ts);
      counts.add(n);
      fin = child(r, 'fin', NS.MAM);
    }
    const s: LatencySummary & { results_per_query?: number[]; rsm_count?: string | null } = latSummary(lat.view());
    s.results_per_query = [...counts].sort((a, b) => a - b);
    if (fin) s.rsm_count = findDeep(fin, 'count', NS.RSM)?.text ?? null;
    results[name] = s;
    log(`${name} ${JSON.stringify(s)}`);
  }
  const cpuw = cpu.stop();
  await c.close();
  return { scenario: 'mamquery', archive_ids_known: len, iterations: o.iterations, warmup_queries: o.warmup ?? 0, queries: results, ...cpuw };
}

export function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}

export { XmppError };
