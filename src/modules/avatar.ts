/**
 * XEP-0398 avatar conversion, both ways, and XEP-0153 hashes in presence:
 *
 *   PEP metadata published (urn:xmpp:avatar:metadata, an <info/> whose id
 *   names an item of urn:xmpp:avatar:data)   -> vCard PHOTO set (TYPE, BINVAL);
 *   empty <metadata/>                           -> PHOTO removed
 *   vCard set with a PHOTO (BINVAL)             -> data and metadata published;
 *   vCard set without one                       -> empty metadata published
 *   available presence of the account           -> <x xmlns='vcard-temp:x:update'><photo>hash</photo></x>
 *                                                  replaced by the server's own hash (added when
 *                                                  there is an avatar; with none, only a client's
 *                                                  own <x/> is corrected to an empty <photo/>)
 *
 * The hash of each account with a bound session is kept in memory (loaded at
 * bind, updated by conversions), because presence hooks are synchronous; a
 * presence sent before the load finished goes out as the client wrote it.
 * Conversions write through PepService.serverPublish and the vcard store
 * directly, so they never trigger each other. Advertises
 * urn:xmpp:pep-vcard-conversion:0 on accounts.
 *
 * Left out: the server does not send a fresh presence on the account's
 * behalf when the avatar changes (clients re-send presence themselves).
 */
import type { VeronaModule } from '../core/module.js';
import { PRIORITY } from '../core/events.js';
import { serialize, type Element } from '../xml/element.js';
import { parseXml } from '../xml/parser.js';
import type { PepService } from './pep/service.js';
import type { VcardService } from './vcard.js';
import {
  NS_AVATAR_DATA, NS_AVATAR_METADATA, NS_CONVERSION, NS_VCARD_UPDATE,
  dataPayload, metadataInfo, metadataPayload, photoOf, sha1hex, stampPresence, withPhoto, type Photo,
} from './avatar-convert.js';

const VCARD_STORE = 'vcard';
/** XEP-0084 §4: both nodes readable by whoever may see the presence (the PEP default). */
const NODE_CONFIG = { accessModel: 'presence', persistItems: true } as const;

export const avatarModule: VeronaModule = {
  name: 'avatar',
  load(api) {
    const pep = api.service<PepService>('pep');
    const vcard = api.service<VcardService>('vcard');
    if (!pep || !vcard) {
      api.log.warn('avatar conversion needs the pep and vcard modules');
      return;
    }
    api.discoFeature(NS_CONVERSION, 'account');
    const hashes = new Map<string, string>();
    const queues = new Map<string, Promise<void>>();
    const converted = api.metrics.counter('verona_avatar_conversions_total', 'Avatar conversions (XEP-0398), by direction');

    const queue = (owner: string, fn: () => Promise<void>): void => {
      const next = (queues.get(owner) ?? Promise.resolve()).then(fn).catch((err: unknown) => api.log.warn({ err, user: owner }, 'avatar conversion failed'));
      queues.set(owner, next);
      void next.then(() => {
        if (queues.get(owner) === next) queues.delete(owner);
      });
    };

    const readVcard = async (owner: string): Promise<Element | undefined> => {
      const s = await api.storage.kv.get(owner, VCARD_STORE, '');
      if (s === undefined) return undefined;
      try {
        return parseXml(s);
      } catch {
        return undefined;
      }
    };

    const remember = (owner: string, hash: string): void => {
      if (api.sessions.byUser(owner).length > 0) hashes.set(owner, hash);
    };

    // PEP -> vCard.
    pep.onChange((c) => {
      if (c.node !== NS_AVATAR_METADATA || c.kind !== 'publish') return;
      const info = metadataInfo(c.payload);
      if (info === undefined) return;
      queue(c.owner, async () => {
        let photo: Photo | undefined;
        if (info !== 'disabled') {
          const item = (await pep.readItems(c.owner, NS_AVATAR_DATA)).find((i) => i.id === info.id);
          if (!item) return; // data not (yet) published: nothing to convert
          const bytes = Buffer.from(parseXml(item.payload).text().replace(/\s+/g, ''), 'base64');
          if (sha1hex(bytes) !== info.id) return; // the id must be the hash of the data (XEP-0084 §4.2.1)
          photo = { type: info.type, bytes, hash: info.id };
        }
        const before = await readVcard(c.owner);
        if (photoOf(before)?.hash === photo?.hash) return;
        await api.storage.kv.set(c.owner, VCARD_STORE, '', serialize(withPhoto(before, photo), ''));
        remember(c.owner, photo?.hash ?? '');
        converted.inc({ direction: 'pep-to-vcard' });
      });
    });

    // vCard -> PEP.
    vcard.onChange((owner, card) => {
      const photo = photoOf(card);
      remember(owner, photo?.hash ?? '');
      queue(owner, async () => {
        const current = (await pep.readItems(owner, NS_AVATAR_METADATA)).at(-1);
        const currentInfo = current ? metadataInfo(parseXml(current.payload)) : undefined;
        const currentId = currentInfo === undefined || currentInfo === 'disabled' ? undefined : currentInfo.id;
        if (currentId === photo?.hash) return;
        if (!photo && current === undefined) return; // no avatar either way
        if (photo) await pep.serverPublish(owner, NS_AVATAR_DATA, photo.hash, dataPayload(photo), NODE_CONFIG);
        await pep.serverPublish(owner, NS_AVATAR_METADATA, photo?.hash ?? 'current', metadataPayload(photo), NODE_CONFIG);
        converted.inc({ direction: 'vcard-to-pep' });
      });
    });

    api.hook('session/bound', ({ session }) => {
      const owner = session.username;
      if (hashes.has(owner)) return;
      void readVcard(owner).then((card) => {
        if (api.sessions.byUser(owner).length > 0 && !hashes.has(owner)) hashes.set(owner, photoOf(card)?.hash ?? '');
      }).catch(() => undefined);
    });
    api.hook('session/ended', ({ session }) => {
      if (api.sessions.byUser(session.username).length === 0) hashes.delete(session.username);
    });
    // Before the roster module (ARCHIVE) broadcasts and stores the presence, never consuming it.
    api.hook('presence/out', (e) => {
      if (!e.origin || (e.stanza.attrs.type !== undefined && e.stanza.attrs.type !== 'available')) return false;
      const h = hashes.get(e.origin.username);
      // With no avatar, a presence the client sent without <x/> stays as it is (nothing to tell);
      // a claim in its <x/> is corrected to the empty <photo/>.
      if (h !== undefined && (h !== '' || e.stanza.getChild('x', NS_VCARD_UPDATE))) stampPresence(e.stanza, h);
      return false;
    }, PRIORITY.ARCHIVE + 20);
    api.onClose(async () => {
      while (queues.size > 0) await Promise.all([...queues.values()]);
    });
  },
};
