/**
 * A service on a JID of its own (upload.<domain>, proxy.<domain>), served in
 * this process through the router's ExternalRoute seam. It answers IQs by
 * payload namespace plus disco#info/#items from a declared description, bounces
 * messages and ignores presence, and lists itself in the server's
 * disco#items (XEP-0030 §4) so that clients find it at login.
 */
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { StanzaError, errorReply } from '../../core/errors.js';
import type { ModuleApi, DiscoIdentity } from '../../core/module.js';
import type { ExternalRoute } from '../../core/router.js';
import type { JID } from '../../jid/jid.js';
import type { Session } from '../../core/session.js';

export interface HostedIq {
  stanza: Element;
  type: 'get' | 'set';
  payload: Element;
  from: JID;
  to: JID;
  origin: Session | undefined;
}

export interface HostedService {
  domain: string;
  kind: string;
  name: string;
  identities: DiscoIdentity[];
  features: string[];
  /** XEP-0128 forms in disco#info. */
  forms?: Element[];
  /** IQ handlers by `${type} ${payload namespace}`; return the result payload or throw a StanzaError. */
  iq: Record<string, (q: HostedIq) => Element | undefined | Promise<Element | undefined>>;
}

/** Register the route and the server disco item; returns a function that removes both. */
export function hostService(api: ModuleApi, svc: HostedService): () => void {
  const reply = (el: Element, origin: Session | undefined): void => {
    if (origin && !origin.closed) api.router.sendToSession(origin, el);
    else api.router.route(el);
  };
  const fail = (stanza: Element, err: unknown, origin: Session | undefined): void => {
    if (stanza.attrs.type === 'error') return;
    if (!(err instanceof StanzaError)) api.log.error({ err }, `${svc.kind} request failed`);
    reply(errorReply(stanza, err instanceof StanzaError ? err : new StanzaError('internal-server-error')), origin);
  };
  const info = (): Element => {
    const q = x('query', NS.DISCO_INFO);
    for (const id of svc.identities) q.append(x('identity', NS.DISCO_INFO, { category: id.category, type: id.type, name: id.name }));
    for (const f of [...new Set([NS.DISCO_INFO, NS.DISCO_ITEMS, ...svc.features])].sort()) q.append(x('feature', NS.DISCO_INFO, { var: f }));
    for (const f of svc.forms ?? []) q.append(f.clone());
    return q;
  };

  const route: ExternalRoute = {
    kind: svc.kind,
    send(stanza, from, to, origin) {
      if (stanza.name === 'presence') return;
      if (stanza.name === 'message') throw new StanzaError('service-unavailable');
      if (stanza.name !== 'iq') return;
      const type = stanza.attrs.type;
      if (type !== 'get' && type !== 'set') return; // results and errors: we send no requests
      const payload = stanza.elements()[0];
      if (!payload || stanza.elements().length !== 1 || stanza.attrs.id === undefined) throw new StanzaError('bad-request');
      if (to.local !== '' || to.resource !== '') throw new StanzaError('service-unavailable');
      let handler: ((q: HostedIq) => Element | undefined | Promise<Element | undefined>) | undefined;
      if (type === 'get' && payload.xmlns === NS.DISCO_INFO) {
        handler = (q) => {
          if (q.payload.attrs.node !== undefined) throw new StanzaError('item-not-found');
          return info();
        };
      } else if (type === 'get' && payload.xmlns === NS.DISCO_ITEMS) {
        handler = () => x('query', NS.DISCO_ITEMS);
      } else {
        handler = svc.iq[`${type} ${payload.xmlns}`];
      }
      if (!handler) throw new StanzaError('service-unavailable');
      const done = (result: Element | undefined): void => {
        const r = x('iq', NS.CLIENT, { type: 'result', id: stanza.attrs.id, from: svc.domain, to: stanza.attrs.from });
        if (result) r.append(result);
        reply(r, origin);
      };
      try {
        const out = handler({ stanza, type, payload, from, to, origin });
        if (out instanceof Promise) out.then(done, (err: unknown) => fail(stanza, err, origin));
        else done(out);
      } catch (err) {
        fail(stanza, err, origin);
      }
    },
  };
  api.router.addRoute(svc.domain, route);
  const items = api.service<Element[]>('disco-items');
  const item = x('item', NS.DISCO_ITEMS, { jid: svc.domain, name: svc.name });
  items?.push(item);
  return () => {
    api.router.removeRoute(svc.domain, route);
    if (items) {
      const i = items.indexOf(item);
      if (i >= 0) items.splice(i, 1);
    }
  };
}

/** A XEP-0128 extension form: FORM_TYPE plus fields (multiple values for arrays). */
export function infoForm(formType: string, fields: Record<string, string | number | string[]>): Element {
  const form = x('x', NS.DATA_FORMS, { type: 'result' }, [
    x('field', NS.DATA_FORMS, { var: 'FORM_TYPE', type: 'hidden' }, [x('value', NS.DATA_FORMS, {}, [formType])]),
  ]);
  for (const [k, v] of Object.entries(fields)) {
    const vals = Array.isArray(v) ? v : [String(v)];
    // A list is list-multi (XEP-0157's registry): untyped, XEP-0004 reads it as text-single with one value.
    form.append(x('field', NS.DATA_FORMS, { var: k, type: Array.isArray(v) ? 'list-multi' : undefined }, vals.map((s) => x('value', NS.DATA_FORMS, {}, [s]))));
  }
  return form;
}
