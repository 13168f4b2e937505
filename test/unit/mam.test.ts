/**
 * MAM policy and queries: the archiving rules row by row, preferences, the
 * query parser, and runQuery (RSM paging, flip-page, complete, ids,
 * item-not-found) against a real SQLite archive.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { x, type Element } from '../../src/xml/element.js';
import { parseXml } from '../../src/xml/parser.js';
import { archiveVerdict, prefsAllow } from '../../src/modules/mam/rules.js';
import { parseQuery, runQuery, finElement, queryForm, type QueryPlan } from '../../src/modules/mam/query.js';
import { parsePrefs, prefsElement } from '../../src/modules/mam/prefs.js';
import { parseDateTime, stampOf, ArchiveClock, archiveIdFor } from '../../src/modules/mam/ids.js';
import { StanzaError } from '../../src/core/errors.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import type { ArchiveRecord } from '../../src/storage/archive.js';

const m = (xml: string): Element => parseXml(`<message xmlns='jabber:client' ${xml}`);

describe('archiving rules (docs/protocol.md "What is archived")', () => {
  const rows: Array<[string, string, boolean, string]> = [
    ['chat with body', `type='chat'><body>hi</body></message>`, true, 'body'],
    ['normal with body', `><body>hi</body></message>`, true, 'body'],
    ['OMEMO (legacy) without body', `type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, true, 'encrypted-omemo'],
    ['OMEMO 2', `type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`, true, 'encrypted-omemo2'],
    ['OpenPGP for XMPP', `type='chat'><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp></message>`, true, 'encrypted-ox'],
    ['receipt', `type='chat'><received xmlns='urn:xmpp:receipts' id='a'/></message>`, true, 'receipt'],
    ['chat marker displayed', `type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='a'/></message>`, true, 'chat-marker'],
    ['correction', `type='chat'><replace xmlns='urn:xmpp:message-correct:0' id='a'/></message>`, true, 'correction'],
    ['retraction', `type='chat'><retract xmlns='urn:xmpp:message-retract:1' id='a'/></message>`, true, 'retraction'],
    ['reaction', `type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='a'><reaction>x</reaction></reactions></message>`, true, 'reaction'],
    ['store hint alone', `type='chat'><store xmlns='urn:xmpp:hints'/></message>`, true, 'store-hint'],
    ['chat state alone', `type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, false, 'no-archivable-payload'],
    ['receipt request alone (no body)', `type='chat'><request xmlns='urn:xmpp:receipts'/></message>`, false, 'no-archivable-payload'],
    ['markable alone', `type='chat'><markable xmlns='urn:xmpp:chat-markers:0'/></message>`, false, 'no-archivable-payload'],
    ['no-store hint wins over body', `type='chat'><body>x</body><no-store xmlns='urn:xmpp:hints'/></message>`, false, 'no-store-hint'],
    ['no-permanent-store hint', `type='chat'><body>x</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`, false, 'no-permanent-store-hint'],
    ['error', `type='error'><body>x</body></message>`, false, 'type-error'],
    ['groupchat', `type='groupchat'><body>x</body></message>`, false, 'type-groupchat'],
    ['headline', `type='headline'><body>x</body></message>`, false, 'type-headline'],
    ['a carbon wrapper sent by a client', `type='chat'><sent xmlns='urn:xmpp:carbons:2'/><body>x</body></message>`, false, 'carbon-wrapper'],
  ];
  for (const [name, xml, ok, reason] of rows) {
    test(name, () => assert.deepEqual(archiveVerdict(m(xml)), { ok, reason }));
  }
});

describe('preferences (XEP-0441)', () => {
  test('never wins over always, both over the default', () => {
    const p = { default: 'always' as const, always: ['a@x'], never: ['b@x'] };
    assert.equal(prefsAllow(undefined, 'z@x'), true);
    assert.equal(prefsAllow(p, 'b@x'), false);
    assert.equal(prefsAllow({ ...p, default: 'never' }, 'a@x'), true);
    assert.equal(prefsAllow({ ...p, default: 'never' }, 'z@x'), false);
    assert.equal(prefsAllow({ ...p, default: 'roster' }, 'z@x'), 'roster');
    assert.equal(prefsAllow({ default: 'always', always: ['b@x'], never: ['b@x'] }, 'b@x'), false);
  });
  test('parse and serialise round-trip; JIDs are reduced to bare JIDs', () => {
    const el = parseXml(`<prefs xmlns='urn:xmpp:mam:2' default='roster'><always><jid>romeo@x/phone</jid></always><never><jid>tybalt@x</jid></never></prefs>`);
    const p = parsePrefs(el);
    assert.deepEqual(p, { default: 'roster', always: ['romeo@x'], never: ['tybalt@x'] });
    assert.deepEqual(parsePrefs(prefsElement(p)), p);
    assert.throws(() => parsePrefs(parseXml(`<prefs xmlns='urn:xmpp:mam:2' default='sometimes'/>`)), StanzaError);
  });
});

test('XEP-0082 timestamps', () => {
  assert.equal(parseDateTime('2010-07-10T23:08:25Z'), Date.UTC(2010, 6, 10, 23, 8, 25));
  assert.equal(parseDateTime('2010-07-10T23:08:25.123+02:00'), Date.UTC(2010, 6, 10, 21, 8, 25, 123));
  assert.equal(parseDateTime('yesterday'), undefined);
  assert.equal(parseDateTime('2010-07-10'), undefined);
  assert.equal(stampOf(Date.UTC(2010, 6, 10, 23, 8, 25)), '2010-07-10T23:08:25Z');
  assert.equal(stampOf(Date.UTC(2010, 6, 10, 23, 8, 25, 7)), '2010-07-10T23:08:25.007Z');
});

describe('query parsing', () => {
  const limits = { defaultMax: 50, maxMax: 250 };
  const q = (inner: string): QueryPlan => parseQuery(parseXml(`<query xmlns='urn:xmpp:mam:2' queryid='q1'>${inner}</query>`), 'juliet', limits);
  const form = (fields: string): string => `<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE' type='hidden'><value>urn:xmpp:mam:2</value></field>${fields}</x>`;
  test('defaults: forward from the oldest, default page size', () => {
    const p = q('');
    assert.equal(p.queryId, 'q1');
    assert.equal(p.direction, 'forward');
    assert.equal(p.max, 50);
  });
  test('with (bare and full), start, end', () => {
    const p = q(form(`<field var='with'><value>Romeo@Montague.lit/Orchard</value></field><field var='start'><value>2010-06-07T00:00:00Z</value></field><field var='end'><value>2010-07-07T13:23:54Z</value></field>`));
    assert.equal(p.range.with, 'romeo@montague.lit');
    assert.equal(p.range.withResource, 'Orchard');
    assert.equal(p.range.minSeq, Date.UTC(2010, 5, 7) * 1000);
    assert.equal(p.range.maxSeq, Date.UTC(2010, 6, 7, 13, 23, 54) * 1000 + 999);
  });
  test('RSM: max is capped, empty before = last page, after/before/index, flip-page', () => {
    assert.equal(q(`<set xmlns='http://jabber.org/protocol/rsm'><max>10000</max></set>`).max, 250);
    assert.equal(q(`<set xmlns='http://jabber.org/protocol/rsm'><before/></set>`).direction, 'backward');
    assert.equal(q(`<set xmlns='http://jabber.org/protocol/rsm'><after>abc</after></set>`).rsmAfter, 'abc');
    assert.equal(q(`<set xmlns='http://jabber.org/protocol/rsm'><before>abc</before></set>`).rsmBefore, 'abc');
    assert.equal(q(`<set xmlns='http://jabber.org/protocol/rsm'><index>7</index></set>`).index, 7);
    assert.equal(q(`<flip-page/>`).flip, true);
  });
  test('errors: unknown field, bad FORM_TYPE, bad dates, bad JID, after+before', () => {
    const cond = (inner: string): string => {
      try {
        q(inner);
      } catch (e) {
        return (e as StanzaError).condition;
      }
      return 'no error';
    };
    assert.equal(cond(form(`<field var='{urn:x}fulltext'><value>x</value></field>`)), 'feature-not-implemented');
    assert.equal(cond(`<x xmlns='jabber:x:data' type='submit'><field var='FORM_TYPE'><value>urn:xmpp:mam:1</value></field></x>`), 'bad-request');
    assert.equal(cond(form(`<field var='start'><value>last week</value></field>`)), 'bad-request');
    assert.equal(cond(form(`<field var='with'><value>@@</value></field>`)), 'jid-malformed');
    assert.equal(cond(`<set xmlns='http://jabber.org/protocol/rsm'><after>a</after><before>b</before></set>`), 'bad-request');
    assert.equal(cond(`<set xmlns='http://jabber.org/protocol/rsm'><max>-1</max></set>`), 'bad-request');
  });
  test('the discovery form lists every supported field', () => {
    const vars = queryForm().getChild('x', 'jabber:x:data')!.getChildren('field').map((f) => f.attrs.var);
    assert.deepEqual(vars, ['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids']);
  });
});

describe('runQuery on a real archive', () => {
  let dir: string;
  let storage: SqliteStorage;
  const recs: ArchiveRecord[] = [];
  const limits = { defaultMax: 50, maxMax: 250 };
  const plan = (inner: string): QueryPlan => parseQuery(parseXml(`<query xmlns='urn:xmpp:mam:2'>${inner}</query>`), 'juliet', limits);
  const rsm = (s: string): string => `<set xmlns='http://jabber.org/protocol/rsm'>${s}</set>`;
  const ids = (rs: ArchiveRecord[]): number[] => rs.map((r) => recs.indexOf(recs.find((x) => x.id === r.id)!));
  const form = (fields: string): string => `<x xmlns='jabber:x:data' type='submit'>${fields}</x>`;
  const field = (v: string, val: string): string => `<field var='${v}'><value>${val}</value></field>`;

  before(async () => {
    dir = mkdtempSync(path.join(tmpdir(), 'verona-mamq-'));
    storage = SqliteStorage.open(path.join(dir, 'a.sqlite'), { synchronous: 'NORMAL' });
    let t = Date.UTC(2024, 0, 1);
    const clock = new ArchiveClock(0, () => t);
    for (let i = 0; i < 30; i++) {
      t += 60_000; // one message a minute
      const seq = clock.next();
      const r: ArchiveRecord = { username: 'juliet', seq, id: archiveIdFor(seq), with: i % 2 ? 'romeo@x' : 'nurse@x', withResource: i % 4 === 1 ? 'orchard' : '', outgoing: false, stanza: `<message xmlns="jabber:client"><body>${i}</body></message>` };
      recs.push(r);
      await storage.archive.append(r);
    }
  });
  after(async () => {
    await storage.close();
    rmSync(dir, { recursive: true, force: true });
  });

  test('first page, then after the last id, to the end: complete only on the last page', async () => {
    const p1 = await runQuery(storage.archive, plan(rsm('<max>12</max>')));
    assert.deepEqual(ids(p1.items), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    assert.equal(p1.complete, false);
    assert.equal(p1.count, 30);
    assert.equal(p1.firstIndex, 0);
    const p2 = await runQuery(storage.archive, plan(rsm(`<max>12</max><after>${recs[11]!.id}</after>`)));
    assert.deepEqual(ids(p2.items), [12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23]);
    const p3 = await runQuery(storage.archive, plan(rsm(`<max>12</max><after>${recs[23]!.id}</after>`)));
    assert.deepEqual(ids(p3.items), [24, 25, 26, 27, 28, 29]);
    assert.equal(p3.complete, true);
    const fin = finElement(p3);
    assert.equal(fin.attrs.complete, 'true');
    assert.equal(fin.getChild('set')?.getChildText('first'), recs[24]!.id);
    assert.equal(fin.getChild('set')?.getChildText('last'), recs[29]!.id);
  });

  test('last page (<before/>) and paging backwards; chronological within a page', async () => {
    const p1 = await runQuery(storage.archive, plan(rsm('<max>10</max><before/>')));
    assert.deepEqual(ids(p1.items), [20, 21, 22, 23, 24, 25, 26, 27, 28, 29]);
    assert.equal(p1.complete, false);
    assert.equal(p1.firstIndex, 20);
    const p2 = await runQuery(storage.archive, plan(rsm(`<max>25</max><before>${recs[20]!.id}</before>`)));
    assert.deepEqual(ids(p2.items), [...Array(20).keys()]);
    assert.equal(p2.complete, true);
  });

  test('with, time range and after-id/before-id compose; RSM index skips', async () => {
    const p = await runQuery(storage.archive, plan(form(field('with', 'romeo@x') + field('after-id', recs[2]!.id) + field('before-id', recs[13]!.id))));
    assert.deepEqual(ids(p.items), [3, 5, 7, 9, 11]);
    assert.equal(p.complete, true);
    const full = await runQuery(storage.archive, plan(form(field('with', 'romeo@x/orchard'))));
    assert.deepEqual(ids(full.items), [1, 5, 9, 13, 17, 21, 25, 29]);
    const t = await runQuery(storage.archive, plan(form(field('start', stampOf(Math.floor(recs[5]!.seq / 1000))) + field('end', stampOf(Math.floor(recs[7]!.seq / 1000))))));
    assert.deepEqual(ids(t.items), [5, 6, 7]);
    const idx = await runQuery(storage.archive, plan(rsm('<max>3</max><index>4</index>')));
    assert.deepEqual(ids(idx.items), [4, 5, 6]);
    assert.equal(idx.firstIndex, 4);
  });

  test('ids (#extended) returns exactly those messages, oldest first', async () => {
    const p = await runQuery(storage.archive, plan(form(`<field var='ids'><value>${recs[9]!.id}</value><value>${recs[3]!.id}</value></field>`)));
    assert.deepEqual(ids(p.items), [3, 9]);
    assert.equal(p.complete, true);
  });

  test('max=0 gives only the count', async () => {
    const p = await runQuery(storage.archive, plan(rsm('<max>0</max>')));
    assert.equal(p.items.length, 0);
    assert.equal(p.count, 30);
  });

  test('an unknown id in after, before, after-id, before-id or ids is item-not-found', async () => {
    for (const inner of [rsm('<after>nope</after>'), rsm('<before>nope</before>'), form(field('after-id', 'nope')), form(field('before-id', 'nope')), form(field('ids', 'nope'))]) {
      await assert.rejects(runQuery(storage.archive, plan(inner)), (e: unknown) => e instanceof StanzaError && e.condition === 'item-not-found', inner);
    }
  });

  test('another account\'s id is unknown here', async () => {
    const seq = new ArchiveClock(recs[29]!.seq).next();
    await storage.archive.append({ username: 'romeo', seq, id: 'romeo-only', with: 'juliet@x', withResource: '', outgoing: true, stanza: '<message xmlns="jabber:client"/>' });
    await assert.rejects(runQuery(storage.archive, plan(rsm('<after>romeo-only</after>'))), StanzaError);
  });

  test('fin for an empty result has no first/last and says complete', async () => {
    const p = await runQuery(storage.archive, plan(form(field('with', 'tybalt@x'))));
    const fin = finElement(p);
    assert.equal(fin.attrs.complete, 'true');
    assert.equal(fin.getChild('set')?.getChild('first'), undefined);
    assert.equal(fin.getChild('set')?.getChildText('count'), '0');
    assert.ok(x('a', 'b'));
  });
});

describe('stanza-id spoofing protection (XEP-0359 §5)', () => {
  test('stanza-ids claiming this server or its accounts are removed; others and origin-id stay', async () => {
    const { stripStanzaIds } = await import('../../src/modules/stanza-id.js');
    const msg = parseXml(
      `<message xmlns='jabber:client'><body>x</body>` +
        `<stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.lit' id='forged1'/>` +
        `<stanza-id xmlns='urn:xmpp:sid:0' by='capulet.lit' id='forged2'/>` +
        `<stanza-id xmlns='urn:xmpp:sid:0' id='no-by'/>` +
        `<stanza-id xmlns='urn:xmpp:sid:0' by='room@muc.example.org' id='kept'/>` +
        `<stanza-id xmlns='urn:xmpp:sid:0' by='juliet@capulet.lit/balcony' id='full-jid-is-no-archive'/>` +
        `<origin-id xmlns='urn:xmpp:sid:0' id='mine'/></message>`,
    );
    assert.equal(stripStanzaIds(msg, 'capulet.lit'), 3);
    assert.deepEqual(msg.getChildren('stanza-id', 'urn:xmpp:sid:0').map((s) => s.attrs.id), ['kept', 'full-jid-is-no-archive']);
    assert.equal(msg.getChild('origin-id', 'urn:xmpp:sid:0')?.attrs.id, 'mine');
  });
});
