/**
 * `verona import FILE|DIR`: XEP-0227 (portable import/export, `urn:xmpp:pie:0`)
 * into Verona's storage. A DIR is read file by file (prosody-migrator writes one
 * `<user>@<host>.xml` per account; ejabberd's export_piefxis writes one file per host).
 *
 * What is imported, per <user> of the served domain:
 * - credentials: `<scram-credentials mechanism='SCRAM-SHA-1'|'SCRAM-SHA-256'>`
 *   (Prosody's extension) kept as they are, so the old password keeps working
 *   over that mechanism; a `password` attribute (plain, as ejabberd exports
 *   without SCRAM) is converted to both SCRAM credentials. A hash the export
 *   lacks gets a credential nothing verifies (see docs/migration.md);
 * - the roster (jabber:iq:roster items with groups, subscription and ask);
 * - private XML (jabber:iq:private fragments);
 * - vCards (vcard-temp);
 * - the message archive (`urn:xmpp:pie:0#mam` archive extension: MAM results
 *   with the original delay stamps).
 * Not imported yet: PEP nodes, offline messages, blocklists (reported as skipped).
 */
import { HostedDomains, accountKey } from '../core/vhosts.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseXml } from '../xml/parser.js';
import { serialize, type Element } from '../xml/element.js';
import { parseJID, prepareLocal } from '../jid/jid.js';
import { deriveAllScram, type ScramHash } from '../sasl/credentials.js';
import type { AccountRecord, ScramCredential, Storage } from '../storage/types.js';
import type { Subscription } from '../storage/roster.js';
import { archiveIdFor, parseDateTime } from '../modules/mam/ids.js';

export const NS_PIE = 'urn:xmpp:pie:0';
const NS_PIE_SCRAM = 'urn:xmpp:pie:0#scram';
const NS_PIE_MAM = 'urn:xmpp:pie:0#mam';
const NS_ROSTER = 'jabber:iq:roster';
const NS_PRIVATE = 'jabber:iq:private';
const NS_VCARD = 'vcard-temp';
const NS_MAM = 'urn:xmpp:mam:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_DELAY = 'urn:xmpp:delay';

export interface ImportReport {
  accounts: number;
  rosterItems: number;
  privateFragments: number;
  vcards: number;
  archived: number;
  /** What was not imported, one line each (other domains, existing accounts, unsupported parts). */
  skipped: string[];
  /** Accounts whose export had SCRAM-SHA-1 only (they cannot use SCRAM-SHA-256 until the password changes). */
  sha1Only: string[];
}

/** The files of FILE|DIR, in name order. */
export function importFiles(target: string): string[] {
  if (!statSync(target).isDirectory()) return [target];
  return readdirSync(target)
    .filter((f) => f.endsWith('.xml'))
    .sort()
    .map((f) => path.join(target, f));
}

function childElements(el: Element): Element[] {
  return el.children.filter((c): c is Element => typeof c !== 'string');
}

function text(el: Element | undefined): string {
  return el === undefined ? '' : el.children.filter((c): c is string => typeof c === 'string').join('');
}

/** A SHA-256 (or SHA-1) credential that no password verifies: for hashes the export did not carry. */
function unusable(): ScramCredential {
  return { salt: randomBytes(16), iterations: 4096, storedKey: randomBytes(32), serverKey: randomBytes(32) };
}

function scramFrom(el: Element): { hash: ScramHash; cred: ScramCredential } | undefined {
  const mech = el.attrs.mechanism;
  const hash: ScramHash | undefined = mech === 'SCRAM-SHA-1' ? 'SHA-1' : mech === 'SCRAM-SHA-256' ? 'SHA-256' : undefined;
  if (hash === undefined) return undefined;
  const b64 = (name: string): Buffer => Buffer.from(text(el.getChild(name, NS_PIE_SCRAM)).trim(), 'base64');
  const iterations = Number(text(el.getChild('iter-count', NS_PIE_SCRAM)).trim());
  return { hash, cred: { salt: b64('salt'), iterations, storedKey: b64('stored-key'), serverKey: b64('server-key') } };
}

async function importUser(storage: Storage, domain: string, user: Element, report: ImportReport, iterations: number, primary: string): Promise<void> {
  const local = prepareLocal(user.attrs.name ?? '');
  // The account key of a hosted domain (virtual hosts, src/core/vhosts.ts).
  const username = accountKey(primary, local, domain);
  const owner = `${local}@${domain}`;
  if (await storage.accounts.exists(username)) {
    report.skipped.push(`${owner}: account exists already (not touched)`);
    return;
  }
  const creds: Partial<Record<ScramHash, ScramCredential>> = {};
  for (const s of user.getChildren('scram-credentials', NS_PIE_SCRAM)) {
    const c = scramFrom(s);
    if (c !== undefined) creds[c.hash] = c.cred;
  }
  let scram: AccountRecord['scram'];
  if (user.attrs.password !== undefined && user.attrs.password !== '') {
    scram = await deriveAllScram(user.attrs.password, iterations);
  } else if (creds['SHA-1'] !== undefined || creds['SHA-256'] !== undefined) {
    if (creds['SHA-256'] === undefined) report.sha1Only.push(owner);
    scram = { 'SHA-1': creds['SHA-1'] ?? unusable(), 'SHA-256': creds['SHA-256'] ?? unusable() };
  } else {
    report.skipped.push(`${owner}: no password or SCRAM credentials in the export (account not created)`);
    return;
  }
  await storage.accounts.create({ username, createdAt: Date.now(), scram });
  report.accounts++;

  for (const part of childElements(user)) {
    if (part.name === 'query' && part.xmlns === NS_ROSTER) {
      for (const item of part.getChildren('item', NS_ROSTER)) {
        const sub = item.attrs.subscription ?? 'none';
        if (sub === 'remove' || storage.roster === undefined) continue;
        await storage.roster.put(username, {
          jid: parseJID(item.attrs.jid ?? '').bareString(),
          name: item.attrs.name,
          subscription: (['none', 'to', 'from', 'both'].includes(sub) ? sub : 'none') as Subscription,
          ask: item.attrs.ask === 'subscribe',
          approved: item.attrs.approved === 'true',
          groups: item.getChildren('group', NS_ROSTER).map((g) => text(g)),
        });
        report.rosterItems++;
      }
    } else if (part.name === 'query' && part.xmlns === NS_PRIVATE) {
      for (const frag of childElements(part)) {
        await storage.kv.set(username, 'private', `{${frag.xmlns}}${frag.name}`, serialize(frag, NS_PRIVATE));
        report.privateFragments++;
      }
    } else if (part.name === 'vCard' && part.xmlns === NS_VCARD) {
      await storage.kv.set(username, 'vcard', '', serialize(part, ''));
      report.vcards++;
    } else if (part.name === 'archive' && part.xmlns === NS_PIE_MAM) {
      report.archived += await importArchive(storage, username, owner, part);
    } else if (part.name !== 'scram-credentials') {
      report.skipped.push(`${owner}: <${part.name} xmlns='${part.xmlns}'> not imported`);
    }
  }
}

let lastSeq = 0;

async function importArchive(storage: Storage, username: string, owner: string, archive: Element): Promise<number> {
  if (storage.archive === undefined) return 0;
  let n = 0;
  const pending: Array<Promise<void>> = [];
  for (const result of archive.getChildren('result', NS_MAM)) {
    const fwd = result.getChild('forwarded', NS_FORWARD);
    const msg = fwd?.getChild('message', 'jabber:client');
    if (fwd === undefined || msg === undefined) continue;
    const ms = parseDateTime(fwd.getChild('delay', NS_DELAY)?.attrs.stamp ?? '') ?? Date.now();
    // Order keys strictly increasing (the archive's invariant), in the export's order.
    const seq = Math.max(ms * 1000, lastSeq + 1);
    lastSeq = seq;
    const from = parseJID(msg.attrs.from ?? owner);
    const to = parseJID(msg.attrs.to ?? owner);
    const outgoing = from.bareString() === owner;
    const other = outgoing ? to : from;
    pending.push(
      storage.archive.append({
        username,
        seq,
        id: archiveIdFor(seq),
        with: other.bareString(),
        withResource: other.resource,
        outgoing,
        stanza: serialize(msg, 'jabber:client'),
      }),
    );
    n++;
  }
  await Promise.all(pending);
  await storage.archive.flush();
  return n;
}

/** Import every XEP-0227 file of FILE|DIR into `storage` for `domain`. */
/** `hosts` (virtual hosts): import the users of every hosted domain, each into its own accounts. */
export async function importPortable(storage: Storage, domain: string, target: string, iterations: number, hosts?: HostedDomains): Promise<ImportReport> {
  const served = hosts ?? new HostedDomains(domain);
  const report: ImportReport = { accounts: 0, rosterItems: 0, privateFragments: 0, vcards: 0, archived: 0, skipped: [], sha1Only: [] };
  lastSeq = storage.archive === undefined ? 0 : await storage.archive.highWater();
  for (const file of importFiles(target)) {
    const doc = parseXml(readFileSync(file, 'utf8'));
    if (doc.name !== 'server-data' || doc.xmlns !== NS_PIE) throw new Error(`${file}: not a XEP-0227 file (expected <server-data xmlns='${NS_PIE}'>)`);
    for (const host of doc.getChildren('host', NS_PIE)) {
      const hostDomain = host.attrs.jid ?? '';
      if (!served.has(hostDomain)) {
        report.skipped.push(`${file}: host ${host.attrs.jid ?? '?'} is not a domain of this server (${served.list().join(', ')})`);
        continue;
      }
      for (const user of host.getChildren('user', NS_PIE)) await importUser(storage, hostDomain, user, report, iterations, served.primary);
    }
  }
  return report;
}
