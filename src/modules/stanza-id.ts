/**
 * XEP-0359 Unique and Stable Stanza IDs: spoofing protection.
 *
 * Verona stamps `<stanza-id by=ARCHIVE id=…/>` on every archived copy it
 * delivers (src/core/router.ts buildCopy, ids from the MAM module). Clients
 * trust a stanza-id whose `by` is their own account or server, so one that a
 * sender put in the message itself must go (XEP-0359 §5): on the sender side
 * ('message/out') those claiming the sender's account or the server, on the
 * recipient side ('message/in') those claiming the recipient's account or
 * the server. Both run at PRIORITY.VALIDATE, before archiving, so the archive
 * never stores a forged id either. `<origin-id/>` is the client's own and is
 * kept untouched.
 */
import type { Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { PRIORITY } from '../core/events.js';
import type { VeronaModule } from '../core/module.js';

/** Removes `<stanza-id/>` children whose `by` is one of `owners`; returns how many. Pure, exported for tests. */
export function stripStanzaIds(msg: Element, owners: ReadonlySet<string>): number {
  let n = 0;
  msg.removeChildren((c) => {
    if (c.name !== 'stanza-id' || c.xmlns !== NS.SID) return false;
    const by = (c.attrs.by ?? '').toLowerCase();
    // A stanza-id without `by` claims nothing verifiable; drop it too, no client may rely on it.
    const spoof = by === '' || owners.has(by);
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
    const domain = api.domain.toLowerCase();

    api.hook(
      'message/out',
      (e) => {
        const n = stripStanzaIds(e.stanza, new Set([e.from.bare.toString().toLowerCase(), domain]));
        if (n > 0) stripped.inc({ side: 'sender' }, n);
        return false;
      },
      PRIORITY.VALIDATE,
    );
    api.hook(
      'message/in',
      (e) => {
        const n = stripStanzaIds(e.stanza, new Set([e.to.bare.toString().toLowerCase(), domain]));
        if (n > 0) stripped.inc({ side: 'recipient' }, n);
        return false;
      },
      PRIORITY.VALIDATE,
    );
  },
};
