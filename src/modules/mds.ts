/**
 * XEP-0490 Message Displayed Synchronization (urn:xmpp:mds:displayed:0,
 * 1.0) with server assistance (urn:xmpp:mds:server-assist:0): a client
 * attaches `<displayed xmlns='urn:xmpp:mds:displayed:0'><stanza-id …/></displayed>`
 * to the XEP-0333 `<displayed/>` marker it sends to a contact, and the server
 * publishes it to the account's `urn:xmpp:mds:displayed:0` PEP node (item id:
 * the contact's bare JID), so every device of the account learns what was
 * read without a second round trip.
 *
 * Runs on 'message/out' before archiving and forking (priority 10): the
 * publish goes on the message's waits, so the contact, the other devices and
 * the PEP notification see a consistent state. Then push is told, so a
 * phone's pending notification for that conversation is cleared
 * (src/modules/push/).
 *
 * A plain XEP-0333 `<displayed id='…'/>` without the MDS element (a client
 * that knows markers but not MDS) is published too: the marker's id names the
 * contact's message, and the server looks for it among the last
 * `MARKER_LOOKBACK` messages from that contact in the account's archive (one
 * index walk on (username, with, seq); the archive has no index by message
 * id). Found: its archive id (stanza-id, by= the account) is published. Not
 * found (older, never archived, archived under preferences that exclude the
 * contact, or a groupchat): nothing is published, the marker still goes to
 * the contact, and the client's own MDS publish remains the way to sync.
 */
import { x, type Element } from '../xml/element.js';
import { parseXml } from '../xml/parser.js';
import type { ArchiveStore } from '../storage/archive.js';
import { NS } from '../core/namespaces.js';
import { PRIORITY } from '../core/events.js';
import type { VeronaModule } from '../core/module.js';
import type { IqContext } from '../core/router.js';
import { PUSH_SERVICE, type PushService } from './push/index.js';

export const NS_MDS = 'urn:xmpp:mds:displayed:0';
export const NS_MDS_ASSIST = 'urn:xmpp:mds:server-assist:0';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const NS_MARKERS = 'urn:xmpp:chat-markers:0';
const NS_ORIGIN_ID = 'urn:xmpp:sid:0';
/**
 * How many of the contact's latest messages a plain marker is looked up in:
 * a marker normally names one of the last few messages; 50 keeps the lookup
 * one short index walk per marker.
 */
export const MARKER_LOOKBACK = 50;

/**
 * Does this archived message (XML as stored) carry the message id a marker
 * refers to? XEP-0333 markers name the message's `id`; some clients use its
 * origin-id (XEP-0359). Pure, table-tested.
 */
export function markerMatches(stored: Element, markerId: string): boolean {
  if (stored.attrs.id === markerId) return true;
  return stored.getChild('origin-id', NS_ORIGIN_ID)?.attrs.id === markerId;
}

/** The archive id of the contact's message a plain marker refers to, or undefined. */
async function lookupMarked(archive: ArchiveStore, username: string, contact: string, markerId: string): Promise<string | undefined> {
  const rows = await archive.page({ username, with: contact, order: 'desc', limit: MARKER_LOOKBACK });
  // A cheap substring test first, when the id needs no XML escaping (the usual case).
  const plain = /^[A-Za-z0-9._:+/=-]+$/.test(markerId);
  for (const r of rows) {
    if (r.outgoing || (plain && !r.stanza.includes(markerId))) continue;
    try {
      if (markerMatches(parseXml(r.stanza), markerId)) return r.id;
    } catch {
      // An unreadable row is not the one.
    }
  }
  return undefined;
}

interface PepPublisher {
  pubsubSet(ctx: IqContext): Promise<Element | undefined>;
}

function field(v: string, value: string): Element {
  return x('field', NS.DATA_FORMS, { var: v }, [x('value', NS.DATA_FORMS, {}, [value])]);
}

/** XEP-0490 §4: the node's required configuration. */
function publishOptions(): Element {
  return x('publish-options', NS_PUBSUB, {}, [
    x('x', NS.DATA_FORMS, { type: 'submit' }, [
      field('FORM_TYPE', 'http://jabber.org/protocol/pubsub#publish-options'),
      field('pubsub#persist_items', 'true'),
      field('pubsub#max_items', 'max'),
      field('pubsub#send_last_published_item', 'never'),
      field('pubsub#access_model', 'whitelist'),
    ]),
  ]);
}

export const mdsModule: VeronaModule = {
  name: 'mds',
  load(api) {
    api.discoFeature(NS_MDS_ASSIST, 'account');
    const published = api.metrics.counter('verona_mds_published_total', 'Displayed markers published to the MDS node for the client, by outcome');
    api.hook('message/out', (e) => {
      const origin = e.origin;
      if (!origin || e.stanza.attrs.type === 'error' || e.stanza.attrs.type === 'groupchat') return false;
      const mds = e.stanza.getChild('displayed', NS_MDS);
      const sid = mds?.getChild('stanza-id', NS.SID);
      const marker = mds ? undefined : e.stanza.getChild('displayed', NS_MARKERS);
      if (!(sid?.attrs.id) && !marker?.attrs.id) return false;
      const pep = api.service<PepPublisher>('pep');
      if (!pep) return false;
      const conversation = e.to.bare.toString();
      const own = e.from.bare;
      const publish = (by: string, id: string): Promise<void> => {
        const payload = x('pubsub', NS_PUBSUB, {}, [
          x('publish', NS_PUBSUB, { node: NS_MDS }, [
            x('item', NS_PUBSUB, { id: conversation }, [x('displayed', NS_MDS, {}, [x('stanza-id', NS.SID, { by, id })])]),
          ]),
          publishOptions(),
        ]);
        const stanza = x('iq', NS.CLIENT, { type: 'set', from: e.from.toString(), to: own.toString(), id: `mds-${id}` }, [payload]);
        return pep.pubsubSet({ stanza, type: 'set', payload, from: e.from, to: own, origin, self: true }).then(() => {
          published.inc({ outcome: mds ? 'ok' : 'marker' });
          api.service<PushService>(PUSH_SERVICE)?.readElsewhere(origin.username, conversation, origin.resource);
        });
      };
      let work: Promise<void>;
      if (sid?.attrs.id) {
        work = publish(sid.attrs.by ?? own.toString(), sid.attrs.id);
      } else {
        const archive = api.storage.archive;
        const markerId = marker?.attrs.id ?? '';
        work = archive
          ? lookupMarked(archive, origin.username, conversation, markerId).then((id) => {
              if (id === undefined) {
                published.inc({ outcome: 'marker-not-found' });
                return undefined;
              }
              return publish(own.toString(), id);
            })
          : Promise.resolve(published.inc({ outcome: 'marker-not-found' }));
      }
      const done = work.catch((err: unknown) => {
        // The marker still goes to the contact; only the sync failed.
        published.inc({ outcome: 'failed' });
        api.log.warn({ err: String(err), user: origin.username }, 'mds: publishing the displayed state failed');
      });
      e.waits.push(done);
      return false;
    }, PRIORITY.BEFORE_ARCHIVE);
  },
};
