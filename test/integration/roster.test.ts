/**
 * Roster and subscriptions with real client libraries and a real server:
 * xmpp.js (@xmpp/client) runs the whole subscription handshake, StanzaJS
 * uses roster versioning, rosters and pending requests survive a restart
 * (SQLite), disco#info of an account follows the subscription (the
 * 'presence-auth' service), and a deleted account's roster is gone.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as XMPP from 'stanza';
import { xml, type XmppClient } from '@xmpp/client';
import { client } from '../helpers/xmppjs.js';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, connectRaw, type TestClient } from '../helpers/client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // the test server's certificate is self-signed

const ROSTER = 'jabber:iq:roster';
let v: Verona;

before(async () => {
  v = await startVerona({
    users: [
      ['romeo', 'r0meo'],
      ['juliet', 'jul1et'],
      ['nurse', 'nurse'],
      ['benvolio', 'cousin'],
    ],
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

/** Every stanza an xmpp.js client receives, with a way to wait for one. */
function inbox(c: XmppClient) {
  const got: Element[] = [];
  const waiters: Array<{ pred: (el: Element) => boolean; resolve: (el: Element) => void }> = [];
  c.on('stanza', (el) => {
    const i = waiters.findIndex((w) => w.pred(el));
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(el);
    else got.push(el);
  });
  return {
    next(pred: (el: Element) => boolean, ms = 5000): Promise<Element> {
      const i = got.findIndex(pred);
      if (i >= 0) return Promise.resolve(got.splice(i, 1)[0] as Element);
      return new Promise((resolve, reject) => {
        const w = {
          pred,
          resolve: (el: Element) => {
            clearTimeout(t);
            resolve(el);
          },
        };
        const t = setTimeout(() => {
          waiters.splice(waiters.indexOf(w), 1);
          reject(new Error(`timeout; unconsumed: ${got.map(String).join('\n')}`));
        }, ms);
        waiters.push(w);
      });
    },
  };
}

async function xmppjs(user: string, password: string, resource: string): Promise<XmppClient> {
  const c = client({ service: `xmpp://127.0.0.1:${v.ports.c2s}`, domain: 'localhost', username: user, password, resource });
  c.on('error', () => undefined);
  await c.start();
  return c;
}

const pushFor = (jid: string, sub: string) => (el: Element) =>
  el.is('iq') && el.attrs.type === 'set' && el.getChild('query', ROSTER)?.getChild('item')?.attrs.jid === jid && el.getChild('query', ROSTER)?.getChild('item')?.attrs.subscription === sub;

async function rosterGet(c: TestClient, ver?: string): Promise<Element> {
  const id = `g${Math.random().toString(36).slice(2)}`;
  c.send(`<iq type='get' id='${id}'><query xmlns='${ROSTER}'${ver === undefined ? '' : ` ver='${ver}'`}/></iq>`);
  return c.next((el) => el.attrs.id === id);
}

describe('stream features', () => {
  test('roster versioning and pre-approval are announced after authentication only', async () => {
    const raw = await connectRaw(v.ports.c2s as number);
    const pre = await raw.open();
    assert.equal(pre.getChild('ver', 'urn:xmpp:features:rosterver'), undefined);
    assert.equal(pre.getChild('sub', 'urn:xmpp:features:pre-approval'), undefined);
    raw.destroy();
    const c = await connectClient({ port: v.ports.c2s as number, user: 'nurse', password: 'nurse' });
    assert.ok(c.features.getChild('ver', 'urn:xmpp:features:rosterver'));
    assert.ok(c.features.getChild('sub', 'urn:xmpp:features:pre-approval'));
    c.destroy();
  });
});

describe('@xmpp/client', () => {
  test('Romeo subscribes to Juliet and sees her presence; both rosters agree', async () => {
    const romeo = await xmppjs('romeo', 'r0meo', 'lib');
    const juliet = await xmppjs('juliet', 'jul1et', 'lib');
    const rIn = inbox(romeo);
    const jIn = inbox(juliet);
    try {
      const empty = await romeo.iqCaller.get(xml('query', { xmlns: ROSTER }));
      assert.equal(empty.getChildren('item').length, 0);
      await juliet.iqCaller.get(xml('query', { xmlns: ROSTER }));
      await juliet.send(xml('presence', {}, xml('status', {}, 'O Romeo')));
      await romeo.send(xml('presence'));

      await romeo.send(xml('presence', { to: 'juliet@localhost', type: 'subscribe' }));
      const asked = await rIn.next(pushFor('juliet@localhost', 'none'));
      assert.equal(asked.getChild('query', ROSTER)?.getChild('item')?.attrs.ask, 'subscribe');
      const req = await jIn.next((el) => el.is('presence') && el.attrs.type === 'subscribe');
      assert.equal(req.attrs.from, 'romeo@localhost');

      await juliet.send(xml('presence', { to: 'romeo@localhost', type: 'subscribed' }));
      await jIn.next(pushFor('romeo@localhost', 'from'));
      await rIn.next((el) => el.is('presence') && el.attrs.type === 'subscribed' && el.attrs.from === 'juliet@localhost');
      await rIn.next(pushFor('juliet@localhost', 'to'));
      const pres = await rIn.next((el) => el.is('presence') && el.attrs.from === 'juliet@localhost/lib');
      assert.equal(pres.getChildText('status'), 'O Romeo');

      const rr = await romeo.iqCaller.get(xml('query', { xmlns: ROSTER }));
      assert.deepEqual(rr.getChildren('item').map((i) => [i.attrs.jid, i.attrs.subscription, i.attrs.ask]), [['juliet@localhost', 'to', undefined]]);
      const jr = await juliet.iqCaller.get(xml('query', { xmlns: ROSTER }));
      assert.deepEqual(jr.getChildren('item').map((i) => [i.attrs.jid, i.attrs.subscription]), [['romeo@localhost', 'from']]);

      // Juliet updates her presence: Romeo (subscription 'to') hears it.
      await juliet.send(xml('presence', {}, xml('show', {}, 'away')));
      const upd = await rIn.next((el) => el.is('presence') && el.attrs.from === 'juliet@localhost/lib' && el.getChildText('show') === 'away');
      assert.equal(upd.attrs.type, undefined);
    } finally {
      await romeo.stop();
      await juliet.stop();
    }
    // Clean up for the other tests: both remove each other.
    const r = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo' });
    r.send(`<iq type='set' id='rm'><query xmlns='${ROSTER}'><item jid='juliet@localhost' subscription='remove'/></query></iq>`);
    await r.next((el) => el.attrs.id === 'rm');
    r.destroy();
    const j = await connectClient({ port: v.ports.c2s as number, user: 'juliet', password: 'jul1et' });
    j.send(`<iq type='set' id='rm'><query xmlns='${ROSTER}'><item jid='romeo@localhost' subscription='remove'/></query></iq>`);
    await j.next((el) => el.attrs.id === 'rm');
    j.destroy();
  });
});

describe('StanzaJS (WebSocket)', () => {
  test('roster versioning: a current copy is not sent again, a stale one gets the changes as pushes', async () => {
    const url = `ws://127.0.0.1:${v.ports.http}/xmpp-websocket`;
    const connect = async (rosterVer?: string): Promise<XMPP.Agent> => {
      const c = XMPP.createClient({ jid: 'benvolio@localhost', password: 'cousin', resource: 'stanza', rosterVer, transports: { websocket: url, bosh: false } });
      await new Promise<void>((resolve, reject) => {
        c.once('session:started', () => resolve());
        c.once('disconnected', () => reject(new Error('disconnected before session start')));
        c.connect();
      });
      return c;
    };
    const stop = async (c: XMPP.Agent): Promise<void> => {
      const ended = new Promise((r) => c.once('disconnected', r));
      c.disconnect();
      await ended;
    };

    const a = await connect();
    let v1: string | undefined;
    try {
      const first = await a.getRoster();
      assert.deepEqual(first.items ?? [], []);
      const v0 = first.version;
      assert.ok(v0, 'a version is given even to a client that sent none');
      const pushed = new Promise<XMPP.Stanzas.IQ & { roster: XMPP.Stanzas.Roster }>((r) => a.once('roster:update', r));
      await a.updateRosterItem({ jid: 'mercutio@localhost', name: 'Mercutio', groups: ['Montagues'], subscription: 'none' });
      const push = await pushed;
      assert.equal(push.roster.items?.[0]?.jid, 'mercutio@localhost');
      v1 = push.roster.version;
      assert.ok(v1 && v1 !== v0, 'the push carries the new version');
      // StanzaJS still holds v0: the server answers empty and pushes the change.
      const diffPush = new Promise<XMPP.Stanzas.IQ & { roster: XMPP.Stanzas.Roster }>((r) => a.once('roster:update', r));
      const behind = await a.getRoster();
      assert.deepEqual(behind.items ?? [], []);
      const change = await diffPush;
      assert.equal(change.roster.version, v1);
      assert.deepEqual(
        (change.roster.items ?? []).map((i) => [i.jid, i.name, i.groups, i.subscription]),
        [['mercutio@localhost', 'Mercutio', ['Montagues'], 'none']],
      );
    } finally {
      await stop(a);
    }

    const b = await connect(v1);
    try {
      let pushes = 0;
      b.on('roster:update', () => pushes++);
      const again = await b.getRoster();
      assert.deepEqual(again.items ?? [], [], 'up to date: no items sent again');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(pushes, 0, 'and no pushes');
    } finally {
      await stop(b);
    }

    const c = await connect();
    try {
      const full = await c.getRoster();
      assert.equal(full.version, v1);
      assert.deepEqual((full.items ?? []).map((i) => i.jid), ['mercutio@localhost']);
    } finally {
      await stop(c);
    }
  });
});

describe('restart', () => {
  test('rosters, versions and pending requests survive a server restart', async () => {
    const users: Array<[string, string]> = [
      ['romeo', 'r0meo'],
      ['juliet', 'jul1et'],
    ];
    const s1 = await startVerona({ users });
    let ver: string | undefined;
    try {
      const r = await connectClient({ port: s1.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'one' });
      await rosterGet(r);
      r.send(`<iq type='set' id='s1'><query xmlns='${ROSTER}'><item jid='nurse@localhost' name='Nurse'><group>Capulets</group></item></query></iq>`);
      await r.next((el) => el.attrs.id === 's1');
      // Juliet is offline: the request waits for her.
      r.send(`<presence to='juliet@localhost' type='subscribe'><status>before the restart</status></presence>`);
      await r.next(pushFor('juliet@localhost', 'none'));
      ver = (await rosterGet(r, '')).getChild('query', ROSTER)?.attrs.ver;
      assert.ok(ver);
      r.destroy();
    } finally {
      await s1.stop();
    }
    const s2 = await startVerona({ dataDir: s1.dataDir });
    try {
      const r = await connectClient({ port: s2.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'two' });
      const current = await rosterGet(r, ver);
      assert.equal(current.attrs.type, 'result');
      assert.equal(current.getChild('query'), undefined, 'same version after the restart: empty result');
      const full = await rosterGet(r);
      assert.deepEqual(
        full.getChild('query', ROSTER)?.getChildren('item').map((i) => [i.attrs.jid, i.attrs.name, i.attrs.subscription, i.attrs.ask, i.getChildText('group')]),
        [
          ['juliet@localhost', undefined, 'none', 'subscribe', null],
          ['nurse@localhost', 'Nurse', 'none', undefined, 'Capulets'],
        ],
      );
      const j = await connectClient({ port: s2.ports.c2s as number, user: 'juliet', password: 'jul1et', resource: 'late' });
      j.send('<presence/>');
      const req = await j.next((el) => el.is('presence') && el.attrs.type === 'subscribe');
      assert.equal(req.attrs.from, 'romeo@localhost');
      assert.equal(req.getChildText('status'), 'before the restart');
      j.send(`<presence to='romeo@localhost' type='subscribed'/>`);
      await r.next(pushFor('juliet@localhost', 'to'));
      r.destroy();
      j.destroy();
    } finally {
      await s2.stop();
      s2.cleanup();
    }
  });
});

describe('presence-auth (disco#info of an account)', () => {
  test('a contact sees the account disco#info only once subscribed', async () => {
    const nurse = await connectClient({ port: v.ports.c2s as number, user: 'nurse', password: 'nurse', resource: 'n' });
    const ben = await connectClient({ port: v.ports.c2s as number, user: 'benvolio', password: 'cousin', resource: 'b' });
    try {
      const ask = async (id: string) => {
        ben.send(`<iq type='get' id='${id}' to='nurse@localhost'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
        return ben.next((el) => el.attrs.id === id);
      };
      const denied = await ask('d1');
      assert.equal(denied.attrs.type, 'error');
      assert.ok(denied.getChild('error')?.getChild('service-unavailable'));

      await rosterGet(nurse);
      nurse.send('<presence/>');
      ben.send(`<presence to='nurse@localhost' type='subscribe'/>`);
      await nurse.next((el) => el.is('presence') && el.attrs.type === 'subscribe');
      nurse.send(`<presence to='benvolio@localhost' type='subscribed'/>`);
      await nurse.next(pushFor('benvolio@localhost', 'from'));
      const allowed = await ask('d2');
      assert.equal(allowed.attrs.type, 'result');
      assert.ok(allowed.getChild('query')?.getChildren('identity').some((i) => i.attrs.category === 'account'));
    } finally {
      nurse.destroy();
      ben.destroy();
    }
  });
});

describe('account deletion', () => {
  test('a deleted account leaves no roster behind, and its old version is unknown', async () => {
    const s = await startVerona({ users: [['tybalt', 'cats']] });
    try {
      let t = await connectClient({ port: s.ports.c2s as number, user: 'tybalt', password: 'cats' });
      t.send(`<iq type='set' id='s1'><query xmlns='${ROSTER}'><item jid='mercutio@localhost'/></query></iq>`);
      await t.next((el) => el.attrs.id === 's1');
      const ver = (await rosterGet(t, '')).getChild('query', ROSTER)?.attrs.ver;
      t.destroy();
      await s.cli(['deluser', 'tybalt@localhost']);
      await s.adduser('tybalt', 'cats');
      t = await connectClient({ port: s.ports.c2s as number, user: 'tybalt', password: 'cats' });
      const fresh = await rosterGet(t, ver);
      const q = fresh.getChild('query', ROSTER);
      assert.ok(q, 'the old version does not match the new roster: a full answer');
      assert.equal(q.getChildren('item').length, 0);
      assert.notEqual(q.attrs.ver, ver);
      t.destroy();
    } finally {
      await s.stop();
      s.cleanup();
    }
  });
});
