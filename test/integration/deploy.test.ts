/**
 * Deployment files in deploy/:
 * - the systemd unit passes `systemd-analyze verify` without a warning and has
 *   the sandboxing, file-descriptor limit and state directory docs/operations.md
 *   promises, and runs node directly;
 * - the Containerfile is checked statically (no container engine runs in CI):
 *   multi-stage, production install, non-root, data volume, health check,
 *   node as the entry point;
 * - the health check script the image uses tells a running server from a dead port.
 * Without systemd-analyze the first test is skipped with a reason, except
 * under CI (env CI set), where that is a failure.
 */
import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { ROOT, startVerona, type Verona } from '../helpers/server.js';

const execFileP = promisify(execFile);
const UNIT = path.join(ROOT, 'deploy/verona.service');
const CONTAINERFILE = path.join(ROOT, 'deploy/Containerfile');
const ANALYZE = '/usr/bin/systemd-analyze';
const noAnalyze = !existsSync(ANALYZE) && !process.env.CI ? `${ANALYZE} not found (apt-get install -y systemd)` : false;

/** key -> values of the [Service] section (a key may repeat). */
function serviceSection(text: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const s = /^\[(.+)\]$/.exec(line);
    if (s !== null) {
      section = s[1];
      continue;
    }
    const eq = line.indexOf('=');
    if (section !== 'Service' || eq < 0) continue;
    const key = line.slice(0, eq);
    out.set(key, [...(out.get(key) ?? []), line.slice(eq + 1)]);
  }
  return out;
}

test('the systemd unit passes systemd-analyze verify', { skip: noAnalyze }, async () => {
  const { stdout, stderr } = await execFileP(ANALYZE, ['verify', UNIT]);
  assert.equal(stdout + stderr, '', 'no warnings');
});

test('the systemd unit is sandboxed, sized for 100k sessions, owns its state directory, runs node', () => {
  const svc = serviceSection(readFileSync(UNIT, 'utf8'));
  const one = (k: string): string | undefined => svc.get(k)?.at(-1);
  assert.equal(one('ProtectSystem'), 'strict');
  assert.equal(one('NoNewPrivileges'), 'yes');
  assert.equal(one('ProtectHome'), 'yes');
  assert.equal(one('PrivateTmp'), 'yes');
  assert.ok(Number(one('LimitNOFILE')) >= 100_000 + 1024, `LimitNOFILE ${one('LimitNOFILE')}`);
  assert.equal(one('StateDirectory'), 'verona');
  assert.equal(one('User'), 'verona');
  assert.equal(one('CapabilityBoundingSet'), '');
  assert.match(one('ExecStart') ?? '', /^\/usr\/bin\/node \/opt\/verona\/bin\/verona\.js start /);
  assert.doesNotMatch(one('ExecStart') ?? '', /\bnpm\b/);
  assert.match(one('ExecReload') ?? '', /kill -HUP \$MAINPID/);
  // The config's dataDir and the unit's state directory must agree.
  assert.match(readFileSync(path.join(ROOT, 'verona.example.yml'), 'utf8'), /^dataDir: \/var\/lib\/verona$/m);
});

test('the Containerfile: multi-stage, production install, non-root, data volume, health check, node entry point', () => {
  const lines = readFileSync(CONTAINERFILE, 'utf8')
    .replace(/\\\n/g, ' ')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  const froms = lines.filter((l) => /^FROM /i.test(l));
  assert.ok(froms.length >= 2, 'multi-stage');
  const lastFrom = lines.lastIndexOf(froms[froms.length - 1]);
  const final = lines.slice(lastFrom);
  const instr = (name: string): string[] => final.filter((l) => l.toUpperCase().startsWith(`${name} `)).map((l) => l.slice(name.length + 1).trim());
  // Nothing in the final stage compiles or installs build tools.
  assert.ok(!final.some((l) => /apt-get install|g\+\+|tsc/.test(l)), 'final stage has no build tools');
  assert.ok(instr('COPY').some((c) => c.startsWith('--from=')), 'final stage copies the installed tree from an earlier stage');
  assert.ok(lines.some((l) => /npm ci --omit=dev/.test(l)), 'the documented production install is used');
  const user = instr('USER').at(-1);
  assert.ok(user !== undefined && user !== 'root' && user !== '0', `runs as a non-root user (${user})`);
  assert.match(instr('VOLUME').join(' '), /\/var\/lib\/verona/);
  assert.match(instr('HEALTHCHECK').join(' '), /CMD .*deploy\/healthcheck\.js/);
  assert.match(instr('ENTRYPOINT').join(' '), /^\["node", "\/opt\/verona\/bin\/verona\.js"\]$/);
  // Every file the image copies from the build context exists.
  for (const c of lines.filter((l) => /^COPY /i.test(l) && !/--from=/.test(l))) {
    const parts = c.split(/\s+/).slice(1, -1);
    for (const p of parts) assert.ok(existsSync(path.join(ROOT, p)), `COPY source ${p} exists`);
  }
  const cfg = path.join(ROOT, 'deploy/container.yml');
  assert.ok(existsSync(cfg));
});

let v: Verona;
before(async () => {
  v = await startVerona({ config: { c2s: { host: '127.0.0.73' } } });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

async function health(port: number): Promise<{ code: number; stderr: string }> {
  try {
    await execFileP(process.execPath, [path.join(ROOT, 'deploy/healthcheck.js'), '127.0.0.73', String(port), 'localhost']);
    return { code: 0, stderr: '' };
  } catch (err) {
    const e = err as { code: number; stderr: string };
    return { code: e.code, stderr: e.stderr };
  }
}

test('the health check passes against a running server and fails on a dead port', async () => {
  assert.deepEqual(await health(v.ports.c2s), { code: 0, stderr: '' });
  // A port nobody listens on: take a free one and close it.
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.73', () => r()));
  const dead = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  const r = await health(dead);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^unhealthy: /);
});
