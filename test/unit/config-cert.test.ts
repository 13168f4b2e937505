/**
 * Certificate handling: first-start generation, reuse, replacement of
 * Verona's own certificate when it no longer fits, and never touching an
 * operator's certificate. A real TLS handshake proves the pair works.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import type { AddressInfo } from 'node:net';
import { generate } from 'selfsigned';
import { ensureCertificate, generateCertificate, inspectCertificate } from '../../src/config/cert.js';
import { ConfigError, loadConfig } from '../../src/config/load.js';
import type { Config } from '../../src/config/types.js';

function setup(t: { after(fn: () => void): void }, domain = 'example.org', generateOn = true): Config {
  const dir = mkdtempSync(join(tmpdir(), 'verona-cert-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const config = loadConfig({ cwd: dir, overrides: { domain, dataDir: 'data' }, checkFiles: false });
  config.tls.generate = generateOn;
  return config;
}

/** Handshake against the pair, trusting only the certificate itself, as a client that pinned it would. */
async function handshake(cert: string, key: string, servername: string): Promise<boolean> {
  const server = tls.createServer({ cert, key }, (s) => s.end());
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  try {
    const port = (server.address() as AddressInfo).port;
    return await new Promise<boolean>((resolve, reject) => {
      const s = tls.connect({ port, host: '127.0.0.1', servername, ca: [cert] }, () => {
        resolve(s.authorized);
        s.destroy();
      });
      s.on('error', reject);
    });
  } finally {
    server.close();
  }
}

test('first start generates a self-signed pair for the domain, key readable by the owner only', async (t) => {
  const config = setup(t);
  const started = Date.now();
  const res = await ensureCertificate(config);
  assert.ok(Date.now() - started < 2000, 'generation is fast');
  assert.equal(res.generated, true);
  assert.deepEqual(res.path, { cert: config.tls.cert, key: config.tls.key });
  assert.equal(readFileSync(config.tls.cert, 'utf8'), res.cert);
  assert.equal(readFileSync(config.tls.key, 'utf8'), res.key);
  assert.equal(statSync(config.tls.key).mode & 0o777, 0o600);

  const x = new X509Certificate(res.cert);
  assert.equal(x.subjectAltName, 'DNS:example.org, DNS:*.example.org');
  assert.ok(x.checkHost('example.org'));
  assert.ok(x.checkHost('conference.example.org'));
  assert.ok(Date.parse(x.validTo) > Date.now() + 365 * 86_400_000);
  assert.equal(await handshake(res.cert, res.key, 'example.org'), true);
});

test('an existing pair is reused as is', async (t) => {
  const config = setup(t);
  const first = await ensureCertificate(config);
  const again = await ensureCertificate(config);
  assert.equal(again.generated, false);
  assert.equal(again.cert, first.cert);
  assert.deepEqual(again.warnings, []);
});

test('single-label and IP-literal domains get a matching name and no wildcard', async (t) => {
  const local = await ensureCertificate(setup(t, 'localhost'));
  assert.equal(new X509Certificate(local.cert).subjectAltName, 'DNS:localhost');
  const ip = await ensureCertificate(setup(t, '127.0.0.1'));
  assert.equal(new X509Certificate(ip.cert).subjectAltName, 'IP Address:127.0.0.1');
});

test("Verona's own certificate is replaced when the domain changes", async (t) => {
  const config = setup(t, 'old.example');
  const first = await ensureCertificate(config);
  config.domain = 'new.example';
  const res = await ensureCertificate(config);
  assert.equal(res.generated, true);
  assert.notEqual(res.cert, first.cert);
  assert.ok(new X509Certificate(res.cert).checkHost('new.example'));
  assert.match(res.warnings.join('\n'), /replaced the generated certificate .* made for another domain/);
});

test("an operator's certificate is never replaced; problems become warnings", async (t) => {
  const config = setup(t, 'example.org');
  const own = await generate([{ name: 'commonName', value: 'other.example' }], { keyType: 'ec', algorithm: 'sha256' });
  mkdirSync(join(config.dataDir, 'tls'), { recursive: true });
  writeFileSync(config.tls.cert, own.cert);
  writeFileSync(config.tls.key, own.private);
  const res = await ensureCertificate(config);
  assert.equal(res.generated, false);
  assert.equal(res.cert, own.cert);
  assert.match(res.warnings.join('\n'), /is not valid for example\.org/);
  const info = inspectCertificate(config);
  assert.equal(info?.coversDomain, false);
  assert.equal(info?.generatedByVerona, false);
});

test('a key that does not belong to the certificate is a ConfigError on tls.key', async (t) => {
  const config = setup(t);
  await ensureCertificate(config);
  const stranger = await generate([{ name: 'commonName', value: 'example.org' }], { keyType: 'ec' });
  writeFileSync(config.tls.key, stranger.private);
  await assert.rejects(ensureCertificate(config), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.path, 'tls.key');
    assert.match(err.message, /does not belong to the certificate/);
    return true;
  });
  writeFileSync(config.tls.cert, 'not a certificate');
  await assert.rejects(ensureCertificate(config), /^ConfigError: tls\.cert: .* is not a PEM certificate/);
});

test('missing files with generation off are a ConfigError naming tls.cert', async (t) => {
  const config = setup(t, 'example.org', false);
  await assert.rejects(ensureCertificate(config), (err: unknown) => {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.message, `tls.cert: file ${config.tls.cert} not found (tls.generate is false)`);
    return true;
  });
});

test('generateCertificate refuses to overwrite without force', async (t) => {
  const config = setup(t);
  const first = await generateCertificate(config);
  await assert.rejects(generateCertificate(config), /already exists \(use --force to replace it\)/);
  const forced = await generateCertificate(config, { force: true });
  assert.notEqual(forced.cert, first.cert);
  assert.equal(statSync(config.tls.key).mode & 0o777, 0o600);
});
