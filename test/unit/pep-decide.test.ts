/**
 * PEP's pure decisions, table-driven: access models (XEP-0060 §4.5),
 * notification targets (XEP-0163 §4), last items (XEP-0163 §6.2), and the
 * node configuration / publish-options rules (XEP-0060 §7.1.5, §16.4.3).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { accessDecision, newInterests, notificationTargets, sendLastItem, type Candidate, type Relation } from '../../src/modules/pep/decide.js';
import { configForm, defaultConfig, keepCount, parseConfigFields, readForm, unmetPrecondition } from '../../src/modules/pep/config.js';
import { pepOptions } from '../../src/modules/pep/index.js';
import type { AccessModel, NodeConfig } from '../../src/storage/pubsub.js';
import { parseXml } from '../../src/xml/parser.js';

const owner: Relation = { isOwner: true, canSeePresence: true, affiliation: undefined };
const contact: Relation = { isOwner: false, canSeePresence: true, affiliation: undefined };
const stranger: Relation = { isOwner: false, canSeePresence: false, affiliation: undefined };
const member: Relation = { isOwner: false, canSeePresence: false, affiliation: 'member' };
const outcast: Relation = { isOwner: false, canSeePresence: true, affiliation: 'outcast' };

describe('accessDecision', () => {
  const table: Array<[AccessModel, string, Relation, boolean, string]> = [
    ['presence', 'owner', owner, true, 'owner'],
    ['presence', 'contact', contact, true, 'presence-subscriber'],
    ['presence', 'stranger', stranger, false, 'presence-subscription-required'],
    ['presence', 'member without subscription', member, false, 'presence-subscription-required'],
    ['open', 'stranger', stranger, true, 'open'],
    ['open', 'outcast', outcast, false, 'outcast'],
    ['whitelist', 'owner', owner, true, 'owner'],
    ['whitelist', 'contact', contact, false, 'closed-node'],
    ['whitelist', 'member', member, true, 'whitelisted'],
    ['whitelist', 'publisher', { ...stranger, affiliation: 'publisher' }, true, 'whitelisted'],
  ];
  for (const [model, who, rel, allowed, reason] of table) {
    test(`${model}: ${who} -> ${allowed ? 'allowed' : 'denied'} (${reason})`, () => {
      assert.deepEqual(accessDecision(model, rel), { allowed, reason });
    });
  }
});

const cfg = (over: Partial<NodeConfig> = {}): NodeConfig => ({ ...defaultConfig(1), ...over });
const cand = (jid: string, rel: Relation, notify: string[] | undefined, available = true): Candidate => ({
  jid,
  available,
  notify: notify && new Set(notify),
  relation: rel,
});

describe('notificationTargets', () => {
  const N = 'urn:xmpp:avatar:metadata';
  const all = [
    cand('juliet@localhost/balcony', owner, [N]),
    cand('juliet@localhost/phone', owner, []),
    cand('romeo@localhost/orchard', contact, [N]),
    cand('romeo@localhost/away', contact, [N], false),
    cand('nurse@localhost/kitchen', contact, undefined),
    cand('tybalt@localhost/street', outcast, [N]),
  ];

  test('presence model: available resources with +notify, owner and contacts', () => {
    const r = notificationTargets(N, cfg(), all);
    assert.deepEqual(r.targets, [
      { jid: 'juliet@localhost/balcony', reason: 'owner' },
      { jid: 'romeo@localhost/orchard', reason: 'presence-subscriber' },
    ]);
    assert.deepEqual(
      Object.fromEntries(r.skipped.map((s) => [s.jid, s.reason])),
      {
        'juliet@localhost/phone': 'no-notify',
        'romeo@localhost/away': 'unavailable',
        'nurse@localhost/kitchen': 'caps-unknown',
        'tybalt@localhost/street': 'outcast',
      },
    );
  });

  test('whitelist model: only the owner (and members)', () => {
    const r = notificationTargets(N, cfg({ accessModel: 'whitelist' }), [...all, cand('friar@localhost/cell', { ...contact, affiliation: 'member' }, [N])]);
    assert.deepEqual(r.targets.map((t) => t.jid), ['juliet@localhost/balcony', 'friar@localhost/cell']);
  });

  test('deliver_notifications false: nobody', () => {
    assert.deepEqual(notificationTargets(N, cfg({ deliverNotifications: false }), all).targets, []);
  });

  test('a resource listed twice gets one notification', () => {
    const r = notificationTargets(N, cfg(), [all[0] as Candidate, all[0] as Candidate]);
    assert.equal(r.targets.length, 1);
  });
});

describe('sendLastItem', () => {
  const N = 'urn:xmpp:bookmarks:1';
  const notify = new Set([N]);
  const table: Array<[string, Partial<NodeConfig>, Relation, 'presence' | 'subscribe', boolean, string]> = [
    ['owner online, default config', {}, owner, 'presence', true, 'owner'],
    ['contact online', {}, contact, 'presence', true, 'presence-subscriber'],
    ['contact on a whitelist node', { accessModel: 'whitelist' }, contact, 'presence', false, 'closed-node'],
    ['never', { sendLastPublishedItem: 'never' }, owner, 'subscribe', false, 'never'],
    ['on_sub, on presence', { sendLastPublishedItem: 'on_sub' }, owner, 'presence', false, 'on-sub-only'],
    ['on_sub, on new interest', { sendLastPublishedItem: 'on_sub' }, owner, 'subscribe', true, 'owner'],
  ];
  for (const [name, over, rel, trig, send, reason] of table) {
    test(name, () => assert.deepEqual(sendLastItem(N, cfg(over), notify, rel, trig), { send, reason }));
  }
  test('no +notify for the node', () => {
    assert.deepEqual(sendLastItem('other', cfg(), notify, owner, 'presence'), { send: false, reason: 'no-notify' });
  });
  test('newInterests', () => {
    assert.deepEqual([...newInterests(new Set(['a', 'b']), new Set(['b', 'c']))], ['c']);
    assert.deepEqual([...newInterests(undefined, new Set(['a']))], ['a']);
  });
});

describe('node configuration', () => {
  const fields = (o: Record<string, string>) => new Map(Object.entries(o).map(([k, v]) => [k, [v]]));

  test('parse the fields PEP implements', () => {
    const r = parseConfigFields(
      fields({
        'pubsub#access_model': 'whitelist',
        'pubsub#persist_items': 'true',
        'pubsub#max_items': 'max',
        'pubsub#send_last_published_item': 'never',
        'pubsub#notify_retract': '0',
      }),
      256,
    );
    assert.deepEqual(r.errors, []);
    assert.deepEqual(r.patch, { accessModel: 'whitelist', persistItems: true, maxItems: 'max', sendLastPublishedItem: 'never', notifyRetract: false });
  });

  test('invalid values and unknown fields are reported', () => {
    const r = parseConfigFields(
      fields({ 'pubsub#access_model': 'roster', 'pubsub#max_items': '1000', 'pubsub#persist_items': 'yes', 'pubsub#body_xslt': 'x' }),
      256,
    );
    assert.deepEqual(r.errors, [
      { field: 'pubsub#access_model', reason: 'invalid-value' },
      { field: 'pubsub#max_items', reason: 'invalid-value' },
      { field: 'pubsub#persist_items', reason: 'invalid-value' },
      { field: 'pubsub#body_xslt', reason: 'unknown-field' },
    ]);
  });

  test('preconditions: equal values pass, any difference names the field; max equals the limit', () => {
    const c = cfg({ accessModel: 'open', maxItems: 'max' });
    assert.equal(unmetPrecondition(c, { accessModel: 'open' }, 256), undefined);
    assert.equal(unmetPrecondition(c, { accessModel: 'presence' }, 256), 'pubsub#access_model');
    assert.equal(unmetPrecondition(c, { maxItems: 256 }, 256), undefined);
    assert.equal(unmetPrecondition(c, { maxItems: 10 }, 256), 'pubsub#max_items');
    assert.equal(unmetPrecondition(c, { persistItems: false }, 256), 'pubsub#persist_items');
  });

  test('keepCount', () => {
    assert.equal(keepCount(cfg({ maxItems: 5 }), 256), 5);
    assert.equal(keepCount(cfg({ maxItems: 'max' }), 256), 256);
    assert.equal(keepCount(cfg({ maxItems: 5, persistItems: false }), 256), 0);
  });

  test('the configuration form reads back to the same configuration', () => {
    const c = cfg({ accessModel: 'open', maxItems: 'max', title: 'Devices', notificationType: 'normal' });
    const form = readForm(parseXml(configForm(c).toString()));
    assert.ok(form);
    assert.equal(form.formType, 'http://jabber.org/protocol/pubsub#node_config');
    const r = parseConfigFields(form.fields, 256);
    assert.deepEqual(r.errors, []);
    assert.deepEqual({ ...defaultConfig(1), ...r.patch }, c);
  });

  test('module options', () => {
    assert.deepEqual(pepOptions({}), { maxItems: 256, defaultMaxItems: 1, maxNodes: 1000, capsCacheSize: 10000, capsTimeoutMs: 10000 });
    assert.equal(pepOptions({ defaultMaxItems: 'max' }).defaultMaxItems, 'max');
    assert.throws(() => pepOptions({ maxItems: 0 }), /maxItems/);
    assert.throws(() => pepOptions({ maxItems: 10, defaultMaxItems: 20 }), /defaultMaxItems/);
  });
});
