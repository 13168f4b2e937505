/**
 * XEP-0313 Message Archive Management (`urn:xmpp:mam:2` and `#extended`)
 * with XEP-0441 preferences, for user archives.
 *
 * Archiving ('message/in' at PRIORITY.ARCHIVE, i.e. after validation and
 * blocking, before delivery): a message between a local account and another
 * entity that archiveVerdict() accepts is stored once in each local party's
 * archive, under different ids:
 * - the recipient's copy under a server-made, time-ordered id;
 * - the sender's copy (local senders only) under `<stream id>-<message id>`
 *   when it came on an MR2 stream (the client computes it before sending),
 *   else under a server-made id;
 * - a message to oneself once, under the sender's id.
 * Both rows are queued in the group commit (src/storage/group-commit.ts) and
 * the commit promises go onto `event.waits`: the router delivers (and stream
 * management acks) only after the commit. The ids are set on the event
 * (`senderArchiveId`, `recipientArchiveId`) only once committed, so a copy
 * never carries a <stanza-id/> that is not in the archive.
 *
 * Failure: a failed sender-side write rejects its wait, so the router marks
 * the message `archiveFailed`, still routes it, and sends
 * <archive-failed xmlns='urn:xmpp:mr2:0' id=…/> to an MR2 sender. A failed
 * recipient-side write is logged and counted; that recipient's copies simply
 * carry no <stanza-id/>. Both count in verona_archive_failures_total.
 *
 * Why 'message/in' and not 'message/out' for the sender's copy: the
 * recipient side may still refuse the message (blocking), and a refused
 * message must not be in either archive (XEP-0313 §6.1). A message to
 * another domain (s2s) has no local recipient side: its sender's copy is
 * archived on 'message/out' (onOutgoing), and the router sends it on after
 * the commit; a message from another domain is archived for the recipient
 * only (no local sender).
 *
 * Queries, form, metadata and preferences: IQs to the account's own bare JID
 * (or without 'to'); anybody else gets `forbidden`.
 *
 * Options (config.moduleOptions.mam): defaultPageSize (50), maxPageSize (250).
 */
import { x, serialize, type Element } from '../../xml/element.js';
import { parseXml } from '../../xml/parser.js';
import { NS } from '../../core/namespaces.js';
import { PRIORITY, type StanzaEvent } from '../../core/events.js';
import { StanzaError } from '../../core/errors.js';
import type { ModuleApi, VeronaModule } from '../../core/module.js';
import type { IqContext } from '../../core/router.js';
import type { Session } from '../../core/session.js';
import type { JID } from '../../jid/jid.js';
import type { Counter } from '../../metrics/metrics.js';
import type { ArchivePrefs, ArchiveRecord, ArchiveStore } from '../../storage/archive.js';
import { ArchiveClock, archiveIdFor, computableId, seqToMs, stampOf } from './ids.js';
import { archiveVerdict, prefsAllow } from './rules.js';
import { finElement, parseQuery, queryForm, runQuery, type QueryLimits } from './query.js';
import { DEFAULT_PREFS, parsePrefs, prefsElement } from './prefs.js';

const NAME = 'mam';

interface MamSessionState {
  /** The session queried its archive before its initial presence (offline delivery then skips archived messages). */
  queriedBeforePresence: boolean;
}

/** Did this session query its archive before sending initial presence? (Read by the offline module.) */
export function queriedArchiveBeforePresence(session: Session): boolean {
  return session.getData<MamSessionState>(NAME)?.queriedBeforePresence === true;
}

/** The roster lookup 'roster' preferences need (the roster module's RosterApi has it). */
interface RosterLookup {
  subscription(owner: string, contact: string): Promise<string | undefined>;
}

function positiveInt(options: Record<string, unknown>, key: string, dflt: number): number {
  const v = options[key];
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`moduleOptions.mam.${key} must be a positive integer (got ${JSON.stringify(v)})`);
  return v;
}

class Archiver {
  /** One clock for every archive row (seq is the table's rowid): the MUC service shares it ('archive-clock'). */
  readonly clock: ArchiveClock;
  private readonly writes: Counter;
  private readonly failures: Counter;
  private readonly skipped: Counter;

  constructor(
    private readonly api: ModuleApi,
    private readonly store: ArchiveStore,
    private readonly prefs: Map<string, ArchivePrefs>,
    highWater: number,
  ) {
    this.clock = new ArchiveClock(highWater);
    this.writes = api.metrics.counter('verona_archive_writes_total', 'Archive rows committed, by side');
    this.failures = api.metrics.counter('verona_archive_failures_total', 'Archive rows that could not be stored, by side');
    this.skipped = api.metrics.counter('verona_archive_skipped_total', 'Messages not archived, by reason');
  }

  /** Queue one row; `done` resolves true when committed, false when preferences (roster) said no; rejects on failure. */
  private enqueue(
    username: string,
    other: JID,
    outgoing: boolean,
    xml: string,
    mkId: (seq: number) => string,
    recipientExists: Promise<boolean> | undefined,
    onPrefsSkip?: () => void,
  ): { id: string; done: Promise<boolean> } | undefined {
    const withBare = other.bare.toString();
    const allow = prefsAllow(this.prefs.get(username), withBare);
    if (allow === false) {
      this.skipped.inc({ reason: 'prefs' });
      onPrefsSkip?.();
      return undefined;
    }
    // seq and id are taken now, in arrival order, even when a lookup comes first.
    const seq = this.clock.next();
    const id = mkId(seq);
    const rec: ArchiveRecord = { username, seq, id, with: withBare, withResource: other.resource, outgoing, stanza: xml };
    const exists = recipientExists ?? Promise.resolve(true);
    const roster = allow === 'roster' ? this.inRoster(username, withBare) : Promise.resolve(true);
    let done: Promise<boolean>;
    if (recipientExists === undefined && allow !== 'roster') done = this.store.append(rec).then(() => true);
    else
      done = Promise.all([exists, roster]).then(([ok, inRoster]) => {
        // A message to an account that does not exist is bounced: it belongs in neither archive.
        if (!ok) {
          this.skipped.inc({ reason: 'no-such-account' });
          return false;
        }
        if (!inRoster) {
          this.skipped.inc({ reason: 'prefs-roster' });
          onPrefsSkip?.();
          return false;
        }
        return this.store.append(rec).then(() => true);
      });
    return { id, done };
  }

  private async inRoster(owner: string, contact: string): Promise<boolean> {
    const roster = this.api.service<RosterLookup>('roster');
    if (!roster) return false;
    return (await roster.subscription(owner, contact)) !== undefined;
  }

  private failed(side: string, username: string, id: string, err: unknown): void {
    this.failures.inc({ side });
    // No stanza content in logs (bodies stay out of info/error level).
    this.api.log.error({ err: err instanceof Error ? err.message : String(err), user: username, id, side }, 'archive write failed');
  }

  /** 'message/in' at PRIORITY.ARCHIVE. */
  onMessage(e: StanzaEvent): boolean {
    const v = archiveVerdict(e.stanza);
    if (!v.ok) {
      this.skipped.inc({ reason: v.reason });
      return false;
    }
    const hosts = this.api.router.hosts;
    const localSender = e.origin !== undefined && hosts.isAccount(e.from);
    const toSelf = localSender && e.to.local === e.from.local && e.to.domain === e.from.domain;
    // Account keys (virtual hosts, src/core/vhosts.ts): the recipient may be on another hosted domain.
    const toKey = hosts.keyOf(e.to);
    // Namespace-complete, so the stored text parses on its own later.
    const xml = serialize(e.stanza, '');
    // With a session bound the recipient account exists; otherwise ask storage (the router bounces
    // messages to unknown accounts after these hooks, and such a message is archived nowhere).
    const recipientExists = toSelf || this.api.sessions.byUser(toKey).length > 0 ? undefined : this.api.storage.accounts.exists(toKey);
    // Consumed below only when a row is queued; a failed lookup must never become an unhandled rejection.
    recipientExists?.catch(() => undefined);

    if (localSender && e.origin) {
      this.archiveSender(e, e.origin, toSelf, xml, recipientExists);
      if (toSelf) return false;
    }

    // The recipient's copy.
    const r = this.enqueue(toKey, e.from, false, xml, archiveIdFor, recipientExists);
    if (r) {
      e.waits.push(
        r.done.then(
          (ok) => {
            if (!ok) return;
            this.writes.inc({ side: 'recipient' });
            e.recipientArchiveId = r.id;
          },
          // Not rethrown: <archive-failed/> tells the *sender* about its own archive.
          (err: unknown) => this.failed('recipient', toKey, r.id, err),
        ),
      );
    }
    return false;
  }

  /**
   * 'message/out' at PRIORITY.ARCHIVE: a local user's message to another domain (s2s, a hosted
   * service) has only one side here, the sender's; the remote server archives its recipient's.
   */
  onOutgoing(e: StanzaEvent): boolean {
    if (this.api.router.hosts.has(e.to.domain) || !e.origin || !this.api.router.hosts.has(e.from.domain)) return false;
    const v = archiveVerdict(e.stanza);
    if (!v.ok) {
      this.skipped.inc({ reason: v.reason });
      return false;
    }
    this.archiveSender(e, e.origin, false, serialize(e.stanza, ''), undefined);
    return false;
  }

  /** The sender's row under its computable id (MR2) or a server-made one; its commit goes on e.waits. */
  private archiveSender(e: StanzaEvent, origin: Session, toSelf: boolean, xml: string, recipientExists: Promise<boolean> | undefined): void {
    const msgId = e.stanza.attrs.id;
    const mkId = origin.mr2 && msgId !== undefined ? () => computableId(origin.streamId, msgId) : archiveIdFor;
    // The sender's own preferences may exclude the contact; an MR2 sender is then told that its
    // computable id is not in its archive (docs/protocol.md §6), so "no news" always means "stored".
    const s = this.enqueue(this.api.router.hosts.keyOf(e.from), toSelf ? e.from : e.to, true, xml, mkId, recipientExists, () => {
      e.senderNotArchived = 'preferences';
    });
    if (s) {
      e.waits.push(
        s.done.then(
          (ok) => {
            if (!ok) return;
            this.writes.inc({ side: toSelf ? 'self' : 'sender' });
            e.senderArchiveId = s.id;
            // A message to oneself is stored once; the other resources' copies carry that id.
            if (toSelf) e.recipientArchiveId = s.id;
          },
          (err: unknown) => {
            this.failed('sender', this.api.router.hosts.keyOf(e.from), s.id, err);
            throw err;
          },
        ),
      );
    }
  }
}

export const mamModule: VeronaModule = {
  name: NAME,
  async load(api) {
    const store = api.storage.archive;
    if (!store) {
      api.log.warn('storage backend has no archive store; MAM is disabled');
      return;
    }
    const limits: QueryLimits = {
      defaultMax: positiveInt(api.options, 'defaultPageSize', 50),
      maxMax: positiveInt(api.options, 'maxPageSize', 250),
    };
    if (limits.defaultMax > limits.maxMax) throw new Error('moduleOptions.mam.defaultPageSize must not exceed maxPageSize');
    const prefs = await store.allPrefs();
    const archiver = new Archiver(api, store, prefs, await store.highWater());
    api.provide('archive-clock', archiver.clock);
    const queries = api.metrics.counter('verona_mam_queries_total', 'MAM queries answered, by kind');

    // XEP-0313 puts the feature on the account's JID; clients also look on the server's
    // (Profanity 0.13 asks the domain only and reports "Server doesn't support MAM"; ejabberd lists
    // both). Listing it on both costs nothing and is true: every account has an archive.
    api.discoFeature(NS.MAM, 'account');
    api.discoFeature(NS.MAM_EXTENDED, 'account');
    api.discoFeature(NS.MAM, 'server');
    api.discoFeature(NS.MAM_EXTENDED, 'server');

    api.hook('message/in', (e) => archiver.onMessage(e), PRIORITY.ARCHIVE);
    // Messages to other domains: only the sender's side is ours (see onOutgoing).
    api.hook('message/out', (e) => archiver.onOutgoing(e), PRIORITY.ARCHIVE);

    const ownArchive = (ctx: IqContext): string => {
      if (!ctx.self || !ctx.origin) throw new StanzaError('forbidden', 'Only the account itself may use its archive');
      return api.router.hosts.keyOf(ctx.to);
    };

    const query = async (ctx: IqContext): Promise<Element> => {
      const username = ownArchive(ctx);
      const origin = ctx.origin as Session;
      // Marked before the first await: a pipelined initial presence right after the query sees it.
      if (!origin.available && !queriedArchiveBeforePresence(origin)) origin.data.set(NAME, { queriedBeforePresence: true } satisfies MamSessionState);
      const plan = parseQuery(ctx.payload, username, limits);
      // Rows still queued for the group commit become visible to this query.
      await store.flush();
      const outcome = await runQuery(store, plan);
      const items = plan.flip ? outcome.items.slice().reverse() : outcome.items;
      let n = 0;
      for (const rec of items) {
        let inner: Element;
        try {
          inner = parseXml(rec.stanza);
        } catch (err) {
          api.log.error({ err: String(err), user: username, id: rec.id }, 'unreadable archive row skipped');
          continue;
        }
        origin.send(
          x('message', NS.CLIENT, { to: ctx.from.toString(), id: `${ctx.stanza.attrs.id ?? 'mam'}-${++n}` }, [
            x('result', NS.MAM, { queryid: plan.queryId, id: rec.id }, [
              x('forwarded', NS.FORWARD, {}, [x('delay', NS.DELAY, { stamp: stampOf(seqToMs(rec.seq)) }), inner]),
            ]),
          ]),
        );
      }
      queries.inc({ kind: plan.ids ? 'ids' : plan.direction });
      return finElement(outcome);
    };

    api.iq('account', 'set', NS.MAM, async (ctx) => {
      switch (ctx.payload.name) {
        case 'query':
          return query(ctx);
        case 'prefs': {
          const username = ownArchive(ctx);
          const p = parsePrefs(ctx.payload);
          await store.setPrefs(username, p);
          prefs.set(username, p);
          return prefsElement(p);
        }
        default:
          throw new StanzaError('feature-not-implemented');
      }
    });

    api.iq('account', 'get', NS.MAM, async (ctx) => {
      const username = ownArchive(ctx);
      switch (ctx.payload.name) {
        case 'query':
          queries.inc({ kind: 'form' });
          return queryForm();
        case 'metadata': {
          await store.flush();
          const b = await store.bounds(username);
          queries.inc({ kind: 'metadata' });
          if (!b) return x('metadata', NS.MAM);
          return x('metadata', NS.MAM, {}, [
            x('start', NS.MAM, { id: b.first.id, timestamp: stampOf(seqToMs(b.first.seq)) }),
            x('end', NS.MAM, { id: b.last.id, timestamp: stampOf(seqToMs(b.last.seq)) }),
          ]);
        }
        case 'prefs':
          return prefsElement(prefs.get(username) ?? DEFAULT_PREFS);
        default:
          throw new StanzaError('feature-not-implemented');
      }
    });

    // Commit what is queued before storage closes.
    api.onClose(() => store.flush());
  },
};
