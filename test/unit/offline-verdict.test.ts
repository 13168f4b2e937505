/**
 * Offline messages (XEP-0160): what the module stores, drops or bounces. The
 * store itself (limit, take, dropping archived copies) is in the storage
 * conformance suite, run on every backend.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseXml } from '../../src/xml/parser.js';
import { offlineVerdict } from '../../src/modules/offline.js';

test('offlineVerdict: content is stored, chat states dropped, no-store bounced', () => {
  const v = (xml: string) => offlineVerdict(parseXml(`<message xmlns='jabber:client' ${xml}`)).action;
  assert.equal(v(`type='chat'><body>hi</body></message>`), 'store');
  assert.equal(v(`><body>hi</body></message>`), 'store');
  assert.equal(v(`type='chat'><encrypted xmlns='eu.siacs.conversations.axolotl'/></message>`), 'store');
  assert.equal(v(`type='chat'><body>hi</body><no-permanent-store xmlns='urn:xmpp:hints'/></message>`), 'store');
  assert.equal(v(`type='chat'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`), 'drop');
  assert.equal(v(`type='chat'><body>hi</body><no-store xmlns='urn:xmpp:hints'/></message>`), 'bounce');
  assert.equal(v(`type='headline'><body>hi</body></message>`), 'drop');
});
