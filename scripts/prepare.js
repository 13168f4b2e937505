#!/usr/bin/env node
// npm's "prepare" hook: runs on `npm install` / `npm ci` in a checkout and before `npm pack`.
//
// A development install has TypeScript (a devDependency) and compiles src/ into dist/ here,
// so that `npm install && npm start` works on a fresh clone. A production install
// (`npm ci --omit=dev` in an unpacked release made by `npm pack`) has no compiler but
// already ships dist/src/: nothing to do. Without either there is nothing that could run,
// so say how to get a runnable tree instead of failing later with "not built yet".
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const built = existsSync(path.join(root, 'dist/src/cli/main.js'));
let tsc;
try {
  tsc = createRequire(path.join(root, 'package.json')).resolve('typescript/bin/tsc');
} catch {
  tsc = undefined;
}

if (tsc !== undefined) {
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(root, 'tsconfig.json')], { stdio: 'inherit' });
  process.exit(r.status ?? 1);
}
if (built) process.exit(0);
process.stderr.write(
  'verona: this checkout has no compiled code (dist/) and no TypeScript compiler.\n' +
    'Either install with dev dependencies (npm ci, which compiles), or install a release\n' +
    'made by `npm pack` (it ships dist/): see docs/operations.md, "Install".\n',
);
process.exit(1);
