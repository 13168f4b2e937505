/**
 * Roster versioning (XEP-0237) decisions as pure functions. A version string
 * is `<epoch>-<counter>`: the epoch changes when an account's roster starts
 * anew (account deleted and created again), so a cached version of an old
 * roster never matches.
 */
import type { RosterVersion } from '../../storage/roster.js';

export function formatVersion(epoch: string, counter: number): string {
  return `${epoch}-${counter}`;
}

export function parseVersion(ver: string): { epoch: string; counter: number } | undefined {
  const i = ver.lastIndexOf('-');
  if (i <= 0) return undefined;
  const n = ver.slice(i + 1);
  if (!/^(0|[1-9]\d{0,14})$/.test(n)) return undefined;
  return { epoch: ver.slice(0, i), counter: Number(n) };
}

export type RosterGetAnswer =
  /** The client's copy is current: empty result, no pushes (XEP-0237 §2.3). */
  | { kind: 'current'; reason: string }
  /** Empty result, then one push per change since the client's version (XEP-0237 §2.4). */
  | { kind: 'diff'; since: number; reason: string }
  /** The whole roster with the current version. */
  | { kind: 'full'; reason: string };

/**
 * What to answer a roster get that carries `clientVer` (undefined: the client
 * does not use versioning; '': it has no cached copy).
 */
export function decideRosterGet(clientVer: string | undefined, current: RosterVersion): RosterGetAnswer {
  if (clientVer === undefined) return { kind: 'full', reason: 'no-versioning' };
  if (clientVer === '') return { kind: 'full', reason: 'no-cached-copy' };
  const v = parseVersion(clientVer);
  if (!v || v.epoch !== current.epoch) return { kind: 'full', reason: 'unknown-version' };
  if (v.counter === current.counter) return { kind: 'current', reason: 'up-to-date' };
  if (v.counter > current.counter) return { kind: 'full', reason: 'version-from-the-future' };
  if (v.counter < current.floor) return { kind: 'full', reason: 'changes-pruned' };
  return { kind: 'diff', since: v.counter, reason: 'changes-since' };
}
