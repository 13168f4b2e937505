/**
 * Archive store throughput and latency, SQLite versus PostgreSQL, in one run
 * (a benchmark, not a test: prints a table, asserts nothing).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/pg-archive.js [--messages 100000] [--rate 2000] [--seconds 5]
 *
 * The model of bench/mam-archive.ts: every message is two archive rows (the
 * sender's and the recipient's archive) and counts when both commit promises
 * resolved (what an SM ack waits for). Two measurements per backend:
 *   - saturation: all messages appended as fast as the event loop allows;
 *   - fixed rate: `rate` messages/s for `seconds`, p50/p99 from append to commit.
 * SQLite: a temporary file, synchronous=NORMAL (the default). PostgreSQL: a
 * throwaway server (test/helpers/pg.ts) with fsync ON and synchronous_commit
 * on (its defaults), on loopback. This is the store alone, not the server:
 * the server-level comparison with the benchmark driver is not done yet.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteStorage } from '../src/storage/sqlite/index.js';
import { PostgresStorage } from '../src/storage/postgres/index.js';
import type { ArchiveRecord, ArchiveStore } from '../src/storage/archive.js';
import { ArchiveClock, archiveIdFor } from '../src/modules/mam/ids.js';
import { startPostgres } from '../test/helpers/pg.js';

const { values: a } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    rate: { type: 'string', default: '2000' },
    seconds: { type: 'string', default: '5' },
  },
});
const MESSAGES = Number(a.messages);
const RATE = Number(a.rate);
const SECONDS = Number(a.seconds);
const clock = new ArchiveClock();

function pair(i: number): [ArchiveRecord, ArchiveRecord] {
  const stanza = `<message xmlns="jabber:client" from="u${i % 500}@localhost/r" to="v${i % 500}@localhost" type="chat" id="m${i}"><body>message number ${i} of the benchmark</body></message>`;
  const s1 = clock.next();
  const s2 = clock.next();
  return [
    { username: `u${i % 500}`, seq: s1, id: `st-m${i}`, with: `v${i % 500}@localhost`, withResource: '', outgoing: true, stanza },
    { username: `v${i % 500}`, seq: s2, id: archiveIdFor(s2), with: `u${i % 500}@localhost`, withResource: 'r', outgoing: false, stanza },
  ];
}

const msg = (store: ArchiveStore, i: number): Promise<unknown> => Promise.all(pair(i).map((r) => store.append(r)));

async function saturation(store: ArchiveStore): Promise<number> {
  const t0 = performance.now();
  // 500 senders, one message each per event-loop turn (the way socket reads arrive).
  let next = 0;
  await Promise.all(
    Array.from({ length: 500 }, async () => {
      while (next < MESSAGES) {
        const i = next++;
        await msg(store, i);
      }
    }),
  );
  return MESSAGES / ((performance.now() - t0) / 1000);
}

async function fixedRate(store: ArchiveStore): Promise<{ p50: number; p99: number; achieved: number }> {
  const lat: number[] = [];
  const total = RATE * SECONDS;
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  let sent = 0;
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - t0) / 1000) * RATE));
    for (; sent < due; sent++) {
      const start = performance.now();
      pending.push(msg(store, MESSAGES + sent).then(() => void lat.push(performance.now() - start)));
    }
    await new Promise((r) => setTimeout(r, 1));
  }
  await Promise.all(pending);
  const secs = (performance.now() - t0) / 1000;
  lat.sort((x, y) => x - y);
  const q = (p: number): number => lat[Math.min(lat.length - 1, Math.floor(p * lat.length))] ?? NaN;
  return { p50: q(0.5), p99: q(0.99), achieved: total / secs };
}

async function main(): Promise<void> {
  const rows: string[] = [];
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-bench-pg-'));
  const sqlite = SqliteStorage.open(path.join(dir, 'b.sqlite'), { synchronous: 'NORMAL' });
  sqlite.startMaintenance();
  const pgServer = await startPostgres({ noFsync: false });
  const pgStore = await PostgresStorage.open({ url: await pgServer.createDatabase() });
  try {
    for (const [name, store] of [
      ['SQLite (NORMAL)', sqlite.archive],
      ['PostgreSQL 15 (fsync on)', pgStore.archive],
    ] as const) {
      const sat = await saturation(store);
      const fr = await fixedRate(store);
      rows.push(`| ${name} | ${Math.round(sat)} | ${RATE} (${Math.round(fr.achieved)} achieved) | ${fr.p50.toFixed(1)} | ${fr.p99.toFixed(1)} |`);
    }
  } finally {
    await sqlite.close();
    await pgStore.close();
    await pgServer.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  console.log('| backend | saturation, msgs/s (2 rows each) | fixed rate, msgs/s | p50 ms | p99 ms |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(r);
}

await main();
