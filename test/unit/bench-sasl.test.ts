// The driver's SCRAM client against the RFC 5802 §5 (SCRAM-SHA-1) and RFC 7677 §3 (SCRAM-SHA-256)
// example exchanges.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScramClient, plainPayload } from '../../bench/driver/sasl.js';

const b64 = (s: string): string => Buffer.from(s).toString('base64');
const unb64 = (s: string): string => Buffer.from(s, 'base64').toString();

test('SCRAM-SHA-1 matches RFC 5802', async () => {
  const c = new ScramClient('SCRAM-SHA-1', 'user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
  assert.equal(unb64(c.first()), 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
  const fin = await c.final(b64('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096'));
  assert.equal(unb64(fin), 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
  assert.equal(c.verify(b64('v=rmF9pqV8S7suAoZWja4dJRkFsKQ=')), true);
  assert.equal(c.verify(b64('v=AAAApqV8S7suAoZWja4dJRkFsKQ=')), false);
});

test('SCRAM-SHA-256 matches RFC 7677', async () => {
  const c = new ScramClient('SCRAM-SHA-256', 'user', 'pencil', 'rOprNGfwEbeRWgbNEkqO');
  const fin = await c.final(b64('r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096'));
  assert.equal(
    unb64(fin),
    'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
  );
  assert.equal(c.verify(b64('v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=')), true);
});

test('SCRAM refuses a server nonce that does not extend the client nonce', async () => {
  const c = new ScramClient('SCRAM-SHA-1', 'user', 'pencil', 'abc');
  await assert.rejects(c.final(b64('r=xyz123,s=QSXCR+Q6sek8bf92,i=4096')));
});

test('PLAIN payload is authzid NUL authcid NUL password', () => {
  assert.equal(unb64(plainPayload('user1', 'pass1')), '\0user1\0pass1');
});
