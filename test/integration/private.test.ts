/**
 * XEP-0049 Private XML Storage against the real server: set several
 * fragments at once and get them back one by one, an empty answer for
 * nothing stored, replacement and deletion, the errors (other accounts,
 * reserved namespaces, no child), the per-account limit, and disco.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf } from '../helpers/client.js';

const PRIVATE = 'jabber:iq:private';
let v: Verona;

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['juliet', 'jul1et']],
    config: { moduleOptions: { private: { maxEntries: 3 } } },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const iq = sendIq;
const errorOf = stanzaErrorOf;
const q = (inner: string): string => `<query xmlns='${PRIVATE}'>${inner}</query>`;

const BOOKMARKS = "<storage xmlns='storage:bookmarks'><conference jid='balcony@rooms.localhost' autojoin='true' name='Balcony'><nick>romeo</nick></conference></storage>";

test('store several fragments in one set, read each back, replace and delete', async () => {
  const r = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'a' });
  try {
    const none = await iq(r, q("<storage xmlns='storage:bookmarks'/>"), "type='get'");
    assert.equal(none.attrs.type, 'result');
    const echoed = none.getChild('query', PRIVATE)?.getChild('storage', 'storage:bookmarks');
    assert.ok(echoed, 'nothing stored: the element comes back empty');
    assert.equal(echoed.getChildElements().length, 0);

    const set = await iq(r, q(BOOKMARKS + "<prefs xmlns='urn:example:prefs'><sound>off</sound></prefs>"));
    assert.equal(set.attrs.type, 'result', set.toString());

    const b = await iq(r, q("<storage xmlns='storage:bookmarks'/>"), "type='get' to='romeo@localhost'");
    const conf = b.getChild('query', PRIVATE)?.getChild('storage', 'storage:bookmarks')?.getChild('conference');
    assert.equal(conf?.attrs.jid, 'balcony@rooms.localhost');
    assert.equal(conf?.attrs.autojoin, 'true');
    assert.equal(conf?.getChildText('nick'), 'romeo');
    const p = await iq(r, q("<prefs xmlns='urn:example:prefs'/>"), "type='get'");
    assert.equal(p.getChild('query')?.getChild('prefs', 'urn:example:prefs')?.getChildText('sound'), 'off');

    // Same name, other namespace: a different fragment.
    const other = await iq(r, q("<prefs xmlns='urn:example:other'/>"), "type='get'");
    assert.equal(other.getChild('query')?.getChild('prefs', 'urn:example:other')?.getChildElements().length, 0);

    await iq(r, q("<prefs xmlns='urn:example:prefs'><sound>on</sound></prefs>"));
    assert.equal((await iq(r, q("<prefs xmlns='urn:example:prefs'/>"), "type='get'")).getChild('query')?.getChild('prefs')?.getChildText('sound'), 'on');
    await iq(r, q("<prefs xmlns='urn:example:prefs'/>"));
    assert.equal((await iq(r, q("<prefs xmlns='urn:example:prefs'/>"), "type='get'")).getChild('query')?.getChild('prefs')?.getChildElements().length, 0);
  } finally {
    r.destroy();
  }
});

test('errors: other accounts, reserved namespaces, no child, the per-account limit', async () => {
  const r = await connectClient({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'b' });
  const j = await connectClient({ port: v.ports.c2s as number, user: 'juliet', password: 'jul1et', resource: 'b' });
  try {
    assert.equal(errorOf(await iq(j, q("<storage xmlns='storage:bookmarks'/>"), "type='get' to='romeo@localhost'")), 'forbidden');
    assert.equal(errorOf(await iq(j, q(BOOKMARKS), "type='set' to='romeo@localhost'")), 'forbidden');

    assert.equal(errorOf(await iq(r, q('<foo/>'))), 'not-acceptable', 'no namespace of its own');
    assert.equal(errorOf(await iq(r, q("<foo xmlns='jabber:client'/>"))), 'not-acceptable');
    assert.equal(errorOf(await iq(r, q("<foo xmlns='jabber:server'/>"), "type='get'")), 'not-acceptable');
    assert.equal(errorOf(await iq(r, q(''))), 'not-acceptable', 'a set without a fragment');
    assert.equal(errorOf(await iq(r, q(''), "type='get'")), 'bad-request', 'a get without a fragment');
    // A refused set stores none of its fragments.
    assert.equal(errorOf(await iq(r, q("<ok xmlns='urn:example:ok'>1</ok><foo xmlns='jabber:client'/>"))), 'not-acceptable');
    assert.equal((await iq(r, q("<ok xmlns='urn:example:ok'/>"), "type='get'")).getChild('query')?.getChild('ok')?.getText(), '');

    // At most 3 fragments per account here (the bookmarks from the first test count for Romeo).
    const three = q("<a xmlns='urn:example:a'>1</a><b xmlns='urn:example:b'>1</b><c xmlns='urn:example:c'>1</c>");
    assert.equal(errorOf(await iq(r, three)), 'resource-constraint');
    assert.equal((await iq(r, q("<a xmlns='urn:example:a'>1</a><b xmlns='urn:example:b'>1</b>"))).attrs.type, 'result');
    assert.equal(errorOf(await iq(r, q("<c xmlns='urn:example:c'>1</c>"))), 'resource-constraint');
    assert.equal((await iq(r, q("<a xmlns='urn:example:a'>2</a>"))).attrs.type, 'result', 'replacing does not count');

    const info = await iq(r, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='localhost'");
    assert.ok(info.getChild('query')?.getChildren('feature').some((f) => f.attrs.var === PRIVATE));
  } finally {
    r.destroy();
    j.destroy();
  }
});
