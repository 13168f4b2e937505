/**
 * The fork table of docs/protocol.md ("Who gets a copy"), row by row, against
 * the pure routing decisions in src/core/routing.ts. Each row names the
 * account's resources compactly:
 *   'a'                 legacy, available, priority 0, no carbons
 *   'b:mr2'             MR2 stream
 *   'c:carbons:p=-1'    legacy with carbons, priority -1
 *   'd:unavail'         bound but no initial presence
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { decideIncoming, decideOutgoing, type MessageType, type SessionView } from '../../src/core/routing.js';
import { carbonsEligible } from '../../src/core/eligibility.js';
import { x } from '../../src/xml/element.js';

function sessions(...specs: string[]): SessionView[] {
  return specs.map((spec) => {
    const [resource, ...flags] = spec.split(':');
    const v: SessionView = { resource: resource as string, priority: 0, available: true, mr2: false, carbons: false };
    for (const f of flags) {
      if (f === 'mr2') v.mr2 = true;
      else if (f === 'carbons') v.carbons = true;
      else if (f === 'unavail') v.available = false;
      else if (f.startsWith('p=')) v.priority = Number(f.slice(2));
      else throw new Error(`bad flag ${f}`);
    }
    return v;
  });
}

/** 'a=plain b=received' (sorted), or '' for none. */
function shapes(ds: Array<{ resource: string; shape: string }>): string {
  return ds.map((d) => `${d.resource}=${d.shape}`).sort().join(' ');
}

interface InRow {
  name: string;
  type: MessageType;
  to?: string; // resource, or bare when absent
  eligible?: boolean; // carbons eligibility (default: chat/normal true)
  s: string[];
  expect: string;
  offline?: boolean;
  bounce?: string;
}

const IN: InRow[] = [
  // --- to the bare JID ---
  { name: 'bare chat: the one available resource', type: 'chat', s: ['a'], expect: 'a=plain' },
  { name: 'bare chat: highest priority only (RFC 6121 §8.5.2.1.1)', type: 'chat', s: ['a:p=1', 'b'], expect: 'a=plain' },
  { name: 'bare chat: tied priorities all get it', type: 'chat', s: ['a:p=1', 'b:p=1'], expect: 'a=plain b=plain' },
  { name: 'bare chat: legacy carbons resource below the top gets a received carbon', type: 'chat', s: ['a:p=1', 'b:carbons'], expect: 'a=plain b=received' },
  { name: 'bare chat: every MR2 resource gets a plain copy, even at negative priority', type: 'chat', s: ['a', 'b:mr2:p=-1', 'c:mr2'], expect: 'a=plain b=plain c=plain' },
  { name: 'bare chat: an MR2 resource of top priority does not widen RFC delivery', type: 'chat', s: ['a', 'c:mr2:p=5'], expect: 'c=plain' },
  { name: 'bare chat: MR2 resource without initial presence still gets it', type: 'chat', s: ['b:mr2:unavail'], expect: 'b=plain' },
  { name: 'bare normal: MR2 plain + RFC target', type: 'normal', s: ['a', 'b:mr2:p=-5'], expect: 'a=plain b=plain' },
  { name: 'bare normal without body, carbons not eligible: no carbon, MR2 still plain', type: 'normal', eligible: false, s: ['a:p=2', 'b:carbons', 'c:mr2'], expect: 'a=plain c=plain' },
  { name: 'bare headline: every available non-negative resource, MR2 not forked', type: 'headline', s: ['a', 'b:p=-1', 'c:mr2:p=-1', 'd:mr2'], expect: 'a=plain d=plain' },
  { name: 'bare headline: no carbons', type: 'headline', eligible: false, s: ['a', 'b:carbons:p=-1'], expect: 'a=plain' },
  { name: 'bare headline: nobody non-negative: dropped, not stored', type: 'headline', s: ['a:p=-1', 'b:mr2:p=-1'], expect: '', offline: false },
  { name: 'bare groupchat: bounced service-unavailable (§8.5.2.1.2)', type: 'groupchat', eligible: false, s: ['a', 'b:mr2'], expect: '', bounce: 'service-unavailable' },
  { name: 'bare error: dropped', type: 'error', eligible: false, s: ['a', 'b:mr2'], expect: '' },
  { name: 'bare chat: nobody at all: offline', type: 'chat', s: [], expect: '', offline: true },
  { name: 'bare normal: only unavailable legacy resources: offline', type: 'normal', s: ['a:unavail'], expect: '', offline: true },
  { name: 'bare chat: only negative-priority legacy: offline', type: 'chat', s: ['a:p=-1'], expect: '', offline: true },
  { name: 'bare chat: only a negative-priority carbons client: carbon and offline', type: 'chat', s: ['a:carbons:p=-1'], expect: 'a=received', offline: true },
  { name: 'bare chat: carbons client without presence gets nothing', type: 'chat', s: ['a', 'b:carbons:unavail'], expect: 'a=plain' },
  { name: 'bare chat: session with MR2 and carbons is routed as MR2', type: 'chat', s: ['a:p=3', 'b:mr2:carbons:p=-1'], expect: 'a=plain b=plain' },

  // --- to a full JID that exists ---
  { name: 'full chat: addressed plain, other MR2 received, carbons received, plain legacy nothing', type: 'chat', to: 'a', s: ['a', 'b:mr2', 'c:carbons', 'd'], expect: 'a=plain b=received c=received' },
  { name: 'full chat: addressed MR2 resource plain, the other MR2 received', type: 'chat', to: 'b', s: ['b:mr2', 'c:mr2:p=-1'], expect: 'b=plain c=received' },
  { name: 'full chat: addressed resource at negative priority still gets it', type: 'chat', to: 'a', s: ['a:p=-3', 'b:p=5'], expect: 'a=plain' },
  { name: 'full normal: MR2 forks normal', type: 'normal', to: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: 'a=plain b=received' },
  { name: 'full headline: addressed only (no forks)', type: 'headline', to: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: 'a=plain' },
  { name: 'full groupchat: addressed only', type: 'groupchat', to: 'b', eligible: false, s: ['a:mr2', 'b', 'c:carbons'], expect: 'b=plain' },
  { name: 'full error: addressed only', type: 'error', to: 'a', eligible: false, s: ['a', 'b:mr2'], expect: 'a=plain' },
  { name: 'full chat: private (not carbons-eligible): MR2 still gets it', type: 'chat', to: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: 'a=plain b=received' },
  { name: 'full chat: addressed resource without presence still gets it', type: 'chat', to: 'a', s: ['a:unavail', 'b:mr2'], expect: 'a=plain b=received' },

  // --- to a full JID whose resource is gone ---
  { name: 'gone chat: as bare (MR2 plain, top legacy plain)', type: 'chat', to: 'zz', s: ['a:p=1', 'b', 'c:mr2:p=-1', 'd:carbons'], expect: 'a=plain c=plain d=received' },
  { name: 'gone normal: as bare', type: 'normal', to: 'zz', s: ['a', 'b:mr2'], expect: 'a=plain b=plain' },
  { name: 'gone chat, nobody: offline', type: 'chat', to: 'zz', s: [], expect: '', offline: true },
  { name: 'gone headline: silently ignored (§8.5.3.2.1)', type: 'headline', to: 'zz', eligible: false, s: ['a', 'b:mr2'], expect: '' },
  { name: 'gone groupchat: bounced service-unavailable (§8.5.3.2.1)', type: 'groupchat', to: 'zz', eligible: false, s: ['a', 'b:mr2'], expect: '', bounce: 'service-unavailable' },
  { name: 'gone error: silently ignored', type: 'error', to: 'zz', eligible: false, s: ['a', 'b:mr2'], expect: '' },
];

describe('fork table: incoming (to the account)', () => {
  for (const row of IN) {
    test(row.name, () => {
      const eligible = row.eligible ?? (row.type === 'chat' || row.type === 'normal');
      const d = decideIncoming({ type: row.type, toResource: row.to, carbonsEligible: eligible }, sessions(...row.s));
      assert.equal(shapes(d.deliveries), row.expect, d.reason);
      assert.equal(d.offline, row.offline ?? false, `offline (${d.reason})`);
      assert.equal(d.bounce, row.bounce, `bounce (${d.reason})`);
      for (const del of d.deliveries) assert.ok(del.reason.length > 0, 'every delivery has a reason');
    });
  }
});

interface OutRow {
  name: string;
  type: MessageType;
  from: string;
  eligible?: boolean;
  s: string[];
  exclude?: string[];
  expect: string;
}

const OUT: OutRow[] = [
  { name: 'chat: other MR2 and available carbons resources get sent; plain legacy nothing', type: 'chat', from: 'a', s: ['a', 'b:mr2', 'c:carbons', 'd'], expect: 'b=sent c=sent' },
  { name: 'chat from an MR2 resource: the sender itself never gets a copy', type: 'chat', from: 'b', s: ['b:mr2', 'c:mr2'], expect: 'c=sent' },
  { name: 'normal without IM payload: MR2 sent, carbons not', type: 'normal', from: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: 'b=sent' },
  { name: 'headline: MR2 forks outgoing headline, carbons not', type: 'headline', from: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: 'b=sent' },
  { name: 'groupchat: never forked', type: 'groupchat', from: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: '' },
  { name: 'error: never forked', type: 'error', from: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: '' },
  { name: 'private / no-copy (not carbons-eligible): MR2 still gets it', type: 'chat', from: 'a', eligible: false, s: ['a', 'b:mr2', 'c:carbons'], expect: 'b=sent' },
  { name: 'MR2 resource without presence and at negative priority still gets sent', type: 'chat', from: 'a', s: ['a', 'b:mr2:unavail:p=-1'], expect: 'b=sent' },
  { name: 'carbons resource without presence gets nothing', type: 'chat', from: 'a', s: ['a', 'c:carbons:unavail'], expect: '' },
  { name: 'resources already served as recipients are skipped (message to own account)', type: 'chat', from: 'a', s: ['a', 'b:mr2', 'c:mr2'], exclude: ['b'], expect: 'c=sent' },
];

describe('fork table: outgoing (sent by one of the account resources)', () => {
  for (const row of OUT) {
    test(row.name, () => {
      const eligible = row.eligible ?? (row.type === 'chat' || row.type === 'normal');
      const d = decideOutgoing({ type: row.type, fromResource: row.from, carbonsEligible: eligible }, sessions(...row.s), new Set(row.exclude ?? []));
      assert.equal(shapes(d), row.expect);
    });
  }
});

describe('carbons eligibility (XEP-0280 with urn:xmpp:carbons:rules:0)', () => {
  const cases: Array<[string, ReturnType<typeof x>, boolean]> = [
    ['chat', x('message', 'jabber:client', { type: 'chat' }, [x('body', 'jabber:client', {}, ['hi'])]), true],
    ['chat without body (chat state)', x('message', 'jabber:client', { type: 'chat' }, [x('active', 'http://jabber.org/protocol/chatstates')]), true],
    ['normal with body', x('message', 'jabber:client', {}, [x('body', 'jabber:client', {}, ['hi'])]), true],
    ['normal with a receipt', x('message', 'jabber:client', {}, [x('received', 'urn:xmpp:receipts', { id: '1' })]), true],
    ['normal empty', x('message', 'jabber:client', {}), false],
    ['private', x('message', 'jabber:client', { type: 'chat' }, [x('private', 'urn:xmpp:carbons:2')]), false],
    ['no-copy hint', x('message', 'jabber:client', { type: 'chat' }, [x('no-copy', 'urn:xmpp:hints')]), false],
    ['headline', x('message', 'jabber:client', { type: 'headline' }, [x('body', 'jabber:client', {}, ['x'])]), false],
    ['groupchat', x('message', 'jabber:client', { type: 'groupchat' }, [x('body', 'jabber:client', {}, ['x'])]), false],
    ['error', x('message', 'jabber:client', { type: 'error' }), false],
  ];
  for (const [name, msg, ok] of cases) test(name, () => assert.equal(carbonsEligible(msg).ok, ok));
});

test('invariant: no resource ever gets two copies of one message (random accounts, both directions)', () => {
  let seed = 42;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const types: MessageType[] = ['chat', 'normal', 'headline', 'groupchat', 'error'];
  for (let i = 0; i < 3000; i++) {
    const n = rnd(6);
    const s: SessionView[] = [];
    for (let k = 0; k < n; k++) {
      s.push({ resource: `r${k}`, priority: rnd(5) - 2, available: rnd(4) > 0, mr2: rnd(2) === 0, carbons: rnd(2) === 0 });
    }
    const type = types[rnd(types.length)] as MessageType;
    const eligible = rnd(2) === 0;
    // A message from resource r0 to its own account (bare or full): the router's worst case.
    const to = rnd(3) === 0 ? undefined : `r${rnd(n + 1)}`;
    const view = s.filter((v) => v.resource !== 'r0');
    const d = decideIncoming({ type, toResource: to, carbonsEligible: eligible }, view);
    const handled = new Set(d.deliveries.map((x) => x.resource));
    const out = decideOutgoing({ type, fromResource: 'r0', carbonsEligible: eligible }, s, handled);
    const all = [...d.deliveries, ...out].map((x) => x.resource);
    assert.equal(new Set(all).size, all.length, `duplicate copy in ${JSON.stringify({ s, type, to, d, out })}`);
    assert.ok(!out.some((o) => o.resource === 'r0'), 'sender never gets its own copy');
  }
});
