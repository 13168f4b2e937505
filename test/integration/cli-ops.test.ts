/**
 * Operations commands of `verona` (check-config's full report, cert check), split
 * from cli.test.ts so that each file stays well inside the per-file timeout.
 * The `verona` command as an operator runs it: a real process
 * (node bin/verona.js) in a temporary directory, checked by exit code,
 * output, and the database and files it leaves behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const BIN = fileURLToPath(new URL('../../../bin/verona.js', import.meta.url));

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

function run(args: string[], opts: { cwd: string; input?: string; timeoutMs?: number }): Promise<Result> {
  return new Promise((resolve, reject) => {
    const env = { ...process.env };
    delete env.VERONA_CONFIG;
    const child = spawn(process.execPath, [BIN, ...args], { cwd: opts.cwd, env, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`verona ${args.join(' ')} did not finish; stderr: ${stderr}`));
    }, opts.timeoutMs ?? 20_000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    child.stdin.end(opts.input ?? '');
  });
}

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'verona-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('check-config reports every error at once, in file order', async (t) => {
  const cwd = tempDir(t);
  writeFileSync(
    join(cwd, 'bad.yml'),
    ['log:', '  level: loud', 'c2s:', '  maxDepth: 2', '  prot: 5222', 'auth:', '  mechanisms: [PLAIN, FOO]', 'domain: "not a domain!"', ''].join('\n'),
  );
  const r = await run(['check-config', '-c', 'bad.yml', '--data-dir', 'data', '--tls-port', 'x'], { cwd });
  assert.equal(r.code, 2);
  const lines = r.stderr.trimEnd().split('\n');
  const keys = lines.map((l) => /config error: ([\w.]+):/.exec(l)?.[1] ?? l);
  assert.deepEqual(keys, ['c2s.tlsPort', 'log.level', 'c2s.maxDepth', 'c2s.prot', 'auth.mechanisms.1', 'domain', 'verona check-config: 6 errors']);
  assert.match(lines[1], /\(bad\.yml:2\)$/);
  assert.match(lines[5], /\(bad\.yml:8\)$/);
  assert.equal(r.stdout, '');
});

test('cert check: ok with days left, a warning and exit 1 near expiry, for another domain, or without a certificate', async (t) => {
  const cwd = tempDir(t);
  const none = await run(['cert', 'check', '--data-dir', 'data'], { cwd });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^warning: no certificate at /);
  assert.equal((await run(['cert', 'generate', '--data-dir', 'data'], { cwd })).code, 0);
  const ok = await run(['cert', 'check', '--data-dir', 'data'], { cwd });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^ok: .*cert\.pem covers localhost, expires in \d+ days/);
  // The generated certificate lives 825 days: asking for more must warn.
  const soon = await run(['cert', 'check', '--data-dir', 'data', '--days', '900'], { cwd });
  assert.equal(soon.code, 1);
  assert.match(soon.stderr, /^warning: .*expires in \d+ days .*less than 900\n$/);
  const other = await run(['cert', 'check', '--data-dir', 'data', '--domain', 'example.org'], { cwd });
  assert.equal(other.code, 1);
  assert.match(other.stderr, /does not cover example\.org/);
  const bad = await run(['cert', 'show', '--days', '3', '--data-dir', 'data'], { cwd });
  assert.equal(bad.code, 2);
});
