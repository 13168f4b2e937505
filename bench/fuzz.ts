/**
 * The long fuzz run (`npm run fuzz`): the targets of test/fuzz/targets.ts in
 * batches with fresh seeds until each has used its share of the time budget.
 * Reports, per target, executions, executions per second, the largest
 * resident memory seen and the heap after a full GC at the start and the end
 * (unbounded growth shows there), and stops a target at its first failure
 * with the seed and the shrunk input (the other targets still run). A batch that takes longer than --hang seconds
 * counts as a hang.
 *
 *   node --expose-gc dist/bench/fuzz.js [--minutes 60] [--only c2s,jid] [--out FILE]
 *
 * Run it at low priority on a shared machine: `nice -n 19 npm run fuzz`.
 */
import fc from 'fast-check';
import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { allTargets, type Target } from '../test/fuzz/targets.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '60' },
    only: { type: 'string' },
    out: { type: 'string' },
    hang: { type: 'string', default: '600' },
    batch: { type: 'string', default: '2000' },
  },
});

/** Share of the time per target: the stream targets are slower per input, so they get more time. */
const SHARE: Record<string, number> = { 'xml-stream': 1.5, 'xml-document': 1, jid: 1, 'sasl-plain': 0.75, 'sasl-scram': 0.75, c2s: 2, websocket: 1.5, bosh: 1.5, s2s: 2 };

interface Row {
  target: string;
  executions: number;
  seconds: number;
  perSecond: number;
  maxRssMiB: number;
  heapStartMiB: number;
  heapEndMiB: number;
  failure?: string;
}

const SERVER_TARGETS = new Set(['c2s', 'websocket', 'bosh', 's2s']);

const gc = (globalThis as { gc?: () => void }).gc;
function heapMiB(): number {
  gc?.();
  return process.memoryUsage().heapUsed / 1048576;
}

async function runTarget(t: Target<unknown>, seconds: number, batch: number, hangMs: number): Promise<Row> {
  await t.setup?.();
  const heapStart = heapMiB();
  let executions = 0;
  let maxRss = process.memoryUsage().rss;
  const started = Date.now();
  let failure: string | undefined;
  let seed = (Date.now() ^ (t.name.length * 2654435761)) >>> 1;
  while ((Date.now() - started) / 1000 < seconds && failure === undefined) {
    seed = (seed * 1103515245 + 12345) % 2 ** 31;
    const batchStart = Date.now();
    let watchdog: NodeJS.Timeout | undefined;
    const hang = new Promise<'hang'>((resolve) => {
      watchdog = setTimeout(() => resolve('hang'), hangMs);
    });
    const details = await Promise.race([
      fc.check(fc.asyncProperty(t.arbitrary, async (input) => void (await t.run(input))), { seed, numRuns: batch, endOnFailure: true, includeErrorInReport: true }),
      hang,
    ]);
    clearTimeout(watchdog);
    if (details === 'hang') {
      failure = `hang: a batch of ${batch} (seed ${seed}) took longer than ${hangMs / 1000} s`;
      // The batch may still be running: nothing after it would be measured cleanly.
      process.stdout.write(`${JSON.stringify({ target: t.name, executions, failure })}\n`);
      process.exit(2);
    }
    executions += details.numRuns;
    if (details.failed) {
      failure = `seed ${seed}: ${String(details.errorInstance)}\ncounterexample: ${fc.stringify(details.counterexample)}`;
    }
    maxRss = Math.max(maxRss, process.memoryUsage().rss);
    if (Date.now() - batchStart > 0 && executions % (batch * 20) === 0) {
      process.stderr.write(`${t.name}: ${executions} executions, ${(executions / ((Date.now() - started) / 1000)).toFixed(0)}/s, rss ${(maxRss / 1048576).toFixed(0)} MiB\n`);
    }
  }
  const secs = (Date.now() - started) / 1000;
  const heapEnd = heapMiB();
  await t.teardown?.();
  return {
    target: t.name,
    executions,
    seconds: Math.round(secs),
    perSecond: Math.round(executions / secs),
    maxRssMiB: Math.round(maxRss / 1048576),
    heapStartMiB: Math.round(heapStart * 10) / 10,
    heapEndMiB: Math.round(heapEnd * 10) / 10,
    failure,
  };
}

async function main(): Promise<void> {
  const minutes = Number(values.minutes);
  const only = values.only?.split(',');
  const targets = (allTargets as ReadonlyArray<Target<unknown>>).filter((t) => only === undefined || only.includes(t.name));
  const totalShare = targets.reduce((a, t) => a + (SHARE[t.name] ?? 1), 0);
  const rows: Row[] = [];
  for (const t of targets) {
    const secs = (minutes * 60 * (SHARE[t.name] ?? 1)) / totalShare;
    // A server target takes milliseconds per input: small batches, so that a batch never nears --hang.
    const batch = SERVER_TARGETS.has(t.name) ? Math.min(50, Number(values.batch)) : Number(values.batch);
    const row = await runTarget(t, secs, batch, Number(values.hang) * 1000);
    rows.push(row);
    process.stdout.write(`${JSON.stringify(row)}\n`);
  }
  const total = rows.reduce((a, r) => a + r.executions, 0);
  const summary = { date: new Date().toISOString(), node: process.version, minutes, totalExecutions: total, failures: rows.filter((r) => r.failure).length, rows };
  const out = values.out ?? path.join('bench', 'results', `fuzz-${summary.date.replace(/[:.]/g, '-')}.json`);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, JSON.stringify(summary, null, 2));
  process.stdout.write(`total ${total} executions, ${summary.failures} failures; written to ${out}\n`);
  process.exitCode = summary.failures > 0 ? 1 : 0;
}

await main();
