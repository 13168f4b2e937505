/**
 * Runs every scripted conversation in test/scripts/*.scs as its own test,
 * each against a fresh real server (format: docs/testing.md). Run one with
 * `node --test --test-name-pattern='Romeo subscribes' dist/test/integration/scripts.test.js`.
 */
import { test } from 'node:test';
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { ROOT } from '../helpers/server.js';
import { loadScript, runScript, type Script } from '../helpers/script.js';

const dir = path.join(ROOT, 'test/scripts');
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.scs'))
  .sort();

for (const f of files) {
  let script: Script | undefined;
  let error: unknown;
  try {
    script = loadScript(path.join(dir, f));
  } catch (err) {
    error = err; // reported by this file's own test, not by failing the whole suite
  }
  test(script ? `${script.title} [${f}]` : f, { timeout: 60000 }, async () => {
    if (!script) throw error;
    await runScript(script);
  });
}
