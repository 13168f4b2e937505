/**
 * SIGHUP swaps the certificate without dropping anyone: a client logged in
 * over direct TLS before the swap keeps its session and is answered after it;
 * a client connecting afterwards (direct TLS and STARTTLS) is shown the new
 * certificate. The new pair is written by `verona cert generate --force`, as a
 * renewal would rewrite the files. The same SIGHUP applies a changed limit and
 * names a change that needs a restart.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import type tls from 'node:tls';
import path from 'node:path';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectRaw } from '../helpers/client.js';
import { directTls, login, ping, waitForLine } from '../helpers/cert-client.js';
import { planReload } from '../../src/config/reload.js';
import { defaultConfig } from '../../src/config/defaults.js';

const HOST = '127.0.0.77';
let v: Verona | undefined;
after(async () => {
  await v?.stop();
  v?.cleanup();
});

test('SIGHUP: new certificate for new connections, the old session stays; limits apply, the rest is named', { timeout: 180_000 }, async () => {
  v = await startVerona({ users: [['romeo', 'r0meo']], config: { log: { level: 'info' }, c2s: { host: HOST } } });
  const certFile = path.join(v.dataDir, 'tls', 'cert.pem');
  const before = new X509Certificate(readFileSync(certFile)).fingerprint256;

  const old = await directTls(HOST, v.ports['c2s-tls'], ['xmpp-client']);
  assert.equal(old.fingerprint, before);
  await login(old.conn);

  // Renewal: new files; a changed limit and a changed port in the config file.
  await v.cli(['cert', 'generate', '--force']);
  const renewed = new X509Certificate(readFileSync(certFile)).fingerprint256;
  assert.notEqual(renewed, before);
  const cfg = JSON.parse(readFileSync(v.configFile, 'utf8')) as Record<string, Record<string, unknown>>;
  cfg.c2s.maxStanzaSize = 123456;
  cfg.c2s.port = 5;
  writeFileSync(v.configFile, JSON.stringify(cfg));

  const mark = v.output.length;
  v.proc.kill('SIGHUP');
  const line = await waitForLine(v.output, /reloaded configuration and certificates/, mark, 60_000);
  assert.match(line, /"applied":\["c2s.maxStanzaSize"\]/);
  assert.match(line, /"needRestart":\["c2s.port"\]/);

  // The session from before the swap is still served.
  assert.equal(await ping(old.conn), 'result');
  assert.equal(old.conn.closed, false);

  // New connections see the new certificate: direct TLS and STARTTLS.
  const fresh = await directTls(HOST, v.ports['c2s-tls'], ['xmpp-client']);
  assert.equal(fresh.fingerprint, renewed);
  await login(fresh.conn);
  assert.equal(await ping(fresh.conn), 'result');

  const plain = await connectRaw(v.ports.c2s, HOST);
  await plain.open();
  plain.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
  await plain.next('proceed');
  await plain.starttls();
  assert.equal((plain.socket as tls.TLSSocket).getPeerX509Certificate()?.fingerprint256, renewed);

  for (const c of [old.conn, fresh.conn, plain]) c.destroy();
});

test('planReload: limits and certificates apply now, listeners and storage need a restart', () => {
  const a = defaultConfig();
  const rows: Array<[string, (c: ReturnType<typeof defaultConfig>) => void, string[], string[]]> = [
    ['nothing changed', () => undefined, [], []],
    ['log level', (c) => (c.log.level = 'debug'), ['log.level'], []],
    ['auth windows', (c) => ((c.c2s.authTimeout = 10), (c.c2s.authTimeoutPreTls = 5)), ['c2s.authTimeout', 'c2s.authTimeoutPreTls'], []],
    ['certificate paths', (c) => (c.tls.cert = '/etc/x.pem'), ['tls.cert'], []],
    ['port', (c) => (c.c2s.port = 1), [], ['c2s.port']],
    ['domain', (c) => (c.domain = 'example.org'), [], ['domain']],
    ['module options', (c) => (c.moduleOptions = { vcard: { maxSize: 1 } }), [], ['moduleOptions.vcard']],
    ['storage', (c) => (c.storage.sqlite.synchronous = 'NORMAL'), [], ['storage.sqlite']],
  ];
  for (const [name, change, apply, restart] of rows) {
    const b = defaultConfig();
    change(b);
    assert.deepEqual(planReload(a, b), { apply, restart }, name);
  }
});
