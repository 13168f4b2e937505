/**
 * The production install exactly as docs/operations.md gives it, run for real:
 *
 *   1. a release tarball is made with `npm pack` from a checkout that has the
 *      compiled dist/ but neither src/ nor a TypeScript compiler (so the
 *      `prepare` hook must not need tsc, and the tarball must carry dist/ and
 *      the lockfile as npm-shrinkwrap.json);
 *   2. it is unpacked and `npm ci --omit=dev` runs in it;
 *   3. `node bin/verona.js start` from that tree serves a login (the unit in
 *      deploy/ runs node directly, never npm);
 *   4. the same tarball installed as a package runs with `npx verona`.
 *
 * Sized to be fast: packages come from npm's cache when they are there
 * (prefer-offline), and better-sqlite3's native addon comes from a local
 * prebuild made from the one this checkout already compiled
 * (`npm_config_better_sqlite3_local_prebuilds`, the same switch an operator
 * of an offline host uses, see docs/operations.md) instead of a 2-5 minute
 * compile. Everything else is what an operator runs.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT } from '../helpers/server.js';
import { connectClient } from '../helpers/client.js';

const execFileP = promisify(execFile);
const work = mkdtempSync(path.join(tmpdir(), 'verona-pkg-'));
after(() => rmSync(work, { recursive: true, force: true }));

const NPM_TIMEOUT = 600_000;

/** better-sqlite3's prebuild-install looks for <dir>/<name>-v<version>-node-v<abi>-<platform>-<arch>.tar.gz. */
async function localPrebuilds(): Promise<string> {
  const dir = path.join(work, 'prebuilds');
  mkdirSync(dir, { recursive: true });
  const mod = path.join(ROOT, 'node_modules/better-sqlite3');
  const { version } = (await import(path.join(mod, 'package.json'), { with: { type: 'json' } })).default as { version: string };
  const name = `better-sqlite3-v${version}-node-v${process.versions.modules}-${process.platform}-${process.arch}.tar.gz`;
  await execFileP('tar', ['czf', path.join(dir, name), '-C', mod, 'build/Release/better_sqlite3.node']);
  return dir;
}

async function npm(args: string[], cwd: string, env: Record<string, string>): Promise<string> {
  try {
    const { stdout, stderr } = await execFileP('npm', args, { cwd, env: { ...process.env, ...env }, timeout: NPM_TIMEOUT, maxBuffer: 1 << 24 });
    return stdout + stderr;
  } catch (err) {
    const e = err as Error & { stdout?: string; stderr?: string };
    throw new Error(`npm ${args.join(' ')} failed in ${cwd}: ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

function startFrom(dir: string, configFile: string): Promise<{ ports: Record<string, number>; stop: () => Promise<void> }> {
  const proc = spawn(process.execPath, [path.join(dir, 'bin/verona.js'), 'start', '--config', configFile], { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const out: string[] = [];
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no READY in 60 s:\n${out.join('')}`)), 60_000);
    proc.stderr.on('data', (d: Buffer) => out.push(d.toString()));
    proc.stdout.on('data', (d: Buffer) => {
      out.push(d.toString());
      const m = /^READY (.*)$/m.exec(out.join(''));
      if (m === null) return;
      clearTimeout(timer);
      const exited = new Promise<void>((r) => proc.once('exit', () => r()));
      resolve({
        ports: JSON.parse(m[1]) as Record<string, number>,
        stop: async () => {
          proc.kill('SIGTERM');
          await exited;
        },
      });
    });
    proc.once('exit', (code) => reject(new Error(`server exited with ${code}:\n${out.join('')}`)));
  });
}

test('the release tarball installs with `npm ci --omit=dev`, starts with node, and runs with npx', { timeout: 2 * NPM_TIMEOUT }, async () => {
  // 1. A checkout as a release builder has it after `npm run build`, minus the compiler and the sources.
  const checkout = path.join(work, 'checkout');
  mkdirSync(checkout);
  for (const f of ['package.json', 'package-lock.json', 'README.md', 'verona.example.yml']) cpSync(path.join(ROOT, f), path.join(checkout, f));
  for (const d of ['bin', 'scripts', 'public', 'docs', 'deploy', 'dist/src']) {
    if (existsSync(path.join(ROOT, d))) cpSync(path.join(ROOT, d), path.join(checkout, d), { recursive: true });
  }
  const env = {
    npm_config_prefer_offline: 'true',
    npm_config_better_sqlite3_local_prebuilds: await localPrebuilds(),
    npm_config_update_notifier: 'false',
  };
  const packOut = await npm(['pack', '--pack-destination', work], checkout, env);
  const tgz = readdirSync(work).find((f) => f.endsWith('.tgz'));
  assert.ok(tgz !== undefined, `npm pack made no tarball:\n${packOut}`);
  assert.ok(!existsSync(path.join(checkout, 'npm-shrinkwrap.json')), 'postpack removes the shrinkwrap copy');
  const listing = (await execFileP('tar', ['tzf', path.join(work, tgz)])).stdout.split('\n');
  for (const f of ['package/dist/src/cli/main.js', 'package/bin/verona.js', 'package/npm-shrinkwrap.json', 'package/public/index.html']) {
    assert.ok(listing.includes(f), `${f} is in the tarball`);
  }
  assert.ok(!listing.some((f) => f.startsWith('package/dist/test/') || f.startsWith('package/src/')), 'tests and sources stay out of the tarball');

  // 2. The documented production install.
  const inst = path.join(work, 'verona');
  mkdirSync(inst);
  await execFileP('tar', ['xzf', path.join(work, tgz), '-C', inst, '--strip-components=1']);
  await npm(['ci', '--omit=dev'], inst, env);
  assert.ok(!existsSync(path.join(inst, 'node_modules/typescript')), 'no compiler in a production install');
  assert.ok(!existsSync(path.join(inst, 'node_modules/node-expat')), 'no benchmark-only native module');
  assert.ok(existsSync(path.join(inst, 'node_modules/better-sqlite3/build/Release/better_sqlite3.node')));

  // 3. Run it the way the systemd unit does (node directly), create an account with the CLI, log in.
  const data = path.join(work, 'data');
  const cfg = path.join(work, 'verona.yml');
  writeFileSync(
    cfg,
    JSON.stringify({
      domain: 'localhost',
      dataDir: data,
      log: { level: 'warn' },
      c2s: { host: '127.0.0.70', port: 0, tlsPort: 0, requireTls: false, allowPlainWithoutTls: true },
      web: { host: '127.0.0.70', port: 0, tlsPort: -1 },
      // Not the default 0.0.0.0:5269: federation tests running beside this one hold s2s ports.
      s2s: { host: '127.0.0.70', port: 0, tlsPort: -1 },
    }),
  );
  await execFileP(process.execPath, [path.join(inst, 'bin/verona.js'), 'adduser', 'romeo', '--password', 'r0meo', '--config', cfg]);
  const server = await startFrom(inst, cfg);
  try {
    const c = await connectClient({ port: server.ports.c2s, user: 'romeo', password: 'r0meo', host: '127.0.0.70' });
    assert.match(c.jid, /^romeo@localhost\//);
    c.socket.destroy();
  } finally {
    await server.stop();
  }

  // 4. The tarball as a package: `npx verona` finds the bin.
  const app = path.join(work, 'app');
  mkdirSync(app);
  writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'app', private: true }));
  await npm(['install', '--omit=dev', path.join(work, tgz)], app, env);
  const { stdout } = await execFileP('npx', ['--no-install', 'verona', '--version'], { cwd: app, env: { ...process.env, ...env } });
  assert.match(stdout, /^verona \d+\.\d+\.\d+/);
});
