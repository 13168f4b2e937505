/**
 * XEP-0077 In-Band Registration against the real server: off by default
 * (no stream feature, service-unavailable, the stream stays usable), when
 * enabled the form, account creation (then a login with it), conflict and
 * not-acceptable, the per-address rate limit, password change, account
 * removal (result, then not-authorized stream errors on every stream of the
 * account, contacts' subscriptions cancelled, every row of the account gone
 * from the database), and the shared benchmark driver registering users.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';
import { userRows } from '../helpers/storage-rows.js';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf, connectRaw, nextId, type RawConnection } from '../helpers/client.js';

const execFileP = promisify(execFile);
const REGISTER = 'jabber:iq:register';

const errorOf = stanzaErrorOf;

const iq = sendIq;

/** A fresh unauthenticated stream and its features. */
async function anonymous(port: number): Promise<{ c: RawConnection; features: Element }> {
  const c = await connectRaw(port);
  const features = await c.open();
  return { c, features };
}

const form = (u?: string, p?: string): string =>
  `<query xmlns='${REGISTER}'>${u === undefined ? '' : `<username>${u}</username>`}${p === undefined ? '' : `<password>${p}</password>`}</query>`;

async function register(port: number, u: string, p: string): Promise<Element> {
  const { c } = await anonymous(port);
  try {
    return await iq(c, form(u, p));
  } finally {
    c.destroy();
  }
}

async function canLogin(port: number, user: string, password: string): Promise<boolean> {
  try {
    const c = await connectClient({ port, user, password, resource: 'check' });
    c.destroy();
    return true;
  } catch (e) {
    if (e instanceof Error && e.message.startsWith('auth failed')) return false;
    throw e;
  }
}

describe('registration disabled (the default)', () => {
  let v: Verona;
  before(async () => {
    v = await startVerona({ users: [['romeo', 'r0meo']] });
  });
  after(async () => {
    await v.stop();
    v.cleanup();
  });

  test('no stream feature, service-unavailable, and the stream can still log in', async () => {
    const { c, features } = await anonymous(v.ports.c2s as number);
    try {
      assert.equal(features.getChild('register', 'http://jabber.org/features/iq-register'), undefined);
      assert.equal(errorOf(await iq(c, form(), "type='get'")), 'service-unavailable');
      assert.equal(errorOf(await iq(c, form('mallory', 'secret'))), 'service-unavailable');
      const creds = Buffer.from('\0romeo\0r0meo').toString('base64');
      c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${creds}</auth>`);
      assert.equal((await c.next((el) => el.is('success') || el.is('failure'))).getName(), 'success');
    } finally {
      c.destroy();
    }
    assert.equal(await canLogin(v.ports.c2s as number, 'mallory', 'secret'), false);
  });

  test('an authenticated user can still change the password', async () => {
    const port = v.ports.c2s as number;
    const c = await connectClient({ port, user: 'romeo', password: 'r0meo', resource: 'pw' });
    try {
      const got = await iq(c, form(), "type='get' to='localhost'");
      assert.ok(got.getChild('query', REGISTER)?.getChild('registered'), 'get shows the current registration');
      assert.equal(got.getChild('query', REGISTER)?.getChildText('username'), 'romeo');
      assert.equal((await iq(c, form('romeo', 'n3w'), "type='set' to='localhost'")).attrs.type, 'result');
      assert.equal(errorOf(await iq(c, form('juliet', 'x'))), 'not-allowed', "someone else's password");
      assert.equal(errorOf(await iq(c, form('romeo', ''))), 'not-acceptable', 'an empty password');
    } finally {
      c.destroy();
    }
    assert.equal(await canLogin(port, 'romeo', 'n3w'), true);
    assert.equal(await canLogin(port, 'romeo', 'r0meo'), false);
  });
});

describe('registration enabled', () => {
  let v: Verona;
  const port = (): number => v.ports.c2s as number;
  before(async () => {
    v = await startVerona({
      users: [['romeo', 'r0meo']],
      config: { moduleOptions: { register: { enabled: true } } },
    });
  });
  after(async () => {
    await v.stop();
    v.cleanup();
  });

  test('stream feature and form', async () => {
    const { c, features } = await anonymous(port());
    try {
      assert.ok(features.getChild('register', 'http://jabber.org/features/iq-register'));
      const r = await iq(c, form(), "type='get' to='localhost'");
      assert.equal(r.attrs.type, 'result');
      const q = r.getChild('query', REGISTER);
      assert.ok(q?.getChild('username') && q.getChild('password') && q.getChildText('instructions'), r.toString());
      assert.equal(q?.getChild('registered'), undefined);
    } finally {
      c.destroy();
    }
  });

  test('create an account, then log in with it; conflict and not-acceptable', async () => {
    const ok = await register(port(), 'benvolio', 'c0usin');
    assert.equal(ok.attrs.type, 'result', ok.toString());
    assert.equal(await canLogin(port(), 'benvolio', 'c0usin'), true);

    assert.equal(errorOf(await register(port(), 'benvolio', 'other')), 'conflict');
    assert.equal(errorOf(await register(port(), 'Benvolio', 'other')), 'conflict', 'names are compared prepared');
    assert.equal(errorOf(await register(port(), 'romeo', 'other')), 'conflict', 'accounts made by the CLI too');

    const { c } = await anonymous(port());
    try {
      assert.equal(errorOf(await iq(c, form('bad@name', 'pw'))), 'not-acceptable');
      assert.equal(errorOf(await iq(c, form('bad name', 'pw'))), 'not-acceptable');
      assert.equal(errorOf(await iq(c, form('nopassword'))), 'not-acceptable');
      assert.equal(errorOf(await iq(c, form(undefined, 'pw'))), 'not-acceptable');
      assert.equal(errorOf(await iq(c, form('ctl', 'a\uE000b'))), 'not-acceptable', 'SASLprep refuses private-use characters');
      // The stream survives errors and can register after all.
      assert.equal((await iq(c, form('abram', 'serv4nt'))).attrs.type, 'result');
    } finally {
      c.destroy();
    }
    assert.equal(await canLogin(port(), 'abram', 'serv4nt'), true);
    assert.equal(await canLogin(port(), 'nopassword', ''), false);
  });

  test('remove the account: result, stream errors everywhere, contacts unsubscribed, all data gone', async () => {
    assert.equal((await register(port(), 'mercutio', 'queenm4b')).attrs.type, 'result');
    const romeo = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 'r', presence: true });
    const laptop = await connectClient({ port: port(), user: 'mercutio', password: 'queenm4b', resource: 'laptop', presence: true });
    const phone = await connectClient({ port: port(), user: 'mercutio', password: 'queenm4b', resource: 'phone' });
    try {
      await iq(romeo, "<query xmlns='jabber:iq:roster'/>", "type='get'"); // Romeo gets roster pushes from now on
      // Give the account data in every store: roster + subscriptions, vCard, private XML, blocklist, archive.
      for (const [a, b, an, bn] of [[laptop, romeo, 'mercutio', 'romeo'], [romeo, laptop, 'romeo', 'mercutio']] as const) {
        a.send(`<presence to='${bn}@localhost' type='subscribe'/>`);
        await b.next((el) => el.is('presence') && el.attrs.type === 'subscribe');
        b.send(`<presence to='${an}@localhost' type='subscribed'/>`);
        await a.next((el) => el.is('presence') && el.attrs.type === 'subscribed');
      }
      await iq(laptop, "<vCard xmlns='vcard-temp'><FN>Mercutio</FN></vCard>");
      await iq(laptop, "<query xmlns='jabber:iq:private'><prefs xmlns='urn:example:prefs'>x</prefs></query>");
      await iq(laptop, "<block xmlns='urn:xmpp:blocking'><item jid='tybalt@localhost'/></block>");
      laptop.send("<message to='romeo@localhost' type='chat'><body>a plague</body></message>");
      await romeo.next((el) => el.is('message') && el.getChildText('body') === 'a plague');
      await new Promise((r) => setTimeout(r, 300)); // let the archive commit

      // Straight from the database (SQLite file or PostgreSQL, whichever the server runs on).
      const rowsOf = (user: string): Promise<Record<string, number>> => userRows(v.configFile, user);
      const before = await rowsOf('mercutio');
      for (const t of ['accounts', 'kv', 'roster_items', 'blocklist']) assert.ok((before[t] ?? 0) > 0, `mercutio has rows in ${t}: ${JSON.stringify(before)}`);

      const id = nextId();
      laptop.send(`<iq type='set' id='${id}'><query xmlns='${REGISTER}'><remove/></query></iq>`);
      const res = await laptop.next((el) => el.is('iq') && el.attrs.id === id);
      assert.equal(res.attrs.type, 'result', res.toString());
      for (const c of [laptop, phone]) {
        const err = await c.next((el) => el.getName() === 'stream:error' || el.getName() === 'error');
        assert.ok(err.getChild('not-authorized', 'urn:ietf:params:xml:ns:xmpp-streams'), err.toString());
        await c.waitClose();
      }
      // Romeo sees Mercutio go and loses both subscriptions.
      await romeo.next((el) => el.is('presence') && el.attrs.from === 'mercutio@localhost/laptop' && el.attrs.type === 'unavailable');
      const deadline = Date.now() + 3000;
      let sub: string | undefined;
      while (Date.now() < deadline) {
        const push = await romeo.next((el) => el.is('iq') && el.attrs.type === 'set' && el.getChild('query', 'jabber:iq:roster') !== undefined, 3000);
        sub = push.getChild('query')?.getChild('item')?.attrs.subscription;
        if (sub === 'none') break;
      }
      assert.equal(sub, 'none');

      // Deletion follows the streams' end (what ending them writes is deleted too): give it a moment.
      let left = await rowsOf('mercutio');
      for (let i = 0; i < 50 && Object.keys(left).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 50));
        left = await rowsOf('mercutio');
      }
      assert.deepEqual(left, {}, 'no row of the account is left in any table');
      assert.equal(await canLogin(port(), 'mercutio', 'queenm4b'), false);

      // The name is free again, and the new account starts empty.
      assert.equal((await register(port(), 'mercutio', 'again')).attrs.type, 'result');
      const m2 = await connectClient({ port: port(), user: 'mercutio', password: 'again', resource: 'new' });
      try {
        assert.equal((await iq(m2, "<vCard xmlns='vcard-temp'/>", "type='get'")).getChild('vCard')?.getChildElements().length, 0);
        assert.equal((await iq(m2, "<query xmlns='jabber:iq:roster'/>", "type='get'")).getChild('query')?.getChildElements().length, 0);
        assert.equal((await iq(m2, "<blocklist xmlns='urn:xmpp:blocking'/>", "type='get'")).getChild('blocklist')?.getChildElements().length, 0);
        // The old blocklist is not enforced for the new account either.
        const t = await connectClient({ port: port(), user: 'romeo', password: 'r0meo', resource: 't2' });
        t.send("<message to='mercutio@localhost/new' type='chat'><body>hi</body></message>");
        await m2.next((el) => el.is('message') && el.getChildText('body') === 'hi');
        t.destroy();
      } finally {
        m2.destroy();
      }
    } finally {
      for (const c of [romeo, laptop, phone]) c.destroy();
    }
  });

  test('an unbound (just authenticated) stream can remove its account too', async () => {
    assert.equal((await register(port(), 'gregory', 'serv4nt')).attrs.type, 'result');
    const c = await connectRaw(port());
    await c.open();
    c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0gregory\0serv4nt').toString('base64')}</auth>`);
    await c.next('success');
    await c.open();
    const r = await iq(c, `<query xmlns='${REGISTER}'><remove/></query>`);
    assert.equal(r.attrs.type, 'result');
    await c.waitClose();
    // The data is deleted right after the stream ends.
    let can = true;
    for (let i = 0; i < 40 && can; i++) {
      can = await canLogin(port(), 'gregory', 'serv4nt');
      if (can) await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(can, false);
  });

  const driver = '/work/shared/bench/driver/xmppbench.py';
  test('the benchmark driver registers users (loopback is exempt from the rate limit)', { skip: !existsSync(driver) && 'driver not present' }, async () => {
    const run = async (): Promise<Record<string, unknown>> => {
      const { stdout } = await execFileP('python3', [driver, '--host', '127.0.0.1', '--port', String(port()), '--domain', 'localhost', '--prefix', 'bench', '--pwprefix', 'pw', 'register', '--count', '12', '--concurrency', '4'], { timeout: 60000 });
      const line = stdout.split('\n').find((l) => l.startsWith('RESULT '));
      assert.ok(line, stdout);
      return JSON.parse(line.slice(7)) as Record<string, unknown>;
    };
    const first = await run();
    assert.equal(first.ok, 12, JSON.stringify(first));
    assert.equal(first.fail, 0);
    const second = await run();
    assert.equal(second.already, 12, 'a second run finds them all taken (conflict)');
    assert.equal(await canLogin(port(), 'bench7', 'pw7'), true);
  });
});

test('rate limit: N accounts per address per window, then policy-violation', async () => {
  const v = await startVerona({
    config: { moduleOptions: { register: { enabled: true, maxPerAddress: 2, window: 3600, exemptAddresses: [] } } },
  });
  try {
    const port = v.ports.c2s as number;
    assert.equal((await register(port, 'sampson', 'pw1')).attrs.type, 'result');
    assert.equal(errorOf(await register(port, 'sampson', 'pw1')), 'conflict', 'a taken name does not use up the allowance');
    assert.equal((await register(port, 'peter', 'pw2')).attrs.type, 'result');
    const refused = await register(port, 'balthasar', 'pw3');
    assert.equal(errorOf(refused), 'policy-violation');
    assert.equal(refused.getChild('error')?.attrs.type, 'wait');
    assert.equal(await canLogin(port, 'balthasar', 'pw3'), false);
    assert.equal(await canLogin(port, 'peter', 'pw2'), true);
  } finally {
    await v.stop();
    v.cleanup();
  }
});

test('with c2s.requireTls the feature is offered only after STARTTLS', async () => {
  const v = await startVerona({
    config: { c2s: { requireTls: true }, moduleOptions: { register: { enabled: true } } },
  });
  try {
    const c = await connectRaw(v.ports.c2s as number);
    try {
      const f1 = await c.open();
      assert.equal(f1.getChild('register'), undefined, 'not before TLS');
      c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
      await c.next('proceed');
      await c.starttls();
      const f2 = await c.open();
      assert.ok(f2.getChild('register', 'http://jabber.org/features/iq-register'));
      assert.equal((await iq(c, form('lawrence', 'fri4r'))).attrs.type, 'result');
    } finally {
      c.destroy();
    }
  } finally {
    await v.stop();
    v.cleanup();
  }
});

