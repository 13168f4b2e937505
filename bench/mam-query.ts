/**
 * MAM page latency on a large archive (default 1,000,000 messages in one
 * account's archive, among other accounts' rows).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/mam-query.js [--messages 1000000] [--queries 2000] [--server]
 *
 * Fills a temporary SQLite database through the storage API (group commit),
 * then times the query paths clients use, each as a 50-message page:
 *
 *   - catch-up: after-id = a random known id (the MR2 "after my last id");
 *   - with: one contact's messages after a random id;
 *   - last page (RSM <before/>) and backward paging (before = a random id);
 *   - time range: start/end around a random point;
 *   - ids: fetch 10 messages by id;
 *   - metadata (first/last).
 *
 * Store level: runQuery() + the XML of the result messages (parse of each
 * stored row), i.e. the server's work without the socket. With --server it
 * also starts the real server on that database and times whole round trips
 * (IQ out, 50 results + fin back) from a raw client over TCP.
 *
 * Prints p50/p99 per path; asserts nothing.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SqliteStorage } from '../src/storage/sqlite/index.js';
import type { ArchiveRecord } from '../src/storage/archive.js';
import { ArchiveClock, archiveIdFor, stampOf } from '../src/modules/mam/ids.js';
import { parseQuery, runQuery } from '../src/modules/mam/query.js';
import { parseXml } from '../src/xml/parser.js';
import { startVerona } from '../test/helpers/server.js';
import { connectClient } from '../test/helpers/client.js';

const { values: a } = parseArgs({
  options: {
    messages: { type: 'string', default: '1000000' },
    queries: { type: 'string', default: '2000' },
    server: { type: 'boolean', default: false },
  },
});
const N = Number(a.messages);
const Q = Number(a.queries);
const CONTACTS = 50;
const limits = { defaultMax: 50, maxMax: 250 };

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((x, y) => x - y);
  return s[Math.min(s.length - 1, Math.floor(s.length * p))] as number;
}

let seed = 7;
const rnd = (n: number): number => {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed % n;
};

async function fill(storage: SqliteStorage): Promise<{ ids: string[]; seqs: number[] }> {
  const ids: string[] = [];
  const seqs: number[] = [];
  // Two years of history, one message every ~60 s on average.
  let t = Date.now() - N * 60_000;
  const clock = new ArchiveClock(0, () => t);
  const t0 = performance.now();
  let pending: Promise<void>[] = [];
  for (let i = 0; i < N; i++) {
    t += 1 + rnd(120_000);
    const seq = clock.next();
    const id = archiveIdFor(seq);
    ids.push(id);
    seqs.push(seq);
    const c = rnd(CONTACTS);
    const out = rnd(2) === 0;
    const rec: ArchiveRecord = {
      username: 'juliet',
      seq,
      id,
      with: `contact${c}@bench.localhost`,
      withResource: out ? '' : 'phone',
      outgoing: out,
      stanza: out
        ? `<message xmlns="jabber:client" from="juliet@bench.localhost/laptop" to="contact${c}@bench.localhost" type="chat" id="m${i}"><body>Message ${i}: parting is such sweet sorrow</body></message>`
        : `<message xmlns="jabber:client" from="contact${c}@bench.localhost/phone" to="juliet@bench.localhost" type="chat" id="m${i}"><body>Message ${i}: that I shall say good night till it be morrow</body></message>`,
    };
    pending.push(storage.archive.append(rec));
    // Other accounts interleaved, so that the archive is one of many in the table.
    if (i % 4 === 0) {
      const s2 = clock.next();
      pending.push(storage.archive.append({ ...rec, username: `other${rnd(1000)}`, seq: s2, id: archiveIdFor(s2) }));
    }
    if (pending.length >= 5000) {
      await Promise.all(pending);
      pending = [];
    }
  }
  await Promise.all(pending);
  const s = (performance.now() - t0) / 1000;
  process.stdout.write(`filled ${N} messages for juliet (+${Math.floor(N / 4)} other rows) in ${s.toFixed(1)} s (${Math.round((N * 1.25) / s)} rows/s)\n`);
  return { ids, seqs };
}

type Shape = [name: string, build: () => string];

function shapes(ids: string[], seqs: number[]): Shape[] {
  const form = (fields: string): string => `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>${fields}</x>`;
  const f = (k: string, v: string): string => `<field var='${k}'><value>${v}</value></field>`;
  const rsm = (s: string): string => `<set xmlns='http://jabber.org/protocol/rsm'>${s}</set>`;
  const some = (): number => rnd(N - 100);
  return [
    ['catch-up: after-id (50)', () => form(f('after-id', ids[some()] as string)) + rsm('<max>50</max>')],
    ['RSM after (50)', () => rsm(`<max>50</max><after>${ids[some()]}</after>`)],
    ['with contact, after (50)', () => form(f('with', `contact${rnd(CONTACTS)}@bench.localhost`)) + rsm(`<max>50</max><after>${ids[some()]}</after>`)],
    ['last page <before/> (50)', () => rsm('<max>50</max><before/>')],
    ['before id, backward (50)', () => rsm(`<max>50</max><before>${ids[some() + 60]}</before>`)],
    ['with contact, last page (50)', () => form(f('with', `contact${rnd(CONTACTS)}@bench.localhost`)) + rsm('<max>50</max><before/>')],
    ['start/end range (50)', () => {
      const i = some();
      return form(f('start', stampOf(Math.floor((seqs[i] as number) / 1000))) + f('end', stampOf(Math.floor((seqs[i + 90] as number) / 1000)))) + rsm('<max>50</max>');
    }],
    ['ids (10)', () => form(`<field var='ids'>${Array.from({ length: 10 }, () => `<value>${ids[rnd(N)]}</value>`).join('')}</field>`)],
  ];
}

async function storeLevel(storage: SqliteStorage, list: Shape[]): Promise<void> {
  process.stdout.write('\nStore level (runQuery + parse of the result rows), ms:\n\n| query | p50 | p99 | max |\n|---|---|---|---|\n');
  for (const [name, build] of list) {
    const t: number[] = [];
    for (let i = 0; i < Q; i++) {
      const q = parseXml(`<query xmlns='urn:xmpp:mam:2'>${build()}</query>`);
      const t0 = performance.now();
      const plan = parseQuery(q, 'juliet', limits);
      const out = await runQuery(storage.archive, plan);
      for (const r of out.items) parseXml(r.stanza);
      t.push(performance.now() - t0);
    }
    process.stdout.write(`| ${name} | ${pct(t, 0.5).toFixed(3)} | ${pct(t, 0.99).toFixed(3)} | ${Math.max(...t).toFixed(3)} |\n`);
  }
  const t: number[] = [];
  for (let i = 0; i < Q; i++) {
    const t0 = performance.now();
    await storage.archive.bounds('juliet');
    t.push(performance.now() - t0);
  }
  process.stdout.write(`| metadata (first/last) | ${pct(t, 0.5).toFixed(3)} | ${pct(t, 0.99).toFixed(3)} | ${Math.max(...t).toFixed(3)} |\n`);
}

async function serverLevel(dataDir: string, list: Shape[]): Promise<void> {
  const v = await startVerona({ dataDir, users: [['juliet', 'pass']] });
  try {
    const c = await connectClient({ port: v.ports.c2s as number, user: 'juliet', password: 'pass', resource: 'bench' });
    process.stdout.write('\nReal server, raw TCP client, whole round trip (IQ -> results + fin), ms:\n\n| query | p50 | p99 |\n|---|---|---|\n');
    let k = 0;
    for (const [name, build] of list) {
      const t: number[] = [];
      for (let i = 0; i < Math.min(Q, 500); i++) {
        const id = `q${++k}`;
        const t0 = performance.now();
        c.send(`<iq type='set' id='${id}'><query xmlns='urn:xmpp:mam:2' queryid='${id}'>${build()}</query></iq>`);
        const r = await c.next((el) => el.name === 'iq' && el.attrs.id === id, 30000);
        t.push(performance.now() - t0);
        if (r.attrs.type !== 'result') throw new Error(`query failed: ${r.toString()}`);
        c.received.length = 0;
      }
      process.stdout.write(`| ${name} | ${pct(t, 0.5).toFixed(2)} | ${pct(t, 0.99).toFixed(2)} |\n`);
    }
    c.close();
  } finally {
    await v.stop();
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-mamq-bench-'));
  const file = path.join(dir, 'verona.sqlite');
  try {
    const storage = SqliteStorage.open(file, { synchronous: 'NORMAL' });
    const { ids, seqs } = await fill(storage);
    storage.db.pragma('wal_checkpoint(TRUNCATE)');
    process.stdout.write(`database: ${(statSync(file).size / 1e6).toFixed(0)} MB\n`);
    const list = shapes(ids, seqs);
    await storeLevel(storage, list);
    await storage.close();
    if (a.server) await serverLevel(dir, list);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
