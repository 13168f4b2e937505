/**
 * Anchor servers for the import tests (test/integration/portable-import.test.ts):
 * Debian's Prosody 0.12 started as a child process with its own config and data
 * in a temporary directory on 127.0.0.74, accounts made with prosodyctl, data
 * made by a real client session, and the XEP-0227 export made by
 * prosody-migrator, as an operator would.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { connectClient, sendIq, type TestClient } from './client.js';

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
