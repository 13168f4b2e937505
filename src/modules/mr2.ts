/**
 * Message Routing 2.0 (`urn:xmpp:mr2:0`), Verona's stream feature for
 * "every device holds the whole conversation" (docs/protocol.md).
 *
 * - Offered in the post-auth stream features. `<enable/>` after SASL and
 *   before bind answers `<enabled/>`; before auth, after bind (or resume),
 *   or a second time it answers `<failed>` with `<unexpected-request/>` and
 *   the stream goes on. There is no disable.
 * - The flag moves from the stream to the Session at bind ('session/bound'),
 *   so it survives XEP-0198 resumption with the session.
 * - Messages sent on an MR2 stream must carry an `id` that is new on that
 *   stream: the sender's archive id is `<stream id>-<message id>`, which the
 *   client computes before sending. A message without id is bounced with
 *   `bad-request`, a reused id with `conflict`; neither is routed or archived
 *   (this hook runs at PRIORITY.VALIDATE, before archiving).
 *
 * Routing itself (who gets which copy) is the fork table in
 * src/core/routing.ts, which reads `session.mr2`.
 *
 * Options (config.moduleOptions.mr2): rememberIds (1000) - message ids
 * remembered per stream for the reuse check. Older ids fall out; a reuse
 * beyond that window is caught by the archive's unique index instead (the
 * client then gets `<archive-failed/>` for that id).
 */
import { x } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { PRIORITY } from '../core/events.js';
import { StanzaError } from '../core/errors.js';
import type { VeronaModule } from '../core/module.js';
import type { Session } from '../core/session.js';
import { messageType } from '../core/routing.js';

const NAME = 'mr2';

/** cyrb53: a fast 53-bit string hash; ids are remembered as numbers to keep per-stream memory small. */
function hash53(s: string): number {
  let h1 = 0xdeadbeef;
  let h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/**
 * The last `capacity` ids seen, first in first out. Holds 53-bit hashes: a
 * false "already used" needs a hash collision among at most `capacity` ids
 * (odds about capacity / 2^53 per message, i.e. never in practice).
 *
 * Memory matters (one per sending MR2 session): the hashes live unboxed in
 * an open-addressing table (a Float64Array, linear probing, at most half
 * full, grown on demand) and a ring of the same doubles for eviction, about
 * 24 bytes per remembered id; a Set of numbers costs nearly three times that.
 */
export class RecentIds {
  /** Slots hold hash + 1 (0 = empty). */
  private table = new Float64Array(16);
  private mask = 15;
  private count = 0;
  private readonly ring: number[] = [];
  private next = 0;

  constructor(readonly capacity: number) {}

  private find(key: number): number {
    let i = (key >>> 0) & this.mask;
    for (;;) {
      const v = this.table[i] as number;
      if (v === 0 || v === key) return i;
      i = (i + 1) & this.mask;
    }
  }

  private grow(): void {
    const old = this.table;
    this.table = new Float64Array(old.length * 2);
    this.mask = this.table.length - 1;
    for (const v of old) if (v !== 0) this.table[this.find(v)] = v;
  }

  /** Linear-probing deletion: shift the following run back so that no lookup stops early. */
  private remove(key: number): void {
    let i = this.find(key);
    if (this.table[i] === 0) return;
    this.table[i] = 0;
    this.count--;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const v = this.table[j] as number;
      if (v === 0) return;
      const home = (v >>> 0) & this.mask;
      // Move v back to the hole unless its home lies cyclically in (i, j].
      const stays = i <= j ? home > i && home <= j : home > i || home <= j;
      if (!stays) {
        this.table[i] = v;
        this.table[j] = 0;
        i = j;
      }
    }
  }

  has(id: string): boolean {
    const key = hash53(id) + 1;
    return this.table[this.find(key)] === key;
  }

  /** Returns false when the id was already there. */
  add(id: string): boolean {
    const key = hash53(id) + 1;
    if (this.table[this.find(key)] === key) return false;
    if (this.ring.length < this.capacity) this.ring.push(key);
    else {
      this.remove(this.ring[this.next] as number);
      this.ring[this.next] = key;
      this.next = (this.next + 1) % this.capacity;
    }
    if ((this.count + 1) * 2 > this.table.length) this.grow();
    this.table[this.find(key)] = key;
    this.count++;
    return true;
  }

  get size(): number {
    return this.count;
  }
}

interface StreamIds {
  streamId: string;
  ids: RecentIds;
}

/** What a message from an MR2 stream must satisfy; exported for tests. Returns the error to bounce with, if any. */
export function checkMr2Id(session: Session, id: string | undefined, capacity: number): StanzaError | undefined {
  if (id === undefined || id === '') return new StanzaError('bad-request', 'Messages on an MR2 stream need an id (the archive id is <stream id>-<message id>)');
  let st = session.getData<StreamIds>(NAME);
  // After resumption the stream id changes, and with it the archive id prefix: ids start afresh.
  if (!st || st.streamId !== session.streamId) {
    st = { streamId: session.streamId, ids: new RecentIds(capacity) };
    session.data.set(NAME, st);
  }
  if (!st.ids.add(id)) return new StanzaError('conflict', 'This message id was already used on this stream');
  return undefined;
}

function failed(): ReturnType<typeof x> {
  return x('failed', NS.MR2, {}, [x('unexpected-request', NS.STANZA_ERRORS)]);
}

export const mr2Module: VeronaModule = {
  name: NAME,
  load(api) {
    const raw = api.options.rememberIds;
    if (raw !== undefined && (typeof raw !== 'number' || !Number.isInteger(raw) || raw < 1)) {
      throw new Error(`moduleOptions.mr2.rememberIds must be a positive integer (got ${JSON.stringify(raw)})`);
    }
    const capacity = (raw as number | undefined) ?? 1000;
    const enabled = api.metrics.counter('verona_mr2_enabled_total', 'MR2 enable requests, by result');
    const rejected = api.metrics.counter('verona_mr2_rejected_messages_total', 'Messages from MR2 streams bounced, by reason');

    api.discoFeature(NS.MR2);

    api.hook('stream/features', (e) => {
      if (e.stage === 'post-auth') e.features.append(x('mr2', NS.MR2));
    });

    api.hook('stream/nonza', (e) => {
      if (e.el.xmlns !== NS.MR2) return false;
      if (e.el.name !== 'enable') {
        // There is no <disable/> (the feature cannot be turned off); anything else is unexpected too.
        enabled.inc({ result: 'unexpected-element' });
        e.stream.write(failed());
        return true;
      }
      const s = e.stream;
      if (!s.authenticated || s.session !== undefined || s.data.get(NAME) === true) {
        enabled.inc({ result: !s.authenticated ? 'before-auth' : s.session ? 'after-bind' : 'twice' });
        s.write(failed());
        return true;
      }
      s.data.set(NAME, true);
      enabled.inc({ result: 'enabled' });
      s.write(x('enabled', NS.MR2));
      return true;
    });

    api.hook('session/bound', (e) => {
      if (e.session.stream && (e.session.stream as { data?: Map<string, unknown> }).data?.get(NAME) === true) {
        e.session.mr2 = true;
      }
    });

    api.hook(
      'message/out',
      (e) => {
        const s = e.origin;
        if (!s || !s.mr2) return false;
        // Error replies echo the id of the stanza they answer; they are never archived or forked.
        if (messageType(e.stanza) === 'error') return false;
        const err = checkMr2Id(s, e.stanza.attrs.id, capacity);
        if (err) {
          rejected.inc({ reason: err.condition });
          throw err;
        }
        return false;
      },
      PRIORITY.VALIDATE,
    );
  },
};
