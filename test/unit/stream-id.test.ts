/**
 * Stream ids prefix the sender's archive ids (docs/protocol.md), so they must never repeat.
 * They come from a pool of random bytes refilled every 128 ids; this crosses several refills.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newStreamId } from '../../src/c2s/stream.js';

test('stream ids are 16 URL-safe characters and do not repeat across pool refills', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 1000; i++) {
    const id = newStreamId();
    assert.match(id, /^[A-Za-z0-9_-]{16}$/);
    assert.equal(seen.has(id), false, `id ${id} repeated at ${i}`);
    seen.add(id);
  }
});
