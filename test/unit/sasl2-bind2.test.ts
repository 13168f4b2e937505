/** bind2Resource (src/c2s/sasl2.ts), table-tested. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bind2Resource } from '../../src/c2s/sasl2.js';

test('bind2Resource: the tag when free or held by the same agent; tag + agent hash otherwise', () => {
  assert.equal(bind2Resource('phone', 'romeo', 'ua-1', undefined), 'phone');
  assert.equal(bind2Resource('phone', 'romeo', 'ua-1', 'ua-1'), 'phone', 'same agent: replaced, same resource');
  const other = bind2Resource('phone', 'romeo', 'ua-2', 'ua-1');
  assert.match(other, /^phone\.[A-Za-z0-9_-]{8}$/);
  assert.equal(bind2Resource('phone', 'romeo', 'ua-2', 'ua-1'), other, 'stable per agent');
  assert.notEqual(bind2Resource('phone', 'juliet', 'ua-2', 'ua-1'), other, 'per account');
  assert.match(bind2Resource('phone', 'romeo', undefined, null), /^phone\./, 'no agent: never takes a held resource');
  assert.equal(bind2Resource(undefined, 'romeo', 'ua-1', undefined), 'verona');
  assert.equal(bind2Resource('Con versations/<x>', 'romeo', 'ua-1', undefined), 'Conversationsx');
});
