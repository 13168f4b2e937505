/**
 * The short fuzz run in `npm test`: every target on its committed corpus
 * (each entry as it is) and a few hundred mutated inputs, with a seed that
 * changes per run and is printed, so a failure can be replayed with
 * FUZZ_SEED=<seed>. The long run is `npm run fuzz` (bench/fuzz.ts).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import v8 from 'node:v8';
import vm from 'node:vm';
import { allTargets, bosh, fuzzServer, type Target } from './targets.js';

const seed = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;
// Server targets run a real C2SStream per input (milliseconds each); parsers take microseconds.
const RUNS: Record<string, number> = { 'xml-stream': 400, 'xml-document': 400, jid: 1000, 'sasl-plain': 300, 'sasl-scram': 300, c2s: 40, websocket: 40, bosh: 30, s2s: 30 };

for (const t of allTargets as ReadonlyArray<Target<unknown>>) {
  test(`fuzz ${t.name} (seed ${seed})`, async () => {
    await t.setup?.();
    await fc.assert(
      fc.asyncProperty(t.arbitrary, async (input) => {
        await t.run(input);
      }),
      { seed, numRuns: RUNS[t.name] ?? 100, endOnFailure: true, includeErrorInReport: true },
    );
  });
}

after(async () => {
  for (const t of allTargets as ReadonlyArray<Target<unknown>>) await t.teardown?.();
});

test('the c2s harness reaches what it fuzzes: the corpus conversation logs in, binds, chats and gets answers', async () => {
  const { c2sTranscript } = await import('./targets.js');
  const { corpus, turns } = await import('./mutate.js');
  const out = await c2sTranscript({ turns: turns(corpus('c2s')[0] as Buffer), cuts: [] });
  const text = out.join('\n');
  assert.match(text, /<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"/);
  assert.match(text, /<jid>user@localhost\/fuzz<\/jid>/);
  assert.match(text, /<iq type="result" id="r"/);
  assert.match(text, /<fin xmlns="urn:xmpp:mam:2"/);
});

test('a replaced fuzz server is garbage: nothing (a WebFront timer) keeps it alive after teardown', async () => {
  // The long run replaces its server every 2,000 inputs; the WebSocket heartbeat interval of the
  // never-started WebFront kept each replaced one (about 125 kB) reachable: the BOSH target's
  // heap grew by 45-100 B per input (docs/benchmarks.md, "Security").
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  await bosh.setup?.();
  const { corpus, turns } = await import('./mutate.js');
  await bosh.run(turns(corpus('bosh')[0] as Buffer));
  const ref = new WeakRef(fuzzServer() as object);
  await bosh.teardown?.();
  for (let i = 0; i < 20 && ref.deref() !== undefined; i++) {
    await new Promise((r) => setImmediate(r));
    gc();
  }
  assert.equal(ref.deref(), undefined, 'the fuzz server is still reachable after stopFuzzServer');
});
