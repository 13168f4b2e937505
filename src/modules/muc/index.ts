/**
 * XEP-0045 Multi-User Chat as a hosted service at `conference.<domain>`
 * (moduleOptions.muc.domain), with XEP-0421 occupant ids, XEP-0410 self-ping
 * answers, and the room's archive (XEP-0313 on the room JID, with
 * `<stanza-id by=room/>` on every archived message). See docs/muc.md.
 *
 * Wiring:
 *   router.addRoute(domain, service)   every stanza to the service or a room
 *   disco-items                        the service is an item of the server
 *   'message/in' (VALIDATE)            strip stanza-ids claiming the MUC domain from
 *                                      anything that does not come from it
 *   'session/ended'                    leave rooms a session left without a goodbye
 *
 * Turn it off with `modules.disabled: [muc]`.
 */
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { PRIORITY } from '../../core/events.js';
import type { VeronaModule } from '../../core/module.js';
import { tryParseJID } from '../../jid/jid.js';
import { MemoryMucStore, type MucStore } from '../../storage/muc.js';
import { ArchiveClock } from '../mam/ids.js';
import { parseMucOptions } from './options.js';
import { MucService } from './service.js';

function pageLimit(mam: Record<string, unknown> | undefined, key: string, dflt: number): number {
  const v = mam?.[key];
  return typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : dflt;
}

export const mucModule: VeronaModule = {
  name: 'muc',
  async load(api) {
    const opts = parseMucOptions(api.options, api.domain);
    let store: MucStore | undefined = api.storage.muc;
    if (!store) {
      api.log.warn('storage backend has no MUC store; rooms are kept in memory only');
      store = new MemoryMucStore();
    }
    const archive = api.storage.archive;
    // The archive's seq is unique across all archives: share the MAM module's clock when it is loaded.
    const clock = api.service<ArchiveClock>('archive-clock') ?? new ArchiveClock(archive ? await archive.highWater() : 0);
    const mamOpts = api.config.moduleOptions.mam;
    const service = new MucService(api, opts, store, archive, clock, {
      defaultMax: pageLimit(mamOpts, 'defaultPageSize', 50),
      maxMax: pageLimit(mamOpts, 'maxPageSize', 250),
    });
    await service.load();
    api.router.addRoute(opts.domain, service);
    api.provide('muc', service);
    api.service<Element[]>('disco-items')?.push(x('item', NS.DISCO_ITEMS, { jid: opts.domain, name: opts.name }));

    api.hook(
      'message/in',
      (e) => {
        if (e.from.domain === opts.domain) return false;
        // A room id on a message that did not come from the room is forged (XEP-0359 §5).
        e.stanza.removeChildren((c) => c.name === 'stanza-id' && c.xmlns === NS.SID && tryParseJID(c.attrs.by)?.domain === opts.domain);
        return false;
      },
      PRIORITY.VALIDATE,
    );
    api.hook('session/ended', (e) => {
      service.sessionEnded(e.session.jid.toString());
    });
    api.onClose(() => {
      api.router.removeRoute(opts.domain, service);
    });
  },
};
