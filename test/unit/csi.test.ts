/**
 * CSI's urgency decision (a pure function with reasons, table-tested against
 * docs/protocol.md "CSI: quiet phones") and the held queue's presence
 * deduplication.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml } from '../../src/xml/parser.js';
import { csiDecide, HeldQueue } from '../../src/modules/csi.js';

const el = (s: string) => parseXml(s);
const C = "xmlns='jabber:client'";
const ME = 'romeo@montague.lit';

describe('csiDecide', () => {
  const cases: Array<[string, string, 'hold' | 'urgent' | 'pass', string, string?]> = [
    // presence
    ['available presence', `<presence ${C} from='juliet@capulet.lit/balcony'/>`, 'hold', 'presence-update', 'p:juliet@capulet.lit/balcony'],
    ['unavailable presence', `<presence ${C} type='unavailable' from='juliet@capulet.lit/balcony'/>`, 'hold', 'presence-update', 'p:juliet@capulet.lit/balcony'],
    ['presence error', `<presence ${C} type='error' from='juliet@capulet.lit'/>`, 'hold', 'presence-error'],
    ['subscription request', `<presence ${C} type='subscribe' from='juliet@capulet.lit'/>`, 'urgent', 'subscription'],
    ['subscription approval', `<presence ${C} type='subscribed' from='juliet@capulet.lit'/>`, 'urgent', 'subscription'],
    ['probe', `<presence ${C} type='probe' from='juliet@capulet.lit'/>`, 'urgent', 'presence-probe'],
    ['MUC self-presence', `<presence ${C} from='room@muc/romeo'><x xmlns='http://jabber.org/protocol/muc#user'><status code='110'/></x></presence>`, 'urgent', 'muc-self-presence'],
    ['MUC occupant presence', `<presence ${C} from='room@muc/juliet'><x xmlns='http://jabber.org/protocol/muc#user'/></presence>`, 'hold', 'presence-update', 'p:room@muc/juliet'],
    // incoming messages
    ['message with body', `<message ${C} type='chat'><body>hi</body></message>`, 'urgent', 'body'],
    ['body plus chat state', `<message ${C} type='chat'><active xmlns='http://jabber.org/protocol/chatstates'/><body>hi</body></message>`, 'urgent', 'body'],
    ['OMEMO without body', `<message ${C} type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`, 'urgent', 'encrypted'],
    ['OMEMO 2', `<message ${C} type='chat'><encrypted xmlns='urn:xmpp:omemo:2'/></message>`, 'urgent', 'encrypted'],
    ['OpenPGP', `<message ${C}><openpgp xmlns='urn:xmpp:openpgp:0'>x</openpgp></message>`, 'urgent', 'encrypted'],
    ['chat state alone', `<message ${C} type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, 'hold', 'chat-state'],
    ['chat state with ids and hints', `<message ${C} type='chat'><paused xmlns='http://jabber.org/protocol/chatstates'/><origin-id xmlns='urn:xmpp:sid:0' id='1'/><no-store xmlns='urn:xmpp:hints'/><thread>t</thread></message>`, 'hold', 'chat-state'],
    ['receipt', `<message ${C}><received xmlns='urn:xmpp:receipts' id='x'/><stanza-id xmlns='urn:xmpp:sid:0' by='${ME}' id='1'/></message>`, 'hold', 'receipt'],
    ['marker', `<message ${C} type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='x'/></message>`, 'hold', 'marker'],
    ['groupchat subject', `<message ${C} type='groupchat'><subject>s</subject></message>`, 'urgent', 'subject'],
    ['error message', `<message ${C} type='error'><error type='cancel'/></message>`, 'urgent', 'error'],
    ['unknown payload', `<message ${C}><event xmlns='http://jabber.org/protocol/pubsub#event'/></message>`, 'urgent', 'unknown-payload'],
    ['chat state plus unknown payload', `<message ${C}><active xmlns='http://jabber.org/protocol/chatstates'/><x xmlns='urn:example'/></message>`, 'urgent', 'unknown-payload'],
    ['MAM result', `<message ${C}><result xmlns='urn:xmpp:mam:2' id='1'/></message>`, 'urgent', 'mam-result'],
    ['empty message', `<message ${C}/>`, 'urgent', 'empty-message'],
    // forks
    ['own sent copy, even with a body', `<message ${C}><sent xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message ${C} type='chat'><body>hi</body></message></forwarded></sent></message>`, 'hold', 'own-sent-copy'],
    ['received fork with a body', `<message ${C}><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message ${C} type='chat'><body>hi</body></message></forwarded></received></message>`, 'urgent', 'received-body'],
    ['received fork of a chat state', `<message ${C}><received xmlns='urn:xmpp:carbons:2'><forwarded xmlns='urn:xmpp:forward:0'><message ${C} type='chat'><gone xmlns='http://jabber.org/protocol/chatstates'/></message></forwarded></received></message>`, 'hold', 'received-chat-state'],
    // the rest
    ['iq', `<iq ${C} type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>`, 'urgent', 'iq'],
    ['nonza', `<r xmlns='urn:xmpp:sm:3'/>`, 'pass', 'nonza'],
    ['archive-failed nonza', `<archive-failed xmlns='urn:xmpp:mr2:0' id='m1'/>`, 'pass', 'nonza'],
  ];
  for (const [name, xml, action, reason, key] of cases) {
    test(name, () => {
      const d = csiDecide(el(xml));
      assert.equal(d.action, action);
      assert.equal(d.reason, reason);
      assert.equal(d.key, key);
    });
  }
});

describe('HeldQueue', () => {
  test('keeps arrival order; a newer presence from the same full JID replaces the older one', () => {
    const q = new HeldQueue();
    const p1 = el(`<presence ${C} from='a@x/1' id='p1'/>`);
    const cs = el(`<message ${C} id='cs'/>`);
    const p2 = el(`<presence ${C} from='b@x/1' id='p2'/>`);
    const p3 = el(`<presence ${C} from='a@x/1' id='p3'/>`);
    assert.equal(q.add(p1, 10, 'p:a@x/1'), undefined);
    q.add(cs, 20, undefined);
    q.add(p2, 30, 'p:b@x/1');
    assert.equal(q.add(p3, 40, 'p:a@x/1'), p1);
    assert.equal(q.length, 3);
    assert.equal(q.bytes, 90);
    assert.deepEqual(q.take().map((e) => e.attrs.id), ['cs', 'p2', 'p3']);
    assert.equal(q.length, 0);
    assert.equal(q.bytes, 0);
  });
  test('unkeyed stanzas are never merged', () => {
    const q = new HeldQueue();
    q.add(el(`<message ${C} id='1'/>`), 1, undefined);
    q.add(el(`<message ${C} id='2'/>`), 1, undefined);
    assert.equal(q.length, 2);
  });
});
