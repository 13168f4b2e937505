/**
 * Moving from Prosody in one command: Debian's Prosody 0.12 runs with its own
 * config on 127.0.0.74, accounts are made with prosodyctl, a real client
 * session makes a roster (groups, mutual subscription), private XML, a vCard
 * and a conversation; prosody-migrator writes the XEP-0227 export; `verona
 * import DIR` loads it; then a real client library (@xmpp/client, SCRAM-SHA-1)
 * logs in to Verona with the OLD password and finds its roster and its history
 * through MAM. Runs in CI (about 20 s). Without Prosody the test is skipped
 * with a reason, except under CI, where that is a failure.
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { xml } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import { PROSODY, exportProsody, populate, startProsody, PROSODY_HOST, type Anchor } from '../helpers/ops-portable.js';
import { runCli, startVerona, type Verona } from '../helpers/server.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
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
  ]);
  await populate(prosody.port, PROSODY_HOST);
  await prosody.stop();
  const exported = await exportProsody(prosody);

  const dataDir = mkdtempSync(path.join(tmpdir(), 'verona-import-'));
  const cfgFile = path.join(dataDir, 'verona.yml');
  writeFileSync(cfgFile, JSON.stringify(testConfig(dataDir, { c2s: { host: '127.0.0.75' } })));
  const { stdout } = await runCli(['import', exported, '--config', cfgFile]);
  assert.match(stdout, /^imported 2 accounts, 2 roster items, \d+ vCards, 1 private XML fragments, 8 archived messages$/m);
  assert.match(stdout, /SCRAM-SHA-1 credentials only/);

  // Verona's own export reads back in: the same accounts, roster, private XML and archive.
  const again = path.join(dataDir, 'export');
  const exp = await runCli(['export', again, '--config', cfgFile]);
  assert.match(exp.stdout, /^exported 2 accounts, 2 roster items, 8 archived messages to /);
  const second = mkdtempSync(path.join(tmpdir(), 'verona-reimport-'));
  try {
    const re = await runCli(['import', again, '--data-dir', second, '--domain', 'localhost']);
    assert.match(re.stdout, /^imported 2 accounts, 2 roster items, \d+ vCards, 1 private XML fragments, 8 archived messages$/m);
  } finally {
    rmSync(second, { recursive: true, force: true });
  }

  v = await startVerona({ dataDir, config: { c2s: { host: '127.0.0.75' } } });
  const c = client({ service: `xmpp://127.0.0.75:${v.ports.c2s}`, domain: 'localhost', username: 'romeo', password: 'r0meo', resource: 'new-phone' });
  c.on('error', () => undefined);
  // xmpp.js waits 2 s by default for each stream step; the shared CI machine can be slower.
  (c as unknown as { timeout: number }).timeout = 30_000;
  const archived: string[] = [];
  c.on('stanza', (s) => {
    const fwd = s.getChild('result', 'urn:xmpp:mam:2')?.getChild('forwarded', 'urn:xmpp:forward:0');
    const body = fwd?.getChild('message')?.getChildText('body');
    if (body) archived.push(`${fwd?.getChild('message')?.attrs.from?.split('/')[0]}: ${body}`);
  });
  await c.start();
  try {
    const roster = await c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));
    const items = roster.getChildren('item');
    assert.equal(items.length, 1);
    assert.equal(items[0].attrs.jid, 'juliet@localhost');
    assert.equal(items[0].attrs.name, 'Juliet');
    assert.equal(items[0].attrs.subscription, 'both');
    assert.deepEqual(items[0].getChildren('group').map((g) => g.text()).sort(), ['Capulets', 'Friends']);

    const priv = await c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:private' }, xml('notes', { xmlns: 'http://miranda-im.org/storage#notes' })));
    assert.match(priv.toString(), /balcony at nine/);

    const fin = await c.iqCaller.request(xml('iq', { type: 'set', id: 'mam1' }, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid: 'q1' })));
    assert.ok(fin.getChild('fin', 'urn:xmpp:mam:2'));
    assert.deepEqual(archived, [
      'romeo@localhost: But soft, what light through yonder window breaks?',
      'romeo@localhost: It is the east, and Juliet is the sun.',
      'juliet@localhost: Wherefore art thou Romeo?',
      'romeo@localhost: Parting is such sweet sorrow',
    ]);
  } finally {
    await c.stop().catch(() => undefined);
  }
});
