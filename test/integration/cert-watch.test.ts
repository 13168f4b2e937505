/**
 * Certificate reload on file change (certWatch), no signal: the certificate lives
 * where certbot puts it (live/cert.pem and live/key.pem, symlinks into archive/),
 * and a renewal is replayed as certbot does it: new files in archive/, then the
 * symlinks in live/ replaced by rename. First only the key moves (a renewal caught
 * half-way: key and certificate do not match): the server logs it and keeps the
 * old certificate. Then the certificate follows: the server swaps, a client logged
 * in across the swap keeps its session, and a new client sees the new certificate.
 * Last, acme.sh's way: the files rewritten in place (a plain file, not a symlink).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { directTls, login, ping, waitForLine } from '../helpers/cert-client.js';
import { runCli, startVerona, type Verona } from '../helpers/server.js';
import { decideSwap } from '../../src/config/cert-watch.js';

const HOST = '127.0.60.3';
let v: Verona | undefined;
const scratch = mkdtempSync(path.join(tmpdir(), 'verona-certwatch-'));
after(async () => {
  await v?.stop();
  v?.cleanup();
  rmSync(scratch, { recursive: true, force: true });
});

/** A self-signed pair for localhost, made by `verona cert generate` in a directory of its own. */
async function pair(name: string): Promise<{ cert: string; key: string; fp: string }> {
  const dir = path.join(scratch, `gen-${name}`);
  await runCli(['cert', 'generate', '--force', '--data-dir', dir, '--domain', 'localhost']);
  const cert = path.join(dir, 'tls', 'cert.pem');
  return { cert, key: path.join(dir, 'tls', 'key.pem'), fp: new X509Certificate(readFileSync(cert)).fingerprint256 };
}

/** Replace a symlink atomically, as certbot does (new link, then rename over the old one). */
function relink(link: string, target: string): void {
  const tmp = `${link}.new`;
  symlinkSync(target, tmp);
  renameSync(tmp, link);
}

test('certWatch: a certbot-style renewal is picked up without a signal; a half-done one is refused; sessions stay', { timeout: 300_000 }, async () => {
  const [a, b, c] = [await pair('a'), await pair('b'), await pair('c')];
  const archive = path.join(scratch, 'archive');
  const live = path.join(scratch, 'live');
  mkdirSync(archive);
  mkdirSync(live);
  copyFileSync(a.cert, path.join(archive, 'cert1.pem'));
  copyFileSync(a.key, path.join(archive, 'privkey1.pem'));
  symlinkSync('../archive/cert1.pem', path.join(live, 'cert.pem'));
  symlinkSync('../archive/privkey1.pem', path.join(live, 'key.pem'));

  v = await startVerona({
    users: [['romeo', 'r0meo']],
    config: {
      log: { level: 'info' },
      c2s: { host: HOST },
      tls: { cert: path.join(live, 'cert.pem'), key: path.join(live, 'key.pem'), generate: false },
      certWatch: { enabled: true, debounceMs: 300 },
    },
  });
  const port = v.ports['c2s-tls'];
  const old = await directTls(HOST, port);
  assert.equal(old.fingerprint, a.fp);
  await login(old.conn);

  // Half-way: the new key is linked, the certificate is still the old one.
  copyFileSync(b.key, path.join(archive, 'privkey2.pem'));
  copyFileSync(b.cert, path.join(archive, 'cert2.pem'));
  let mark = v.output.length;
  relink(path.join(live, 'key.pem'), '../archive/privkey2.pem');
  await waitForLine(v.output, /not a valid pair \(yet\); keeping the current certificate/, mark, 90_000);
  const during = await directTls(HOST, port);
  assert.equal(during.fingerprint, a.fp, 'the old certificate is kept while the pair does not match');
  during.conn.destroy();

  // The certificate follows: swapped for new connections, the old session stays.
  mark = v.output.length;
  relink(path.join(live, 'cert.pem'), '../archive/cert2.pem');
  await waitForLine(v.output, /new certificate in use for new connections/, mark, 90_000);
  assert.equal(await ping(old.conn), 'result');
  assert.equal(old.conn.closed, false);
  const fresh = await directTls(HOST, port);
  assert.equal(fresh.fingerprint, b.fp);
  await login(fresh.conn);

  // acme.sh (--fullchain-file/--key-file): the configured files rewritten in place.
  mark = v.output.length;
  // acme.sh's install paths are the configured files themselves: plain files, rewritten.
  rmSync(path.join(live, 'cert.pem'));
  rmSync(path.join(live, 'key.pem'));
  writeFileSync(path.join(live, 'key.pem'), readFileSync(c.key), { mode: 0o600 });
  writeFileSync(path.join(live, 'cert.pem'), readFileSync(c.cert));
  await waitForLine(v.output, /new certificate in use for new connections/, mark, 90_000);
  const third = await directTls(HOST, port);
  assert.equal(third.fingerprint, c.fp);
  assert.equal(await ping(old.conn), 'result');
  assert.equal(await ping(fresh.conn), 'result');
  for (const x of [old.conn, fresh.conn, third.conn]) x.destroy();
});

test('decideSwap: swap a new valid pair, keep on an unchanged or invalid one', () => {
  const files = (cert: string, key: string) => ({ cert, key, generated: false, path: { cert: 'c', key: 'k' }, warnings: [] });
  const rows: Array<[string, { cert: string; key: string } | undefined, ReturnType<typeof files> | Error, ReturnType<typeof decideSwap>]> = [
    ['new pair', { cert: 'A', key: 'a' }, files('B', 'b'), { action: 'swap' }],
    ['new key only (a valid pair)', { cert: 'A', key: 'a' }, files('A', 'b'), { action: 'swap' }],
    ['nothing running yet', undefined, files('A', 'a'), { action: 'swap' }],
    ['same files', { cert: 'A', key: 'a' }, files('A', 'a'), { action: 'keep', reason: 'unchanged' }],
    ['half-written', { cert: 'A', key: 'a' }, new Error('tls.cert: not a PEM certificate'), { action: 'keep', reason: 'invalid', error: 'tls.cert: not a PEM certificate' }],
  ];
  for (const [name, running, read, want] of rows) assert.deepEqual(decideSwap(running, read), want, name);
});
