/**
 * Archive write throughput: group commit versus one transaction per message.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/mam-archive.js [--messages 100000] [--sessions 500] [--sync NORMAL|FULL|both]
 *       [--group-only] [--max-batch 500] [--cache-mb N] [--wal-autocheckpoint PAGES]
 *
 * Models the server's load: `sessions` senders each hand one message per
 * event-loop turn to the archive (the way socket reads arrive), every
 * message is stored twice (sender's and recipient's archive), and a message
 * counts only when its commit promise resolved (what stream management
 * waits for before acking). Measured on the real SqliteArchiveStore and
 * GroupCommit, in a temporary database file:
 *
 *   - group commit (the server's setting: flush at the next turn, <= 500 rows);
 *   - group commit with a 2 ms window;
 *   - one transaction per row (what a naive implementation does), for comparison;
 *
 * under synchronous=NORMAL (the default: safe across a process crash) and
 * FULL (fsync on every commit: safe across power loss). Also reports the
 * latency from append() to commit for single messages on an idle archive.
 * Prints a table; asserts nothing.
 *
 * --cache-mb and --wal-autocheckpoint try connection settings the server
 * does not set (yet): at this load most of the commit time is the WAL
 * checkpoint that SQLite runs inside a commit every 1000 pages; a larger
 * autocheckpoint (or checkpoints off the hot path) doubles the throughput.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteStorage } from '../src/storage/sqlite/index.js';
import { SqliteArchiveStore } from '../src/storage/sqlite/archive.js';
import type { ArchiveRecord } from '../src/storage/archive.js';
import { ArchiveClock, archiveIdFor } from '../src/modules/mam/ids.js';

const { values: a } = parseArgs({
  options: {
    messages: { type: 'string', default: '100000' },
    sessions: { type: 'string', default: '500' },
    sync: { type: 'string', default: 'both' },
    /** SQLite page cache in MB for the connection (0 = SQLite's default, about 2 MB). */
    'cache-mb': { type: 'string', default: '0' },
    /** Only the group-commit mode (skip the slower comparisons). */
    'group-only': { type: 'boolean', default: false },
    /** PRAGMA wal_autocheckpoint in pages (0 = SQLite's default, 1000). */
    'wal-autocheckpoint': { type: 'string', default: '0' },
    /** maxBatch of the first mode (the server uses 500). */
    'max-batch': { type: 'string', default: '500' },
  },
});
const MESSAGES = Number(a.messages);
const SESSIONS = Number(a.sessions);
const syncs = a.sync === 'both' ? (['NORMAL', 'FULL'] as const) : ([a.sync as 'NORMAL' | 'FULL'] as const);

const STANZA = (i: number): string =>
  `<message xmlns="jabber:client" from="user${i % SESSIONS}@bench.localhost/res" to="peer${i % SESSIONS}@bench.localhost" type="chat" id="m-${i}"><body>Message number ${i}: but soft, what light through yonder window breaks?</body><origin-id xmlns="urn:xmpp:sid:0" id="o-${i}"/></message>`;

function rows(clock: ArchiveClock, i: number): [ArchiveRecord, ArchiveRecord] {
  const stanza = STANZA(i);
  const s1 = clock.next();
  const s2 = clock.next();
  const u = i % SESSIONS;
  return [
    { username: `user${u}`, seq: s1, id: `stream${u}-m-${i}`, with: `peer${u}@bench.localhost`, withResource: '', outgoing: true, stanza },
    { username: `peer${u}`, seq: s2, id: archiveIdFor(s2), with: `user${u}@bench.localhost`, withResource: 'res', outgoing: false, stanza },
  ];
}

interface Mode {
  name: string;
  /** A store on the given database with this mode's batching. */
  store(db: SqliteStorage): SqliteArchiveStore;
  /** Messages to send (fewer for the slow mode, so that FULL finishes). */
  messages: number;
}

/** Senders hand messages over turn by turn; resolves with the number of messages whose two rows committed. */
async function load(store: SqliteArchiveStore, count: number): Promise<number> {
  const clock = new ArchiveClock(await store.highWater());
  let done = 0;
  let next = 0;
  const inflight: Promise<void>[] = [];
  while (next < count) {
    // One event-loop turn: every session delivers one message.
    for (let s = 0; s < SESSIONS && next < count; s++) {
      const [r1, r2] = rows(clock, next++);
      inflight.push(Promise.all([store.append(r1), store.append(r2)]).then(() => void done++));
    }
    await new Promise((r) => setImmediate(r));
    if (inflight.length > 20 * SESSIONS) await Promise.all(inflight.splice(0));
  }
  await Promise.all(inflight);
  return done;
}

const modes: Mode[] = [
  {
    name: `group commit (next turn, <=${a['max-batch']} rows)`,
    store: (db) => (a['max-batch'] === '500' ? db.archive : new SqliteArchiveStore(db.db, { maxBatch: Number(a['max-batch']) })),
    messages: MESSAGES,
  },
  { name: 'group commit (2 ms window, <=500 rows)', store: (db) => new SqliteArchiveStore(db.db, { windowMs: 2 }), messages: MESSAGES },
  // maxBatch 1: every append commits on its own, as a store without group commit would.
  { name: 'one transaction per row', store: (db) => new SqliteArchiveStore(db.db, { maxBatch: 1 }), messages: Math.min(MESSAGES, 20000) },
];

async function latency(store: SqliteArchiveStore): Promise<{ p50: number; p99: number }> {
  const clock = new ArchiveClock(await store.highWater());
  const t: number[] = [];
  for (let i = 0; i < 2000; i++) {
    const [r1] = rows(clock, 10_000_000 + i);
    const t0 = performance.now();
    await store.append(r1);
    t.push(performance.now() - t0);
  }
  t.sort((x, y) => x - y);
  return { p50: t[Math.floor(t.length * 0.5)] as number, p99: t[Math.floor(t.length * 0.99)] as number };
}

async function main(): Promise<void> {
  process.stdout.write(`mam-archive: ${MESSAGES} messages (2 archive rows each) from ${SESSIONS} senders, cache ${a['cache-mb'] === '0' ? 'default' : a['cache-mb'] + ' MB'}, wal_autocheckpoint ${a['wal-autocheckpoint'] === '0' ? 'default' : a['wal-autocheckpoint']}, node ${process.version}\n\n`);
  process.stdout.write('| synchronous | mode | messages/s | rows/s | commits | rows/commit |\n|---|---|---|---|---|---|\n');
  const lat: string[] = [];
  for (const sync of syncs) {
    for (const mode of a['group-only'] ? modes.slice(0, 1) : modes) {
      const dir = mkdtempSync(path.join(tmpdir(), 'verona-mam-bench-'));
      const storage = SqliteStorage.open(path.join(dir, 'bench.sqlite'), { synchronous: sync });
      if (Number(a['cache-mb']) > 0) storage.db.pragma(`cache_size = -${Number(a['cache-mb']) * 1024}`);
      if (Number(a['wal-autocheckpoint']) > 0) storage.db.pragma(`wal_autocheckpoint = ${Number(a['wal-autocheckpoint'])}`);
      try {
        const store = mode.store(storage);
        const t0 = performance.now();
        const n = await load(store, mode.messages);
        const s = (performance.now() - t0) / 1000;
        const st = store.stats;
        process.stdout.write(`| ${sync} | ${mode.name} | ${Math.round(n / s)} | ${Math.round((2 * n) / s)} | ${st.batches} | ${(st.rows / Math.max(1, st.batches)).toFixed(1)} |\n`);
        if (mode === modes[0]) {
          const l = await latency(store);
          lat.push(`| ${sync} | ${l.p50.toFixed(3)} | ${l.p99.toFixed(3)} |`);
        }
      } finally {
        await storage.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  process.stdout.write('\nSingle message on an idle archive, append() to commit (ms):\n\n| synchronous | p50 | p99 |\n|---|---|---|\n' + lat.join('\n') + '\n');
}

await main();
