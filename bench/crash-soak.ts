/**
 * Crash soak: "nothing the server acked is ever lost, even if the process is
 * killed" (docs/protocol.md), checked the hard way.
 *
 * Senders (MR2 + stream management) write continuously to one receiver
 * account while the server process is killed with SIGKILL at random moments
 * and restarted on the same data directory. Each sender behaves as a careful
 * client: after a crash its resumption fails (the process is new), so for
 * every message it never saw acked it asks its own archive by the computable
 * id (`<stream id>-<message id>`, MAM #extended `ids`) and sends it again only
 * when it is not there. The receiver (MR2) keeps the archive id of the last
 * message it saw and, after each restart, catches up with "everything after
 * that id".
 *
 * At the end, checked by origin-id:
 * - every message acked to a sender is in the sender's and the receiver's archive;
 * - no archive holds a message twice; every message a sender ever wrote is in its archive
 *   (`problems`);
 * - the receiver saw (live or by catch-up) every message of its archive exactly once
 *   (`receiverProblems`). This one also needs the server to deliver a recipient's
 *   messages in archive-id order, or "after the last id I saw" re-fetches some.
 *
 * Run: `npx tsc -p tsconfig.json && node dist/bench/crash-soak.js [cycles] [senders]`
 * (50 cycles by default). test/integration/crash.test.ts runs a short version.
 */
import { pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../test/helpers/server.js';
import { SmClient, mamAll, mamHas } from '../test/integration/sm-client.js';

export interface SoakOptions {
  cycles: number;
  senders: number;
  /** Uptime before each kill, ms (random in [min, max]). */
  minUpMs: number;
  maxUpMs: number;
  /** Messages a sender may have unacked at once. */
  window: number;
  /** Pause between two messages of one sender, ms. */
  gapMs: number;
  log?: (line: string) => void;
}

export interface SoakReport {
  cycles: number;
  written: number;
  acked: number;
  /** Unacked at a crash, found in the archive afterwards (archived but the ack was lost with the process). */
  archivedUnacked: number;
  /** Unacked at a crash, not in the archive: sent again. */
  resent: number;
  senderArchiveRows: number;
  receiverArchiveRows: number;
  receiverLive: number;
  receiverCaughtUp: number;
  /** Broken storage promises: an acked message missing, a message stored twice, a written message lost. */
  problems: string[];
  /** The receiver's view (live + catch-up after the last id it saw) is not each message exactly once. */
  receiverProblems: string[];
}

const PW = 'soak-pass';
const RCV = 'rcv';
const DOMAIN = 'localhost';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const QUIET = { requestEvery: 50, requestAfter: 2 };

interface Msg {
  id: string;
  /** Stream the last copy went out on (its computable archive id prefix). */
  streamId: string;
  acked: boolean;
  /** Known to be in the sender's archive (acked, or found by id after a crash). */
  archived: boolean;
}

class Sender {
  client: SmClient | undefined;
  readonly msgs = new Map<string, Msg>();
  private seq = 0;
  private running = false;
  private loop: Promise<void> | undefined;
  archivedUnacked = 0;
  resent = 0;

  constructor(readonly name: string, private readonly o: SoakOptions) {}

  async connect(port: number): Promise<void> {
    this.client = await SmClient.connect({ port, user: this.name, password: PW, resource: 'soak', mr2: true });
  }

  /** After a crash: every message not acked is looked up by its computable id; missing ones go again. */
  async reconcile(): Promise<void> {
    const c = this.client as SmClient;
    const pending = [...this.msgs.values()].filter((m) => !m.archived);
    const found = await Promise.all(pending.map((m) => mamHas(c, `${m.streamId}-${m.id}`)));
    for (const [i, m] of pending.entries()) {
      if (found[i]) {
        m.archived = true;
        this.archivedUnacked++;
      } else {
        this.resent++;
        this.write(m);
      }
    }
  }

  private write(m: Msg): void {
    const c = this.client as SmClient;
    m.streamId = c.streamId;
    c.sendStanza(
      `<message to='${RCV}@${DOMAIN}' type='chat' id='${m.id}'><body>${m.id}</body><origin-id xmlns='urn:xmpp:sid:0' id='${m.id}'/></message>`,
      m.id,
    );
  }

  /** Apply the acks the client received (called whenever it is convenient; cheap). */
  collectAcks(): void {
    const c = this.client;
    if (!c) return;
    for (const o of c.acked.splice(0)) {
      const m = this.msgs.get(o.tag);
      if (m) {
        m.acked = true;
        m.archived = true;
      }
    }
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      const c = this.client as SmClient;
      let n = 0;
      while (this.running && !c.closed) {
        this.collectAcks();
        if (c.unacked.length < this.o.window) {
          const m: Msg = { id: `${this.name}-${++this.seq}`, streamId: c.streamId, acked: false, archived: false };
          this.msgs.set(m.id, m);
          this.write(m);
          if (++n % 3 === 0) c.send("<r xmlns='urn:xmpp:sm:3'/>");
        } else {
          c.send("<r xmlns='urn:xmpp:sm:3'/>");
        }
        await sleep(this.o.gapMs);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.collectAcks();
  }
}

class Receiver {
  client: SmClient | undefined;
  /** origin-id -> times seen (live or caught up). */
  readonly seen = new Map<string, number>();
  lastId: string | undefined;
  live = 0;
  caughtUp = 0;
  private timer: NodeJS.Timeout | undefined;

  async connect(port: number): Promise<void> {
    this.client = await SmClient.connect({ port, user: RCV, password: PW, resource: 'soak', mr2: true });
    // Catch up: everything after the last archive id this client knows.
    for (const r of await mamAll(this.client, this.lastId)) {
      this.note(r.msg);
      this.lastId = r.id;
      this.caughtUp++;
    }
    this.timer = setInterval(() => this.drain(), 20);
  }

  private note(msg: Element | undefined): void {
    const oid = msg?.getChild('origin-id', 'urn:xmpp:sid:0')?.attrs.id;
    if (oid) this.seen.set(oid, (this.seen.get(oid) ?? 0) + 1);
  }

  drain(): void {
    const c = this.client;
    if (!c) return;
    for (const m of c.drain((e) => e.name === 'message' && e.attrs.type === 'chat')) {
      this.note(m);
      this.live++;
      const sid = m.getChildren('stanza-id', 'urn:xmpp:sid:0').find((s) => s.attrs.by === `${RCV}@${DOMAIN}`);
      if (sid) this.lastId = sid.attrs.id;
    }
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.drain();
  }
}

export async function crashSoak(o: SoakOptions): Promise<SoakReport> {
  const log = o.log ?? (() => undefined);
  const names = Array.from({ length: o.senders }, (_, i) => `sender${i + 1}`);
  const dataDir = mkdtempSync(path.join(tmpdir(), 'verona-soak-'));
  const config = { moduleOptions: { sm: QUIET } };
  const senders = names.map((n) => new Sender(n, o));
  const rcv = new Receiver();
  let server: Verona | undefined = await startVerona({ dataDir, config, users: [[RCV, PW], ...names.map((n): [string, string] => [n, PW])] });
  const problems: string[] = [];
  const receiverProblems: string[] = [];
  try {
    for (let cycle = 1; cycle <= o.cycles + 1; cycle++) {
      const last = cycle === o.cycles + 1;
      if (!server) server = await startVerona({ dataDir, config });
      const port = server.ports.c2s as number;
      await rcv.connect(port);
      await Promise.all(senders.map((s) => s.connect(port)));
      await Promise.all(senders.map((s) => s.reconcile()));
      if (last) {
        // Final round: no crash; let every resend be acked, then check.
        for (const s of senders) (s.client as SmClient).send("<r xmlns='urn:xmpp:sm:3'/>");
        const t0 = Date.now();
        while (senders.some((s) => (s.client as SmClient).unacked.length > 0) && Date.now() - t0 < 10000) await sleep(20);
        for (const s of senders) s.collectAcks();
        break;
      }
      for (const s of senders) s.start();
      const up = o.minUpMs + Math.random() * (o.maxUpMs - o.minUpMs);
      await sleep(up);
      await server.stop('SIGKILL');
      server = undefined;
      await Promise.all(senders.map((s) => s.stop()));
      rcv.stop();
      await Promise.all([...senders.map((s) => (s.client as SmClient).waitClose(3000).catch(() => undefined)), rcv.client?.waitClose(3000).catch(() => undefined)]);
      const acked = senders.reduce((n, s) => n + [...s.msgs.values()].filter((m) => m.acked).length, 0);
      const written = senders.reduce((n, s) => n + s.msgs.size, 0);
      log(`cycle ${cycle}: killed after ${Math.round(up)} ms; ${written} written, ${acked} acked so far`);
    }

    // ---- verification -------------------------------------------------------
    rcv.stop();
    const rows = new Map<string, number>();
    let senderRows = 0;
    for (const s of senders) {
      const arch = await mamAll(s.client as SmClient);
      senderRows += arch.length;
      const count = new Map<string, number>();
      for (const r of arch) {
        const oid = r.msg.getChild('origin-id', 'urn:xmpp:sid:0')?.attrs.id ?? '';
        count.set(oid, (count.get(oid) ?? 0) + 1);
      }
      for (const [oid, n] of count) if (n > 1) problems.push(`${s.name}'s archive holds ${oid} ${n} times`);
      for (const m of s.msgs.values()) {
        if (!count.has(m.id)) problems.push(`${m.acked ? 'ACKED ' : ''}message ${m.id} is missing from ${s.name}'s archive`);
      }
    }
    const rArch = await mamAll(rcv.client as SmClient);
    for (const r of rArch) {
      const oid = r.msg.getChild('origin-id', 'urn:xmpp:sid:0')?.attrs.id ?? '';
      rows.set(oid, (rows.get(oid) ?? 0) + 1);
    }
    for (const [oid, n] of rows) if (n > 1) problems.push(`the receiver's archive holds ${oid} ${n} times`);
    for (const s of senders) {
      for (const m of s.msgs.values()) {
        if (m.acked && !rows.has(m.id)) problems.push(`ACKED message ${m.id} is missing from the receiver's archive`);
        else if (!rows.has(m.id)) problems.push(`message ${m.id} (in ${s.name}'s archive) is missing from the receiver's archive`);
      }
    }
    for (const [oid] of rows) {
      const n = rcv.seen.get(oid) ?? 0;
      if (n !== 1) receiverProblems.push(`the receiver saw ${oid} ${n} times (live + catch-up)`);
    }
    for (const [oid] of rcv.seen) if (!rows.has(oid)) receiverProblems.push(`the receiver saw ${oid}, which is not in its archive`);

    return {
      cycles: o.cycles,
      written: senders.reduce((n, s) => n + s.msgs.size, 0),
      acked: senders.reduce((n, s) => n + [...s.msgs.values()].filter((m) => m.acked).length, 0),
      archivedUnacked: senders.reduce((n, s) => n + s.archivedUnacked, 0),
      resent: senders.reduce((n, s) => n + s.resent, 0),
      senderArchiveRows: senderRows,
      receiverArchiveRows: rArch.length,
      receiverLive: rcv.live,
      receiverCaughtUp: rcv.caughtUp,
      problems,
      receiverProblems,
    };
  } finally {
    for (const s of senders) s.client?.kill();
    rcv.client?.kill();
    if (server) await server.stop();
    // Keep the data dir when something went wrong, for a post-mortem.
    if (problems.length + receiverProblems.length === 0) rmSync(dataDir, { recursive: true, force: true });
    else log(`data kept in ${dataDir}`);
  }
}

async function main(): Promise<void> {
  const cycles = Number(process.argv[2] ?? 50);
  const senders = Number(process.argv[3] ?? 3);
  const t0 = Date.now();
  const report = await crashSoak({ cycles, senders, minUpMs: 200, maxUpMs: 1500, window: 30, gapMs: 4, log: (l) => console.log(l) });
  console.log(
    JSON.stringify(
      {
        ...report,
        problems: report.problems.slice(0, 50),
        problemCount: report.problems.length,
        receiverProblems: report.receiverProblems.slice(0, 50),
        receiverProblemCount: report.receiverProblems.length,
        seconds: Math.round((Date.now() - t0) / 1000),
      },
      null,
      2,
    ),
  );
  process.exitCode = report.problems.length + report.receiverProblems.length === 0 ? 0 : 1;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) await main();
