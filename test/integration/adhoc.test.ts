/**
 * XEP-0050 ad-hoc commands with the XEP-0133 service administration set,
 * driven by a real client library (xmpp.js) against a real server: an admin
 * (listed in admin.users) lists and runs the commands in two stages; a
 * non-admin sees no commands and gets <forbidden/>.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { xml, type XmppClient } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, connectRaw } from '../helpers/client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // xmpp.js uses STARTTLS; the test server's certificate is self-signed

const CMD = 'http://jabber.org/protocol/commands';
const ADMIN = 'http://jabber.org/protocol/admin';
const DATA = 'jabber:x:data';

async function login(v: Verona, username: string, password: string, resource: string): Promise<XmppClient> {
  const c = client({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username, password, resource });
  c.on('error', () => undefined);
  await c.start();
  return c;
}

function submitForm(fields: Record<string, string | string[]>): Element {
  const x = xml('x', { xmlns: DATA, type: 'submit' }, xml('field', { var: 'FORM_TYPE', type: 'hidden' }, xml('value', {}, ADMIN)));
  for (const [name, val] of Object.entries(fields)) {
    const f = xml('field', { var: name });
    for (const one of Array.isArray(val) ? val : [val]) f.append(xml('value', {}, one));
    x.append(f);
  }
  return x;
}

/** Execute a command in two stages (form, then submit) as XEP-0050 §3.4 shows; returns the final <command/>. */
async function run(c: XmppClient, node: string, fields?: Record<string, string | string[]>): Promise<Element> {
  const first = await c.iqCaller.set(xml('command', { xmlns: CMD, node, action: 'execute' }), 'localhost');
  if (fields === undefined) return first;
  assert.equal(first.attrs.status, 'executing');
  const form = first.getChild('x', DATA);
  assert.equal(form?.attrs.type, 'form');
  const sessionid = first.attrs.sessionid;
  assert.ok(sessionid);
  return c.iqCaller.set(xml('command', { xmlns: CMD, node, sessionid, action: 'complete' }, submitForm(fields)), 'localhost');
}

const notes = (cmd: Element): string[] => cmd.getChildren('note', CMD).map((n) => `${n.attrs.type}: ${n.text()}`);
const fieldValues = (cmd: Element, name: string): string[] =>
  cmd
    .getChild('x', DATA)
    ?.getChildren('field', DATA)
    .find((f) => f.attrs.var === name)
    ?.getChildren('value', DATA)
    .map((v) => v.text()) ?? [];

async function loginResult(port: number, user: string, password: string): Promise<string> {
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

describe('XEP-0133 service administration over XEP-0050', () => {
  let v: Verona;
  let boss: XmppClient;
  let juliet: XmppClient;

  before(async () => {
    v = await startVerona({ users: [['boss', 'b0ss'], ['juliet', 'jul1et'], ['romeo', 'r0meo']], config: { admin: { users: ['boss@localhost'] } } });
    boss = await login(v, 'boss', 'b0ss', 'console');
    juliet = await login(v, 'juliet', 'jul1et', 'phone');
  });
  after(async () => {
    await boss?.stop().catch(() => undefined);
    await juliet?.stop().catch(() => undefined);
    await v.stop();
    v.cleanup();
  });

  test('the server advertises commands; an admin sees the administration set, others see none', async () => {
    const info = await boss.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), 'localhost');
    assert.ok(info.getChildren('feature').some((f) => f.attrs.var === CMD));
    const mine = await boss.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#items', node: CMD }), 'localhost');
    const nodes = mine.getChildren('item').map((i) => i.attrs.node);
    for (const n of ['add-user', 'delete-user', 'disable-user', 'reenable-user', 'end-user-session', 'change-user-password', 'get-online-users-list', 'announce']) {
      assert.ok(nodes.includes(`${ADMIN}#${n}`), `${n} listed`);
    }
    const theirs = await juliet.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#items', node: CMD }), 'localhost');
    assert.equal(theirs.getChildren('item').length, 0);
  });

  test('a non-admin is refused with <forbidden/> and nothing happens', async () => {
    await assert.rejects(
      juliet.iqCaller.set(xml('command', { xmlns: CMD, node: `${ADMIN}#delete-user`, action: 'execute' }, submitForm({ accountjids: ['romeo@localhost'] })), 'localhost'),
      (e: { condition?: string }) => e.condition === 'forbidden',
    );
    assert.equal(await loginResult(v.ports.c2s, 'romeo', 'r0meo'), 'success');
  });

  test('add-user creates an account that can log in; a mismatched verification is refused', async () => {
    const done = await run(boss, `${ADMIN}#add-user`, { accountjid: 'nurse@localhost', password: 'nurs3', 'password-verify': 'nurs3' });
    assert.equal(done.attrs.status, 'completed');
    assert.deepEqual(notes(done), ['info: created nurse@localhost']);
    assert.equal(await loginResult(v.ports.c2s, 'nurse', 'nurs3'), 'success');
    const bad = await run(boss, `${ADMIN}#add-user`, { accountjid: 'friar@localhost', password: 'a', 'password-verify': 'b' });
    assert.match(notes(bad)[0], /^error: the passwords do not match/);
    const taken = await run(boss, `${ADMIN}#add-user`, { accountjid: 'nurse@localhost', password: 'x', 'password-verify': 'x' });
    assert.match(notes(taken)[0], /^error: .*already exists/);
  });

  test('get-online-users-list and end-user-session', async () => {
    const list = await run(boss, `${ADMIN}#get-online-users-list`);
    assert.equal(list.attrs.status, 'completed');
    assert.deepEqual(fieldValues(list, 'onlineuserjids'), ['boss@localhost', 'juliet@localhost']);
    const romeo = await connectClient({ port: v.ports.c2s, user: 'romeo', password: 'r0meo', resource: 'balcony' });
    const done = await run(boss, `${ADMIN}#end-user-session`, { accountjids: ['romeo@localhost/balcony'] });
    assert.deepEqual(notes(done), ['info: ended 1 session of romeo@localhost/balcony']);
    await romeo.next((el) => el.name === 'stream:error', 10000);
    await romeo.waitClose(10000);
  });

  test('announce reaches online users', async () => {
    const got = new Promise<Element>((resolve) => juliet.on('stanza', (s) => s.is('message') && s.attrs.type === 'headline' && resolve(s)));
    const done = await run(boss, `${ADMIN}#announce`, { subject: 'Notice', announcement: ['Line one', 'Line two'] });
    assert.match(notes(done)[0], /^info: announced to 2 sessions/);
    const m = await got;
    assert.equal(m.getChildText('subject'), 'Notice');
    assert.equal(m.getChildText('body'), 'Line one\nLine two');
  });

  test('change-user-password, disable-user, reenable-user, delete-user', async () => {
    const pw = await run(boss, `${ADMIN}#change-user-password`, { accountjid: 'romeo@localhost', password: 'n3w' });
    assert.match(notes(pw)[0], /^info: changed the password of romeo@localhost/);
    assert.equal(await loginResult(v.ports.c2s, 'romeo', 'r0meo'), 'not-authorized');
    assert.equal(await loginResult(v.ports.c2s, 'romeo', 'n3w'), 'success');

    await run(boss, `${ADMIN}#disable-user`, { accountjids: ['romeo@localhost'] });
    assert.equal(await loginResult(v.ports.c2s, 'romeo', 'n3w'), 'account-disabled');
    await run(boss, `${ADMIN}#reenable-user`, { accountjids: ['romeo@localhost'] });
    assert.equal(await loginResult(v.ports.c2s, 'romeo', 'n3w'), 'success');

    const del = await run(boss, `${ADMIN}#delete-user`, { accountjids: ['romeo@localhost', 'ghost@localhost'] });
    const n = notes(del);
    assert.match(n[0], /^info: deleted romeo@localhost/);
    assert.match(n[1], /^error: ghost@localhost: no account/);
    assert.equal(await loginResult(v.ports.c2s, 'romeo', 'n3w'), 'not-authorized');
  });

  test('cancel ends a command session; a stale sessionid is refused with <bad-sessionid/>', async () => {
    const node = `${ADMIN}#delete-user`;
    const first = await boss.iqCaller.set(xml('command', { xmlns: CMD, node, action: 'execute' }), 'localhost');
    const sessionid = first.attrs.sessionid;
    const canceled = await boss.iqCaller.set(xml('command', { xmlns: CMD, node, sessionid, action: 'cancel' }), 'localhost');
    assert.equal(canceled.attrs.status, 'canceled');
    await assert.rejects(
      boss.iqCaller.set(xml('command', { xmlns: CMD, node, sessionid, action: 'complete' }, submitForm({ accountjids: ['juliet@localhost'] })), 'localhost'),
      (e: { condition?: string; element?: Element }) => e.condition === 'bad-request' && e.element?.getChild('bad-sessionid', CMD) !== undefined,
    );
    assert.equal(await loginResult(v.ports.c2s, 'juliet', 'jul1et'), 'success');
  });
});
