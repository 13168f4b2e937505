/**
 * Operators' control of live sessions against a real server process: the
 * admin socket (a 0600 unix socket in the data directory), `verona sessions`,
 * `verona kick`, `verona passwd` and `verona deluser` ending live sessions
 * (deluser leaving no row of the account), `verona disable`/`enable`
 * (<account-disabled/> at login), `verona announce`; and the CLI's negative
 * numbers (`--tls-port -1`).
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import { runCli, startVerona, type Verona } from '../helpers/server.js';
import { connectClient, connectRaw, sendIq, type TestClient } from '../helpers/client.js';

/** Rows of `user` in every table keyed by username (what "every trace" means in SQLite). */
function rowsOf(dataDir: string, user: string): Record<string, number> {
  const db = new Database(path.join(dataDir, 'verona.sqlite'), { readonly: true });
  try {
    const tables = db
      .prepare<[], { name: string }>("SELECT m.name AS name FROM sqlite_schema m, pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = 'username'")
      .all()
      .map((t) => t.name);
    const out: Record<string, number> = {};
    for (const t of tables) {
      const n = db.prepare<[string], { n: number }>(`SELECT count(*) AS n FROM "${t}" WHERE username = ?`).get(user)?.n ?? 0;
      if (n > 0) out[t] = n;
    }
    return out;
  } finally {
    db.close();
  }
}

/** The stream error condition a client got before its connection closed. */
async function streamErrorOf(c: TestClient): Promise<string | undefined> {
  const err = await c.next((el) => el.name === 'stream:error', 10000);
  await c.waitClose(10000);
  return err.getChildElements().find((e) => e.getName() !== 'text')?.getName();
}

async function saslPlain(port: number, user: string, password: string): Promise<string> {
  const c = await connectRaw(port);
  try {
    await c.open();
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
    const r = await c.next((el) => el.name === 'success' || el.name === 'failure');
    return r.name === 'success' ? 'success' : (r.getChildElements().find((e) => e.getName() !== 'text')?.getName() ?? 'failure');
  } finally {
    c.destroy();
  }
}

describe('admin socket and CLI on a running server', () => {
  let v: Verona;
  const port = (): number => v.ports.c2s;
  const cli = (args: string[]): Promise<{ stdout: string; stderr: string }> => v.cli(args);

  before(async () => {
    v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et'], ['nurse', 'nurs3']] });
  });
  after(async () => {
    await v.stop();
    v.cleanup();
  });

  test('the admin socket is a unix socket in the data dir that only the owner may use', () => {
    const st = statSync(path.join(v.dataDir, 'admin.sock'));
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);
  });

  test('verona sessions lists live sessions; verona kick ends one, the others stay', async () => {
    const a = await connectClient({ port: port(), user: 'nurse', password: 'nurs3', resource: 'a', presence: true });
    const b = await connectClient({ port: port(), user: 'nurse', password: 'nurs3', resource: 'b', presence: true });
    const { stdout } = await cli(['sessions']);
    assert.match(stdout, /^nurse@localhost\/a\t127\.0\.0\.1\ttcp\t/m);
    assert.match(stdout, /^nurse@localhost\/b\t/m);
    assert.match(stdout, /2 sessions/);
    const kicked = await cli(['kick', 'nurse@localhost/a']);
    assert.match(kicked.stdout, /ended 1 session: nurse@localhost\/a/);
    assert.equal(await streamErrorOf(a), 'policy-violation');
    const after1 = await cli(['sessions', 'nurse']);
    assert.doesNotMatch(after1.stdout, /nurse@localhost\/a/);
    assert.match(after1.stdout, /nurse@localhost\/b/);
    // b still works.
    const pong = await sendIq(b, "<ping xmlns='urn:xmpp:ping'/>", "type='get' to='localhost'");
    assert.equal(pong.attrs.type, 'result');
    // A bare JID ends all of the account's sessions.
    await cli(['kick', 'nurse@localhost']);
    assert.equal(await streamErrorOf(b), 'policy-violation');
    // Kicking a session that does not exist is an error (exit 1).
    await assert.rejects(cli(['kick', 'nurse@localhost/nope']), (e: { code: number; stderr: string }) => e.code === 1 && /no session/.test(e.stderr));
  });

  test('verona announce reaches every online session', async () => {
    const a = await connectClient({ port: port(), user: 'juliet', password: 'jul1et', resource: 'ann', presence: true });
    const { stdout } = await cli(['announce', 'Maintenance at noon']);
    assert.match(stdout, /announced to 1 session/);
    const m = await a.next((el) => el.is('message') && el.attrs.type === 'headline');
    assert.equal(m.attrs.from, 'localhost');
    assert.equal(m.getChildText('body'), 'Maintenance at noon');
    a.close();
    await a.waitClose();
  });

  test('verona passwd ends the live sessions; the old password stops working, the new one works', async () => {
    const c = await connectClient({ port: port(), user: 'juliet', password: 'jul1et', resource: 'pw' });
    const { stdout } = await cli(['passwd', 'juliet', '--password', 'n3w-secret']);
    assert.match(stdout, /changed the password of juliet@localhost \(ended 1 session\)/);
    assert.equal(await streamErrorOf(c), 'not-authorized');
    assert.equal(await saslPlain(port(), 'juliet', 'jul1et'), 'not-authorized');
    assert.equal(await saslPlain(port(), 'juliet', 'n3w-secret'), 'success');
  });

  test('verona disable ends the sessions and refuses logins with <account-disabled/>; enable lets them in again', async () => {
    const c = await connectClient({ port: port(), user: 'nurse', password: 'nurs3', resource: 'd' });
    const { stdout } = await cli(['disable', 'nurse@localhost']);
    assert.match(stdout, /disabled nurse@localhost \(ended 1 session\)/);
    assert.equal(await streamErrorOf(c), 'not-authorized');
    assert.equal(await saslPlain(port(), 'nurse', 'nurs3'), 'account-disabled');
    // A wrong password does not learn that the account is disabled.
    assert.equal(await saslPlain(port(), 'nurse', 'wrong'), 'not-authorized');
    await cli(['enable', 'nurse']);
    assert.equal(await saslPlain(port(), 'nurse', 'nurs3'), 'success');
  });

  test('verona deluser on a running server ends the sessions and leaves no row of the account', async () => {
    const romeo = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 'r', presence: true });
    // Data in many stores: roster, archive (a message to juliet), PEP, private XML, vCard.
    await sendIq(romeo, "<query xmlns='jabber:iq:roster'><item jid='juliet@localhost' name='J'/></query>");
    romeo.send("<message to='juliet@localhost' type='chat' id='m1'><body>hello</body></message>");
    const pep = await sendIq(
      romeo,
      "<pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='urn:xmpp:bookmarks:1'><item id='room@conf'><conference xmlns='urn:xmpp:bookmarks:1' name='R'/></item></publish></pubsub>",
    );
    assert.equal(pep.attrs.type, 'result');
    await sendIq(romeo, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>x</prefs></query>");
    await sendIq(romeo, "<vCard xmlns='vcard-temp'><FN>Romeo</FN></vCard>");
    const before = rowsOf(v.dataDir, 'romeo');
    assert.ok(Object.keys(before).length >= 4, `romeo has data in several tables: ${JSON.stringify(before)}`);
    assert.ok((before.archive ?? 0) > 0 || Object.keys(before).some((t) => t.includes('archive')), JSON.stringify(before));

    const { stdout } = await cli(['deluser', 'romeo@localhost']);
    assert.match(stdout, /deleted account romeo@localhost and all its data \(ended 1 session\)/);
    assert.equal(await streamErrorOf(romeo), 'not-authorized');
    assert.deepEqual(rowsOf(v.dataDir, 'romeo'), {});
    assert.equal(await saslPlain(port(), 'romeo', 'r0meo'), 'not-authorized');
    // juliet keeps her copy of the conversation.
    assert.ok(Object.keys(rowsOf(v.dataDir, 'juliet')).length > 0);
    // Deleting it again: no such account (exit 1).
    await assert.rejects(cli(['deluser', 'romeo']), (e: { code: number; stderr: string }) => e.code === 1 && /no account/.test(e.stderr));
  });
});

describe('CLI without a running server', () => {
  test('sessions and kick say that no server runs (exit 1); deluser and disable work on the database', async () => {
    const v = await startVerona({ users: [['tybalt', 't1'], ['mercutio', 'm1']] });
    await v.stop();
    try {
      await assert.rejects(v.cli(['sessions']), (e: { code: number; stderr: string }) => e.code === 1 && /not running/.test(e.stderr));
      await assert.rejects(v.cli(['kick', 'tybalt@localhost/x']), (e: { code: number }) => e.code === 1);
      assert.match((await v.cli(['disable', 'mercutio'])).stdout, /disabled mercutio@localhost/);
      assert.match((await v.cli(['deluser', 'tybalt'])).stdout, /deleted account tybalt@localhost and all its data$/m);
      // The disabled flag is read at start (and the stale socket of the stopped server is replaced).
      const again = await startVerona({ dataDir: v.dataDir });
      try {
        assert.equal(await saslPlain(again.ports.c2s, 'mercutio', 'm1'), 'account-disabled');
        assert.equal(await saslPlain(again.ports.c2s, 'tybalt', 't1'), 'not-authorized');
      } finally {
        await again.stop();
      }
    } finally {
      v.cleanup();
    }
  });

  test('--tls-port -1 and --c2s-port -1 are values, not flags', async () => {
    const { stdout } = await runCli(['check-config', '--tls-port', '-1', '--c2s-port', '-1', '--data-dir', '/nonexistent-verona']);
    assert.match(stdout, /STARTTLS off, direct TLS off/);
  });
});
