/**
 * Configuration loading: defaults, the YAML file, command-line overrides and
 * the error messages an operator sees for each kind of mistake.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig } from '../../src/config/load.js';

function tempDir(t: { after(fn: () => void): void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'verona-config-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Write a config file into a fresh directory and return [dir, file]. */
function withFile(t: { after(fn: () => void): void }, yaml: string): [string, string] {
  const dir = tempDir(t);
  const file = join(dir, 'verona.yml');
  writeFileSync(file, yaml);
  return [dir, file];
}

function loadError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected a ConfigError, got ${String(err)}`);
    return err;
  }
  assert.fail('expected a ConfigError');
}

test('without a file every default applies and paths become absolute', (t) => {
  const cwd = tempDir(t);
  const c = loadConfig({ cwd });
  assert.equal(c.domain, 'localhost');
  assert.equal(c.dataDir, join(cwd, 'data'));
  assert.equal(c.log.level, 'info');
  assert.deepEqual(
    { host: c.c2s.host, port: c.c2s.port, tlsPort: c.c2s.tlsPort, requireTls: c.c2s.requireTls, plain: c.c2s.allowPlainWithoutTls },
    { host: '0.0.0.0', port: 5222, tlsPort: 5223, requireTls: true, plain: false },
  );
  assert.equal(c.c2s.maxStanzaSize, 262144);
  assert.equal(c.c2s.maxStanzaSizePreAuth, 10000);
  assert.equal(c.c2s.authTimeout, 300);
  assert.equal(c.c2s.authTimeoutPreTls, 30);
  assert.equal(c.c2s.pingInterval, 300);
  assert.equal(c.c2s.pingTimeout, 30);
  assert.equal(c.c2s.keepaliveInterval, 60);
  assert.equal(c.tls.cert, join(cwd, 'data', 'tls', 'cert.pem'));
  assert.equal(c.tls.key, join(cwd, 'data', 'tls', 'key.pem'));
  assert.equal(c.tls.generate, true);
  assert.equal(c.auth.scramIterations, 4096);
  assert.deepEqual(c.auth.mechanisms, ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
  assert.deepEqual([c.auth.failuresPerAddress, c.auth.failuresPerAccount, c.auth.failureWindow], [5, 5, 60]);
  assert.equal(c.storage.driver, 'sqlite');
  assert.equal(c.storage.sqlite.path, join(cwd, 'data', 'verona.sqlite'));
  assert.equal(c.storage.sqlite.synchronous, 'FULL');
  assert.equal(c.storage.postgres.url, '');
  assert.deepEqual(c.modules.disabled, []);
  assert.deepEqual(c.moduleOptions, {});
});

test('file values replace defaults, and command-line overrides beat the file', (t) => {
  const [dir, file] = withFile(
    t,
    [
      'domain: Example.ORG',
      'log: { level: warn }',
      'c2s:',
      '  port: 15222',
      '  tlsPort: 15223',
      '  host: 127.0.0.1',
      '  maxDepth: 40',
      'auth:',
      '  scramIterations: 10000',
      '  mechanisms: [SCRAM-SHA-256]',
      'modules:',
      '  disabled: [version]',
      'moduleOptions:',
      '  mam: { defaultPolicy: always, maxPage: 50 }',
      '  ping:',
    ].join('\n'),
  );
  const fromFile = loadConfig({ file, cwd: dir });
  assert.equal(fromFile.domain, 'example.org', 'the domain is prepared (lower-cased)');
  assert.equal(fromFile.log.level, 'warn');
  assert.equal(fromFile.c2s.port, 15222);
  assert.equal(fromFile.c2s.host, '127.0.0.1');
  assert.equal(fromFile.c2s.maxDepth, 40);
  assert.equal(fromFile.c2s.maxAttributes, 64, 'keys the file leaves out keep their default');
  assert.equal(fromFile.auth.scramIterations, 10000);
  assert.deepEqual(fromFile.auth.mechanisms, ['SCRAM-SHA-256']);
  assert.deepEqual(fromFile.modules.disabled, ['version']);
  assert.deepEqual(fromFile.moduleOptions, { mam: { defaultPolicy: 'always', maxPage: 50 }, ping: {} });

  const over = loadConfig({
    file,
    cwd: dir,
    overrides: { domain: 'other.test', c2sPort: '0', tlsPort: -1, host: '::1', logLevel: 'debug', dataDir: 'elsewhere' },
  });
  assert.equal(over.domain, 'other.test');
  assert.equal(over.c2s.port, 0);
  assert.equal(over.c2s.tlsPort, -1);
  assert.equal(over.c2s.host, '::1');
  assert.equal(over.log.level, 'debug');
  assert.equal(over.dataDir, join(dir, 'elsewhere'));
  assert.equal(over.c2s.maxDepth, 40, 'the rest of the file still applies');
});

test('dataDir from the file is relative to the file; from the command line, to the working directory', (t) => {
  const root = tempDir(t);
  const etc = join(root, 'etc');
  mkdirSync(etc);
  writeFileSync(join(etc, 'verona.yml'), 'dataDir: ../var/verona\ntls: { cert: /abs/cert.pem, key: keys/key.pem }\n');
  const other = join(root, 'work');
  mkdirSync(other);
  const c = loadConfig({ file: join(etc, 'verona.yml'), cwd: other, checkFiles: false });
  assert.equal(c.dataDir, join(root, 'var', 'verona'));
  assert.equal(c.tls.cert, '/abs/cert.pem');
  assert.equal(c.tls.key, join(root, 'var', 'verona', 'keys', 'key.pem'));
  const o = loadConfig({ file: join(etc, 'verona.yml'), cwd: other, checkFiles: false, overrides: { dataDir: 'd' } });
  assert.equal(o.dataDir, join(other, 'd'));
});

test('an unknown key is named with its line and the key it probably meant', (t) => {
  const [dir, file] = withFile(t, 'domain: example.org\nc2s:\n  prot: 5222\n');
  const e = loadError(() => loadConfig({ file, cwd: dir }));
  assert.equal(e.path, 'c2s.prot');
  assert.equal(e.message, `c2s.prot: unknown key (did you mean "port"?) (${file}:3)`);

  const [dir2, file2] = withFile(t, 'c2s:\n  max_stanza_size: 100000\n');
  assert.match(loadError(() => loadConfig({ file: file2, cwd: dir2 })).message, /^c2s\.max_stanza_size: unknown key \(did you mean "maxStanzaSize"\?\)/);

  const [dir3, file3] = withFile(t, 'frobnicate: true\n');
  assert.match(loadError(() => loadConfig({ file: file3, cwd: dir3 })).message, /^frobnicate: unknown key \(known keys: domain, dataDir, log, c2s,/);
});

test('a value of the wrong type names the key, the expectation and the value', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['c2s:\n  port: abc\n', /^c2s\.port: expected an integer from -1 to 65535 \(.*\), got "abc" \(.*:2\)$/],
    ['c2s:\n  port: "5222"\n', /^c2s\.port: expected an integer .* got the string "5222" \(remove the quotes\)/],
    ['c2s:\n  requireTls: yes\n', /^c2s\.requireTls: expected true or false, got "yes"/],
    ['c2s: 5222\n', /^c2s: expected a mapping of "host", "port", .*, got 5222/],
    ['log:\n  level: debg\n', /^log\.level: expected one of "fatal", .*, got "debg" \(did you mean "debug"\?\)/],
    ['auth:\n  mechanisms: [SCRAM-SHA-256, DIGEST-MD5]\n', /^auth\.mechanisms\.1: expected one of "SCRAM-SHA-256", "SCRAM-SHA-1", "PLAIN", got "DIGEST-MD5"/],
    ['auth:\n  mechanisms: []\n', /^auth\.mechanisms: must not be empty/],
    ['auth:\n  mechanisms: [PLAIN, PLAIN]\n', /^auth\.mechanisms\.1: "PLAIN" is listed twice/],
    ['domain: "not a domain!"\n', /^domain: "not a domain!" is not a valid XMPP domain/],
    ['domain: ""\n', /^domain: must not be empty/],
    ['c2s:\n  host: "bad host"\n', /^c2s\.host: expected an IP address or host name, got "bad host"/],
    ['moduleOptions:\n  mam: 5\n', /^moduleOptions\.mam: expected a mapping of options, got 5/],
    ['modules:\n  disabled: version\n', /^modules\.disabled: expected a list of strings, got "version"/],
    ['storage:\n  sqlite:\n    synchronous: normal\n', /^storage\.sqlite\.synchronous: expected one of "OFF", "NORMAL", "FULL", got "normal" \(did you mean "NORMAL"\?\)/],
  ];
  for (const [yaml, re] of cases) {
    const [dir, file] = withFile(t, yaml);
    assert.match(loadError(() => loadConfig({ file, cwd: dir })).message, re, yaml);
  }
});

test('out-of-range numbers are refused', (t) => {
  const cases: Array<[string, RegExp]> = [
    ['c2s:\n  port: 70000\n', /^c2s\.port: expected an integer from -1 to 65535/],
    ['c2s:\n  port: 5222.5\n', /^c2s\.port: expected an integer/],
    ['auth:\n  scramIterations: 1000\n', /^auth\.scramIterations: expected an integer from 4096 to 10000000 \(RFC 7677 asks for at least 4096\), got 1000/],
    ['c2s:\n  maxStanzaSize: 500\n', /^c2s\.maxStanzaSize: expected an integer from 10000/],
    ['c2s:\n  port: 5300\n  tlsPort: 5300\n', /^c2s\.tlsPort: same port as c2s\.port \(5300\)/],
    ['c2s:\n  maxStanzaSize: 20000\n  maxStanzaSizePreAuth: 30000\n', /^c2s\.maxStanzaSizePreAuth: must not exceed c2s\.maxStanzaSize \(20000\)/],
    ['storage:\n  driver: postgres\n', /^storage\.postgres\.url: required when storage\.driver is "postgres"/],
  ];
  for (const [yaml, re] of cases) {
    const [dir, file] = withFile(t, yaml);
    assert.match(loadError(() => loadConfig({ file, cwd: dir })).message, re, yaml);
  }
});

test('a bad command-line value names the flag it came from', (t) => {
  const cwd = tempDir(t);
  assert.equal(
    loadError(() => loadConfig({ cwd, overrides: { c2sPort: 'abc' } })).message,
    'c2s.port: expected an integer from -1 to 65535 (-1 disables the listener, 0 picks a free port), got "abc" (from --c2s-port)',
  );
  assert.match(loadError(() => loadConfig({ cwd, overrides: { logLevel: 'loud' } })).message, /^log\.level: .* \(from --log-level\)$/);
  assert.match(loadError(() => loadConfig({ cwd, overrides: { domain: 'a b' } })).message, /^domain: .* \(from --domain\)$/);
});

test('bad YAML is reported with its line and column', (t) => {
  const [dir, file] = withFile(t, 'domain: example.org\nc2s:\n  port: [1,\n');
  const e = loadError(() => loadConfig({ file, cwd: dir }));
  assert.equal(e.path, '');
  assert.match(e.message, new RegExp(`^${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:\\d+:\\d+: bad YAML: `));

  const [dir2, file2] = withFile(t, 'domain: a.example\ndomain: b.example\n');
  assert.match(loadError(() => loadConfig({ file: file2, cwd: dir2 })).message, /verona\.yml:2:1: bad YAML: Map keys must be unique/);

  const [dir3, file3] = withFile(t, '- just\n- a list\n');
  assert.match(loadError(() => loadConfig({ file: file3, cwd: dir3 })).message, /the top level must be a mapping/);
});

test('an empty file, or a key without a value, keeps the defaults', (t) => {
  const [dir, file] = withFile(t, '# nothing yet\n');
  assert.equal(loadConfig({ file, cwd: dir }).c2s.port, 5222);
  const [dir2, file2] = withFile(t, 'c2s:\n  port:\ntls:\n');
  const c = loadConfig({ file: file2, cwd: dir2 });
  assert.equal(c.c2s.port, 5222);
  assert.equal(c.tls.generate, true);
});

test('a missing config file is an error', (t) => {
  const dir = tempDir(t);
  assert.equal(loadError(() => loadConfig({ file: join(dir, 'nope.yml') })).message, `config file ${join(dir, 'nope.yml')} not found`);
});

test('a missing certificate is an error when generation is off', (t) => {
  const [dir, file] = withFile(t, 'tls:\n  generate: false\n');
  const e = loadError(() => loadConfig({ file, cwd: dir }));
  assert.equal(e.path, 'tls.cert');
  assert.equal(e.message, `tls.cert: file ${join(dir, 'data', 'tls', 'cert.pem')} not found (tls.generate is false)`);

  mkdirSync(join(dir, 'data', 'tls'), { recursive: true });
  writeFileSync(join(dir, 'data', 'tls', 'cert.pem'), 'x');
  assert.match(loadError(() => loadConfig({ file, cwd: dir })).message, /^tls\.key: file .*key\.pem not found \(tls\.generate is false\)/);

  writeFileSync(join(dir, 'data', 'tls', 'key.pem'), 'x');
  assert.equal(loadConfig({ file, cwd: dir }).tls.generate, false, 'both present: accepted (contents are checked at start)');
  // checkFiles: false (verona cert generate) skips the check.
  rmSync(join(dir, 'data'), { recursive: true });
  assert.equal(loadConfig({ file, cwd: dir, checkFiles: false }).tls.generate, false);
});

test('with generation on, half a pair is refused rather than overwritten', (t) => {
  const cwd = tempDir(t);
  mkdirSync(join(cwd, 'data', 'tls'), { recursive: true });
  writeFileSync(join(cwd, 'data', 'tls', 'cert.pem'), 'operator cert');
  const e = loadError(() => loadConfig({ cwd }));
  assert.equal(e.path, 'tls.key');
  assert.match(e.message, /not found but tls\.cert exists; supply both files, or remove .*cert\.pem to have a new pair generated/);
});

test('verona.example.yml is a valid configuration', () => {
  // From dist/test/unit/ up to the repository root.
  const file = new URL('../../../verona.example.yml', import.meta.url).pathname;
  const c = loadConfig({ file, checkFiles: false });
  assert.equal(c.domain, 'example.org');
  assert.equal(c.dataDir, '/var/lib/verona');
  assert.equal(c.c2s.host, '::');
  assert.equal(c.tls.generate, false);
  assert.equal(c.storage.sqlite.path, '/var/lib/verona/verona.sqlite');
  assert.equal(c.storage.sqlite.synchronous, 'FULL');
});
