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
 *   with the original delay stamps);
 * - PEP nodes (`<pubsub xmlns='…pubsub#owner'>` configure forms and affiliations,
 *   `<pubsub xmlns='…pubsub'>` items: bookmarks, OMEMO device lists and bundles,
 *   avatars, anything else a client published), as Prosody writes them;
 * - offline messages (`<offline-messages>`, XEP-0227 §5), with the old server's
 *   delay stamp kept and its archive ids dropped (they name no message here);
 * - blocklists: `<blocklist xmlns='urn:xmpp:blocking'>` and, from ejabberd, whose
 *   XEP-0191 blocklist is a privacy list, the default privacy list's plain
 *   "deny this JID" items (other privacy rules have no XEP-0191 meaning: reported);
 * - pending inbound subscription requests (`<presence type='subscribe'/>` in a
 *   <user>, as ejabberd writes them).
 * ejabberd's export_piefxis writes a <server-data> file that XIncludes one
 * <host> file per domain: the includes are followed, and a <host> file read
 * directly is the same data (each file is read once).
 */
import { HostedDomains, accountKey } from '../core/vhosts.js';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { parseXml } from '../xml/parser.js';
import { serialize, x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { defaultConfig, keepCount, parseConfigFields, readForm } from '../modules/pep/config.js';
import { parseJID, prepareLocal } from '../jid/jid.js';
import { deriveAllScram, type ScramHash } from '../sasl/credentials.js';
import type { AccountRecord, ScramCredential, Storage } from '../storage/types.js';
import type { Subscription } from '../storage/roster.js';
import { archiveIdFor, parseDateTime } from '../modules/mam/ids.js';
import type { EjabberdArchive } from './ejabberd-mam.js';

export const NS_PIE = 'urn:xmpp:pie:0';
const NS_PIE_SCRAM = 'urn:xmpp:pie:0#scram';
const NS_PIE_MAM = 'urn:xmpp:pie:0#mam';
const NS_ROSTER = 'jabber:iq:roster';
const NS_PRIVATE = 'jabber:iq:private';
const NS_VCARD = 'vcard-temp';
const NS_MAM = 'urn:xmpp:mam:2';
const NS_FORWARD = 'urn:xmpp:forward:0';
const NS_DELAY = 'urn:xmpp:delay';
const NS_XINCLUDE = 'http://www.w3.org/2001/XInclude';
const NS_PUBSUB = 'http://jabber.org/protocol/pubsub';
const NS_PUBSUB_OWNER = 'http://jabber.org/protocol/pubsub#owner';
const NS_PRIVACY = 'jabber:iq:privacy';
const NS_BLOCKING = 'urn:xmpp:blocking';
const NS_SID = 'urn:xmpp:sid:0';

/** PEP limits of the target server (moduleOptions.pep), so imported nodes keep what the server would keep. */
export interface ImportLimits {
  pepMaxItems: number;
  pepDefaultMaxItems: number | 'max';
  /** ejabberd's SQL message archive (`--ejabberd-mam`), which its XEP-0227 export lacks. */
  ejabberdMam?: EjabberdArchive;
}

export interface ImportReport {
  accounts: number;
  rosterItems: number;
  privateFragments: number;
  vcards: number;
  archived: number;
  pepNodes: number;
  pepItems: number;
  offline: number;
  blocked: number;
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
  const cred = { salt: b64('salt'), iterations, storedKey: b64('stored-key'), serverKey: b64('server-key') };
  return { hash, cred: undoubleBase64(cred, hash === 'SHA-1' ? 20 : 32) };
}

/**
 * ejabberd 23.01's export_piefxis base64-encodes the base64 text it stores (salt and keys
 * come out encoded twice), where Prosody's are encoded once. A key of the wrong length
 * whose bytes are base64 text of the right length is such a value: decode every field
 * once more. (A key of the right length is taken as it is.)
 */
export function undoubleBase64(c: ScramCredential, keyLength: number): ScramCredential {
  const again = (b: Buffer): Buffer | undefined => {
    const s = b.toString('latin1');
    return /^[A-Za-z0-9+/]+={0,2}$/.test(s) ? Buffer.from(s, 'base64') : undefined;
  };
  if (c.storedKey.length === keyLength) return c;
  const stored = again(c.storedKey);
  const server = again(c.serverKey);
  const salt = again(c.salt);
  if (stored?.length !== keyLength || server?.length !== keyLength || salt === undefined) return c;
  return { ...c, salt, storedKey: stored, serverKey: server };
}

async function importUser(storage: Storage, domain: string, user: Element, report: ImportReport, iterations: number, limits: ImportLimits, primary: string): Promise<void> {
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
  // Node configurations first (the owner <pubsub> may follow the items in the file).
  await importPepConfig(storage, username, owner, user, report, limits);
  // ejabberd's archive (from its database) before the offline messages, which point into it.
  const ejabberdIds = limits.ejabberdMam === undefined ? undefined : await importEjabberdArchive(storage, username, owner, limits.ejabberdMam, report);

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
    } else if (part.name === 'pubsub' && part.xmlns === NS_PUBSUB) {
      await importPepItems(storage, username, owner, part, report, limits);
    } else if (part.name === 'offline-messages' && part.xmlns === NS_PIE) {
      const archive = user.getChild('archive', NS_PIE_MAM);
      // Old archive id -> Verona archive id, for the offline copies' <stanza-id/>.
      const archivedIds = new Map<string, string>((archive?.getChildren('result', NS_MAM) ?? []).map((r) => [r.attrs.id ?? '', r.attrs.id ?? '']));
      for (const [k, v] of ejabberdIds ?? []) archivedIds.set(k, v);
      await importOffline(storage, username, owner, domain, part, report, archive === undefined && ejabberdIds === undefined, archivedIds);
    } else if (part.name === 'blocklist' && part.xmlns === NS_BLOCKING) {
      await block(storage, username, owner, part.getChildren('item', NS_BLOCKING).map((i) => i.attrs.jid ?? ''), report);
    } else if (part.name === 'query' && part.xmlns === NS_PRIVACY) {
      await importPrivacy(storage, username, owner, part, report);
    } else if (part.name === 'presence' && (part.xmlns === 'jabber:client' || part.xmlns === NS_PIE) && part.attrs.type === 'subscribe' && storage.roster !== undefined) {
      // (Prosody writes it in the pie namespace, ejabberd in jabber:client.)
      // A subscription request waiting for this user's answer (ejabberd keeps them beside the roster).
      const from = parseJID(part.attrs.from ?? '').bareString();
      // Serialised with its xmlns (as the roster module stores requests): without it the stored
      // text parses back in no namespace and went out as <presence xmlns=""/>, which clients count
      // as a stanza and Stream Management did not (h mismatch: the stream ended in an error).
      await storage.roster.addPending(username, from, serialize(x('presence', 'jabber:client', { from, to: owner, type: 'subscribe' }), ''));
    } else if (part.name === 'pubsub' && part.xmlns === NS_PUBSUB_OWNER) {
      // Read before this loop (importPepConfig).
    } else if (part.name !== 'scram-credentials') {
      report.skipped.push(`${owner}: <${part.name} xmlns='${part.xmlns}'> not imported`);
    }
  }
}

async function importPepConfig(storage: Storage, username: string, owner: string, user: Element, report: ImportReport, limits: ImportLimits): Promise<void> {
  const ownerEl = user.getChild('pubsub', NS_PUBSUB_OWNER);
  if (ownerEl === undefined) return;
  if (storage.pubsub === undefined) {
    report.skipped.push(`${owner}: PEP nodes (this storage backend has no PEP store)`);
    return;
  }
  for (const el of childElements(ownerEl)) {
    const node = el.attrs.node;
    if (node === undefined || node === '') continue;
    if (el.name === 'configure') {
      const config = defaultConfig(limits.pepDefaultMaxItems);
      const form = readForm(el.getChild('x', NS.DATA_FORMS));
      if (form !== undefined) {
        // Prosody writes every field of its form, unset ones empty: those say nothing.
        const set = new Map([...form.fields].filter(([, v]) => v.length > 0 && !(v.length === 1 && v[0] === '')));
        const { patch, errors } = parseConfigFields(set, limits.pepMaxItems);
        Object.assign(config, patch);
        // Fields this server does not implement (pubsub#publish_model, …) are fine to drop;
        // a value it cannot honour (an access model it lacks) falls back to the default.
        const invalid = errors.filter((e) => e.reason === 'invalid-value').map((e) => `${e.field}=${form.fields.get(e.field)?.[0] ?? ''}`);
        if (invalid.length > 0) report.skipped.push(`${owner}: PEP node ${node}: ${invalid.join(', ')} not supported here (default kept)`);
      }
      if (await storage.pubsub.createNode(username, node, config)) report.pepNodes++;
      else {
        const existing = await storage.pubsub.getNode(username, node);
        await storage.pubsub.updateNode(username, node, config, existing?.affiliations ?? {});
      }
    } else if (el.name === 'affiliations') {
      const existing = await storage.pubsub.getNode(username, node);
      if (existing === undefined) continue;
      const affs = { ...existing.affiliations };
      for (const a of el.getChildren('affiliation')) {
        const who = a.attrs.jid === undefined ? undefined : parseJID(a.attrs.jid).bareString();
        const what = a.attrs.affiliation;
        if (who !== undefined && who !== owner && (what === 'member' || what === 'publisher' || what === 'outcast')) affs[who] = what;
      }
      await storage.pubsub.updateNode(username, node, existing.config, affs);
    }
    // <subscriptions/>: PEP subscriptions follow presence and caps here, nothing to keep.
  }
}

async function importPepItems(storage: Storage, username: string, owner: string, pubsub: Element, report: ImportReport, limits: ImportLimits): Promise<void> {
  if (storage.pubsub === undefined) {
    report.skipped.push(`${owner}: PEP items (this storage backend has no PEP store)`);
    return;
  }
  for (const items of pubsub.getChildren('items', NS_PUBSUB)) {
    const node = items.attrs.node;
    if (node === undefined || node === '') continue;
    let n = await storage.pubsub.getNode(username, node);
    if (n === undefined) {
      // Items without a configuration (Prosody's older exports): the PEP defaults, kept persistent.
      await storage.pubsub.createNode(username, node, defaultConfig(limits.pepDefaultMaxItems));
      report.pepNodes++;
      n = await storage.pubsub.getNode(username, node);
      if (n === undefined) continue;
    }
    const list = items.getChildren('item', NS_PUBSUB);
    // Enough room for every item of the export, at most the server's limit.
    const keep = Math.max(keepCount(n.config, limits.pepMaxItems), Math.min(list.length, limits.pepMaxItems));
    for (const [i, item] of list.entries()) {
      const payload = childElements(item)[0];
      if (payload === undefined) continue;
      await storage.pubsub.putItem(username, node, { id: item.attrs.id ?? `import-${i}`, publisher: owner, publishedAt: Date.now(), payload: serialize(payload, NS_PUBSUB) }, keep);
      report.pepItems++;
    }
  }
}

/**
 * `archiveToo`: the export has no archive for this user (ejabberd 23.01 exports none), so
 * the waiting messages also go into the archive, as every message delivered here is
 * (docs/protocol: "every message archived"), with their <stanza-id/>.
 */
async function importOffline(
  storage: Storage,
  username: string,
  owner: string,
  domain: string,
  part: Element,
  report: ImportReport,
  archiveToo: boolean,
  archivedIds: ReadonlyMap<string, string>,
): Promise<void> {
  if (storage.offline === undefined) {
    report.skipped.push(`${owner}: offline messages (this storage backend has no offline store)`);
    return;
  }
  for (const msg of part.getChildren('message', 'jabber:client')) {
    let stamp = Date.now();
    // A stanza-id naming a message of this user's archive in the same export (Verona's own
    // export) stays: the offline copy and the archived one are the same message.
    let archiveId: string | undefined;
    msg.children = msg.children.filter((c) => {
      if (typeof c === 'string') return true;
      // The old server's "Offline storage" stamp is when the message came: Verona adds its own
      // delay from `stamp` on delivery, so keep the time and drop the element.
      if (c.name === 'delay' && c.xmlns === NS_DELAY && (c.attrs.from === undefined || c.attrs.from === domain)) {
        stamp = Math.floor(parseDateTime(c.attrs.stamp ?? '') ?? stamp);
        return false;
      }
      if (c.name === 'stanza-id' && c.xmlns === NS_SID && c.attrs.by === owner) {
        const mapped = c.attrs.id === undefined ? undefined : archivedIds.get(c.attrs.id);
        if (mapped !== undefined) {
          archiveId = mapped;
          c.attrs.id = mapped;
          return true;
        }
        // Archive ids of the old server name no message in this archive.
        return false;
      }
      if (c.name === 'archived' && c.xmlns === 'urn:xmpp:mam:tmp') return false;
      return true;
    });
    if (archiveToo && storage.archive !== undefined) {
      const key = archiveKey(undefined, stamp);
      const seq = key.seq;
      archiveId = key.id;
      const from = parseJID(msg.attrs.from ?? owner);
      await storage.archive.append({ username, seq, id: archiveId, with: from.bareString(), withResource: from.resource, outgoing: false, stanza: serialize(msg, 'jabber:client') });
      msg.children.push(x('stanza-id', NS_SID, { by: owner, id: archiveId }));
      report.archived++;
    }
    if (await storage.offline.store(username, { stamp, stanza: serialize(msg, 'jabber:client'), archiveId }, Number.MAX_SAFE_INTEGER)) report.offline++;
  }
  await storage.archive?.flush();
}

async function block(storage: Storage, username: string, owner: string, jids: string[], report: ImportReport): Promise<void> {
  if (jids.length === 0) return;
  if (storage.blocklist === undefined) {
    report.skipped.push(`${owner}: blocklist (this storage backend has no blocklist store)`);
    return;
  }
  const prepared: string[] = [];
  for (const j of jids) {
    try {
      prepared.push(parseJID(j).toString());
    } catch {
      report.skipped.push(`${owner}: blocked JID ${j} is not a valid JID`);
    }
  }
  report.blocked += (await storage.blocklist.add(username, prepared)).length;
}

/**
 * XEP-0191 on ejabberd is its default privacy list (XEP-0016): the items that block a JID
 * outright (type='jid', action='deny', no stanza-kind children) are the blocklist. Other
 * rules (by group or subscription, or for some stanza kinds only) are privacy lists that
 * Verona does not implement: reported, not imported.
 */
async function importPrivacy(storage: Storage, username: string, owner: string, query: Element, report: ImportReport): Promise<void> {
  const def = query.getChild('default', NS_PRIVACY)?.attrs.name;
  const jids: string[] = [];
  for (const list of query.getChildren('list', NS_PRIVACY)) {
    const items = list.getChildren('item', NS_PRIVACY);
    if (list.attrs.name !== def) {
      if (items.length > 0) report.skipped.push(`${owner}: privacy list '${list.attrs.name ?? ''}' (not the default list; privacy lists are not supported)`);
      continue;
    }
    for (const item of items) {
      if (item.attrs.type === 'jid' && item.attrs.action === 'deny' && childElements(item).length === 0 && item.attrs.value !== undefined) jids.push(item.attrs.value);
      else report.skipped.push(`${owner}: privacy rule ${serialize(item, NS_PRIVACY)} (only plain JID blocks map to XEP-0191)`);
    }
  }
  await block(storage, username, owner, jids, report);
}

/**
 * Archive keys (seq) are unique over the whole archive (all accounts). `floorSeq`: the
 * archive's high-water mark when the import began; `usedSeqs`: the keys this import gave.
 */
let floorSeq = 0;
let usedSeqs = new Set<number>();

/**
 * One account's messages from ejabberd's SQL archive. Returns ejabberd's ids (the
 * timestamp column, as its <stanza-id/> showed them) mapped to the new archive ids.
 */
async function importEjabberdArchive(storage: Storage, username: string, owner: string, mam: EjabberdArchive, report: ImportReport): Promise<Map<string, string>> {
  const ids = new Map<string, string>();
  if (storage.archive === undefined) return ids;
  for (const row of mam.messages(owner.slice(0, owner.indexOf('@')))) {
    let msg: Element;
    try {
      msg = parseXml(row.xml);
    } catch {
      report.skipped.push(`${owner}: archived message ${row.timestamp} does not parse`);
      continue;
    }
    if (msg.name !== 'message') continue;
    // ejabberd's own archive markers name ids of its archive, not of this one.
    msg.children = msg.children.filter((c) => typeof c === 'string' || !((c.name === 'stanza-id' && c.xmlns === NS_SID) || (c.name === 'archived' && c.xmlns === 'urn:xmpp:mam:tmp')));
    const { seq, id } = archiveKey(undefined, Math.floor(row.timestamp / 1000));
    const from = parseJID(msg.attrs.from ?? owner);
    const to = parseJID(msg.attrs.to ?? owner);
    const outgoing = from.bareString() === owner;
    const other = outgoing ? to : from;
    await storage.archive.append({ username, seq, id, with: other.bareString(), withResource: other.resource, outgoing, stanza: serialize(msg, 'jabber:client') });
    ids.set(String(row.timestamp), id);
    report.archived++;
  }
  await storage.archive.flush();
  return ids;
}

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/**
 * The archive key of an imported message. The seq is the message's time (ms * 1000, the
 * live server's scheme) plus the first free microsecond: unique over the archive, in
 * time order within each account, and the time survives (two accounts' copies of one
 * message land a microsecond apart). Into a non-empty archive, keys must stay above its
 * high-water mark (the running clock's), so there the times are not kept (the export's
 * order is). An id Verona made (16 Crockford base32 characters, the first 11 its seq)
 * whose seq matches the stamp and is free is kept as it is, so that `verona export` then
 * `verona import` gives the same ids (and clients' MAM positions stay valid). Other
 * servers' ids are replaced by new ones.
 */
export function archiveKey(exported: string | undefined, ms: number): { seq: number; id: string } {
  if (exported !== undefined && /^[0-9A-HJKMNP-TV-Z]{16}$/.test(exported)) {
    let seq = 0;
    for (const ch of exported.slice(0, 11)) seq = seq * 32 + CROCKFORD.indexOf(ch);
    if (Number.isSafeInteger(seq) && Math.floor(seq / 1000) === ms && seq > floorSeq && !usedSeqs.has(seq)) {
      usedSeqs.add(seq);
      return { seq, id: exported };
    }
  }
  let seq = Math.max(ms * 1000, floorSeq + 1);
  while (usedSeqs.has(seq)) seq++;
  usedSeqs.add(seq);
  return { seq, id: archiveIdFor(seq) };
}

async function importArchive(storage: Storage, username: string, owner: string, archive: Element): Promise<number> {
  if (storage.archive === undefined) return 0;
  let n = 0;
  const pending: Array<Promise<void>> = [];
  for (const result of archive.getChildren('result', NS_MAM)) {
    const fwd = result.getChild('forwarded', NS_FORWARD);
    const msg = fwd?.getChild('message', 'jabber:client');
    if (fwd === undefined || msg === undefined) continue;
    const ms = Math.floor(parseDateTime(fwd.getChild('delay', NS_DELAY)?.attrs.stamp ?? '') ?? Date.now());
    const { seq, id } = archiveKey(result.attrs.id, ms);
    const from = parseJID(msg.attrs.from ?? owner);
    const to = parseJID(msg.attrs.to ?? owner);
    const outgoing = from.bareString() === owner;
    const other = outgoing ? to : from;
    pending.push(
      storage.archive.append({
        username,
        seq,
        id,
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
export async function importPortable(
  storage: Storage,
  domain: string,
  target: string,
  iterations: number,
  limits: ImportLimits = { pepMaxItems: 256, pepDefaultMaxItems: 1 },
  /** Virtual hosts: the users of every hosted domain are imported, each into its own accounts. */
  hosts?: HostedDomains,
): Promise<ImportReport> {
  const served = hosts ?? new HostedDomains(domain);
  const report: ImportReport = { accounts: 0, rosterItems: 0, privateFragments: 0, vcards: 0, archived: 0, pepNodes: 0, pepItems: 0, offline: 0, blocked: 0, skipped: [], sha1Only: [] };
  floorSeq = storage.archive === undefined ? 0 : await storage.archive.highWater();
  usedSeqs = new Set();
  const seen = new Set<string>();
  const host = async (file: string, el: Element): Promise<void> => {
    const hostDomain = el.attrs.jid ?? '';
    if (!served.has(hostDomain)) {
      report.skipped.push(`${file}: host ${el.attrs.jid ?? '?'} is not a domain of this server (${served.list().join(', ')})`);
      return;
    }
    for (const user of el.getChildren('user', NS_PIE)) await importUser(storage, hostDomain, user, report, iterations, limits, served.primary);
  };
  const readFile = async (file: string): Promise<void> => {
    const abs = path.resolve(file);
    if (seen.has(abs)) return;
    seen.add(abs);
    const doc = parseXml(readFileSync(abs, 'utf8'));
    if (doc.name === 'host' && doc.xmlns === NS_PIE) return host(abs, doc);
    if (doc.name !== 'server-data' || doc.xmlns !== NS_PIE) throw new Error(`${file}: not a XEP-0227 file (expected <server-data xmlns='${NS_PIE}'>)`);
    for (const el of childElements(doc)) {
      if (el.name === 'host' && el.xmlns === NS_PIE) await host(abs, el);
      else if (el.name === 'include' && el.xmlns === NS_XINCLUDE && el.attrs.href !== undefined) {
        // ejabberd: <xi:include href='<stamp>_<host>.xml'/>, relative to the including file.
        await readFile(path.resolve(path.dirname(abs), el.attrs.href));
      }
    }
  };
  for (const file of importFiles(target)) await readFile(file);
  return report;
}
