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
 * (src/modules/push/). A marker without the MDS element is not mapped to an
 * archive id (the archive has no index by message id): nothing is published.
 */
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { PRIORITY } from '../core/events.js';
import type { VeronaModule } from '../core/module.js';
import type { IqContext } from '../core/router.js';
import { PUSH_SERVICE, type PushService } from './push/index.js';

export const NS_MDS = 'urn:xmpp:mds:displayed:0';
export const NS_MDS_ASSIST = 'urn:xmpp:mds:server-assist:0';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';

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
      if (!mds || !sid?.attrs.id) return false;
      const pep = api.service<PepPublisher>('pep');
      if (!pep) return false;
      const conversation = e.to.bare.toString();
      const own = e.from.bare;
      const payload = x('pubsub', NS_PUBSUB, {}, [
        x('publish', NS_PUBSUB, { node: NS_MDS }, [
          x('item', NS_PUBSUB, { id: conversation }, [x('displayed', NS_MDS, {}, [x('stanza-id', NS.SID, { by: sid.attrs.by ?? own.toString(), id: sid.attrs.id })])]),
        ]),
        publishOptions(),
      ]);
      const stanza = x('iq', NS.CLIENT, { type: 'set', from: e.from.toString(), to: own.toString(), id: `mds-${sid.attrs.id}` }, [payload]);
      const done = pep
        .pubsubSet({ stanza, type: 'set', payload, from: e.from, to: own, origin, self: true })
        .then(
          () => {
            published.inc({ outcome: 'ok' });
            api.service<PushService>(PUSH_SERVICE)?.readElsewhere(origin.username, conversation, origin.resource);
          },
          (err: unknown) => {
            // The marker still goes to the contact; only the sync failed.
            published.inc({ outcome: 'failed' });
            api.log.warn({ err: String(err), user: origin.username }, 'mds: publishing the displayed state failed');
          },
        );
      e.waits.push(done);
      return false;
    }, PRIORITY.BEFORE_ARCHIVE);
  },
};
