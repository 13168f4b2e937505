/**
 * XEP-0160 offline messages, with XEP-0203 delay stamps, and their interplay
 * with MAM (docs/protocol.md "Catching up").
 *
 * Storing: the router fires 'message/offline' when no resource took a chat
 * or normal message. Messages with conversation content are stored (up to
 * `maxPerAccount`, default 1000; beyond it the sender gets
 * `service-unavailable` only when the message is not in the recipient's
 * archive either (offlineFailure); <no-store/> messages, which are archived
 * nowhere, are bounced); content-less ones (a chat state
 * alone) are dropped silently, since they mean nothing later. The stored
 * copy carries the recipient's <stanza-id/> when the message is archived.
 *
 * Delivering: when a session sends initial presence, every stored message
 * goes to it once, with <delay xmlns='urn:xmpp:delay' from=domain stamp=…/>,
 * and is deleted. We watch 'presence/out' at priority 10, above the roster
 * module's presence handling (PRIORITY.ARCHIVE), because only before that
 * handler does `session.available` still tell whether this presence is the
 * initial one; the delivery itself waits for the next event-loop turn so
 * that it follows the presence broadcast.
 *
 * With MAM: a session that queried its archive before its initial presence
 * is a MAM client catching up by itself. It does not get the stored
 * messages that are also in the archive (they are deleted: it has them, or
 * fetches them by id); only the unarchived ones are delivered. Any other
 * client (a legacy one) gets everything, each copy with its <stanza-id/>, so
 * a client that later also uses MAM can recognise what it already has.
 *
 * Service 'offline' (OfflineService): lets stream management put unacked
 * messages of a session that ended for good where a legacy client finds
 * them.
 */
import { x, serialize, type Element } from '../xml/element.js';
import { parseXml } from '../xml/parser.js';
import { NS } from '../core/namespaces.js';
import { StanzaError } from '../core/errors.js';
import type { VeronaModule } from '../core/module.js';
import type { Session } from '../core/session.js';
import { contentReason } from './mam/rules.js';
import { queriedArchiveBeforePresence } from './mam/index.js';
import { stampOf } from './mam/ids.js';
import { messageType } from '../core/routing.js';

export interface OfflineService {
  /**
   * Store a message for `username` (as it would be delivered; `archiveId`
   * when it is in the account's archive). False when the account's offline
   * storage is full or the store failed.
   */
  store(username: string, stanza: Element, archiveId?: string): Promise<boolean>;
}

/** Priority of the initial-presence watcher: above the roster/presence module (PRIORITY.ARCHIVE = 0). */
export const OFFLINE_PRESENCE_PRIORITY = 10;

export type OfflineAction = 'store' | 'bounce' | 'drop';

/** What to do with a message nobody could take (pure; table-tested). */
export function offlineVerdict(msg: Element): { action: OfflineAction; reason: string } {
  const type = messageType(msg);
  if (type !== 'chat' && type !== 'normal') return { action: 'drop', reason: `type-${type}` };
  // XEP-0334: no-store forbids temporary storage too; the sender learns it was not delivered.
  if (msg.getChild('no-store', NS.HINTS)) return { action: 'bounce', reason: 'no-store-hint' };
  const why = contentReason(msg);
  if (why === undefined) return { action: 'drop', reason: 'no-content' };
  return { action: 'store', reason: why };
}

/**
 * The offline store did not take a message (the account's queue is full, or
 * the store failed). An error tells the sender that nothing kept the message
 * (docs/protocol.md "When the sender gets an error"), so it bounces only when
 * the message is not in the recipient's archive either; an archived one
 * reaches every device of the recipient through MAM, and the legacy offline
 * queue simply stops growing. Pure; table-tested.
 */
export function offlineFailure(archivedForRecipient: boolean): { bounce: boolean; reason: string } {
  return archivedForRecipient ? { bounce: false, reason: 'not-stored-archived' } : { bounce: true, reason: 'not-stored-bounced' };
}

export const offlineModule: VeronaModule = {
  name: 'offline',
  load(api) {
    const store = api.storage.offline;
    if (!store) {
      api.log.warn('storage backend has no offline store; offline messages are bounced');
      return;
    }
    const raw = api.options.maxPerAccount;
    if (raw !== undefined && (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 0)) {
      throw new Error(`moduleOptions.offline.maxPerAccount must be a non-negative integer (got ${JSON.stringify(raw)})`);
    }
    const limit = (raw as number | undefined) ?? 1000;
    const stored = api.metrics.counter('verona_offline_stored_total', 'Messages stored offline, by result');
    const delivered = api.metrics.counter('verona_offline_delivered_total', 'Offline messages delivered or dropped at initial presence, by how');

    api.discoFeature('msgoffline');

    const save = async (username: string, copy: Element, archiveId: string | undefined): Promise<boolean> => {
      try {
        const ok = await store.store(username, { stamp: Date.now(), stanza: serialize(copy, ''), archiveId }, limit);
        stored.inc({ result: ok ? 'stored' : 'full' });
        return ok;
      } catch (err) {
        stored.inc({ result: 'error' });
        api.log.error({ err: err instanceof Error ? err.message : String(err), user: username }, 'offline store failed');
        return false;
      }
    };

    const service: OfflineService = {
      store: (username, stanza, archiveId) => save(username, stanza, archiveId),
    };
    api.provide('offline', service);

    api.hook('message/offline', (e) => {
      const v = offlineVerdict(e.stanza);
      if (v.action === 'bounce') return false; // the router bounces with service-unavailable
      if (v.action === 'drop') {
        stored.inc({ result: `dropped-${v.reason}` });
        return true;
      }
      const copy = e.stanza.clone();
      const by = e.to.bare.toString();
      let archiveId = e.recipientArchiveId;
      if (archiveId !== undefined) copy.children.push(x('stanza-id', NS.SID, { by, id: archiveId }));
      // Stream management hands over copies that were already delivered once: their <stanza-id/> by the
      // account was put there by this server (client-supplied ones are stripped on the way in).
      else archiveId = copy.getChildren('stanza-id', NS.SID).find((c) => c.attrs.by === by)?.attrs.id;
      void save(api.router.hosts.keyOf(e.to), copy, archiveId).then((ok) => {
        if (ok) return;
        const f = offlineFailure(archiveId !== undefined);
        stored.inc({ result: f.reason });
        if (f.bounce) api.router.bounce(e.stanza, new StanzaError('service-unavailable', 'The recipient cannot take more offline messages'), e.origin);
      });
      return true;
    });

    const deliver = async (s: Session): Promise<void> => {
      if (s.closed) return;
      const user = s.username;
      if (queriedArchiveBeforePresence(s)) {
        const n = await store.dropArchived(user);
        if (n > 0) delivered.inc({ how: 'skipped-in-archive' }, n);
      }
      if (s.closed) return;
      const msgs = await store.take(user);
      for (const m of msgs) {
        let el: Element;
        try {
          el = parseXml(m.stanza);
        } catch (err) {
          api.log.error({ err: String(err), user }, 'unreadable offline message dropped');
          continue;
        }
        el.children.push(x('delay', NS.DELAY, { from: s.jid.domain, stamp: stampOf(m.stamp) }, ['Offline storage']));
        s.send(el);
      }
      if (msgs.length > 0) delivered.inc({ how: 'delivered' }, msgs.length);
    };

    api.hook(
      'presence/out',
      (e) => {
        const s = e.origin;
        if (!s || s.available || e.stanza.attrs.to !== undefined) return false;
        if (e.stanza.attrs.type !== undefined) return false; // only available presence is initial presence
        // RFC 6121 §8.5.2: a negative priority says "never send me messages for the bare JID".
        const prio = Number(e.stanza.getChildText('priority')?.trim() ?? '0');
        if (Number.isInteger(prio) && prio < 0) return false;
        setImmediate(() => {
          deliver(s).catch((err: unknown) => api.log.error({ err: String(err), user: s.username }, 'offline delivery failed'));
        });
        return false;
      },
      OFFLINE_PRESENCE_PRIORITY,
    );
  },
};
