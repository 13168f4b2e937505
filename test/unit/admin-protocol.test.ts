/**
 * Pure parts of administration: the admin socket's request parsing, the
 * CLI's negative-number handling, XEP-0004 form reading, the admin list.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseRequest, encodeScram } from '../../src/admin/protocol.js';
import { AdminError } from '../../src/admin/actions.js';
import { joinNegativeValues } from '../../src/cli/main.js';
import { submitted, value } from '../../src/modules/adhoc/forms.js';
import { adminSet } from '../../src/modules/adhoc/index.js';
import { parseXml } from '../../src/xml/parser.js';

test('admin requests: valid ones parse, everything else is a bad-request with the reason', () => {
  assert.deepEqual(parseRequest('{"action":"kick","jid":"a@b/c"}'), { action: 'kick', jid: 'a@b/c' });
  assert.deepEqual(parseRequest('{"action":"sessions"}'), { action: 'sessions', user: undefined });
  assert.deepEqual(parseRequest('{"action":"announce","body":"hi"}'), { action: 'announce', body: 'hi', subject: undefined });
  const cred = { salt: Buffer.from('salt'), iterations: 4096, storedKey: Buffer.alloc(32, 1), serverKey: Buffer.alloc(32, 2) };
  const r = parseRequest(JSON.stringify({ action: 'passwd', user: 'u', scram: encodeScram({ 'SHA-1': cred, 'SHA-256': cred }) }));
  assert.equal(r.action, 'passwd');
  if (r.action === 'passwd') assert.deepEqual(r.scram['SHA-256'].storedKey, cred.storedKey);
  const bad: Array<[string, RegExp]> = [
    ['nope', /not JSON/],
    ['[1]', /JSON object/],
    ['{"action":"rm -rf"}', /unknown action/],
    ['{"action":"kick"}', /"jid" must be a string/],
    ['{"action":"kick","jid":5}', /"jid" must be a string/],
    ['{"action":"passwd","user":"u","scram":{}}', /iterations/],
    [JSON.stringify({ action: 'passwd', user: 'u', scram: { 'SHA-1': { ...encodeScram({ 'SHA-1': cred, 'SHA-256': cred })['SHA-1'] as object, iterations: 1 } } }), /iterations must be an integer >= 4096/],
  ];
  for (const [line, why] of bad) {
    assert.throws(() => parseRequest(line), (e: unknown) => e instanceof AdminError && e.code === 'bad-request' && why.test(e.message), line);
  }
});

test('CLI: a negative number after an option that takes a value is its value', () => {
  const opts = { 'tls-port': { type: 'string' }, password: { type: 'string', short: 'p' }, force: { type: 'boolean' } };
  const table: Array<[string[], string[]]> = [
    [['start', '--tls-port', '-1'], ['start', '--tls-port=-1']],
    [['passwd', 'u', '-p', '-42'], ['passwd', 'u', '-p-42']],
    [['start', '--tls-port', '5223'], ['start', '--tls-port', '5223']],
    // Not after a value option: left alone (parseArgs reports it).
    [['--force', '-1'], ['--force', '-1']],
    [['--', '--tls-port', '-1'], ['--', '--tls-port', '-1']],
    [['--tls-port', '-x'], ['--tls-port', '-x']],
  ];
  for (const [input, want] of table) assert.deepEqual(joinNegativeValues(input, opts), want, input.join(' '));
});

test('XEP-0004: submitted values by field, multi values kept, non-submit forms ignored', () => {
  const f = parseXml(
    "<x xmlns='jabber:x:data' type='submit'><field var='a'><value>1</value></field><field var='m'><value>x</value><value>y</value></field><field><value>no var</value></field></x>",
  );
  const v = submitted(f);
  assert.ok(v);
  assert.equal(value(v, 'a'), '1');
  assert.deepEqual(v.get('m'), ['x', 'y']);
  assert.equal(value(v, 'm', true), 'x\ny');
  assert.equal(value(v, 'missing'), undefined);
  assert.equal(submitted(parseXml("<x xmlns='jabber:x:data' type='form'/>")), undefined);
});

test('admin.users: bare account JIDs prepared; anything else reported and ignored', () => {
  const warned: string[] = [];
  const s = adminSet(['Boss@LocalHost', 'localhost', 'a@b/c', '@@', 'ok@example.org'], (e) => warned.push(e));
  assert.deepEqual([...s].sort(), ['boss@localhost', 'ok@example.org']);
  assert.deepEqual(warned, ['localhost', 'a@b/c', '@@']);
});
