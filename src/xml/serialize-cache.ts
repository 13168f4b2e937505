/**
 * Serialize each distinct copy once: a message forked to five sessions is
 * one Element object and one string. Keyed weakly by the element so copies
 * are collected with it. Elements must not be mutated after their first send.
 */
import { Element, serialize } from './element.js';

const caches = new Map<string, WeakMap<Element, string>>();

export function serializeOnce(el: Element, parentNs: string): string {
  let cache = caches.get(parentNs);
  if (!cache) {
    cache = new WeakMap();
    caches.set(parentNs, cache);
  }
  let s = cache.get(el);
  if (s === undefined) {
    s = serialize(el, parentNs);
    cache.set(el, s);
  }
  return s;
}
