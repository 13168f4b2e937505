/**
 * Applies the stanza limits of src/limits/stanza-rules.ts on the
 * 'stanza/client' hook (every stanza from a bound client session, before
 * routing). What happens over a limit, and why:
 *
 *   IQ requests per session (limits.iqPerSecond / iqBurst): the IQ gets
 *     <resource-constraint type='wait'/>. An error, not a paused stream: the
 *     flooding session's other traffic (its messages, its acks) keeps
 *     flowing, a well-behaved client retries later, and the answer costs a
 *     fraction of the handler it replaces. Pausing reading is the read
 *     rate's job (bytes); this one is about work per stanza.
 *   MAM rows per account (limits.mamRowsPerSecond / mamRowsBurst): a query
 *     costs its page size (moduleOptions.mam.maxPageSize already caps one
 *     page); over the budget <resource-constraint type='wait'/>, like
 *     Prosody's query rate limit. Per account, not per session: more
 *     resources do not buy more archive reads. The burst lets a client catch
 *     up thousands of messages in pages at once.
 *   Presence broadcasts per session (limits.presencePerMinute /
 *     presenceBurst): held, not refused. Only the latest presence matters,
 *     so a newer one replaces a held one, and the held one is broadcast when
 *     the rate allows: contacts see the final state, a flood fans out at
 *     most the rate.
 *   Subscription requests per account (limits.subscriptionsPerMinute /
 *     subscriptionBurst): <policy-violation type='wait'/> (it is the
 *     roster-spam vector; each request writes two rosters and pushes to
 *     every resource of the contact).
 *   Directed presences per session (limits.directedPresences): a new
 *     target past the limit gets <policy-violation/>; the session
 *     remembers every target and sends each an unavailable at its end.
 *
 * Addresses in limits.exemptAddresses (loopback by default: local tools,
 * the benchmark driver) are not limited. Metric:
 * verona_stanza_limited_total{limit, action="refused"|"held"}.
 */
import type { VeronaModule, ModuleApi } from '../core/module.js';
import type { Session } from '../core/session.js';
import type { Element } from '../xml/element.js';
import { StanzaError } from '../core/errors.js';
import { PRIORITY } from '../core/events.js';
import { chargesFor, directedAllowed, KeyedBuckets, RefusingBucket, type PageSizes } from './stanza-rules.js';

interface SessionLimits {
  iq: RefusingBucket | undefined;
  presence: RefusingBucket | undefined;
  /** The newest presence broadcast waiting for the rate. */
  held: Element | undefined;
  timer: NodeJS.Timeout | undefined;
}

const KEY = 'limits';

function pageSizes(api: ModuleApi): PageSizes {
  const o = api.config.moduleOptions['mam'] ?? {};
  const num = (v: unknown, d: number): number => (typeof v === 'number' && Number.isInteger(v) && v > 0 ? v : d);
  // The MAM module's own defaults (src/modules/mam/index.ts).
  return { defaultPage: num(o['defaultPageSize'], 50), maxPage: num(o['maxPageSize'], 250) };
}

export const stanzaLimitsModule: VeronaModule = {
  name: 'limits',
  load(api: ModuleApi) {
    const l = api.config.limits;
    const exempt = new Set(l.exemptAddresses);
    const pages = pageSizes(api);
    const mam = new KeyedBuckets({ perSecond: l.mamRowsPerSecond, burst: l.mamRowsBurst });
    const subs = new KeyedBuckets({ perSecond: l.subscriptionsPerMinute / 60, burst: l.subscriptionBurst });
    const limited = api.metrics.counter('verona_stanza_limited_total', 'Client stanzas refused or held by a per-session or per-account limit');
    // Refilled account buckets carry no information: drop them so the maps stay as small as the active accounts.
    const sweep = setInterval(() => {
      const now = Date.now();
      mam.prune(now);
      subs.prune(now);
    }, 60_000);
    sweep.unref();
    api.onClose(() => clearInterval(sweep));

    const state = (session: Session): SessionLimits => {
      let s = session.data.get(KEY) as SessionLimits | undefined;
      if (!s) {
        const now = Date.now();
        s = {
          iq: l.iqBurst > 0 ? new RefusingBucket(l.iqPerSecond, l.iqBurst, now) : undefined,
          presence: l.presenceBurst > 0 ? new RefusingBucket(l.presencePerMinute / 60, l.presenceBurst, now) : undefined,
          held: undefined,
          timer: undefined,
        };
        session.data.set(KEY, s);
      }
      return s;
    };

    const refuse = (limit: string, err: StanzaError): never => {
      limited.inc({ limit, action: 'refused' });
      throw err;
    };

    /** Broadcast the held presence once the rate allows it. */
    const releaseLater = (session: Session, s: SessionLimits, waitMs: number): void => {
      if (s.timer) return;
      s.timer = setTimeout(() => {
        s.timer = undefined;
        const el = s.held;
        if (!el || session.closed) return;
        const wait = s.presence?.take(1, Date.now()) ?? 0;
        if (wait > 0) return releaseLater(session, s, wait);
        s.held = undefined;
        void api.router.fromClient(session, el);
      }, waitMs);
      s.timer.unref();
    };

    api.hook('session/ended', ({ session }) => {
      const s = session.data.get(KEY) as SessionLimits | undefined;
      if (s?.timer) clearTimeout(s.timer);
    });

    api.hook('stanza/client', ({ session, stanza, remoteAddress }) => {
      if (exempt.has(remoteAddress)) return;
      const charges = chargesFor(stanza, session.jid.bare.toString(), pages);
      if (charges.length === 0) return;
      const now = Date.now();
      const s = state(session);
      for (const c of charges) {
        switch (c.kind) {
          case 'iq':
            if (s.iq && s.iq.take(c.cost, now) > 0) refuse('iq', new StanzaError('resource-constraint', `Too many requests: at most ${l.iqPerSecond} per second`, 'wait'));
            break;
          case 'mam':
            if (mam.take(session.username, c.cost, now) > 0) {
              refuse('mam', new StanzaError('resource-constraint', `Archive query budget spent: ${l.mamRowsPerSecond} rows per second`, 'wait'));
            }
            break;
          case 'subscription':
            if (subs.take(session.username, c.cost, now) > 0) {
              refuse('subscription', new StanzaError('policy-violation', `Too many subscription requests: at most ${l.subscriptionsPerMinute} per minute`, 'wait'));
            }
            break;
          case 'directed-presence': {
            const v = directedAllowed(session.directedTo, c.target ?? '', l.directedPresences);
            if (!v.ok) refuse('directed-presence', new StanzaError('policy-violation', `Too many directed presences: ${v.reason}`));
            break;
          }
          case 'presence-broadcast': {
            if (!s.presence) break;
            // A newer presence supersedes a held one in any case (order is kept).
            if (s.held === undefined) {
              const wait = s.presence.take(1, now);
              if (wait === 0) break;
              releaseLater(session, s, wait);
            }
            s.held = stanza;
            limited.inc({ limit: 'presence-broadcast', action: 'held' });
            return true;
          }
        }
      }
      return undefined;
    }, PRIORITY.VALIDATE);
  },
};
