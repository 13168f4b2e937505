/**
 * The pure parts of the XEP-0227 import (src/portable/import.ts): recognising
 * ejabberd's twice-encoded SCRAM values, and archive keys (Verona's own ids kept
 * so that export/import/export is stable, others replaced, order kept).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { archiveKey, undoubleBase64 } from '../../src/portable/import.js';
import { base32 } from '../../src/modules/mam/ids.js';

const b = (s: string): Buffer => Buffer.from(s, 'base64');

test('undoubleBase64: ejabberd 23.01 values are decoded once more, right-sized ones are kept', () => {
  // From a real `ejabberdctl export_piefxis` (SCRAM-SHA-1): each field is base64 of base64 text.
  const ejabberd = {
    salt: b('bjI0eTRSUTljY0U2VEhzM0h6VUZYUT09'),
    iterations: 4096,
    serverKey: b('VE9WZDdpb1ZLSE1OM0JBb1I3ckd0bG0vQnVVPQ=='),
    storedKey: b('R1ZndTF1dm5jMDJtNnZqMW5Vb29oWkRYeVNjPQ=='),
  };
  const fixed = undoubleBase64(ejabberd, 20);
  assert.equal(fixed.storedKey.length, 20);
  assert.equal(fixed.serverKey.length, 20);
  assert.deepEqual(fixed.salt, b('n24y4RQ9ccE6THs3HzUFXQ=='));
  assert.equal(fixed.iterations, 4096);

  const rows: Array<[string, Buffer, number, boolean]> = [
    ['Prosody SHA-1 (20-byte key, kept)', b('qZIOjfTZqhZ7eolaAz9CRWYIIJM='), 20, false],
    ['SHA-256 key of 32 bytes (kept)', Buffer.alloc(32, 7), 32, false],
    ['wrong length, not base64 text (kept as it is)', Buffer.from([0xff, 0x00, 0x10]), 20, false],
  ];
  for (const [name, key, len, changed] of rows) {
    const c = { salt: Buffer.from('salt'), iterations: 4096, serverKey: key, storedKey: key };
    assert.equal(undoubleBase64(c, len) !== c, changed, name);
  }
});

test('archiveKey: times kept, keys unique; Verona ids kept when they fit the stamp and are free', () => {
  const ms = Date.UTC(2026, 11, 3, 12, 0, 0);
  const first = archiveKey('not-a-verona-id', ms);
  assert.equal(first.seq >= ms * 1000, true);
  assert.match(first.id, /^[0-9A-Z]{16}$/);
  // Another message of the same millisecond (another account's copy): the next free key, same time.
  const second = archiveKey(undefined, ms);
  assert.equal(second.seq, first.seq + 1);
  // A Verona id of a later time (seq = ms * 1000 + counter): kept, with its seq.
  const seq = (ms + 20_000) * 1000 + 5;
  const verona = base32(seq, 11) + 'ABCDE';
  assert.deepEqual(archiveKey(verona, ms + 20_000), { seq, id: verona });
  // The same id again (a duplicate): not kept, another free key of that time.
  const dup = archiveKey(verona, ms + 20_000);
  assert.notEqual(dup.id, verona);
  assert.notEqual(dup.seq, seq);
  assert.equal(Math.floor(dup.seq / 1000), ms + 20_000, 'the time is kept');
  const again = { seq };
  // A Verona id whose time does not match the stamp: replaced.
  const mismatch = archiveKey(first.id, ms + 60_000);
  assert.notEqual(mismatch.id, first.id);
  assert.ok(mismatch.seq > again.seq);
  assert.equal(Math.floor(mismatch.seq / 1000), ms + 60_000);
});
