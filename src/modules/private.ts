/**
 * XEP-0049 Private XML Storage (jabber:iq:private): an account stores XML
 * fragments only it can read back, one per (element name, namespace).
 *
 *   set  every child of <query/> replaces what is stored under its name and
 *        namespace (several children in one set are stored together); an empty
 *        child (no attributes, no content) deletes the entry
 *   get  each child of <query/> is answered with what is stored under its
 *        name and namespace, or echoed back empty when nothing is
 *
 * Errors (XEP-0049 §3): another account's storage -> forbidden; a set
 * without children -> not-acceptable; a get without a child -> bad-request
 * ("Bad Format" in the XEP); a child without its own namespace (in
 * jabber:iq:private) or in a reserved one (jabber:client, jabber:server,
 * the stream namespaces) -> not-acceptable.
 *
 * Stored serialized in the key/value store (store 'private', key
 * '{namespace}name'), so deleteUserData removes it with the account.
 *
 * Options (moduleOptions.private): maxEntries (100) — most fragments per
 * account; maxEntrySize (65536) — largest fragment in bytes.
 */
import { NS } from '../core/namespaces.js';
import { StanzaError } from '../core/errors.js';
import type { VeronaModule } from '../core/module.js';
import { serialize, x, type Element } from '../xml/element.js';
import { parseXml } from '../xml/parser.js';

export const NS_PRIVATE = 'jabber:iq:private';
const STORE = 'private';

/** Namespaces no fragment may claim (XEP-0049 §3). */
const RESERVED = new Set<string>([NS_PRIVATE, NS.CLIENT, 'jabber:server', NS.STREAM, '']);

export interface PrivateOptions {
  maxEntries: number;
  maxEntrySize: number;
}

export function privateOptions(options: Record<string, unknown>): PrivateOptions {
  const known = ['maxEntries', 'maxEntrySize'];
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) throw new Error(`moduleOptions.private.${k}: unknown option (known: ${known.join(', ')})`);
  }
  const int = (k: string, d: number): number => {
    const v = options[k];
    if (v === undefined) return d;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) {
      throw new Error(`moduleOptions.private.${k} must be a positive integer (got ${JSON.stringify(v)})`);
    }
    return v;
  };
  return { maxEntries: int('maxEntries', 100), maxEntrySize: int('maxEntrySize', 65536) };
}

/** The storage key of a fragment: Clark notation. */
export function privateKey(el: Element): string {
  return `{${el.xmlns}}${el.name}`;
}

function checkNamespace(el: Element): void {
  if (RESERVED.has(el.xmlns)) {
    throw new StanzaError('not-acceptable', `<${el.name}/> needs a namespace of its own (not ${el.xmlns || 'none'})`);
  }
}

function isEmpty(el: Element): boolean {
  return el.children.every((c) => typeof c === 'string' && c.trim() === '') && Object.keys(el.attrs).every((k) => k === 'xmlns');
}

/** What the private module offers others (the bookmarks conversion watches storage:bookmarks). */
export interface PrivateService {
  /** Called after a set by the account itself, with the keys written (undefined value: deleted). */
  onChange(fn: (owner: string, writes: ReadonlyMap<string, string | undefined>) => void): void;
}

export const privateModule: VeronaModule = {
  name: 'private',
  load(api) {
    const opts = privateOptions(api.options);
    const listeners: Array<(owner: string, writes: ReadonlyMap<string, string | undefined>) => void> = [];
    api.provide('private', { onChange: (fn) => void listeners.push(fn) } satisfies PrivateService);
    api.discoFeature(NS_PRIVATE);

    api.iq('account', 'get', NS_PRIVATE, async (ctx) => {
      if (!ctx.self || !ctx.origin) throw new StanzaError('forbidden', "Private XML storage is readable only by its owner");
      if (ctx.payload.name !== 'query') throw new StanzaError('bad-request', 'Expected <query/>');
      const wanted = ctx.payload.elements();
      if (wanted.length === 0) throw new StanzaError('bad-request', 'Name the fragment to get');
      for (const w of wanted) checkNamespace(w);
      const owner = ctx.origin.username;
      const out = x('query', NS_PRIVATE);
      for (const w of wanted) {
        const stored = await api.storage.kv.get(owner, STORE, privateKey(w));
        let el: Element | undefined;
        if (stored !== undefined) {
          try {
            el = parseXml(stored);
          } catch (err) {
            api.log.warn({ err, user: owner, key: privateKey(w) }, 'stored private XML unreadable');
          }
        }
        out.append(el ?? x(w.name, w.xmlns));
      }
      return out;
    });

    api.iq('account', 'set', NS_PRIVATE, async (ctx) => {
      if (!ctx.self || !ctx.origin) throw new StanzaError('forbidden', "Private XML storage is writable only by its owner");
      if (ctx.payload.name !== 'query') throw new StanzaError('bad-request', 'Expected <query/>');
      const frags = ctx.payload.elements();
      if (frags.length === 0) throw new StanzaError('not-acceptable', 'Nothing to store');
      // Everything is checked before anything is written: a refused set changes nothing.
      const writes = new Map<string, string | undefined>();
      for (const f of frags) {
        checkNamespace(f);
        if (isEmpty(f)) {
          writes.set(privateKey(f), undefined);
          continue;
        }
        const text = serialize(f, '');
        if (Buffer.byteLength(text, 'utf8') > opts.maxEntrySize) {
          throw new StanzaError('not-acceptable', `<${f.name}/> is larger than ${opts.maxEntrySize} bytes`);
        }
        writes.set(privateKey(f), text);
      }
      const owner = ctx.origin.username;
      const existing = new Set(await api.storage.kv.keys(owner, STORE));
      let count = existing.size;
      for (const [k, v] of writes) {
        if (v === undefined && existing.has(k)) count--;
        else if (v !== undefined && !existing.has(k)) count++;
      }
      if (count > opts.maxEntries) {
        throw new StanzaError('resource-constraint', `At most ${opts.maxEntries} private XML fragments per account`);
      }
      for (const [k, v] of writes) await api.storage.kv.set(owner, STORE, k, v);
      for (const fn of listeners) fn(owner, writes);
      return undefined;
    });
  },
};
