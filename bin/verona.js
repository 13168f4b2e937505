#!/usr/bin/env node
// The `verona` command. The code lives in src/cli/main.ts, compiled by
// `npm run build` (or the `prepare` script on install) into dist/.
import { main } from '../dist/src/cli/main.js';

const code = await main(process.argv.slice(2));
process.exitCode = code;
// Normally nothing is left running and Node exits by itself. If something
// still holds the event loop (a listener left over from a failed start), do
// not hang: this timer is unref'd, so it only fires in that case.
setTimeout(() => process.exit(code), 2000).unref();
