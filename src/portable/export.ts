/**
 * `verona export DIR`: every account as a XEP-0227 file `DIR/<user>@<domain>.xml`
 * (one file per account, as prosody-migrator writes them, so that a large
 * server never needs one huge document in memory). Per account: both SCRAM
 * credentials in Prosody's `urn:xmpp:pie:0#scram` extension (the password
 * itself is never stored, so it cannot be exported), the roster, private XML,
 * the vCard, the message archive (`urn:xmpp:pie:0#mam`, MAM results with
 * delay stamps), PEP nodes as Prosody writes them (owner <pubsub> with each
 * node's configure form and affiliations, <pubsub> with the items), offline
 * messages (<offline-messages> with delay stamps, left in place), the
 * blocklist (<blocklist xmlns='urn:xmpp:blocking'>) and pending inbound
 * subscription requests (<presence type='subscribe'/>, as ejabberd writes
 * them). `verona import DIR` reads it back.
 */
import { HostedDomains } from '../core/vhosts.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseXml } from '../xml/parser.js';
import { serialize, x, type Element } from '../xml/element.js';
import type { ScramCredential, Storage } from '../storage/types.js';
import { seqToMs, stampOf } from '../modules/mam/ids.js';
import { NS_PIE } from './import.js';
import { configForm } from '../modules/pep/config.js';

const NS_PIE_SCRAM = 'urn:xmpp:pie:0#scram';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';

export interface ExportReport {
  accounts: number;
  rosterItems: number;
  archived: number;
  pepNodes: number;
  offline: number;
  blocked: number;
  files: string[];
}

function scram(mechanism: string, c: ScramCredential): Element {
  return x('scram-credentials', NS_PIE_SCRAM, { mechanism }, [
    x('server-key', NS_PIE_SCRAM, {}, [c.serverKey.toString('base64')]),
    x('stored-key', NS_PIE_SCRAM, {}, [c.storedKey.toString('base64')]),
    x('iter-count', NS_PIE_SCRAM, {}, [String(c.iterations)]),
    x('salt', NS_PIE_SCRAM, {}, [c.salt.toString('base64')]),
  ]);
}

/** An archived stanza is stored without its jabber:client declaration (the stream's default). */
function clientStanza(xml: string): Element {
  const wrapped = parseXml(`<w xmlns='jabber:client'>${xml}</w>`);
  const el = wrapped.children.find((c): c is Element => typeof c !== 'string');
  if (el === undefined) throw new Error('empty archived stanza');
  return el;
}

/** `hosts` (virtual hosts): accounts of other hosted domains go under their own <host/>. */
export async function exportPortable(storage: Storage, domain: string, dir: string, hosts?: HostedDomains): Promise<ExportReport> {
  const served = hosts ?? new HostedDomains(domain);
  mkdirSync(dir, { recursive: true });
  const report: ExportReport = { accounts: 0, rosterItems: 0, archived: 0, pepNodes: 0, offline: 0, blocked: 0, files: [] };
  for (const username of (await storage.accounts.list()).sort()) {
    const rec = await storage.accounts.get(username);
    if (rec === undefined) continue;
    const user = x('user', NS_PIE, { name: served.localOf(username) }, [scram('SCRAM-SHA-1', rec.scram['SHA-1']), scram('SCRAM-SHA-256', rec.scram['SHA-256'])]);
    if (storage.roster !== undefined) {
      const items = await storage.roster.items(username);
      const query = x('query', 'jabber:iq:roster');
      for (const it of items) {
        query.children.push(
          x('item', 'jabber:iq:roster', { jid: it.jid, name: it.name, subscription: it.subscription, ask: it.ask ? 'subscribe' : undefined, approved: it.approved ? 'true' : undefined },
            it.groups.map((g) => x('group', 'jabber:iq:roster', {}, [g]))),
        );
        report.rosterItems++;
      }
      user.children.push(query);
      for (const p of await storage.roster.pending(username)) {
        user.children.push(x('presence', 'jabber:client', { from: p.jid, to: served.bareOf(username), type: 'subscribe' }));
      }
    }
    const keys = await storage.kv.keys(username, 'private');
    if (keys.length > 0) {
      const query = x('query', 'jabber:iq:private');
      for (const k of keys) {
        const v = await storage.kv.get(username, 'private', k);
        if (v !== undefined) query.children.push(parseXml(v));
      }
      user.children.push(query);
    }
    const vcard = await storage.kv.get(username, 'vcard', '');
    if (vcard !== undefined) user.children.push(parseXml(vcard));
    if (storage.archive !== undefined) {
      const archive = x('archive', 'urn:xmpp:pie:0#mam');
      let afterSeq: number | undefined;
      for (;;) {
        const rows = await storage.archive.page({ username, order: 'asc', limit: 1000, afterSeq });
        for (const row of rows) {
          archive.children.push(
            x('result', 'urn:xmpp:mam:2', { id: row.id }, [
              x('forwarded', 'urn:xmpp:forward:0', {}, [x('delay', 'urn:xmpp:delay', { stamp: stampOf(seqToMs(row.seq)) }), clientStanza(row.stanza)]),
            ]),
          );
          report.archived++;
        }
        if (rows.length < 1000) break;
        afterSeq = rows[rows.length - 1].seq;
      }
      user.children.push(archive);
    }
    if (storage.pubsub !== undefined) {
      const nodes = (await storage.pubsub.nodes(username)).sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
      if (nodes.length > 0) {
        const owner = x('pubsub', NS_PUBSUB_OWNER);
        const items = x('pubsub', NS_PUBSUB);
        for (const n of nodes) {
          const form = configForm(n.config);
          form.attrs.type = 'submit';
          owner.children.push(x('configure', NS_PUBSUB_OWNER, { node: n.node }, [form]));
          const affs = Object.entries(n.affiliations);
          if (affs.length > 0) {
            owner.children.push(x('affiliations', NS_PUBSUB_OWNER, { node: n.node }, affs.map(([jid, affiliation]) => x('affiliation', NS_PUBSUB_OWNER, { jid, affiliation }))));
          }
          const list = await storage.pubsub.items(username, n.node);
          if (list.length > 0) {
            items.children.push(x('items', NS_PUBSUB, { node: n.node }, list.map((it) => x('item', NS_PUBSUB, { id: it.id }, [parseXml(it.payload)]))));
          }
          report.pepNodes++;
        }
        user.children.push(owner);
        if (items.children.length > 0) user.children.push(items);
      }
    }
    if (storage.offline !== undefined) {
      const msgs = await storage.offline.peek(username);
      if (msgs.length > 0) {
        user.children.push(
          x('offline-messages', NS_PIE, {}, msgs.map((m) => {
            const el = clientStanza(m.stanza);
            el.children.push(x('delay', 'urn:xmpp:delay', { from: served.domainOf(username), stamp: stampOf(m.stamp) }, ['Offline storage']));
            return el;
          })),
        );
        report.offline += msgs.length;
      }
    }
    if (storage.blocklist !== undefined) {
      const blocked = await storage.blocklist.list(username);
      if (blocked.length > 0) {
        user.children.push(x('blocklist', 'urn:xmpp:blocking', {}, blocked.map((jid) => x('item', 'urn:xmpp:blocking', { jid }))));
        report.blocked += blocked.length;
      }
    }
    const doc = x('server-data', NS_PIE, {}, [x('host', NS_PIE, { jid: served.domainOf(username) }, [user])]);
    const file = path.join(dir, `${served.bareOf(username)}.xml`);
    writeFileSync(file, `<?xml version='1.0' encoding='UTF-8'?>\n${serialize(doc, '')}\n`, { mode: 0o600 });
    report.files.push(file);
    report.accounts++;
  }
  return report;
}
