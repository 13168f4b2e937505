/**
 * The `verona` command as an operator runs it: a real process
 * (node bin/verona.js) in a temporary directory, checked by exit code,
 * output, and the database and files it leaves behind.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { verifyPassword } from '../../src/sasl/credentials.js';

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

async function withDb<T>(dir: string, fn: (s: SqliteStorage) => Promise<T>): Promise<T> {
  const s = SqliteStorage.open(join(dir, 'data', 'verona.sqlite'), { synchronous: 'NORMAL' });
  try {
    return await fn(s);
  } finally {
    await s.close();
  }
}

async function passwordWorks(dir: string, username: string, password: string): Promise<boolean> {
  return withDb(dir, async (s) => {
    const rec = await s.accounts.get(username);
    if (rec === undefined) return false;
    const a = await verifyPassword(password, rec.scram['SHA-256'], 'SHA-256');
    const b = await verifyPassword(password, rec.scram['SHA-1'], 'SHA-1');
    assert.equal(a, b, 'both credentials agree');
    return a;
  });
}

test('--version, --help, and usage mistakes', async (t) => {
  const cwd = tempDir(t);
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  assert.deepEqual(await run(['--version'], { cwd }), { code: 0, stdout: `verona ${pkg.version}\n`, stderr: '' });
  const help = await run(['--help'], { cwd });
  assert.equal(help.code, 0);
  assert.match(help.stdout, /^Usage: verona <command>/);
  assert.match(help.stdout, /adduser JID \[--password PW\]/);

  const none = await run([], { cwd });
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^Usage: verona/);

  const typo = await run(['strat'], { cwd });
  assert.equal(typo.code, 2);
  assert.equal(typo.stderr, 'verona: unknown command "strat" (did you mean "start"?); see verona --help\n');

  const badFlag = await run(['check-config', '--data-dri', 'x'], { cwd });
  assert.equal(badFlag.code, 2);
  assert.equal(badFlag.stderr, 'verona: unknown option --data-dri (did you mean --data-dir?)\n');

  const missing = await run(['adduser'], { cwd });
  assert.equal(missing.code, 2);
  assert.equal(missing.stderr, 'verona adduser: missing argument JID (user or user@domain) (see verona --help)\n');

  const misplaced = await run(['deluser', 'romeo', '--password', 'x'], { cwd });
  assert.equal(misplaced.code, 2);
  assert.match(misplaced.stderr, /--password only goes with adduser and passwd/);
});

test('adduser, passwd and deluser manage accounts in the database', async (t) => {
  const cwd = tempDir(t);
  const add = await run(['adduser', 'Romeo', '--password', 'wherefore', '--data-dir', 'data'], { cwd });
  assert.deepEqual(add, { code: 0, stdout: 'created account romeo@localhost\n', stderr: '' });
  assert.equal(await passwordWorks(cwd, 'romeo', 'wherefore'), true);

  const dup = await run(['adduser', 'romeo@localhost', '--password', 'x', '--data-dir', 'data'], { cwd });
  assert.deepEqual(dup, { code: 1, stdout: '', stderr: 'verona adduser: account romeo@localhost already exists\n' });
  assert.equal(await passwordWorks(cwd, 'romeo', 'wherefore'), true, 'the existing password is untouched');

  const pw = await run(['passwd', 'romeo', '--password', 'balcony', '--data-dir', 'data'], { cwd });
  assert.deepEqual(pw, { code: 0, stdout: 'changed the password of romeo@localhost\n', stderr: '' });
  assert.equal(await passwordWorks(cwd, 'romeo', 'balcony'), true);
  assert.equal(await passwordWorks(cwd, 'romeo', 'wherefore'), false);

  const pwUnknown = await run(['passwd', 'tybalt', '--password', 'x', '--data-dir', 'data'], { cwd });
  assert.deepEqual(pwUnknown, { code: 1, stdout: '', stderr: 'verona passwd: no account tybalt@localhost\n' });

  await withDb(cwd, async (s) => s.kv.set('romeo', 'vcard', 'main', '<vCard/>'));
  const del = await run(['deluser', 'romeo', '--data-dir', 'data'], { cwd });
  assert.deepEqual(del, { code: 0, stdout: 'deleted account romeo@localhost and all its data\n', stderr: '' });
  await withDb(cwd, async (s) => {
    assert.equal(await s.accounts.exists('romeo'), false);
    assert.equal(await s.kv.get('romeo', 'vcard', 'main'), undefined, 'the account data went with it');
  });

  const delAgain = await run(['deluser', 'romeo', '--data-dir', 'data'], { cwd });
  assert.deepEqual(delAgain, { code: 1, stdout: '', stderr: 'verona deluser: no account romeo@localhost\n' });
});

test('the password can come from stdin, one line', async (t) => {
  const cwd = tempDir(t);
  const add = await run(['adduser', 'juliet', '--data-dir', 'data'], { cwd, input: 'nurse & capulet\nignored second line\n' });
  assert.deepEqual(add, { code: 0, stdout: 'created account juliet@localhost\n', stderr: '' });
  assert.equal(await passwordWorks(cwd, 'juliet', 'nurse & capulet'), true);

  const crlf = await run(['passwd', 'juliet', '--data-dir', 'data'], { cwd, input: 'tomb\r\n' });
  assert.equal(crlf.code, 0, crlf.stderr);
  assert.equal(await passwordWorks(cwd, 'juliet', 'tomb'), true);

  const noNewline = await run(['passwd', 'juliet', '--data-dir', 'data'], { cwd, input: 'dagger' });
  assert.equal(noNewline.code, 0, noNewline.stderr);
  assert.equal(await passwordWorks(cwd, 'juliet', 'dagger'), true);

  const empty = await run(['adduser', 'nurse', '--data-dir', 'data'], { cwd, input: '' });
  assert.equal(empty.code, 2);
  assert.equal(empty.stderr, 'verona adduser: no password on stdin (give --password, or pipe one line)\n');
  const blank = await run(['adduser', 'nurse', '--data-dir', 'data'], { cwd, input: '\n' });
  assert.equal(blank.code, 2);
  assert.equal(blank.stderr, 'verona adduser: the password must not be empty\n');
  await withDb(cwd, async (s) => assert.equal(await s.accounts.exists('nurse'), false));
});

test('JIDs must be on the configured domain and well formed', async (t) => {
  const cwd = tempDir(t);
  const other = await run(['adduser', 'romeo@verona.example', '--password', 'x', '--data-dir', 'data', '--domain', 'mantua.example'], { cwd });
  assert.equal(other.code, 2);
  assert.equal(other.stderr, "verona adduser: romeo@verona.example is not on this server's domain (mantua.example)\n");

  const ok = await run(['adduser', 'romeo@Mantua.Example', '--password', 'x', '--data-dir', 'data', '--domain', 'mantua.example'], { cwd });
  assert.deepEqual(ok, { code: 0, stdout: 'created account romeo@mantua.example\n', stderr: '' });

  const bad = await run(['adduser', 'rom<eo', '--password', 'x', '--data-dir', 'data'], { cwd });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /^verona adduser: invalid JID "rom<eo": forbidden character in localpart\n$/);

  const resource = await run(['deluser', 'romeo@localhost/phone', '--data-dir', 'data'], { cwd });
  assert.equal(resource.code, 2);
  assert.match(resource.stderr, /give a bare JID without a resource/);
});

test('check-config reports success, and a bad file with exit code 2 and one line per error', async (t) => {
  const cwd = tempDir(t);
  const ok = await run(['check-config', '--data-dir', 'data'], { cwd });
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^config OK \(built-in defaults\)\n/);
  assert.match(ok.stdout, /domain: {3}localhost/);

  writeFileSync(join(cwd, 'verona.yml'), 'domain: example.org\nc2s:\n  prot: 5222\n');
  const bad = await run(['check-config'], { cwd });
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, 'verona check-config: config error: c2s.prot: unknown key (did you mean "port"?) (verona.yml:3)\n');
  assert.equal(bad.stdout, '');

  // ./verona.yml is picked up without --config; --config names another file.
  writeFileSync(join(cwd, 'good.yml'), 'domain: example.org\nc2s: { port: 15222 }\n');
  const other = await run(['check-config', '--config', 'good.yml'], { cwd });
  assert.equal(other.code, 0, other.stderr);
  assert.match(other.stdout, /config OK \(good\.yml\)\ndomain: {3}example\.org/);
  assert.match(other.stdout, /STARTTLS 15222/);

  const override = await run(['check-config', '-c', 'good.yml', '--c2s-port', 'x'], { cwd });
  assert.equal(override.code, 2);
  assert.match(override.stderr, /^verona check-config: config error: c2s\.port: expected an integer .* got "x" \(from --c2s-port\)\n$/);

  writeFileSync(join(cwd, 'nocert.yml'), 'tls:\n  generate: false\n');
  const nocert = await run(['check-config', '-c', 'nocert.yml'], { cwd });
  assert.equal(nocert.code, 2);
  assert.equal(
    nocert.stderr,
    `verona check-config: config error: tls.cert: file ${join(cwd, 'data', 'tls', 'cert.pem')} not found (tls.generate is false)\n` +
      `verona check-config: config error: tls.key: file ${join(cwd, 'data', 'tls', 'key.pem')} not found (tls.generate is false)\n` +
      'verona check-config: 2 errors\n',
  );

  writeFileSync(join(cwd, 'broken.yml'), 'domain: [\n');
  const broken = await run(['check-config', '-c', 'broken.yml'], { cwd });
  assert.equal(broken.code, 2);
  assert.match(broken.stderr, /^verona check-config: config error: .*broken\.yml:\d+:\d+: bad YAML: /);

  const missing = await run(['check-config', '-c', 'absent.yml'], { cwd });
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /config file .*absent\.yml not found/);
});

test('cert generate writes a pair; cert show describes it; --force replaces it', async (t) => {
  const cwd = tempDir(t);
  const none = await run(['cert', 'show', '--data-dir', 'data', '--domain', 'example.org'], { cwd });
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^verona cert: no certificate at .*cert\.pem/);

  // With tls.generate off the certificate is missing, which is what `cert generate` is for.
  writeFileSync(join(cwd, 'verona.yml'), 'domain: example.org\ndataDir: data\ntls: { generate: false }\n');
  const gen = await run(['cert', 'generate'], { cwd });
  assert.equal(gen.code, 0, gen.stderr);
  assert.match(gen.stdout, /^generated a self-signed certificate for example\.org\n/);
  const certPath = join(cwd, 'data', 'tls', 'cert.pem');
  const keyPath = join(cwd, 'data', 'tls', 'key.pem');
  const x = new X509Certificate(readFileSync(certPath));
  assert.ok(x.checkHost('example.org'));
  assert.equal(statSync(keyPath).mode & 0o777, 0o600);

  const show = await run(['cert'], { cwd });
  assert.equal(show.code, 0, show.stderr);
  assert.ok(show.stdout.includes(`sha-256:     ${x.fingerprint256}\n`));
  assert.ok(show.stdout.includes(`sha-1:       ${x.fingerprint}\n`));
  assert.match(show.stdout, /names: {7}DNS:example\.org, DNS:\*\.example\.org/);
  assert.match(show.stdout, /domain: {6}example\.org is covered/);

  const again = await run(['cert', 'generate'], { cwd });
  assert.equal(again.code, 1);
  assert.equal(again.stderr, `verona cert: ${certPath} already exists (use --force to replace it)\n`);

  const forced = await run(['cert', 'generate', '--force'], { cwd });
  assert.equal(forced.code, 0, forced.stderr);
  assert.notEqual(new X509Certificate(readFileSync(certPath)).fingerprint256, x.fingerprint256);

  const check = await run(['check-config'], { cwd });
  assert.equal(check.code, 0, 'with both files present, generate: false is fine');

  const wrong = await run(['cert', 'frobnicate'], { cwd });
  assert.equal(wrong.code, 2);
});

test('start prints READY with the ports, serves while adduser runs beside it, and stops on SIGTERM', async (t) => {
  const cwd = tempDir(t);
  // Ephemeral ports everywhere so that parallel test runs never collide.
  // s2s too: its default 0.0.0.0:5269 collides with any federation test running beside this one.
  writeFileSync(join(cwd, 'verona.yml'), 'web:\n  port: 0\n  tlsPort: 0\ns2s:\n  host: 127.0.0.1\n  port: 0\n  tlsPort: 0\n');
  const child = spawn(process.execPath, [BIN, 'start', '--data-dir', 'data', '--c2s-port', '0', '--tls-port', '0', '--host', '127.0.0.1', '--log-level', 'warn'], {
    cwd,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => child.kill('SIGKILL'));
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
  const ready = await new Promise<Record<string, number>>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no READY line; stderr: ${stderr}`)), 20_000);
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
      const m = /^READY (.*)$/m.exec(stdout);
      if (m !== null) {
        clearTimeout(timer);
        resolve(JSON.parse(m[1]) as Record<string, number>);
      }
    });
    void exited.then((code) => reject(new Error(`exited with ${code} before READY; stderr: ${stderr}`)));
  });
  assert.ok(Object.keys(ready).length > 0);
  for (const p of Object.values(ready)) assert.ok(Number.isInteger(p) && p > 0);
  assert.ok(statSync(join(cwd, 'data', 'tls', 'key.pem')).isFile(), 'the first start generated a certificate');

  // The CLI writes to the database the running server holds open.
  const add = await run(['adduser', 'romeo', '--password', 'x', '--data-dir', 'data'], { cwd });
  assert.equal(add.code, 0, add.stderr);

  child.kill('SIGTERM');
  assert.equal(await exited, 0, stderr);
  assert.equal(await passwordWorks(cwd, 'romeo', 'x'), true);
});

test('start with a config error exits 2 without starting', async (t) => {
  const cwd = tempDir(t);
  const r = await run(['start', '--data-dir', 'data', '--c2s-port', '99999'], { cwd });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^verona start: config error: c2s\.port: expected an integer from -1 to 65535 .*got 99999 \(from --c2s-port\)\n$/);
  assert.equal(r.stdout, '');
});

// Node has no pseudo-terminal of its own; Python's pty module gives the CLI a
// real TTY so that the hidden, repeated prompt is exercised as a person sees it.
const PTY_DRIVER = `
import os, pty, select, sys, time
pid, fd = pty.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
def read_until(marker, limit=10.0):
    out = b''
    end = time.time() + limit
    while marker not in out and time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                out += os.read(fd, 4096)
            except OSError:
                break
    return out
seen = read_until(b'Password for')
os.write(fd, sys.stdin.readline().encode().rstrip(b'\\n') + b'\\r')
seen += read_until(b'Repeat password')
os.write(fd, sys.stdin.readline().encode().rstrip(b'\\n') + b'\\r')
seen += read_until(b'\\n', 1.0)
_, status = os.waitpid(pid, 0)
seen += read_until(b'never', 0.2)
sys.stdout.write(seen.decode('utf-8', 'replace'))
sys.exit(os.waitstatus_to_exitcode(status))
`;

function python(): string | undefined {
  for (const p of ['/usr/bin/python3', '/usr/local/bin/python3']) {
    try {
      if (statSync(p).isFile()) return p;
    } catch {
      // not here
    }
  }
  return undefined;
}

test('on a terminal the password is asked twice without echo', { skip: python() === undefined ? 'needs python3 for a pty' : false }, async (t) => {
  const cwd = tempDir(t);
  const viaPty = (args: string[], lines: string): Promise<Result> =>
    new Promise((resolve) => {
      const c = spawn(python()!, ['-c', PTY_DRIVER, process.execPath, BIN, ...args], { cwd, stdio: ['pipe', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      c.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      c.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      c.on('exit', (code) => resolve({ code, stdout, stderr }));
      c.stdin.end(lines);
    });
  // An arrow key and a backspace while typing: 'sec' <Up> 'retx' <BS> is "secret".
  const ok = await viaPty(['adduser', 'juliet', '--data-dir', 'data'], 'sec\x1b[Aretx\x7f\nsecret\n');
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  assert.match(ok.stdout, /Password for juliet@localhost: \r?\nRepeat password: \r?\ncreated account juliet@localhost/);
  assert.ok(!ok.stdout.includes('secret'), 'nothing typed is echoed');
  assert.equal(await passwordWorks(cwd, 'juliet', 'secret'), true);

  const mismatch = await viaPty(['passwd', 'juliet', '--data-dir', 'data'], 'one\ntwo\n');
  assert.equal(mismatch.code, 2);
  assert.match(mismatch.stdout, /verona passwd: the passwords do not match/);
  assert.equal(await passwordWorks(cwd, 'juliet', 'secret'), true, 'unchanged after a mismatch');
});
