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

test('the s2s harness reaches what it fuzzes: dialback, db:verify, STARTTLS with SASL EXTERNAL, stanzas routed; every seed passes as it is', async () => {
  const { s2sConversation, startS2SPair, LOCAL, PEER, VERIFY_ID } = await import('./s2s-target.js');
  const { corpus, turns, CORPUS_DIR } = await import('./mutate.js');
  const { readdirSync } = await import('node:fs');
  const names = readdirSync(`${CORPUS_DIR}/s2s`).sort();
  const p = await startS2SPair();
  const seeds = corpus('s2s');
  const out = new Map<string, string>();
  // Each seed as committed (the regression inputs among them: 12, 17) holds every invariant of the target.
  for (const [i, seed] of seeds.entries()) {
    const c = await s2sConversation({ turns: turns(seed), cuts: [] });
    out.set(names[i] as string, c.transcript());
  }
  const dialback = out.get('01-dialback-chat.txt') ?? '';
  assert.match(dialback, new RegExp(`<result xmlns="jabber:server:dialback" from="${LOCAL}" to="${PEER}" type="valid"/>`));
  assert.match(out.get('02-verify.txt') ?? '', new RegExp(`<verify xmlns="jabber:server:dialback" from="${LOCAL}" to="${PEER}" id="${VERIFY_ID}" type="valid"/>`));
  assert.match(out.get('02-verify.txt') ?? '', /id="another-id" type="invalid"/);
  const tls = out.get('03-starttls-external.txt') ?? '';
  assert.match(tls, /\[plain\][^\n]*<proceed xmlns="urn:ietf:params:xml:ns:xmpp-tls"\/>/);
  assert.match(tls, /\[tls\][^\n]*<success xmlns="urn:ietf:params:xml:ns:xmpp-sasl"\/>/);
  // EXTERNAL on the plain socket is refused, never a success.
  assert.match(out.get('04-external-without-tls.txt') ?? '', /<failure xmlns="urn:ietf:params:xml:ns:xmpp-sasl"><not-authorized\/><\/failure>/);
  assert.doesNotMatch(out.get('04-external-without-tls.txt') ?? '', /<success/);
  // Stanzas after dialback (01, 05) and after EXTERNAL (03) reached the router; the ping of 05 was answered.
  assert.ok(p.m.received.get({ kind: 'message' }) >= 3, 'messages accepted on incoming s2s streams');
  assert.ok(p.m.authIn.get({ method: 'dialback' }) >= 2 && p.m.authIn.get({ method: 'external' }) >= 1);
  assert.ok(p.m.bidiNegotiated.get({ direction: 'in' }) >= 1, 'the bidi request of 05 was accepted');
  // 17: nothing pipelined after <starttls/> was acted on (no dialback answer at all), and TLS began with a header.
  assert.doesNotMatch(out.get('17-starttls-pipelined.txt') ?? '', /<result /);
  assert.match(out.get('17-starttls-pipelined.txt') ?? '', /\[tls\] <\?xml version='1.0'\?><stream:stream /);
});
