/**
 * XEP-0054 vcard-temp: each account stores one vCard, which anyone may read
 * (it is a public profile) and only the account itself may change.
 *
 *   get, no `to` or own bare JID   the own vCard
 *   get, another account's bare    that account's vCard (service-unavailable when there is no such account)
 *   set, own                       replaces it; an empty <vCard/> deletes it
 *   set, another account           forbidden
 *
 * With nothing stored the answer is an empty <vCard/> (XEP-0054 §3.1 allows
 * this or item-not-found; clients handle the empty one best). A blocked
 * requester never gets here: blocking answers its IQ first.
 *
 * Stored serialized in the key/value store (store 'vcard', key ''), so
 * deleteUserData removes it with the account.
 *
 * Options (moduleOptions.vcard): maxSize (bytes of the serialized vCard,
 * 131072) — larger sets get not-acceptable.
 */
import { StanzaError } from '../core/errors.js';
import type { VeronaModule } from '../core/module.js';
import { serialize, x, type Element } from '../xml/element.js';
import { parseXml } from '../xml/parser.js';

export const NS_VCARD = 'vcard-temp';
const STORE = 'vcard';
const KEY = '';

export interface VcardOptions {
  maxSize: number;
}

export function vcardOptions(options: Record<string, unknown>): VcardOptions {
  for (const k of Object.keys(options)) {
    if (k !== 'maxSize') throw new Error(`moduleOptions.vcard.${k}: unknown option (known: maxSize)`);
  }
  const v = options.maxSize;
  if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < 1)) {
    throw new Error(`moduleOptions.vcard.maxSize must be a positive integer (got ${JSON.stringify(v)})`);
  }
  return { maxSize: (v as number | undefined) ?? 131072 };
}

/** An element with no children and no attributes other than its namespace. */
function isEmpty(el: Element): boolean {
  return el.children.every((c) => typeof c === 'string' && c.trim() === '') && Object.keys(el.attrs).every((k) => k === 'xmlns');
}

/** What the vcard module offers others (the avatar conversion watches PHOTO). */
export interface VcardService {
  /** Called after the account itself set (or, with undefined, deleted) its vCard. */
  onChange(fn: (owner: string, vcard: Element | undefined) => void): void;
}

export const vcardModule: VeronaModule = {
  name: 'vcard',
  load(api) {
    const opts = vcardOptions(api.options);
    const listeners: Array<(owner: string, vcard: Element | undefined) => void> = [];
    api.provide('vcard', { onChange: (fn) => void listeners.push(fn) } satisfies VcardService);
    api.discoFeature(NS_VCARD);
    api.discoFeature(NS_VCARD, 'account');

    api.iq('account', 'get', NS_VCARD, async (ctx) => {
      if (ctx.payload.name !== 'vCard') throw new StanzaError('bad-request', 'Expected <vCard/>');
      const owner = api.router.hosts.keyOf(ctx.to);
      // RFC 6121 §8.5.1: an IQ to an account that does not exist gets service-unavailable.
      if (!ctx.self && !(await api.storage.accounts.exists(owner))) throw new StanzaError('service-unavailable');
      const stored = await api.storage.kv.get(owner, STORE, KEY);
      if (stored === undefined) return x('vCard', NS_VCARD);
      try {
        return parseXml(stored);
      } catch (err) {
        api.log.warn({ err, user: owner }, 'stored vCard unreadable');
        return x('vCard', NS_VCARD);
      }
    });

    api.iq('account', 'set', NS_VCARD, async (ctx) => {
      if (!ctx.self || !ctx.origin) throw new StanzaError('forbidden', 'Only the account itself may change its vCard');
      if (ctx.payload.name !== 'vCard') throw new StanzaError('bad-request', 'Expected <vCard/>');
      const owner = ctx.origin.username;
      if (isEmpty(ctx.payload)) {
        await api.storage.kv.set(owner, STORE, KEY, undefined);
        for (const fn of listeners) fn(owner, undefined);
        return undefined;
      }
      // Serialized on its own (parent namespace ''), so it parses back with its namespaces.
      const text = serialize(ctx.payload, '');
      if (Buffer.byteLength(text, 'utf8') > opts.maxSize) {
        throw new StanzaError('not-acceptable', `The vCard is larger than ${opts.maxSize} bytes`);
      }
      await api.storage.kv.set(owner, STORE, KEY, text);
      for (const fn of listeners) fn(owner, ctx.payload);
      return undefined;
    });
  },
};
