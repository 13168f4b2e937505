/**
 * XEP-0359 Unique and Stable Stanza IDs: spoofing protection.
 *
 * Verona stamps `<stanza-id by=ARCHIVE id=…/>` on every archived copy it
 * delivers (src/core/router.ts buildCopy, ids from the MAM module). Clients
 * trust a stanza-id whose `by` is their own account or server, so one that a
 * sender put in the message itself must go (XEP-0359 §5): on the sender side
 * ('message/out') and on the recipient side ('message/in') every stanza-id
 * whose `by` is this server or one of its accounts (only Verona makes those). Both run at PRIORITY.VALIDATE, before archiving, so the archive
 * never stores a forged id either. `<origin-id/>` is the client's own and is
 * kept untouched.
 */
import type { Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { PRIORITY } from '../core/events.js';
import type { VeronaModule } from '../core/module.js';
import { tryParseJID } from '../jid/jid.js';

/**
 * Removes the `<stanza-id/>` children that claim to come from this server:
 * `by` is the server's domain or any account on it (only Verona itself makes
 * those, and it adds them after this check). Returns how many. Pure,
 * exported for tests.
 */
export function stripStanzaIds(msg: Element, domain: string | { has(domain: string): boolean }): number {
  // Every hosted domain is ours (virtual hosts): a HostedDomains, or one domain.
  const ours = typeof domain === 'string' ? (d: string): boolean => d === domain : (d: string): boolean => domain.has(d);
  let n = 0;
  msg.removeChildren((c) => {
    if (c.name !== 'stanza-id' || c.xmlns !== NS.SID) return false;
    const by = c.attrs.by;
    // A stanza-id without a (valid) `by` claims nothing anyone can check: no client may rely on it, drop it too.
    const j = by === undefined ? undefined : tryParseJID(by);
    const spoof = j === undefined || (ours(j.domain) && j.resource === '');
    if (spoof) n++;
    return spoof;
  });
  return n;
}

export const stanzaIdModule: VeronaModule = {
  name: 'stanza-id',
  load(api) {
    const stripped = api.metrics.counter('verona_stanza_ids_stripped_total', 'Client-supplied <stanza-id/> elements removed (XEP-0359 §5), by side');
    api.discoFeature(NS.SID);
    api.discoFeature(NS.SID, 'account');

    // Sender side: nothing on our domain may be claimed (covers the sender's account and the server,
    // and, for local recipients, the recipient's account before the sender's archive stores the message).
    api.hook(
      'message/out',
      (e) => {
        const n = stripStanzaIds(e.stanza, api.router.hosts);
        if (n > 0) stripped.inc({ side: 'sender' }, n);
        return false;
      },
      PRIORITY.VALIDATE,
    );
    // Recipient side: also for messages the server routes on behalf of others.
    api.hook(
      'message/in',
      (e) => {
        const n = stripStanzaIds(e.stanza, api.router.hosts);
        if (n > 0) stripped.inc({ side: 'recipient' }, n);
        return false;
      },
      PRIORITY.VALIDATE,
    );
  },
};
