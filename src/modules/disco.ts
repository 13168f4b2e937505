/**
 * XEP-0030 Service Discovery for the server and for accounts. Features and
 * identities are gathered from the loaded modules (ModuleApi.discoFeature).
 * Account disco#info is answered by the server on the account's behalf
 * (identity account/registered, plus PEP's pubsub/pep when loaded) and only
 * to the account itself or to JIDs the account lets see its presence
 * (checked through the 'presence-auth' service when the roster is loaded).
 */
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { StanzaError } from '../core/errors.js';
import type { DiscoIdentity, DiscoRegistry, VeronaModule } from '../core/module.js';
import type { JID } from '../jid/jid.js';

export interface PresenceAuth {
  /** May `asker` see `owner`'s presence (subscription from/both, or self)? */
  canSeePresence(owner: string, asker: JID): Promise<boolean>;
}

/**
 * A disco node of the server (e.g. XEP-0050's command list and commands),
 * answered by the module that owns it; `undefined` means item-not-found for
 * that asker. Registered in the 'disco-nodes' service map by node name.
 */
export interface DiscoNode {
  info?(from: JID, node: string): Element | undefined;
  items?(from: JID, node: string): Element[] | undefined;
}

function info(identities: DiscoIdentity[], features: Iterable<string>, extensions: Element[], node?: string): Element {
  const q = x('query', NS.DISCO_INFO, { node });
  for (const id of identities) q.append(x('identity', NS.DISCO_INFO, { category: id.category, type: id.type, name: id.name }));
  for (const f of [...new Set(features)].sort()) q.append(x('feature', NS.DISCO_INFO, { var: f }));
  for (const e of extensions) q.append(e.clone());
  return q;
}

export const discoModule: VeronaModule = {
  name: 'disco',
  load(api) {
    const reg = api.service<DiscoRegistry>('disco-registry') as DiscoRegistry;
    api.discoFeature(NS.DISCO_INFO);
    api.discoFeature(NS.DISCO_ITEMS);
    api.discoFeature(NS.DISCO_INFO, 'account');
    api.discoFeature(NS.DISCO_ITEMS, 'account');
    api.discoIdentity({ category: 'server', type: 'im', name: 'Verona' });
    api.discoIdentity({ category: 'account', type: 'registered' }, 'account');
    /** Items of the server (components such as upload or MUC add themselves here). */
    const serverItems: Element[] = [];
    api.provide('disco-items', serverItems);
    const nodes = new Map<string, DiscoNode>();
    api.provide('disco-nodes', nodes);

    api.iq('server', 'get', NS.DISCO_INFO, (ctx) => {
      const node = ctx.payload.attrs.node;
      if (node !== undefined) {
        const answer = nodes.get(node)?.info?.(ctx.from, node);
        if (answer === undefined) throw new StanzaError('item-not-found');
        return answer;
      }
      return info(reg.identities.server, reg.features.server, reg.extensions.server);
    });
    api.iq('server', 'get', NS.DISCO_ITEMS, (ctx) => {
      const node = ctx.payload.attrs.node;
      if (node !== undefined) {
        const items = nodes.get(node)?.items?.(ctx.from, node);
        if (items === undefined) throw new StanzaError('item-not-found');
        return x('query', NS.DISCO_ITEMS, { node }, items);
      }
      return x('query', NS.DISCO_ITEMS, {}, serverItems.map((i) => i.clone()));
    });
    api.iq('account', 'get', NS.DISCO_INFO, async (ctx) => {
      if (ctx.payload.attrs.node !== undefined) throw new StanzaError('item-not-found');
      if (!(await api.storage.accounts.exists(api.router.hosts.keyOf(ctx.to)))) throw new StanzaError('service-unavailable');
      if (!ctx.self) {
        const auth = api.service<PresenceAuth>('presence-auth');
        if (auth && !(await auth.canSeePresence(api.router.hosts.keyOf(ctx.to), ctx.from))) throw new StanzaError('service-unavailable');
      }
      return info(reg.identities.account, reg.features.account, reg.extensions.account);
    });
    api.iq('account', 'get', NS.DISCO_ITEMS, async (ctx) => {
      if (!(await api.storage.accounts.exists(api.router.hosts.keyOf(ctx.to)))) throw new StanzaError('service-unavailable');
      const items = api.service<(owner: string, asker: JID, node?: string) => Promise<Element[]>>('account-items');
      return x('query', NS.DISCO_ITEMS, { node: ctx.payload.attrs.node }, items ? await items(api.router.hosts.keyOf(ctx.to), ctx.from, ctx.payload.attrs.node) : []);
    });
  },
};
