/**
 * RFC 6121 (XMPP IM): roster management (§2), presence subscriptions (§3)
 * and presence (§4), with roster versioning (XEP-0237) and subscription
 * pre-approval (RFC 6121 §3.4).
 *
 * Wiring (the logic lives in service.ts and the pure decision files):
 *   IQ    account get/set jabber:iq:roster  (only the account itself)
 *   hooks 'presence/out'  every presence a local client sends
 *         'presence/in'   presence to a local account (from other accounts, or routed by the server)
 *         'session/ended' a resource is gone for good: unavailable to everyone who saw it
 *         'stream/features' (post-auth) <ver/> and <sub/>
 *   services 'presence-auth' (PresenceAuth) and 'roster' (RosterApi), see api.ts
 *
 * Options (config.moduleOptions.roster): maxItems (1000), maxPending (1000),
 * maxNameLength (1024), maxGroupLength (1024), maxGroups (100).
 */
import { x } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { PRIORITY } from '../../core/events.js';
import type { VeronaModule } from '../../core/module.js';
import { MemoryRosterStore, type RosterStore } from '../../storage/roster.js';
import { DEFAULT_ITEM_LIMITS } from './items.js';
import { RosterService, type RosterOptions } from './service.js';

export { RosterService } from './service.js';
export type { PresenceAuth, RosterApi, RosterChangeEvent } from './api.js';

export const NS_ROSTER_VER_FEATURE = 'urn:xmpp:features:rosterver';
export const NS_PRE_APPROVAL_FEATURE = 'urn:xmpp:features:pre-approval';

function positiveInt(options: Record<string, unknown>, key: string, dflt: number): number {
  const v = options[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
    throw new Error(`moduleOptions.roster.${key} must be a positive integer (got ${JSON.stringify(v)})`);
  }
  return v;
}

export function rosterOptions(options: Record<string, unknown>): RosterOptions {
  return {
    maxItems: positiveInt(options, 'maxItems', 1000),
    maxPending: positiveInt(options, 'maxPending', 1000),
    limits: {
      maxNameLength: positiveInt(options, 'maxNameLength', DEFAULT_ITEM_LIMITS.maxNameLength),
      maxGroupLength: positiveInt(options, 'maxGroupLength', DEFAULT_ITEM_LIMITS.maxGroupLength),
      maxGroups: positiveInt(options, 'maxGroups', DEFAULT_ITEM_LIMITS.maxGroups),
    },
  };
}

export const rosterModule: VeronaModule = {
  name: 'roster',
  load(api) {
    const opts = rosterOptions(api.options);
    let store: RosterStore | undefined = (api.storage as { roster?: RosterStore }).roster;
    if (!store) {
      // A backend without a roster store still gets working (non-persistent) rosters.
      api.log.warn('storage backend has no roster store; rosters are kept in memory only');
      store = new MemoryRosterStore();
    }
    const svc = new RosterService(api, store, opts);

    api.iq('account', 'get', NS.ROSTER, (ctx) => svc.rosterGet(ctx));
    api.iq('account', 'set', NS.ROSTER, (ctx) => svc.rosterSet(ctx));

    // Priority ARCHIVE (0): after validation and blocking (which may drop presence first).
    api.hook('presence/out', (e) => svc.onPresenceOut(e), PRIORITY.ARCHIVE);
    api.hook('presence/in', (e) => svc.onPresenceIn(e), PRIORITY.ARCHIVE);
    api.hook('session/ended', (e) => {
      svc.onSessionEnded(e.session);
    });

    api.hook('stream/features', (e) => {
      if (e.stage !== 'post-auth') return;
      e.features.append(x('ver', NS_ROSTER_VER_FEATURE));
      e.features.append(x('sub', NS_PRE_APPROVAL_FEATURE));
    });

    api.provide('presence-auth', svc);
    api.provide('roster', svc);
    // Let the unavailable broadcasts of the shutdown finish before storage closes (bounded).
    api.onClose(() => Promise.race([svc.idle(), new Promise<void>((r) => setTimeout(r, 2000).unref())]));
  },
};
