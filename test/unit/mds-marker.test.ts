/**
 * Which archived message a plain XEP-0333 <displayed id='…'/> refers to
 * (src/modules/mds.ts markerMatches): the message's id, or its origin-id.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { markerMatches } from '../../src/modules/mds.js';
import { parseXml } from '../../src/xml/parser.js';

const cases: Array<[string, string, string, boolean]> = [
  ['the message id', `<message xmlns='jabber:client' id='m1' type='chat'><body>hi</body></message>`, 'm1', true],
  ['another id', `<message xmlns='jabber:client' id='m2' type='chat'><body>hi</body></message>`, 'm1', false],
  ['the origin-id', `<message xmlns='jabber:client' id='x' type='chat'><origin-id xmlns='urn:xmpp:sid:0' id='o-1'/><body>hi</body></message>`, 'o-1', true],
  ['an origin-id in another namespace', `<message xmlns='jabber:client' id='x'><origin-id xmlns='urn:example' id='o-1'/></message>`, 'o-1', false],
  ['the stanza-id is not what markers name', `<message xmlns='jabber:client' id='x'><stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='s-1'/></message>`, 's-1', false],
  ['no id at all', `<message xmlns='jabber:client'><body>hi</body></message>`, 'm1', false],
  ['an id that needs escaping', `<message xmlns='jabber:client' id='a&amp;b'><body>hi</body></message>`, 'a&b', true],
];

for (const [name, xml, id, want] of cases) {
  test(`markerMatches: ${name}`, () => {
    assert.equal(markerMatches(parseXml(xml), id), want);
  });
}
