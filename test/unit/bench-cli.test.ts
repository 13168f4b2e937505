// Option parsing of the load driver's CLI (bench/driver/cli.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandAddrs, main } from '../../bench/driver/cli.js';

test('--local-addrs expands ranges and lists', () => {
  assert.deepEqual(expandAddrs('127.0.0.1-3'), ['127.0.0.1', '127.0.0.2', '127.0.0.3']);
  assert.deepEqual(expandAddrs('127.0.0.1,10.0.0.2-3'), ['127.0.0.1', '10.0.0.2', '10.0.0.3']);
  assert.deepEqual(expandAddrs(''), []);
});

test('unknown modes, options and mechanisms are refused', async () => {
  await assert.rejects(main(['nosuchmode']), /unknown mode/);
  await assert.rejects(main(['--nosuch', 'chat']), /Unknown option/);
  await assert.rejects(main(['--mech', 'DIGEST-MD5', 'chat']), /bad --mech/);
  await assert.rejects(main(['--port', 'x', 'chat']), /--port: not a number/);
});
