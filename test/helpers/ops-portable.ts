/**
 * Anchor servers for the import tests (test/integration/portable-import.test.ts):
 * Debian's Prosody 0.12 started as a child process with its own config and data
 * in a temporary directory on 127.0.0.74, accounts made with prosodyctl, data
 * made by a real client session, and the XEP-0227 export made by
 * prosody-migrator, as an operator would.
 */
import { createHash } from 'node:crypto';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import assert from 'node:assert/strict';
import { xml } from '@xmpp/client';
import { parseXml } from '../../src/xml/parser.js';
import type { Element } from '../../src/xml/element.js';
import { connectClient, sendIq, type TestClient } from './client.js';
import { client } from './xmppjs.js';
import { runCli } from './server.js';

const execFileP = promisify(execFile);
export const PROSODY = '/usr/bin/prosody';
export const PROSODY_HOST = '127.0.0.74';
export const PROSODY_MIGRATOR = '/usr/bin/prosody-migrator';

export interface Anchor {
  dir: string;
  port: number;
  stop(): Promise<void>;
  cleanup(): void;
}

async function freePort(host: string): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, host, () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

function prosodyConfig(dir: string, port: number): string {
  return `
pidfile = "${dir}/prosody.pid"
data_path = "${dir}/data"
run_as_root = true
interfaces = { "${PROSODY_HOST}" }
c2s_ports = { ${port} }
c2s_direct_tls_ports = { }
s2s_ports = { }
http_ports = { }
https_ports = { }
component_ports = { }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
authentication = "internal_hashed"
storage = "sql"
sql = { driver = "SQLite3", database = "prosody.sqlite" }
log = { info = "${dir}/prosody.log" }
modules_enabled = { "roster", "saslauth", "disco", "private", "vcard_legacy", "pep", "blocklist", "offline", "mam", "carbons", "ping" }
modules_disabled = { "s2s" }
default_archive_policy = true
archive_expires_after = "never"
VirtualHost "localhost"
`;
}

/** Start Prosody with a fresh data directory; accounts are created with prosodyctl first. */
export async function startProsody(users: Array<[string, string]>): Promise<Anchor> {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-prosody-'));
  mkdirSync(path.join(dir, 'data'));
  const port = await freePort(PROSODY_HOST);
  const cfg = path.join(dir, 'prosody.cfg.lua');
  writeFileSync(cfg, prosodyConfig(dir, port));
  for (const [u, p] of users) await execFileP('prosodyctl', ['--config', cfg, 'register', u, 'localhost', p]);
  const proc: ChildProcess = spawn(PROSODY, ['--config', cfg, '-F'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  // Ready when the port accepts connections.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const ok = await new Promise<boolean>((r) => {
      const s = net.connect({ host: PROSODY_HOST, port }, () => {
        s.destroy();
        r(true);
      });
      s.once('error', () => r(false));
    });
    if (ok) break;
    if (proc.exitCode !== null || Date.now() > deadline) {
      const log = existsSync(path.join(dir, 'prosody.log')) ? readFileSync(path.join(dir, 'prosody.log'), 'utf8') : '';
      throw new Error(`prosody did not start:\n${log}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    dir,
    port,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
    },
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** prosody-migrator from the server's storage to a XEP-0227 directory (one file per account). */
export async function exportProsody(a: Anchor): Promise<string> {
  const out = path.join(a.dir, 'xep227');
  mkdirSync(out);
  const mcfg = path.join(a.dir, 'migrator.cfg.lua');
  writeFileSync(
    mcfg,
    // The migrator's own config format: each store is a call `name { ... }`.
    `input { type = "sql", driver = "SQLite3", database = "${a.dir}/data/prosody.sqlite",
  hosts = { ["localhost"] = { "accounts", "roster", "vcard", "private", "archive-archive", "pep-pubsub" } } }
output { type = "xep0227", path = "${out}" }
`,
  );
  // prosody-migrator drops to the prosody user when started as root: let it read and write here.
  await execFileP('chmod', ['-R', 'a+rwX', a.dir]);
  // Prosody 0.12's XEP-0227 driver writes <user>@<host>.xml into the data directory compiled
  // into the migrator script (/var/lib/prosody), ignoring `path`: run a copy pointed at ours.
  const script = readFileSync(PROSODY_MIGRATOR, 'utf8').replace(/^CFG_DATADIR=.*$/m, `CFG_DATADIR='${out}';`);
  const migrator = path.join(a.dir, 'prosody-migrator');
  writeFileSync(migrator, script, { mode: 0o755 });
  await execFileP(migrator, ['--config', mcfg, 'input', 'output']);
  return out;
}

const AVATAR_PNG = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const AVATAR_ID = createHash('sha1').update(Buffer.from(AVATAR_PNG, 'base64')).digest('hex');

/** Romeo's PEP nodes on the old server: [node, item id, payload, access model]. */
export const PEP_ITEMS: Array<[string, string, string, 'open' | 'presence' | 'whitelist']> = [
  ['urn:xmpp:bookmarks:1', 'capulets@conference.localhost', "<conference xmlns='urn:xmpp:bookmarks:1' name='The feast' autojoin='true'><nick>romeo</nick></conference>", 'whitelist'],
  ['eu.siacs.conversations.axolotl.devicelist', 'current', "<list xmlns='eu.siacs.conversations.axolotl'><device id='31415'/></list>", 'open'],
  [
    'eu.siacs.conversations.axolotl.bundles:31415',
    'current',
    "<bundle xmlns='eu.siacs.conversations.axolotl'><signedPreKeyPublic signedPreKeyId='1'>BQFzaWduZWQ=</signedPreKeyPublic><signedPreKeySignature>c2lnbmF0dXJl</signedPreKeySignature><identityKey>BWlkZW50aXR5</identityKey><prekeys><preKeyPublic preKeyId='1'>BXByZWtleTE=</preKeyPublic><preKeyPublic preKeyId='2'>BXByZWtleTI=</preKeyPublic></prekeys></bundle>",
    'open',
  ],
  ['urn:xmpp:avatar:data', AVATAR_ID, `<data xmlns='urn:xmpp:avatar:data'>${AVATAR_PNG}</data>`, 'presence'],
  ['urn:xmpp:avatar:metadata', AVATAR_ID, `<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='${Buffer.from(AVATAR_PNG, 'base64').length}' id='${AVATAR_ID}' type='image/png' width='1' height='1'/></metadata>`, 'presence'],
];

/** Romeo's and Juliet's life on the old server, through a real client connection. */
export async function populate(port: number, host: string): Promise<void> {
  const login = (user: string, password: string, resource: string): Promise<TestClient> =>
    connectClient({ port, host, user, password, resource, presence: true });
  const romeo = await login('romeo', 'r0meo', 'phone');
  const juliet = await login('juliet', 'jul1et', 'laptop');
  await sendIq(romeo, "<query xmlns='jabber:iq:roster'><item jid='juliet@localhost' name='Juliet'><group>Capulets</group><group>Friends</group></item></query>");
  await sendIq(juliet, "<query xmlns='jabber:iq:roster'><item jid='romeo@localhost' name='Romeo'/></query>");
  romeo.send("<presence to='juliet@localhost' type='subscribe'/>");
  await juliet.next((el) => el.is('presence') && el.attrs.type === 'subscribe', 15_000);
  juliet.send("<presence to='romeo@localhost' type='subscribed'/>");
  juliet.send("<presence to='romeo@localhost' type='subscribe'/>");
  await romeo.next((el) => el.is('presence') && el.attrs.type === 'subscribe', 15_000);
  romeo.send("<presence to='juliet@localhost' type='subscribed'/>");
  await sendIq(romeo, "<vCard xmlns='vcard-temp'><FN>Romeo Montague</FN><NICKNAME>romeo</NICKNAME></vCard>");
  await sendIq(romeo, "<query xmlns='jabber:iq:private'><notes xmlns='http://miranda-im.org/storage#notes'><note>balcony at nine</note></notes></query>");
  await sendIq(romeo, "<block xmlns='urn:xmpp:blocking'><item jid='tybalt@localhost'/></block>");
  // A pending outbound subscription (none + ask): Mercutio has an account but never logs in.
  await sendIq(romeo, "<query xmlns='jabber:iq:roster'><item jid='mercutio@localhost' name='Mercutio'><group>Friends</group></item></query>");
  romeo.send("<presence to='mercutio@localhost' type='subscribe'/>");
  for (const [node, id, payload, access] of PEP_ITEMS) {
    const options =
      `<publish-options><x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>http://jabber.org/protocol/pubsub#publish-options</value></field>` +
      `<field var='pubsub#persist_items'><value>true</value></field><field var='pubsub#access_model'><value>${access}</value></field></x></publish-options>`;
    const r = await sendIq(romeo, `<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='${node}'><item id='${id}'>${payload}</item></publish>${options}</pubsub>`);
    if (r.attrs.type !== 'result') throw new Error(`PEP publish to ${node} failed: ${r.toString()}`);
  }
  for (const [i, body] of ['But soft, what light through yonder window breaks?', 'It is the east, and Juliet is the sun.'].entries()) {
    romeo.send(`<message to='juliet@localhost' type='chat' id='m${i}'><body>${body}</body></message>`);
    await juliet.next((el) => el.is('message') && el.getChildText('body') === body, 15_000);
  }
  juliet.send("<message to='romeo@localhost' type='chat' id='j1'><body>Wherefore art thou Romeo?</body></message>");
  await romeo.next((el) => el.is('message') && el.getChildText('body') === 'Wherefore art thou Romeo?', 15_000);
  // Juliet leaves; the next message waits offline for her.
  juliet.close();
  await juliet.waitClose(15_000);
  romeo.send("<message to='juliet@localhost' type='chat' id='m9'><body>Parting is such sweet sorrow</body></message>");
  // A round trip so that the server has handled the message before we go.
  await sendIq(romeo, "<ping xmlns='urn:xmpp:ping'/>", "type='get' to='localhost'");
  romeo.close();
  await romeo.waitClose(15_000);
}

/** What Romeo finds on the new server after the move, read through a real client library (@xmpp/client). */
export interface Moved {
  roster: Array<{ jid: string; name?: string; subscription?: string; ask?: string; groups: string[] }>;
  privateNotes: string;
  /** node -> [item id, payload XML] */
  pep: Map<string, Array<[string, string]>>;
  bookmarksAccess: string | undefined;
  blocked: string[];
  /** "from-bare: body" of every archived message, oldest first. */
  history: string[];
}

export async function readMoved(service: string, username: string, password: string): Promise<Moved> {
  const c = client({ service, domain: 'localhost', username, password, resource: 'new-phone' });
  c.on('error', () => undefined);
  // xmpp.js waits 2 s by default for each stream step; the shared CI machine can be slower.
  (c as unknown as { timeout: number }).timeout = 30_000;
  const history: string[] = [];
  c.on('stanza', (s) => {
    const fwd = s.getChild('result', 'urn:xmpp:mam:2')?.getChild('forwarded', 'urn:xmpp:forward:0');
    const body = fwd?.getChild('message')?.getChildText('body');
    if (body) history.push(`${fwd?.getChild('message')?.attrs.from?.split('/')[0]}: ${body}`);
  });
  await c.start().catch(async (e: unknown) => {
    await c.stop().catch(() => undefined);
    throw e;
  });
  try {
    const roster = await c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:roster' }));
    const priv = await c.iqCaller.get(xml('query', { xmlns: 'jabber:iq:private' }, xml('notes', { xmlns: 'http://miranda-im.org/storage#notes' })));
    const pep = new Map<string, Array<[string, string]>>();
    // A node that was not carried over answers item-not-found: read as "nothing there".
    const orNothing = <T>(e: unknown, nothing: T): T => {
      if ((e as { condition?: string }).condition === 'item-not-found') return nothing;
      throw e;
    };
    for (const [node] of PEP_ITEMS) {
      const r = await c.iqCaller.get(xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub' }, xml('items', { node }))).catch((e: unknown) => orNothing(e, undefined));
      const items = r?.getChild('items')?.getChildren('item') ?? [];
      pep.set(
        node,
        items.map((i) => [i.attrs.id as string, i.getChildElements()[0]?.toString() ?? '']),
      );
    }
    const conf = await c.iqCaller
      .get(xml('pubsub', { xmlns: 'http://jabber.org/protocol/pubsub#owner' }, xml('configure', { node: 'urn:xmpp:bookmarks:1' })))
      .catch((e: unknown) => orNothing(e, undefined));
    const access = conf
      ?.getChild('configure')
      ?.getChild('x', 'jabber:x:data')
      ?.getChildren('field')
      .find((f) => f.attrs.var === 'pubsub#access_model')
      ?.getChildText('value');
    const bl = await c.iqCaller.get(xml('blocklist', { xmlns: 'urn:xmpp:blocking' }));
    const fin = await c.iqCaller.request(xml('iq', { type: 'set', id: 'mam1' }, xml('query', { xmlns: 'urn:xmpp:mam:2', queryid: 'q1' })));
    if (!fin.getChild('fin', 'urn:xmpp:mam:2')) throw new Error('MAM query did not finish');
    return {
      roster: roster.getChildren('item').map((i) => ({
        jid: i.attrs.jid as string,
        name: i.attrs.name as string | undefined,
        subscription: i.attrs.subscription as string | undefined,
        ask: i.attrs.ask as string | undefined,
        groups: i.getChildren('group').map((g) => g.text()).sort(),
      })),
      privateNotes: priv.toString(),
      pep,
      bookmarksAccess: access ?? undefined,
      blocked: bl.getChildren('item').map((i) => i.attrs.jid as string),
      history,
    };
  } finally {
    await c.stop().catch(() => undefined);
  }
}

/** An element as text with sorted attributes and no whitespace-only text: equal trees give equal strings. */
export function canon(el: Element): string {
  const attrs = Object.entries(el.attrs)
    .filter(([k]) => k !== 'xmlns')
    .sort(([a], [b]) => (a < b ? -1 : 1))
    .map(([k, v]) => `${k}=${JSON.stringify(v)}`);
  const kids = el.children.map((c) => (typeof c === 'string' ? c.trim() : canon(c))).filter((c) => c !== '');
  return `<{${el.xmlns}}${el.name} ${attrs.join(' ')}>${kids.join('')}</>`;
}

/** The assertions both imports share (Prosody's and ejabberd's). */
export function assertMoved(m: Moved, opts: { pep: boolean }): void {
  const byJid = new Map(m.roster.map((r) => [r.jid, r]));
  assert.equal(m.roster.length, 2);
  assert.deepEqual(byJid.get('juliet@localhost'), { jid: 'juliet@localhost', name: 'Juliet', subscription: 'both', ask: undefined, groups: ['Capulets', 'Friends'] });
  assert.deepEqual(byJid.get('mercutio@localhost'), { jid: 'mercutio@localhost', name: 'Mercutio', subscription: 'none', ask: 'subscribe', groups: ['Friends'] });
  assert.match(m.privateNotes, /balcony at nine/);
  assert.deepEqual(m.blocked, ['tybalt@localhost']);
  if (!opts.pep) return;
  for (const [node, id, payload] of PEP_ITEMS) {
    const got = m.pep.get(node) ?? [];
    assert.equal(got.length, 1, `one item in ${node}`);
    assert.equal(got[0][0], id, `item id in ${node}`);
    // Same element (the serializer may quote or order attributes differently): compare the parsed trees.
    assert.equal(canon(parseXml(got[0][1])), canon(parseXml(payload)), `payload of ${node}`);
  }
  assert.equal(m.bookmarksAccess, 'whitelist');
}

/**
 * Round trip: `verona export` of the imported data, imported into a fresh data directory,
 * exported again, gives the same files byte for byte (accounts and credentials, roster and
 * pending requests, private XML, vCard, archive with its ids, PEP nodes with configuration
 * and items, offline messages with their stamps, blocklist). Returns the first export's text.
 */
export async function assertRoundTrip(cfgFile: string, workDir: string): Promise<string> {
  const first = path.join(workDir, 'export-1');
  const second = path.join(workDir, 'export-2');
  const fresh = mkdtempSync(path.join(tmpdir(), 'verona-reimport-'));
  try {
    await runCli(['export', first, '--config', cfgFile]);
    await runCli(['import', first, '--data-dir', fresh, '--domain', 'localhost']);
    await runCli(['export', second, '--data-dir', fresh, '--domain', 'localhost']);
    const names = readdirSync(first).sort();
    assert.deepEqual(readdirSync(second).sort(), names);
    let all = '';
    for (const n of names) {
      const a = readFileSync(path.join(first, n), 'utf8');
      assert.equal(readFileSync(path.join(second, n), 'utf8'), a, `${n} is the same after export, import, export`);
      all += a;
    }
    return all;
  } finally {
    rmSync(fresh, { recursive: true, force: true });
  }
}
