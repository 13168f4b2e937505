/**
 * XEP-0115 Entity Capabilities (version 1.6): the verification string of a
 * disco#info answer (§5.1), the checks on that answer (§5.4), and a cache of
 * features per verified `ver` (in memory, and in the pubsub store when the
 * backend has one, so a restart does not re-query every client).
 *
 * The cache is keyed by (hash, ver) only after the answer hashes to `ver`:
 * a client cannot poison what other clients with the same `ver` are thought
 * to support. Legacy caps (no `hash` attribute, §8.4) cannot be verified and
 * are never cached; the answer is used for the one session that sent it.
 */
import { createHash } from 'node:crypto';
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import type { CapsRecord, PubsubStore } from '../../storage/pubsub.js';

export const NS_CAPS = NS.CAPS;
const NS_DATA = NS.DATA_FORMS;

/** The `<c/>` of a presence. */
export interface CapsAnnouncement {
  node: string;
  ver: string;
  /** IANA hash name ('sha-1'); undefined for legacy caps. */
  hash: string | undefined;
}

/** IANA hash function text names (XEP-0115 §4) -> Node's names; sha-1 is the one every client uses. */
const HASHES: Record<string, string> = {
  'sha-1': 'sha1',
  'sha-224': 'sha224',
  'sha-256': 'sha256',
  'sha-384': 'sha384',
  'sha-512': 'sha512',
};

export function supportedHash(name: string): boolean {
  return Object.hasOwn(HASHES, name);
}

export function parseCaps(presence: Element): CapsAnnouncement | undefined {
  const c = presence.getChild('c', NS_CAPS);
  if (!c) return undefined;
  const node = c.attrs.node;
  const ver = c.attrs.ver;
  if (!node || !ver) return undefined;
  return { node, ver, hash: c.attrs.hash };
}

/** "i;octet" collation (RFC 4790), which §5.1 requires: compare the UTF-8 bytes, not UTF-16 units. */
export function octetCompare(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

export interface DiscoIdentityData {
  category: string;
  type: string;
  lang: string;
  name: string;
}

export interface DiscoForm {
  formType: string;
  /** var -> values, FORM_TYPE excluded. */
  fields: Array<{ var: string; values: string[] }>;
}

export interface DiscoInfoData {
  identities: DiscoIdentityData[];
  features: string[];
  forms: DiscoForm[];
}

export type ParseResult = { ok: true; info: DiscoInfoData } | { ok: false; reason: string };

/**
 * Read a disco#info `<query/>` and apply the §5.4 checks: duplicate
 * identities, duplicate features, two forms with one FORM_TYPE, or a
 * FORM_TYPE with differing values make the whole answer unusable; a form
 * whose FORM_TYPE is not hidden, and forms without FORM_TYPE, are left out.
 */
export function parseDiscoInfo(query: Element): ParseResult {
  const identities: DiscoIdentityData[] = [];
  const seenId = new Set<string>();
  for (const i of query.getChildren('identity', NS.DISCO_INFO)) {
    const id = { category: i.attrs.category ?? '', type: i.attrs.type ?? '', lang: i.attrs['xml:lang'] ?? '', name: i.attrs.name ?? '' };
    const k = `${id.category}/${id.type}/${id.lang}/${id.name}`;
    if (seenId.has(k)) return { ok: false, reason: 'duplicate-identity' };
    seenId.add(k);
    identities.push(id);
  }
  const features: string[] = [];
  const seenF = new Set<string>();
  for (const f of query.getChildren('feature', NS.DISCO_INFO)) {
    const v = f.attrs.var ?? '';
    if (seenF.has(v)) return { ok: false, reason: 'duplicate-feature' };
    seenF.add(v);
    features.push(v);
  }
  const forms: DiscoForm[] = [];
  const seenT = new Set<string>();
  for (const form of query.getChildren('x', NS_DATA)) {
    const fields = form.getChildren('field', NS_DATA);
    const ft = fields.find((f) => f.attrs.var === 'FORM_TYPE');
    if (!ft) continue;
    const ftValues = ft.getChildren('value', NS_DATA).map((v) => v.text());
    if (new Set(ftValues).size > 1) return { ok: false, reason: 'form-type-values-differ' };
    if (ft.attrs.type !== 'hidden') continue;
    const formType = ftValues[0] ?? '';
    if (seenT.has(formType)) return { ok: false, reason: 'duplicate-form-type' };
    seenT.add(formType);
    forms.push({
      formType,
      fields: fields
        .filter((f) => f.attrs.var !== 'FORM_TYPE')
        .map((f) => ({ var: f.attrs.var ?? '', values: f.getChildren('value', NS_DATA).map((v) => v.text()) })),
    });
  }
  return { ok: true, info: { identities, features, forms } };
}

/** The §5.1 string S, before hashing. */
export function verificationString(info: DiscoInfoData): string {
  let s = '';
  const ids = [...info.identities].sort(
    (a, b) => octetCompare(a.category, b.category) || octetCompare(a.type, b.type) || octetCompare(a.lang, b.lang),
  );
  for (const i of ids) s += `${i.category}/${i.type}/${i.lang}/${i.name}<`;
  for (const f of [...info.features].sort(octetCompare)) s += `${f}<`;
  for (const form of [...info.forms].sort((a, b) => octetCompare(a.formType, b.formType))) {
    s += `${form.formType}<`;
    for (const field of [...form.fields].sort((a, b) => octetCompare(a.var, b.var))) {
      s += `${field.var}<`;
      for (const v of [...field.values].sort(octetCompare)) s += `${v}<`;
    }
  }
  return s;
}

/** The `ver` of a disco#info answer with the given IANA hash name (throws for an unsupported one). */
export function capsVer(info: DiscoInfoData, hash = 'sha-1'): string {
  const algo = HASHES[hash];
  if (!algo) throw new Error(`unsupported caps hash ${hash}`);
  return createHash(algo).update(verificationString(info), 'utf8').digest('base64');
}

export type VerifyResult = { ok: true; record: CapsRecord } | { ok: false; reason: string };

/** Check a disco#info answer against the announced caps (§5.4). */
export function verifyCaps(query: Element, caps: CapsAnnouncement): VerifyResult {
  const parsed = parseDiscoInfo(query);
  if (!parsed.ok) return parsed;
  const record: CapsRecord = {
    features: parsed.info.features,
    identities: parsed.info.identities.map((i) => `${i.category}/${i.type}`),
  };
  if (caps.hash === undefined) return { ok: true, record }; // legacy: nothing to verify against
  if (!supportedHash(caps.hash)) return { ok: false, reason: 'unsupported-hash' };
  if (capsVer(parsed.info, caps.hash) !== caps.ver) return { ok: false, reason: 'ver-mismatch' };
  return { ok: true, record };
}

/** Nodes a feature list asks notifications for (XEP-0163 §4.4: `NODE+notify`). */
export function notifyNodes(features: Iterable<string>): Set<string> {
  const out = new Set<string>();
  for (const f of features) if (f.endsWith('+notify') && f.length > 7) out.add(f.slice(0, -7));
  return out;
}

/** Sends disco#info (with `node`) to a full JID and returns the reply stanza. */
export type DiscoQuery = (to: string, node: string) => Promise<Element>;

export interface CapsCacheOptions {
  /** Most (hash, ver) entries kept in memory (the oldest go first). */
  maxEntries: number;
}

/**
 * Features per verified caps ver. One query per unknown ver at a time: other
 * sessions announcing the same ver wait for it, and ask their own client
 * only when that answer turned out unusable.
 */
export class CapsCache {
  private readonly mem = new Map<string, CapsRecord>();
  private readonly inflight = new Map<string, Promise<CapsRecord | undefined>>();
  /** Counts by outcome, for metrics and tests. */
  onOutcome: ((outcome: string) => void) | undefined;

  constructor(
    private readonly query: DiscoQuery,
    private readonly store: PubsubStore | undefined,
    private readonly opts: CapsCacheOptions,
    private readonly log: (msg: string, extra: Record<string, unknown>) => void,
  ) {}

  private remember(k: string, rec: CapsRecord): void {
    this.mem.delete(k);
    this.mem.set(k, rec);
    while (this.mem.size > this.opts.maxEntries) {
      const first = this.mem.keys().next();
      if (first.done) break;
      this.mem.delete(first.value);
    }
  }

  /** Known without asking anybody (memory or store). */
  async known(caps: CapsAnnouncement): Promise<CapsRecord | undefined> {
    if (caps.hash === undefined) return undefined;
    const k = `${caps.hash}\0${caps.ver}`;
    const m = this.mem.get(k);
    if (m) return m;
    const s = await this.store?.capsGet(caps.hash, caps.ver);
    if (s) this.remember(k, s);
    return s;
  }

  /** The features behind `caps`, asking `fullJid` when the ver is unknown; undefined when unusable. */
  async resolve(fullJid: string, caps: CapsAnnouncement): Promise<CapsRecord | undefined> {
    if (caps.hash !== undefined && !supportedHash(caps.hash)) {
      this.onOutcome?.('unsupported-hash');
      return undefined;
    }
    const cached = await this.known(caps);
    if (cached) {
      this.onOutcome?.('cached');
      return cached;
    }
    if (caps.hash === undefined) return this.ask(fullJid, caps);
    const k = `${caps.hash}\0${caps.ver}`;
    const pending = this.inflight.get(k);
    if (pending) {
      const r = await pending;
      if (r) return r;
    }
    const p = this.ask(fullJid, caps);
    this.inflight.set(k, p);
    try {
      const r = await p;
      if (r) {
        this.remember(k, r);
        await this.store?.capsPut(caps.hash, caps.ver, r);
      }
      return r;
    } finally {
      if (this.inflight.get(k) === p) this.inflight.delete(k);
    }
  }

  private async ask(fullJid: string, caps: CapsAnnouncement): Promise<CapsRecord | undefined> {
    let reply: Element;
    try {
      reply = await this.query(fullJid, `${caps.node}#${caps.ver}`);
    } catch (err) {
      this.onOutcome?.('no-answer');
      this.log('caps query failed', { jid: fullJid, err: (err as Error).message });
      return undefined;
    }
    const q = reply.attrs.type === 'result' ? reply.getChild('query', NS.DISCO_INFO) : undefined;
    if (!q) {
      this.onOutcome?.('error-answer');
      return undefined;
    }
    const v = verifyCaps(q, caps);
    if (!v.ok) {
      this.onOutcome?.(v.reason);
      this.log('caps answer rejected', { jid: fullJid, reason: v.reason, ver: caps.ver });
      return undefined;
    }
    this.onOutcome?.(caps.hash === undefined ? 'legacy' : 'verified');
    return v.record;
  }
}

/** The disco#info request the server sends for a caps node#ver. */
export function discoInfoRequest(to: string, node: string): Element {
  return x('iq', NS.CLIENT, { type: 'get', to }, [x('query', NS.DISCO_INFO, { node })]);
}
