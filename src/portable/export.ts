/**
 * `verona export DIR`: every account as a XEP-0227 file `DIR/<user>@<domain>.xml`
 * (one file per account, as prosody-migrator writes them, so that a large
 * server never needs one huge document in memory). Per account: both SCRAM
 * credentials in Prosody's `urn:xmpp:pie:0#scram` extension (the password
 * itself is never stored, so it cannot be exported), the roster, private XML,
 * the vCard, and the message archive (`urn:xmpp:pie:0#mam`, MAM results with
 * delay stamps). `verona import DIR` reads it back.
 */
import { HostedDomains } from '../core/vhosts.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parseXml } from '../xml/parser.js';
import { serialize, x, type Element } from '../xml/element.js';
import type { ScramCredential, Storage } from '../storage/types.js';
import { seqToMs, stampOf } from '../modules/mam/ids.js';
import { NS_PIE } from './import.js';

const NS_PIE_SCRAM = 'urn:xmpp:pie:0#scram';

export interface ExportReport {
  accounts: number;
  rosterItems: number;
  archived: number;
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
  const report: ExportReport = { accounts: 0, rosterItems: 0, archived: 0, files: [] };
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
    const doc = x('server-data', NS_PIE, {}, [x('host', NS_PIE, { jid: served.domainOf(username) }, [user])]);
    const file = path.join(dir, `${served.bareOf(username)}.xml`);
    writeFileSync(file, `<?xml version='1.0' encoding='UTF-8'?>\n${serialize(doc, '')}\n`, { mode: 0o600 });
    report.files.push(file);
    report.accounts++;
  }
  return report;
}
