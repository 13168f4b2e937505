/**
 * Roster set checks (RFC 6121 §2.3.3, §2.5.3), item serialisation (§2.1)
 * and the roster versioning decision (XEP-0237).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml } from '../../src/xml/parser.js';
import { itemElement, parseRosterSet, removedElement } from '../../src/modules/roster/items.js';
import { decideRosterGet, formatVersion, parseVersion } from '../../src/modules/roster/versioning.js';

const OWN = 'romeo@localhost';
const LIMITS = { maxNameLength: 10, maxGroupLength: 5, maxGroups: 3 };

function q(inner: string) {
  return parseXml(`<query xmlns='jabber:iq:roster'>${inner}</query>`);
}

describe('parseRosterSet', () => {
  const cases: Array<[string, string, string]> = [
    // [what, query content, expected ("ok:..." or condition)]
    ['one item', "<item jid='juliet@localhost' name='Juliet'><group>Pals</group></item>", 'ok:update'],
    ['remove', "<item jid='juliet@localhost' subscription='remove'/>", 'ok:remove'],
    ['no item', '', 'bad-request'],
    ['two items', "<item jid='a@localhost'/><item jid='b@localhost'/>", 'bad-request'],
    ['no jid', "<item name='x'/>", 'bad-request'],
    ['invalid jid', "<item jid='a@b@c'/>", 'bad-request'],
    ['own bare jid', "<item jid='romeo@localhost'/>", 'bad-request'],
    ['own jid with resource', "<item jid='Romeo@localhost/orchard'/>", 'bad-request'],
    ['name too long', "<item jid='a@localhost' name='12345678901'/>", 'not-acceptable'],
    ['name at the limit', "<item jid='a@localhost' name='1234567890'/>", 'ok:update'],
    ['empty group', "<item jid='a@localhost'><group/></item>", 'not-acceptable'],
    ['group too long', "<item jid='a@localhost'><group>123456</group></item>", 'not-acceptable'],
    ['duplicate groups (§2.3.3: bad-request)', "<item jid='a@localhost'><group>A</group><group>A</group></item>", 'bad-request'],
    ['too many groups', "<item jid='a@localhost'><group>A</group><group>B</group><group>C</group><group>D</group></item>", 'not-acceptable'],
    ['subscription other than remove is ignored', "<item jid='a@localhost' subscription='both' ask='subscribe' approved='true'/>", 'ok:update'],
  ];
  for (const [what, inner, expected] of cases) {
    test(what, () => {
      const r = parseRosterSet(q(inner), OWN, LIMITS);
      if (expected.startsWith('ok:')) {
        assert.ok(r.ok, r.ok ? '' : `${r.condition}: ${r.reason}`);
        assert.equal(r.op, expected.slice(3));
      } else {
        assert.equal(r.ok, false);
        if (!r.ok) assert.equal(r.condition, expected, r.reason);
      }
    });
  }

  test('prepares the jid, keeps groups in order, an empty name means none', () => {
    const r = parseRosterSet(q("<item jid='Juliet@LocalHost' name=''><group>B</group><group>A</group></item>"), OWN, LIMITS);
    assert.deepEqual(r, { ok: true, op: 'update', jid: 'juliet@localhost', name: undefined, groups: ['B', 'A'] });
  });

  test('names are measured in characters, not bytes', () => {
    assert.ok(parseRosterSet(q("<item jid='a@localhost' name='ééééééééé😀'/>"), OWN, LIMITS).ok);
  });
});

describe('items on the wire', () => {
  test('an item with everything', () => {
    const el = itemElement({ jid: 'juliet@localhost', name: 'Juliet', subscription: 'none', ask: true, approved: true, groups: ['A', 'B'] });
    assert.equal(
      el.toString(),
      '<item xmlns="jabber:iq:roster" jid="juliet@localhost" name="Juliet" subscription="none" ask="subscribe" approved="true"><group>A</group><group>B</group></item>',
    );
  });
  test('defaults are left out', () => {
    assert.equal(itemElement({ jid: 'a@b', subscription: 'both', ask: false, approved: false, groups: [] }).toString(), '<item xmlns="jabber:iq:roster" jid="a@b" subscription="both"/>');
    assert.equal(removedElement('a@b').toString(), '<item xmlns="jabber:iq:roster" jid="a@b" subscription="remove"/>');
  });
});

describe('roster versioning (XEP-0237)', () => {
  const cur = { epoch: 'abc', counter: 7, floor: 2 };
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'full'],
    ['', 'full'],
    ['abc-7', 'current'],
    ['abc-5', 'diff'],
    ['abc-2', 'diff'],
    ['abc-1', 'full'],
    ['abc-8', 'full'],
    ['other-7', 'full'],
    ['garbage', 'full'],
    ['abc-07', 'full'],
  ];
  for (const [ver, kind] of cases) {
    test(`client ver ${JSON.stringify(ver)} -> ${kind}`, () => {
      const d = decideRosterGet(ver, cur);
      assert.equal(d.kind, kind, d.reason);
      if (d.kind === 'diff') assert.equal(d.since, parseVersion(ver as string)?.counter);
    });
  }
  test('format and parse round-trip, epochs may contain dashes', () => {
    assert.deepEqual(parseVersion(formatVersion('a-b_c', 12)), { epoch: 'a-b_c', counter: 12 });
  });
});
