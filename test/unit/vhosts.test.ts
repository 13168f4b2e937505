/**
 * Virtual hosts: the pure decisions (account keys, SNI domain choice, s2s stream keys, the
 * CLI's certificate domains) as tables, and `domains:` in the configuration.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HostedDomains, accountKey, domainForServerName, splitAccountKey } from '../../src/core/vhosts.js';
import { outgoingKey } from '../../src/s2s/policy.js';
import { ConfigError, checkConfig, loadConfig } from '../../src/config/load.js';
import { certDomains } from '../../src/cli/cert.js';
import { domainConfig } from '../../src/net/vhost-tls.js';
import { accountName } from '../../src/cli/accounts.js';
import { JID } from '../../src/jid/jid.js';

const P = 'a.example';

test('accountKey: the bare username on the primary domain, user@domain elsewhere; keys pass through', () => {
  const rows: Array<[string, string, string]> = [
    ['romeo', P, 'romeo'],
    ['romeo', 'b.example', 'romeo@b.example'],
    ['romeo@b.example', 'b.example', 'romeo@b.example'],
    ['romeo@b.example', P, 'romeo@b.example'],
  ];
  for (const [local, domain, key] of rows) assert.equal(accountKey(P, local, domain), key, `${local} on ${domain}`);
});

test('splitAccountKey undoes accountKey', () => {
  const rows: Array<[string, { local: string; domain: string }]> = [
    ['romeo', { local: 'romeo', domain: P }],
    ['romeo@b.example', { local: 'romeo', domain: 'b.example' }],
  ];
  for (const [key, parts] of rows) {
    assert.deepEqual(splitAccountKey(P, key), parts);
    assert.equal(accountKey(P, parts.local, parts.domain), key);
  }
});

test('domainForServerName: exact, then the closest hosted parent, else the primary', () => {
  const hosted = new Set([P, 'b.example', 'x.b.example']);
  const rows: Array<[string | undefined, string]> = [
    ['b.example', 'b.example'],
    ['B.Example.', 'b.example'],
    ['upload.b.example', 'b.example'],
    ['conference.x.b.example', 'x.b.example'],
    ['a.example', P],
    ['c.example', P],
    ['127.0.0.1', P],
    ['', P],
    [undefined, P],
  ];
  for (const [name, d] of rows) assert.equal(domainForServerName(P, hosted, name), d, String(name));
});

test('HostedDomains answers membership, keys and bare JIDs', () => {
  const h = new HostedDomains(P, ['b.example']);
  assert.deepEqual(h.list(), [P, 'b.example']);
  assert.equal(h.has('b.example'), true);
  assert.equal(h.has('c.example'), false);
  assert.equal(h.isAccount(new JID('romeo', 'b.example')), true);
  assert.equal(h.isAccount(new JID('', 'b.example')), false);
  assert.equal(h.isAccount(new JID('romeo', 'c.example')), false);
  assert.equal(h.keyOf(new JID('romeo', 'b.example', 'phone')), 'romeo@b.example');
  assert.equal(h.bareOf('romeo'), 'romeo@a.example');
  assert.equal(h.bareOf('romeo@b.example'), 'romeo@b.example');
  assert.equal(h.jidOf('romeo@b.example').toString(), 'romeo@b.example');
  assert.equal(h.localOf('romeo@b.example'), 'romeo');
  assert.equal(h.domainOf('romeo'), P);
});

test('outgoingKey: the remote domain alone for the primary, both names for another hosted domain', () => {
  assert.equal(outgoingKey(P, P, 'c.example'), 'c.example');
  assert.equal(outgoingKey(P, 'b.example', 'c.example'), 'b.example c.example');
  assert.notEqual(outgoingKey(P, 'b.example', 'c.example'), outgoingKey(P, P, 'c.example'));
});

function withFile(yaml: string): { dir: string; file: string; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'verona-vhosts-'));
  const file = join(dir, 'verona.yml');
  writeFileSync(file, yaml);
  return { dir, file, done: () => rmSync(dir, { recursive: true, force: true }) };
}

test('domains: a list gives every domain default certificate paths under dataDir; the primary is dropped', () => {
  const f = withFile(['domain: a.example', 'dataDir: .', 'domains: [B.Example, a.example]'].join('\n'));
  try {
    const c = loadConfig({ file: f.file, checkFiles: false });
    assert.deepEqual(Object.keys(c.domains), ['b.example']);
    assert.equal(c.domains['b.example']?.tls.cert, join(f.dir, 'tls/b.example/cert.pem'));
    assert.equal(c.domains['b.example']?.tls.key, join(f.dir, 'tls/b.example/key.pem'));
    assert.equal(c.domains['b.example']?.register, undefined);
    const view = domainConfig(c, 'b.example');
    assert.equal(view.domain, 'b.example');
    assert.equal(view.tls.cert, c.domains['b.example']?.tls.cert);
    assert.equal(domainConfig(c, 'a.example'), c);
    assert.deepEqual(certDomains(c, undefined, false), ['a.example', 'b.example']);
    assert.deepEqual(certDomains(c, undefined, true), ['a.example']);
    assert.deepEqual(certDomains(c, 'B.example', false), ['b.example']);
    assert.throws(() => certDomains(c, 'z.example', false), /does not host z\.example/);
    assert.equal(accountName('romeo', c), 'romeo');
    assert.equal(accountName('romeo@a.example', c), 'romeo');
    assert.equal(accountName('Romeo@B.example', c), 'romeo@b.example');
    assert.throws(() => accountName('romeo@z.example', c), /romeo@z\.example is not on this server's domain \(a\.example, b\.example\)/);
  } finally {
    f.done();
  }
});

test('domains: a mapping carries per-domain certificate paths and registration', () => {
  const f = withFile(['domain: a.example', 'dataDir: .', 'domains:', '  b.example:', '    tls: { cert: /etc/b.pem, key: /etc/b.key }', '    register: true', '  c.example:'].join('\n'));
  try {
    const c = loadConfig({ file: f.file, checkFiles: false });
    assert.deepEqual(c.domains['b.example'], { tls: { cert: '/etc/b.pem', key: '/etc/b.key' }, register: true });
    assert.equal(c.domains['c.example']?.tls.cert, join(f.dir, 'tls/c.example/cert.pem'));
  } finally {
    f.done();
  }
});

test('domains: bad entries are named', () => {
  const rows: Array<[string, RegExp]> = [
    ['domains: 5', /domains: expected a list of domains or a mapping/],
    ['domains: ["bad domain!"]', /not a valid XMPP domain/],
    ['domains: [b.example, B.example]', /listed twice/],
    ['domains: { b.example: { tsl: {} } }', /unknown key/],
    ['domains: { b.example: { register: maybe } }', /expected true or false/],
    ['domains: [[x]]', /expected a domain name/],
  ];
  for (const [yaml, re] of rows) {
    const f = withFile(`domain: a.example\n${yaml}\n`);
    try {
      const r = checkConfig({ file: f.file, checkFiles: false });
      assert.ok(r.errors.length > 0, yaml);
      assert.ok(r.errors.every((e) => e instanceof ConfigError));
      assert.match(r.errors.map((e) => e.message).join('\n'), re, yaml);
    } finally {
      f.done();
    }
  }
});
