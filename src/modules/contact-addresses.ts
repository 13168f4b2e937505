/**
 * XEP-0157 Contact Addresses for XMPP Services (version 1.1.1): who to write
 * to about abuse, security, support... as a XEP-0128 form
 * (FORM_TYPE http://jabber.org/network/serverinfo) in the server's disco#info.
 *
 * Options (moduleOptions.contact): abuse, admin, feedback, sales, security,
 * status, support — each a list of URIs (mailto:, xmpp:, https:). Nothing
 * configured: no form.
 */
import type { VeronaModule } from '../core/module.js';
import { infoForm } from './upload/hosted.js';

export const NS_SERVERINFO = 'http://jabber.org/network/serverinfo';
export const CONTACT_KINDS = ['abuse', 'admin', 'feedback', 'sales', 'security', 'status', 'support'] as const;

export function parseContactOptions(raw: Record<string, unknown>): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(raw)) {
    if (!(CONTACT_KINDS as readonly string[]).includes(k)) throw new Error(`moduleOptions.contact.${k}: unknown option (known: ${CONTACT_KINDS.join(', ')})`);
    const list = typeof v === 'string' ? [v] : v;
    if (!Array.isArray(list) || list.some((s) => typeof s !== 'string')) throw new Error(`moduleOptions.contact.${k}: expected a list of URIs`);
    for (const s of list as string[]) {
      // XEP-0157 §2: the values are URIs; a bare address is almost certainly a forgotten mailto:.
      if (!/^[a-z][a-z0-9+.-]*:\S+$/i.test(s)) throw new Error(`moduleOptions.contact.${k}: "${s}" is not a URI (e.g. mailto:abuse@example.org, xmpp:admin@example.org)`);
    }
    if ((list as string[]).length > 0) out[`${k}-addresses`] = list as string[];
  }
  return out;
}

export const contactAddressesModule: VeronaModule = {
  name: 'contact',
  load(api) {
    const fields = parseContactOptions(api.options);
    if (Object.keys(fields).length === 0) return;
    api.discoExtension(infoForm(NS_SERVERINFO, fields));
  },
};
