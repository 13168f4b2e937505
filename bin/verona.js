#!/usr/bin/env node
// The `verona` command. The code lives in src/cli/main.ts, compiled by
// `npm run build` (or the `prepare` script on install) into dist/.
import { setTimeout } from 'node:timers';

let main;
try {
  ({ main } = await import('../dist/src/cli/main.js'));
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    process.stderr.write('verona: not built yet; run "npm run build" first\n');
    process.exit(1);
  }
  throw err;
}

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Normally nothing is left running and Node exits by itself. If something
// still holds the event loop (a listener left over from a failed start), do
// not hang: this timer is unref'd, so it only fires in that case.
setTimeout(() => process.exit(code), 2000).unref();
