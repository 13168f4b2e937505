/**
 * XEP-0163 Personal Eventing Protocol: a pubsub service (XEP-0060) on every
 * account's bare JID, with notifications filtered by entity capabilities
 * (XEP-0115). What OMEMO device lists, avatars (XEP-0084), bookmarks
 * (XEP-0402) and displayed markers (XEP-0490) are built on.
 *
 * Wiring (the logic lives in service.ts and the pure files caps.ts,
 * config.ts, decide.ts):
 *   IQ    account get/set http://jabber.org/protocol/pubsub        (items, publish, retract, create)
 *         account get/set http://jabber.org/protocol/pubsub#owner  (configure, default, delete, purge, affiliations)
 *   hooks 'presence/out'  observes broadcast presence: availability, caps, last items
 *   services 'account-items' (disco#items of an account: its nodes), 'pep' (PepService)
 *   uses  'presence-auth' and 'roster' from the roster module, looked up at use time
 *
 * Options (config.moduleOptions.pep): maxItems (256: what max_items 'max'
 * means and the most a node keeps), defaultMaxItems (1), maxNodes (1000 per
 * account), capsCacheSize (10000 verified vers in memory), capsTimeoutMs (10000).
 */
import type { VeronaModule } from '../../core/module.js';
import { PRIORITY } from '../../core/events.js';
import type { JID } from '../../jid/jid.js';
import { MemoryPubsubStore, type PubsubStore } from '../../storage/pubsub.js';
import { NS_PUBSUB, NS_PUBSUB_OWNER, PepService, type PepOptions } from './service.js';

export { PepService, NS_PUBSUB, NS_PUBSUB_OWNER, NS_PUBSUB_EVENT, NS_PUBSUB_ERRORS } from './service.js';

/** Disco features of the account (XEP-0060 §10), only what is implemented. */
export const PEP_FEATURES = [
  'access-open',
  'access-presence',
  'access-whitelist',
  'auto-create',
  'auto-subscribe',
  'config-node',
  'create-and-configure',
  'create-nodes',
  'delete-items',
  'delete-nodes',
  'filtered-notifications',
  'item-ids',
  'last-published',
  'member-affiliation',
  'multi-items',
  'modify-affiliations',
  'outcast-affiliation',
  'persistent-items',
  'presence-notifications',
  'publish',
  'publish-options',
  'purge-nodes',
  'retract-items',
  'retrieve-affiliations',
  'retrieve-default',
  'retrieve-items',
].map((f) => `${NS_PUBSUB}#${f}`);

function positiveInt(options: Record<string, unknown>, key: string, dflt: number): number {
  const v = options[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new Error(`moduleOptions.pep.${key} must be a positive integer (got ${JSON.stringify(v)})`);
  }
  return v;
}

export function pepOptions(options: Record<string, unknown>): PepOptions {
  const maxItems = positiveInt(options, 'maxItems', 256);
  let defaultMaxItems: number | 'max' = 1;
  if (options.defaultMaxItems === 'max') defaultMaxItems = 'max';
  else defaultMaxItems = positiveInt(options, 'defaultMaxItems', 1);
  if (defaultMaxItems !== 'max' && defaultMaxItems > maxItems) {
    throw new Error(`moduleOptions.pep.defaultMaxItems (${defaultMaxItems}) is above maxItems (${maxItems})`);
  }
  return {
    maxItems,
    defaultMaxItems,
    maxNodes: positiveInt(options, 'maxNodes', 1000),
    capsCacheSize: positiveInt(options, 'capsCacheSize', 10000),
    capsTimeoutMs: positiveInt(options, 'capsTimeoutMs', 10000),
  };
}

export const pepModule: VeronaModule = {
  name: 'pep',
  load(api) {
    const opts = pepOptions(api.options);
    let store: PubsubStore | undefined = api.storage.pubsub;
    if (!store) {
      api.log.warn('storage backend has no pubsub store; PEP nodes are kept in memory only');
      store = new MemoryPubsubStore();
    }
    const svc = new PepService(api, store, opts);

    api.iq('account', 'get', NS_PUBSUB, (ctx) => svc.pubsubGet(ctx));
    api.iq('account', 'set', NS_PUBSUB, (ctx) => svc.pubsubSet(ctx));
    api.iq('account', 'get', NS_PUBSUB_OWNER, (ctx) => svc.ownerGet(ctx));
    api.iq('account', 'set', NS_PUBSUB_OWNER, (ctx) => svc.ownerSet(ctx));

    // Above the roster module (ARCHIVE, which consumes presence) and below validation and
    // blocking, so PEP sees exactly the presence that is broadcast; it never consumes it.
    api.hook('presence/out', (e) => svc.onPresenceOut(e), PRIORITY.ARCHIVE + 10);

    api.discoIdentity({ category: 'pubsub', type: 'pep' }, 'account');
    for (const f of PEP_FEATURES) api.discoFeature(f, 'account');

    api.provide('account-items', (owner: string, asker: JID, node?: string) => svc.accountItems(owner, asker, node));
    api.provide('pep', svc);
    api.onClose(() => Promise.race([svc.idle(), new Promise<void>((r) => setTimeout(r, 2000).unref())]));
  },
};
