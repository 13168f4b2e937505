/**
 * One normalisation of a message's `type` (RFC 6121 §5.2.2: missing or not
 * understood means 'normal'), checked across every decision that looks at it:
 * routing, archive, offline, carbons, CSI and stream management's handling of
 * undelivered stanzas. A row per type value, including unknown ones; each
 * message carries a body, so only the type decides.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { messageType, normalizeType, decideIncoming, type SessionView } from '../../src/core/routing.js';
import { carbonsEligible } from '../../src/core/eligibility.js';
import { archiveVerdict } from '../../src/modules/mam/rules.js';
import { offlineVerdict } from '../../src/modules/offline.js';
import { csiDecide } from '../../src/modules/csi.js';
import { classifyUndelivered } from '../../src/modules/sm/undelivered.js';
import { x } from '../../src/xml/element.js';
import { NS } from '../../src/core/namespaces.js';

interface Row {
  type: string | undefined;
  normalised: string;
  archived: boolean;
  offline: string;
  carbons: boolean;
  /** What a bare-JID message does with one available and one carbons resource. */
  copies: string;
  csi: string;
  undelivered: string;
}

const ROWS: Row[] = [
  { type: undefined, normalised: 'normal', archived: true, offline: 'store', carbons: true, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'offline' },
  { type: 'normal', normalised: 'normal', archived: true, offline: 'store', carbons: true, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'offline' },
  { type: 'chat', normalised: 'chat', archived: true, offline: 'store', carbons: true, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'offline' },
  { type: 'groupchat', normalised: 'groupchat', archived: false, offline: 'drop', carbons: false, copies: '', csi: 'urgent', undelivered: 'drop' },
  { type: 'headline', normalised: 'headline', archived: false, offline: 'drop', carbons: false, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'drop' },
  { type: 'error', normalised: 'error', archived: false, offline: 'drop', carbons: false, copies: '', csi: 'urgent', undelivered: 'drop' },
  // Unknown values: exactly like 'normal'.
  { type: 'foo', normalised: 'normal', archived: true, offline: 'store', carbons: true, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'offline' },
  { type: '', normalised: 'normal', archived: true, offline: 'store', carbons: true, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'offline' },
  { type: 'Chat', normalised: 'normal', archived: true, offline: 'store', carbons: true, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'offline' },
  { type: 'normal ', normalised: 'normal', archived: true, offline: 'store', carbons: true, copies: 'a:plain,b:plain', csi: 'urgent', undelivered: 'offline' },
];

const SESSIONS: SessionView[] = [
  { resource: 'a', priority: 0, available: true, mr2: false, carbons: false },
  { resource: 'b', priority: 0, available: true, mr2: false, carbons: true },
];

function message(type: string | undefined) {
  const attrs: Record<string, string> = { from: 'romeo@localhost/phone', to: 'juliet@localhost', id: 'm1' };
  if (type !== undefined) attrs.type = type;
  return x('message', NS.CLIENT, attrs, [x('body', NS.CLIENT, {}, ['hi'])]);
}

for (const r of ROWS) {
  test(`type=${JSON.stringify(r.type)} is handled as ${r.normalised} everywhere`, () => {
    const m = message(r.type);
    assert.equal(normalizeType(r.type), r.normalised);
    assert.equal(messageType(m), r.normalised);
    assert.equal(archiveVerdict(m).ok, r.archived, 'archive');
    assert.equal(offlineVerdict(m).action, r.offline, 'offline');
    assert.equal(carbonsEligible(m).ok, r.carbons, 'carbons');
    const d = decideIncoming({ type: messageType(m), toResource: undefined, carbonsEligible: carbonsEligible(m).ok }, SESSIONS);
    assert.equal(d.deliveries.map((x) => `${x.resource}:${x.shape}`).join(','), r.copies, 'routing');
    assert.equal(csiDecide(m).action, r.csi, 'csi');
    const u = classifyUndelivered(m, { account: 'juliet@localhost', usesMam: false, deliveredElsewhere: false, alreadyOffline: false });
    assert.equal(u.action, r.undelivered, 'sm undelivered');
  });
}
