/**
 * XEP-0049 and XEP-0054 helpers without a server: storage keys and option
 * validation. Protocol behaviour is tested against the real server in
 * test/integration/private.test.ts and vcard.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { x } from '../../src/xml/element.js';
import { privateKey, privateOptions } from '../../src/modules/private.js';
import { vcardOptions } from '../../src/modules/vcard.js';

test('fragments are keyed by namespace and name', () => {
  assert.equal(privateKey(x('storage', 'storage:bookmarks')), '{storage:bookmarks}storage');
  assert.notEqual(privateKey(x('a', 'urn:x')), privateKey(x('b', 'urn:x')));
  assert.notEqual(privateKey(x('a', 'urn:x')), privateKey(x('a', 'urn:y')));
});

test('private options', () => {
  assert.deepEqual(privateOptions({}), { maxEntries: 100, maxEntrySize: 65536 });
  assert.deepEqual(privateOptions({ maxEntries: 2 }), { maxEntries: 2, maxEntrySize: 65536 });
  assert.throws(() => privateOptions({ maxEntries: 0 }), /maxEntries/);
  assert.throws(() => privateOptions({ size: 1 }), /unknown option/);
});

test('vcard options', () => {
  assert.deepEqual(vcardOptions({}), { maxSize: 131072 });
  assert.deepEqual(vcardOptions({ maxSize: 500 }), { maxSize: 500 });
  assert.throws(() => vcardOptions({ maxSize: 1.5 }), /maxSize/);
  assert.throws(() => vcardOptions({ max: 1 }), /unknown option/);
});
