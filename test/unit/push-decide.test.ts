/** decidePush and pushContent, table-tested (src/modules/push/decide.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { decidePush, pushContent, type PushInput } from '../../src/modules/push/decide.js';
import { parseXml } from '../../src/xml/parser.js';

const base: PushInput = { content: 'body', archived: true, device: 'hibernated', deliveredLive: false, outstanding: false, alreadyPushed: false };

const rows: Array<[string, Partial<PushInput>, string, string]> = [
  ['hibernated phone, body', {}, 'push', 'hibernated-urgent'],
  ['hibernated phone, archived receipt', { content: 'receipt' }, 'push', 'hibernated-archived'],
  ['hibernated phone, unarchived reaction', { content: 'other', archived: false }, 'skip', 'not-archived'],
  ['hibernated phone, chat state', { content: 'chat-state', archived: false }, 'skip', 'chat-state'],
  ['offline device with a registration, body', { device: 'offline' }, 'push', 'offline-urgent'],
  ['offline device, encrypted', { device: 'offline', content: 'encrypted' }, 'push', 'offline-urgent'],
  ['offline device, presence', { device: 'offline', content: 'presence', archived: false }, 'skip', 'presence'],
  ['CSI-inactive phone, body', { device: 'csi-inactive' }, 'push', 'csi-inactive-urgent'],
  ['CSI-inactive phone, call proposal', { device: 'csi-inactive', content: 'call' }, 'push', 'csi-inactive-urgent'],
  ['CSI-inactive phone, chat state', { device: 'csi-inactive', content: 'chat-state', archived: false }, 'skip', 'chat-state'],
  ['CSI-inactive phone, marker', { device: 'csi-inactive', content: 'marker' }, 'skip', 'csi-not-urgent'],
  ['CSI-inactive phone, presence', { device: 'csi-inactive', content: 'presence', archived: false }, 'skip', 'presence'],
  ['active phone that got it live', { device: 'active', deliveredLive: true }, 'skip', 'delivered-live'],
  ['active phone (copy went elsewhere)', { device: 'active' }, 'skip', 'live-session'],
  ['outstanding push: coalesced', { outstanding: true }, 'coalesce', 'outstanding'],
  ['outstanding push, CSI chat state still skipped', { outstanding: true, device: 'csi-inactive', content: 'chat-state' }, 'skip', 'chat-state'],
  ['same message again (offline path after archive path)', { alreadyPushed: true }, 'skip', 'already-pushed'],
  ['same message, even with nothing outstanding', { alreadyPushed: true, device: 'offline' }, 'skip', 'already-pushed'],
  ['groupchat/headline/error', { content: 'none' }, 'skip', 'not-pushable-type'],
];

for (const [name, over, action, reason] of rows) {
  test(`decidePush: ${name} -> ${action} (${reason})`, () => {
    assert.deepEqual(decidePush({ ...base, ...over }), { action, reason });
  });
}

const contents: Array<[string, string]> = [
  [`<message xmlns='jabber:client' type='chat'><body>hi</body></message>`, 'body'],
  [`<message xmlns='jabber:client' type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/><store xmlns='urn:xmpp:hints'/></message>`, 'encrypted'],
  [`<message xmlns='jabber:client'><propose xmlns='urn:xmpp:jingle-message:0' id='c1'/></message>`, 'call'],
  [`<message xmlns='jabber:client' type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, 'chat-state'],
  [`<message xmlns='jabber:client' type='chat'><received xmlns='urn:xmpp:receipts' id='a'/></message>`, 'receipt'],
  [`<message xmlns='jabber:client' type='chat'><displayed xmlns='urn:xmpp:chat-markers:0' id='a'/></message>`, 'marker'],
  [`<message xmlns='jabber:client' type='chat'><reactions xmlns='urn:xmpp:reactions:0' id='a'/><active xmlns='http://jabber.org/protocol/chatstates'/></message>`, 'other'],
  [`<message xmlns='jabber:client' type='groupchat'><body>hi</body></message>`, 'none'],
  [`<message xmlns='jabber:client' type='headline'><body>news</body></message>`, 'none'],
  [`<message xmlns='jabber:client' type='chat'/>`, 'none'],
];
for (const [xml, want] of contents) {
  test(`pushContent: ${want} <- ${xml.slice(0, 70)}`, () => {
    assert.equal(pushContent(parseXml(xml)), want);
  });
}
