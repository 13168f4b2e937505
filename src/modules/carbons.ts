/**
 * XEP-0280 Message Carbons (`urn:xmpp:carbons:2`, with the
 * `urn:xmpp:carbons:rules:0` eligibility rules) for legacy clients.
 *
 * This module only switches the per-session flag: <enable/> and <disable/>
 * IQ sets from the session itself set `session.carbons`. Which messages are
 * copied, to whom and in which wrapper is the fork table in
 * src/core/routing.ts (decideIncoming/decideOutgoing) with the eligibility
 * rules of src/core/eligibility.ts; <private/> and <no-copy/> are honoured
 * there for carbons only (MR2 streams get every copy). A session that has
 * MR2 is routed as MR2 whatever its carbons flag says, so a client may
 * enable both without ever receiving a message twice.
 *
 * The flag lives on the Session and so survives XEP-0198 resumption.
 */
import { NS } from '../core/namespaces.js';
import { StanzaError } from '../core/errors.js';
import type { VeronaModule } from '../core/module.js';
import type { IqContext } from '../core/router.js';

export const carbonsModule: VeronaModule = {
  name: 'carbons',
  load(api) {
    const toggles = api.metrics.counter('verona_carbons_toggles_total', 'Carbons enable/disable requests');
    api.discoFeature(NS.CARBONS);
    api.discoFeature(NS.CARBONS_RULES);

    const set = (on: boolean) => (ctx: IqContext) => {
      // Only the session itself may switch its own carbons (XEP-0280 §4: IQ without 'to', or to the own bare JID).
      if (!ctx.origin || (!ctx.self && ctx.to.local !== '')) throw new StanzaError('forbidden');
      if (ctx.to.local === '' && !api.router.hosts.has(ctx.to.domain)) throw new StanzaError('forbidden');
      ctx.origin.carbons = on;
      toggles.inc({ action: on ? 'enable' : 'disable', mr2: String(ctx.origin.mr2) });
      return undefined;
    };
    // Registered for the account (no 'to' or own bare JID) and the server (some clients address the server).
    api.iq('account', 'set', NS.CARBONS, (ctx) => {
      const name = ctx.payload.name;
      if (name !== 'enable' && name !== 'disable') throw new StanzaError('bad-request');
      return set(name === 'enable')(ctx);
    });
    api.iq('server', 'set', NS.CARBONS, (ctx) => {
      const name = ctx.payload.name;
      if (name !== 'enable' && name !== 'disable') throw new StanzaError('bad-request');
      return set(name === 'enable')(ctx);
    });
  },
};
