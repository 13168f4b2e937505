/**
 * XEP-0353 call signals in the archive and carbons rules: every JMI element is
 * stored and copied (hint or not, chat or normal); chat states are still not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml } from '../../src/xml/parser.js';
import { archiveVerdict } from '../../src/modules/mam/rules.js';
import { carbonsEligible } from '../../src/core/eligibility.js';

const JMI = 'urn:xmpp:jingle-message:0';
const rows: Array<[string, string, boolean, string]> = [
  ['propose, chat, with store hint', `<message type='chat' xmlns='jabber:client'><propose xmlns='${JMI}' id='c1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose><store xmlns='urn:xmpp:hints'/></message>`, true, 'jingle-message'],
  ['propose, normal, no hint (older clients)', `<message xmlns='jabber:client'><propose xmlns='${JMI}' id='c1'/></message>`, true, 'jingle-message'],
  ['retract', `<message xmlns='jabber:client' type='chat'><retract xmlns='${JMI}' id='c1'/></message>`, true, 'jingle-message'],
  ['accept', `<message xmlns='jabber:client'><accept xmlns='${JMI}' id='c1'/></message>`, true, 'jingle-message'],
  ['proceed', `<message xmlns='jabber:client'><proceed xmlns='${JMI}' id='c1'/></message>`, true, 'jingle-message'],
  ['reject', `<message xmlns='jabber:client'><reject xmlns='${JMI}' id='c1'/></message>`, true, 'jingle-message'],
  ['ringing', `<message xmlns='jabber:client'><ringing xmlns='${JMI}' id='c1'/></message>`, true, 'jingle-message'],
  ['finish', `<message xmlns='jabber:client'><finish xmlns='${JMI}' id='c1'/></message>`, true, 'jingle-message'],
  ['propose with no-store hint', `<message xmlns='jabber:client'><propose xmlns='${JMI}' id='c1'/><no-store xmlns='urn:xmpp:hints'/></message>`, false, 'no-store-hint'],
  ['propose as headline', `<message xmlns='jabber:client' type='headline'><propose xmlns='${JMI}' id='c1'/></message>`, false, 'type-headline'],
];

for (const [name, xml, ok, reason] of rows) {
  test(`archive: ${name}`, () => {
    const v = archiveVerdict(parseXml(xml));
    assert.equal(v.ok, ok);
    assert.equal(v.reason, reason);
  });
}

test('carbons: a JMI message of type normal is copied to legacy Carbons clients', () => {
  const v = carbonsEligible(parseXml(`<message xmlns='jabber:client'><proceed xmlns='${JMI}' id='c1'/></message>`));
  assert.deepEqual(v, { ok: true, reason: 'im-payload' });
});
