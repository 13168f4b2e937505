/**
 * Line coverage of the fuzzed sources from V8's own coverage data, without a
 * coverage tool: run the fuzz tests with NODE_V8_COVERAGE=DIR, then
 *
 *   node dist/bench/fuzz-coverage.js DIR
 *
 * A line counts as covered when some code on it ran (V8 block coverage: the
 * innermost range holding a character decides its count). Comment-only and
 * blank lines are left out.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface Range {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface ScriptCoverage {
  url: string;
  functions: Array<{ ranges: Range[] }>;
}

const FILES = ['src/xml/parser.js', 'src/jid/jid.js', 'src/sasl/scram.js', 'src/sasl/plain.js', 'src/c2s/stream.js', 'src/net/web/websocket.js', 'src/net/web/bosh.js', 'src/s2s/incoming.js', 'src/s2s/conn.js', 'src/s2s/policy.js'];

const dir = process.argv[2];
if (dir === undefined) throw new Error('usage: fuzz-coverage.js NODE_V8_COVERAGE-DIR');
const best = new Map<string, Uint32Array>();
for (const f of readdirSync(dir)) {
  if (!f.endsWith('.json')) continue;
  const data = JSON.parse(readFileSync(path.join(dir, f), 'utf8')) as { result: ScriptCoverage[] };
  for (const sc of data.result) {
    const file = FILES.find((x) => sc.url.endsWith(`/dist/${x}`));
    if (!file) continue;
    const src = readFileSync(fileURLToPath(sc.url), 'utf8');
    const counts = new Uint32Array(src.length);
    // Outer ranges first, inner ones overwrite: V8 lists a function's range before its blocks.
    const ranges = sc.functions.flatMap((fn) => fn.ranges).sort((a, b) => a.startOffset - b.startOffset || b.endOffset - a.endOffset);
    for (const r of ranges) counts.fill(Math.min(r.count, 1), r.startOffset, Math.min(r.endOffset, src.length));
    const prev = best.get(file);
    if (prev) for (let i = 0; i < counts.length; i++) prev[i] = Math.max(prev[i] as number, counts[i] as number);
    else best.set(file, counts);
  }
}
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
for (const file of FILES) {
  const counts = best.get(file);
  if (!counts) {
    process.stdout.write(`${file}: not loaded\n`);
    continue;
  }
  const src = readFileSync(path.join(root, file), 'utf8');
  let code = 0;
  let covered = 0;
  let off = 0;
  for (const line of src.split('\n')) {
    const t = line.trim();
    const isCode = t !== '' && !t.startsWith('//') && !t.startsWith('*') && !t.startsWith('/*') && t !== '}' && t !== '};' && t !== ');';
    if (isCode) {
      code++;
      let hit = false;
      for (let i = off; i < off + line.length; i++) {
        if (line[i - off] !== ' ' && counts[i] === 1) {
          hit = true;
          break;
        }
      }
      if (hit) covered++;
    }
    off += line.length + 1;
  }
  process.stdout.write(`${file}: ${((100 * covered) / code).toFixed(1)}% of ${code} lines\n`);
}
