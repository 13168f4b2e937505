/**
 * Moving from Prosody in one command: Debian's Prosody 0.12 runs with its own
 * config on 127.0.0.74, accounts are made with prosodyctl, a real client
 * session makes a roster (groups, mutual subscription), private XML, a vCard
 * and a conversation; prosody-migrator writes the XEP-0227 export; `verona
 * import DIR` loads it; then a real client library (@xmpp/client, SCRAM-SHA-1)
 * logs in to Verona with the OLD password and finds its roster, its PEP nodes
 * (bookmarks, OMEMO, avatar) and its history through MAM. Runs in CI (about 20 s). Without Prosody the test is skipped
 * with a reason, except under CI, where that is a failure.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { PROSODY, assertMoved, assertRoundTrip, exportProsody, populate, readMoved, startProsody, PROSODY_HOST, type Anchor } from '../helpers/ops-portable.js';
import { runCli, startVerona, type Verona } from '../helpers/server.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { testConfig } from '../helpers/server.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0';
const skip = !existsSync(PROSODY) && !process.env.CI ? `${PROSODY} not found (apt-get install -y prosody)` : false;

let prosody: Anchor | undefined;
let v: Verona | undefined;
after(async () => {
  await prosody?.stop();
  prosody?.cleanup();
  await v?.stop();
  v?.cleanup();
});

test('Prosody 0.12 export (prosody-migrator, XEP-0227) imported: old password, roster and history work', { skip, timeout: 300_000 }, async () => {
  prosody = await startProsody([
    ['romeo', 'r0meo'],
    ['juliet', 'jul1et'],
    ['mercutio', 'merc0'],
  ]);
  await populate(prosody.port, PROSODY_HOST);
  await prosody.stop();
  const exported = await exportProsody(prosody);

  const dataDir = mkdtempSync(path.join(tmpdir(), 'verona-import-'));
  const cfgFile = path.join(dataDir, 'verona.yml');
  writeFileSync(cfgFile, JSON.stringify(testConfig(dataDir, { c2s: { host: '127.0.0.75' } })));
  const { stdout } = await runCli(['import', exported, '--config', cfgFile]);
  assert.match(stdout, /^imported 3 accounts, 3 roster items, \d+ vCards, 1 private XML fragments, 8 archived messages$/m);
  // PEP: bookmarks, OMEMO device list and bundle, avatar data and metadata. Prosody 0.12's
  // XEP-0227 driver has no offline or blocklist handler: those are not in its export.
  // (Prosody keeps the vCard as a vcard4 PEP node too: the sixth node.)
  assert.match(stdout, /^imported 6 PEP nodes with 6 items, 0 offline messages, 0 blocked JIDs$/m);
  assert.doesNotMatch(stdout, /^skipped: /m);
  assert.match(stdout, /SCRAM-SHA-1 credentials only/);

  // Verona's own export reads back in: export, import into a fresh server, export again: the same files.
  const round = await assertRoundTrip(cfgFile, dataDir);
  const bookmarksConf = /<configure node="urn:xmpp:bookmarks:1">(.*?)<\/configure>/.exec(round)?.[1] ?? '';
  assert.match(bookmarksConf, /<field var="pubsub#access_model"(?:(?!<\/field>).)*<value>whitelist<\/value>/);
  assert.match(round, /<items node="eu.siacs.conversations.axolotl.bundles:31415"><item id="current"><bundle /);

  v = await startVerona({ dataDir, config: { c2s: { host: '127.0.0.75' } } });
  const moved = await readMoved(`xmpp://127.0.0.75:${v.ports.c2s}`, 'romeo', 'r0meo');
  // Prosody 0.12's migrator does not carry blocklists: Romeo blocks nobody on Verona yet.
  assertMoved({ ...moved, blocked: ['tybalt@localhost'] }, { pep: true });
  assert.deepEqual(moved.blocked, []);
  assert.deepEqual(moved.history, [
    'romeo@localhost: But soft, what light through yonder window breaks?',
    'romeo@localhost: It is the east, and Juliet is the sun.',
    'juliet@localhost: Wherefore art thou Romeo?',
    'romeo@localhost: Parting is such sweet sorrow',
  ]);
});
