/**
 * XEP-0402 bookmarks kept in step with XEP-0048 bookmarks, both ways
 * (the `urn:xmpp:bookmarks:1#compat` and `#compat-pep` features):
 *
 *   native item published/retracted on urn:xmpp:bookmarks:1
 *       -> the legacy document is rewritten in private XML storage
 *          (jabber:iq:private, storage:bookmarks) and on PEP storage:bookmarks
 *   legacy document set in private XML, or published on PEP storage:bookmarks
 *       -> native items published/retracted to match (planNative), and the
 *          other legacy copy rewritten
 *
 * The conversion itself is bookmarks-convert.ts (pure). Writes made here
 * notify the account's other clients like their own writes would, and do not
 * trigger the conversion again (PepService.serverPublish fires no listener;
 * private XML is written to the store directly). Work is queued per account
 * so two changes never interleave.
 */
import type { VeronaModule } from '../core/module.js';
import { serialize, type Element } from '../xml/element.js';
import { parseXml } from '../xml/parser.js';
import type { PepService } from './pep/service.js';
import type { PrivateService } from './private.js';
import { NS_BOOKMARKS2, NS_BOOKMARKS_LEGACY, fromLegacy, fromNative, planNative, toLegacy } from './bookmarks-convert.js';

const PRIVATE_KEY = `{${NS_BOOKMARKS_LEGACY}}storage`;
/** XEP-0402 §3: the node's configuration. */
const NATIVE_CONFIG = { accessModel: 'whitelist', persistItems: true, maxItems: 'max', sendLastPublishedItem: 'never' } as const;
/** XEP-0223 persistent private PEP data, as XEP-0048 §3.2 asks. */
const LEGACY_CONFIG = { accessModel: 'whitelist', persistItems: true } as const;

export const bookmarksModule: VeronaModule = {
  name: 'bookmarks',
  load(api) {
    const pep = api.service<PepService>('pep');
    const priv = api.service<PrivateService>('private');
    if (!pep) {
      api.log.warn('bookmarks conversion needs the pep module');
      return;
    }
    api.discoFeature(`${NS_BOOKMARKS2}#compat`, 'account');
    api.discoFeature(`${NS_BOOKMARKS2}#compat-pep`, 'account');
    const queues = new Map<string, Promise<void>>();
    const converted = api.metrics.counter('verona_bookmark_conversions_total', 'Bookmark conversions (XEP-0402 <-> XEP-0048), by direction');

    const queue = (owner: string, fn: () => Promise<void>): void => {
      const next = (queues.get(owner) ?? Promise.resolve()).then(fn).catch((err: unknown) => api.log.warn({ err, user: owner }, 'bookmark conversion failed'));
      queues.set(owner, next);
      void next.then(() => {
        if (queues.get(owner) === next) queues.delete(owner);
      });
    };

    const readPrivate = async (owner: string): Promise<Element | undefined> => {
      const s = await api.storage.kv.get(owner, 'private', PRIVATE_KEY);
      if (s === undefined) return undefined;
      try {
        return parseXml(s);
      } catch {
        return undefined;
      }
    };

    const native = async (owner: string): Promise<Map<string, Element>> => {
      const m = new Map<string, Element>();
      for (const it of await pep.readItems(owner, NS_BOOKMARKS2)) {
        try {
          m.set(it.id, parseXml(it.payload));
        } catch {
          // An unreadable item converts to nothing.
        }
      }
      return m;
    };

    /** Native changed: both legacy copies follow. */
    const nativeToLegacy = (owner: string): void =>
      queue(owner, async () => {
        const rooms = [...(await native(owner))].map(([id, el]) => fromNative(id, el));
        const legacy = toLegacy(rooms, await readPrivate(owner));
        await api.storage.kv.set(owner, 'private', PRIVATE_KEY, serialize(legacy, ''));
        await pep.serverPublish(owner, NS_BOOKMARKS_LEGACY, 'current', legacy, LEGACY_CONFIG);
        converted.inc({ direction: 'native-to-legacy' });
      });

    /** A legacy copy changed: native items and the other legacy copy follow. */
    const legacyToNative = (owner: string, storage: Element | undefined, from: 'private' | 'pep'): void =>
      queue(owner, async () => {
        const plan = planNative(fromLegacy(storage), await native(owner));
        for (const p of plan.publish) await pep.serverPublish(owner, NS_BOOKMARKS2, p.id, p.payload, NATIVE_CONFIG);
        if (plan.retract.length > 0) await pep.serverRetract(owner, NS_BOOKMARKS2, plan.retract);
        const doc = storage ?? toLegacy([], undefined);
        if (from === 'private') await pep.serverPublish(owner, NS_BOOKMARKS_LEGACY, 'current', doc, LEGACY_CONFIG);
        else await api.storage.kv.set(owner, 'private', PRIVATE_KEY, serialize(doc, ''));
        converted.inc({ direction: `legacy-${from}-to-native` });
      });

    pep.onChange((c) => {
      if (c.node === NS_BOOKMARKS2) nativeToLegacy(c.owner);
      else if (c.node === NS_BOOKMARKS_LEGACY) {
        const doc = c.kind === 'publish' && c.payload.name === 'storage' && c.payload.xmlns === NS_BOOKMARKS_LEGACY ? c.payload : undefined;
        if (c.kind === 'publish' && !doc) return; // not a bookmarks document: leave it alone
        legacyToNative(c.owner, doc, 'pep');
      }
    });
    priv?.onChange((owner, writes) => {
      if (!writes.has(PRIVATE_KEY)) return;
      const v = writes.get(PRIVATE_KEY);
      legacyToNative(owner, v === undefined ? undefined : parseXml(v), 'private');
    });
    api.onClose(async () => {
      while (queues.size > 0) await Promise.all([...queues.values()]);
    });
  },
};
