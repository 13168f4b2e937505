/**
 * Credential derivation, PLAIN verification and SASLprep.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { deriveAllScram, deriveScram, verifyPassword } from '../../src/sasl/credentials.js';
import { SaslPrepError, saslprep } from '../../src/sasl/saslprep.js';

test('deriveScram is deterministic for a given salt and matches RFC 5802 §3', async () => {
  const salt = Buffer.from('QSXCR+Q6sek8bf92', 'base64');
  const a = await deriveScram('pencil', 'SHA-1', 4096, salt);
  const b = await deriveScram('pencil', 'SHA-1', 4096, salt);
  assert.deepEqual(a, b);
  assert.deepEqual(a.salt, salt);
  assert.equal(a.iterations, 4096);
  // independent computation
  const salted = pbkdf2Sync('pencil', salt, 4096, 20, 'sha1');
  const clientKey = createHmac('sha1', salted).update('Client Key').digest();
  assert.deepEqual(a.storedKey, createHash('sha1').update(clientKey).digest());
  assert.deepEqual(a.serverKey, createHmac('sha1', salted).update('Server Key').digest());
  const c = await deriveScram('pencil', 'SHA-256', 4096, salt);
  assert.equal(c.storedKey.length, 32);
  assert.equal(c.serverKey.length, 32);
  assert.notDeepEqual((await deriveScram('pencil', 'SHA-1', 4097, salt)).storedKey, a.storedKey);
  assert.notDeepEqual((await deriveScram('pencil', 'SHA-1', 4096, Buffer.from('other salt'))).storedKey, a.storedKey);
});

test('deriveScram prepares the password first', async () => {
  const salt = Buffer.from('0123456789abcdef');
  const plain = await deriveScram('a b', 'SHA-256', 4096, salt);
  assert.deepEqual(await deriveScram('a\u2003b', 'SHA-256', 4096, salt), plain); // em space
  assert.deepEqual(await deriveScram('a\u00ad b', 'SHA-256', 4096, salt), plain); // soft hyphen
  await assert.rejects(deriveScram('bad\u0000', 'SHA-256', 4096, salt), SaslPrepError);
  await assert.rejects(deriveScram('', 'SHA-256', 4096, salt), SaslPrepError);
  await assert.rejects(deriveScram('x', 'SHA-256', 0, salt), RangeError);
});

test('deriveAllScram gives both hashes with fresh random salts', async () => {
  const a = await deriveAllScram('secret', 4096);
  const b = await deriveAllScram('secret', 4096);
  assert.equal(a['SHA-1'].storedKey.length, 20);
  assert.equal(a['SHA-256'].storedKey.length, 32);
  assert.equal(a['SHA-1'].salt.length, 16);
  assert.notDeepEqual(a['SHA-1'].salt, a['SHA-256'].salt);
  assert.notDeepEqual(a['SHA-256'].salt, b['SHA-256'].salt);
  assert.notDeepEqual(a['SHA-256'].storedKey, b['SHA-256'].storedKey);
});

test('verifyPassword checks against the stored keys only', async () => {
  const all = await deriveAllScram('correct horse', 4096);
  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    assert.equal(await verifyPassword('correct horse', all[hash], hash), true);
    assert.equal(await verifyPassword('correct\u00a0horse', all[hash], hash), true);
    assert.equal(await verifyPassword('Correct horse', all[hash], hash), false);
    assert.equal(await verifyPassword('', all[hash], hash), false);
    assert.equal(await verifyPassword('bad\u0001', all[hash], hash), false);
  }
  // wrong hash for the record, or a broken record: false, never a throw
  assert.equal(await verifyPassword('correct horse', all['SHA-1'], 'SHA-256'), false);
  assert.equal(await verifyPassword('correct horse', { ...all['SHA-1'], iterations: -1 }, 'SHA-1'), false);
});

test('PBKDF2 runs off the event loop', async () => {
  // ~hundreds of ms of PBKDF2; timers must keep firing meanwhile.
  let ticks = 0;
  const timer = setInterval(() => ticks++, 5);
  const t0 = Date.now();
  await deriveScram('pencil', 'SHA-256', 200_000, Buffer.from('salt'));
  const elapsed = Date.now() - t0;
  clearInterval(timer);
  assert.ok(elapsed >= 20, `derivation took only ${elapsed}ms, cannot judge`);
  assert.ok(ticks >= 2, `event loop blocked: ${ticks} ticks in ${elapsed}ms`);
});

test('SASLprep (RFC 4013 §3 examples, with OpaqueString NFC)', () => {
  assert.equal(saslprep('I\u00adX'), 'IX'); // soft hyphen mapped to nothing
  assert.equal(saslprep('user'), 'user');
  assert.equal(saslprep('USER'), 'USER'); // case preserved
  assert.throws(() => saslprep('\u0007'), SaslPrepError); // control character
  // NFC, not NFKC: compatibility characters are kept (OpaqueString, RFC 8265 §4.2)
  assert.equal(saslprep('\u00aa'), '\u00aa');
  assert.equal(saslprep('\u2168'), '\u2168');
  assert.equal(saslprep('e\u0301'), '\u00e9'); // composed
  assert.equal(saslprep('\u212b'), '\u00c5'); // canonical singleton
});

test('SASLprep mappings and prohibitions', () => {
  assert.equal(saslprep('a\u00a0b\u2000c\u3000d'), 'a b c d'); // non-ASCII spaces
  assert.equal(saslprep('a\u200bb\ufeffc\ufe0fd\u2060e'), 'abcde'); // mapped to nothing
  assert.equal(saslprep(' lead and trail '), ' lead and trail ');
  assert.equal(saslprep('pässwörd'), 'pässwörd');
  assert.equal(saslprep('😀 emoji'), '😀 emoji');
  for (const bad of ['\u0000', 'a\u007f', 'a\u0085', 'a\u2028', 'a\ue000', 'a\u{f0000}', 'a\ufdd0', 'a\uffff', 'a\ud800', 'a\ufffd', 'a\u2ff0', 'a\u200e', 'a\u202e', 'a\u{e0001}', '\u00ad', '']) {
    assert.throws(() => saslprep(bad), SaslPrepError, JSON.stringify(bad));
  }
});
