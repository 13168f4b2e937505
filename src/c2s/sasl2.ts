/**
 * XEP-0388 Extensible SASL Profile (urn:xmpp:sasl:2, 1.0) with XEP-0386
 * Bind 2 (urn:xmpp:bind:0, 1.0) and XEP-0484 FAST (urn:xmpp:fast:0, 0.1):
 * a phone is authenticated, bound, has SM/MR2/carbons/CSI set and knows where
 * its archive ends, in one round trip (with a FAST token: no PBKDF2, no
 * SCRAM round trips).
 *
 * - <authenticate> carries the mechanism, <initial-response>, <user-agent id>,
 *   and inline requests: <bind/> (Bind2), <resume/> (SM), <request-token/>
 *   and <fast/> (FAST). No stream restart after <success/>.
 * - Bind2 derives the resource from the client's tag and a hash of its
 *   user-agent id, so it is stable per device: a new session of the same
 *   user agent replaces the old one (RFC 6120 conflict rules), and a push
 *   registration keeps pointing at the same device.
 * - Inline in the bind request: MR2 enable, carbons enable, SM enable,
 *   CSI initial state; the <bound/> answer carries SM's <enabled/> and the
 *   MAM metadata of the account's archive, read before the session exists so
 *   that every message is either after the metadata's end (MAM) or live.
 * - Inline SM resumption; a failed resumption still binds.
 */
import { createHash, randomBytes } from 'node:crypto';
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import type { ModuleApi, VeronaModule } from '../core/module.js';
import type { C2SStreamApi } from '../core/stream-api.js';
import { domainCredentials, domainFastTokens } from './vhost-auth.js';
import type { ServerContext } from '../core/context.js';
import type { SaslMechanism, SaslStep } from '../sasl/contract.js';
import { createMechanism, plusMechanisms } from '../sasl/mechanisms.js';
import { HT_MECHANISMS, HtServer, credStamp, htChannelBinding, tokenKey, type HtMechanism } from '../sasl/ht.js';
import { MemoryFastTokenStore, type FastTokenStore } from '../storage/fast.js';
import { SM_CONTROL_SERVICE, type SmControl } from '../modules/sm/index.js';
import { seqToMs, stampOf } from '../modules/mam/ids.js';
import { prepareResource } from '../jid/jid.js';

export const NS_SASL2 = 'urn:xmpp:sasl:2';
export const NS_BIND2 = 'urn:xmpp:bind:0';
export const NS_FAST = 'urn:xmpp:fast:0';
export const NS_SASL_CB = 'urn:xmpp:sasl-cb:0';
const DATA = 'sasl2';

interface Attempt {
  mech: SaslMechanism;
  auth: Element;
  agent: string | undefined;
  busy: boolean;
}

interface Sasl2Options {
  /** Seconds a FAST token lives. */
  tokenLifetime: number;
}

function parseOptions(raw: Record<string, unknown>): Sasl2Options {
  const out: Sasl2Options = { tokenLifetime: 30 * 24 * 3600 };
  for (const [k, v] of Object.entries(raw)) {
    if (k !== 'tokenLifetime') throw new Error(`moduleOptions.sasl2.${k}: unknown option (known: tokenLifetime)`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 60) throw new Error(`moduleOptions.sasl2.tokenLifetime: expected an integer >= 60, got ${JSON.stringify(v)}`);
    out.tokenLifetime = v;
  }
  return out;
}

/**
 * The Bind2 resource (pure, table-tested): the client's tag when no other
 * user agent holds that resource (or the same agent does: it is replaced),
 * else the tag and a hash of the user-agent id, so it stays stable per device.
 * `holder` is the user agent of the session that has the tag now, null when
 * a session without a known agent has it, undefined when nobody does.
 */
export function bind2Resource(tag: string | undefined, username: string, agent: string | undefined, holder: string | null | undefined): string {
  const t = (tag ?? '').replace(/[^\p{L}\p{N}._-]/gu, '').slice(0, 32) || 'verona';
  if (holder === undefined || (agent !== undefined && holder === agent)) return prepareResource(t);
  const suffix = agent ? createHash('sha256').update(`${username}\0${agent}`).digest('base64url').slice(0, 8) : randomBytes(6).toString('base64url');
  return prepareResource(`${t}.${suffix}`);
}

const AGENT = 'sasl2-agent';

function b64(data: Buffer | undefined): string {
  return data && data.length > 0 ? data.toString('base64') : '';
}

function decodeB64(s: string): Buffer | null {
  const t = s.trim();
  if (t === '' || t === '=') return Buffer.alloc(0);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(t) || t.length % 4 !== 0) return null;
  return Buffer.from(t, 'base64');
}

class Sasl2 {
  private readonly server: ServerContext;
  private readonly tokens: FastTokenStore;
  private readonly opts: Sasl2Options;
  private readonly m;

  constructor(private readonly api: ModuleApi) {
    const server = api.service<ServerContext>('server');
    if (!server) throw new Error('sasl2: the server context service is missing');
    this.server = server;
    this.tokens = api.storage.fastTokens ?? new MemoryFastTokenStore();
    this.opts = parseOptions(api.options);
    this.m = {
      auths: api.metrics.counter('verona_sasl2_auth_total', 'SASL2 authentications by mechanism and outcome'),
      tokens: api.metrics.counter('verona_fast_tokens_issued_total', 'FAST tokens issued, by why (requested, rotated)'),
      bind2: api.metrics.counter('verona_bind2_total', 'Bind2 binds, by inline resumption outcome'),
    };
  }

  private get sm(): SmControl | undefined {
    return this.api.service<SmControl>(SM_CONTROL_SERVICE);
  }

  load(): void {
    this.api.hook('stream/features', (e) => {
      if (e.stage !== 'pre-auth') return;
      const s = e.stream;
      if (this.api.config.c2s.requireTls && !s.secure) return;
      const cb = s.channelBinding('tls-server-end-point') !== undefined;
      const exporter = s.channelBinding('tls-exporter') !== undefined;
      const auth = x('authentication', NS_SASL2);
      for (const m of this.mechanisms(s)) auth.append(x('mechanism', NS_SASL2, {}, [m]));
      const fast = x('fast', NS_FAST);
      for (const m of HT_MECHANISMS) {
        const t = htChannelBinding(m);
        if (t === undefined || (t === 'tls-exporter' ? exporter : cb)) fast.append(x('mechanism', NS_FAST, {}, [m]));
      }
      const bindInline = x('inline', NS_BIND2, {}, [NS.MR2, NS.CARBONS, NS.SM, NS.CSI].map((v) => x('feature', NS_BIND2, { var: v })));
      auth.append(x('inline', NS_SASL2, {}, [x('bind', NS_BIND2, {}, [bindInline]), x('sm', NS.SM), fast]));
      e.features.append(auth);
      // XEP-0440: which channel-binding types this connection supports.
      if (cb) {
        const types = x('sasl-channel-binding', NS_SASL_CB, {}, [x('channel-binding', NS_SASL_CB, { type: 'tls-server-end-point' })]);
        if (exporter) types.append(x('channel-binding', NS_SASL_CB, { type: 'tls-exporter' }));
        e.features.append(types);
      }
    });
    this.api.hook('stream/nonza', (e) => {
      if (e.el.xmlns !== NS_SASL2) return false;
      this.handle(e.stream, e.el);
      return true;
    });
  }

  private mechanisms(s: C2SStreamApi): string[] {
    const c = this.api.config;
    const base = c.auth.mechanisms.filter((m) => m !== 'PLAIN' || s.secure || c.c2s.allowPlainWithoutTls);
    return [...plusMechanisms(c.auth.mechanisms, s.channelBinding('tls-server-end-point') !== undefined), ...base];
  }

  private failure(s: C2SStreamApi, condition: string, text?: string): void {
    s.data.delete(DATA);
    const f = x('failure', NS_SASL2, {}, [x(condition, NS.SASL)]);
    if (text) f.append(x('text', NS_SASL2, {}, [text]));
    s.write(f);
  }

  private handle(s: C2SStreamApi, el: Element): void {
    if (s.authenticated) return s.closeWith('policy-violation', 'Already authenticated');
    const cur = s.data.get(DATA) as Attempt | undefined;
    if (cur?.busy) return s.closeWith('policy-violation', 'SASL2 step while the previous one is pending');
    let step: Promise<SaslStep>;
    let attempt: Attempt;
    if (el.name === 'abort') {
      return this.failure(s, 'aborted');
    } else if (el.name === 'authenticate') {
      if (this.api.config.c2s.requireTls && !s.secure) return this.failure(s, 'encryption-required');
      if (!this.server.throttle.allowed(s.remoteAddress)) return this.failure(s, 'temporary-auth-failure', 'Too many failed attempts; try again later');
      const name = el.attrs.mechanism ?? '';
      const agentId = el.getChild('user-agent', NS_SASL2)?.attrs.id;
      const agent = agentId !== undefined && agentId.length > 0 && agentId.length <= 256 ? agentId : undefined;
      let mech: SaslMechanism | undefined;
      if ((HT_MECHANISMS as readonly string[]).includes(name)) {
        // FAST tokens are bound to a user agent (XEP-0484 §3.3).
        if (!agent) return this.failure(s, 'malformed-request', 'FAST needs a user-agent id');
        const type = htChannelBinding(name as HtMechanism);
        const countAttr = el.getChild('fast', NS_FAST)?.attrs.count;
        const count = countAttr !== undefined && /^\d{1,15}$/.test(countAttr) ? Number(countAttr) : undefined;
        mech = new HtServer(name as HtMechanism, {
          tokens: domainFastTokens(this.tokens, this.server.hosts, s.localDomain),
          lookup: domainCredentials(this.server.credentials, this.server.hosts, s.localDomain),
          agent,
          cbData: type === undefined ? Buffer.alloc(0) : s.channelBinding(type),
          count,
        });
      } else if (this.mechanisms(s).includes(name)) {
        mech = createMechanism(name, domainCredentials(this.server.credentials, this.server.hosts, s.localDomain), {
          domain: s.localDomain,
          secret: this.server.secret,
          fakeIterations: this.api.config.auth.scramIterations,
          channelBinding: (t) => s.channelBinding(t),
          channelBindingOffered: s.channelBinding('tls-server-end-point') !== undefined,
        });
      }
      if (!mech) return this.failure(s, 'invalid-mechanism');
      const ir = el.getChild('initial-response', NS_SASL2);
      const initial = ir ? decodeB64(ir.text()) : undefined;
      if (initial === null) return this.failure(s, 'incorrect-encoding');
      attempt = { mech, auth: el, agent, busy: true };
      s.data.set(DATA, attempt);
      step = mech.start(initial);
    } else if (el.name === 'response') {
      if (!cur) return s.closeWith('policy-violation', 'No authentication in progress');
      const data = decodeB64(el.text());
      if (data === null) return this.failure(s, 'incorrect-encoding');
      attempt = cur;
      attempt.busy = true;
      step = cur.mech.step(data);
    } else {
      return s.closeWith('unsupported-stanza-type', `Unknown SASL2 element ${el.name}`);
    }
    step
      .then((r) => {
        attempt.busy = false;
        if (!s.open) return;
        if (r.kind === 'challenge') return void s.write(x('challenge', NS_SASL2, {}, [b64(r.data)]));
        if (r.kind === 'failure') {
          const claimed = attempt.mech.claimedUser;
          this.server.throttle.recordFailure(s.remoteAddress, claimed === undefined ? undefined : this.server.hosts.keyFor(claimed, s.localDomain));
          this.m.auths.inc({ mechanism: attempt.mech.name, outcome: r.condition });
          this.api.log.info({ addr: s.remoteAddress, condition: r.condition, mechanism: attempt.mech.name }, 'authentication failed');
          return this.failure(s, r.condition, r.text);
        }
        // The account key of the stream's domain (virtual hosts, src/core/vhosts.ts).
        return this.success(s, attempt, this.server.hosts.keyFor(r.username, s.localDomain), r.data);
      })
      .catch((err: unknown) => {
        attempt.busy = false;
        this.api.log.error({ err }, 'sasl2: authentication failed unexpectedly');
        if (s.open) this.failure(s, 'temporary-auth-failure');
      });
  }

  private async success(s: C2SStreamApi, a: Attempt, username: string, data: Buffer | undefined): Promise<void> {
    if (!this.server.throttle.allowed(s.remoteAddress, username)) return this.failure(s, 'temporary-auth-failure', 'Too many failed attempts; try again later');
    this.server.throttle.recordSuccess(s.remoteAddress, username);
    s.data.delete(DATA);
    const success = x('success', NS_SASL2);
    if (data && data.length > 0) success.append(x('additional-data', NS_SASL2, {}, [data.toString('base64')]));
    const aid = x('authorization-identifier', NS_SASL2, {}, [this.server.hosts.bareOf(username)]);
    success.append(aid);
    this.m.auths.inc({ mechanism: a.mech.name, outcome: 'success' });

    // FAST: a new token when asked for, or when the one used is past half its life (rotation).
    const token = await this.fastToken(username, a);
    if (token) success.append(token);
    if (!s.open) return;
    s.authenticateAs(username, a.mech.name);

    const resume = a.auth.getChild('resume', NS.SM);
    const sm = this.sm;
    if (resume && sm) {
      let failed: Element | undefined;
      const resumed = await sm.resumeInline(s, resume, (r) => {
        if (r.name === 'resumed') {
          // Inside <success/>, written before the queued stanzas SM resends right after.
          aid.children = [s.session ? s.session.jid.toString() : this.server.hosts.bareOf(username)];
          success.append(r);
          s.write(success);
        } else failed = r;
      });
      if (resumed) return;
      if (!s.open) return;
      if (failed) success.append(failed);
    }

    const bind = a.auth.getChild('bind', NS_BIND2);
    if (!bind) {
      s.write(success);
      s.sendStreamFeatures();
      return;
    }
    // The archive's end first, then the session (synchronously with <success/>): see the header.
    const metadata = await this.mamMetadata(username);
    if (!s.open) return;
    let session;
    try {
      const tag = bind.getChildText('tag', NS_BIND2) ?? undefined;
      const sessions = this.api.sessions.byUser(username);
      const t = (tag ?? '').replace(/[^\p{L}\p{N}._-]/gu, '').slice(0, 32) || 'verona';
      const holderSession = sessions.find((x2) => x2.resource === t);
      const holder = holderSession ? (holderSession.data.get(AGENT) as string | undefined) ?? null : undefined;
      const resource = bind2Resource(tag, username, a.agent, holder);
      // XEP-0386: older sessions of the same user agent are replaced (same resource: by bindSession).
      if (a.agent) {
        for (const old of sessions) {
          if (old.resource !== resource && old.data.get(AGENT) === a.agent && !old.closed) {
            this.server.endSession(old, 'replaced');
            old.stream.closeWith('conflict', 'Replaced by a new session of the same client');
          }
        }
      }
      session = s.bindSession(resource);
      if (a.agent) session.data.set(AGENT, a.agent);
    } catch (err) {
      this.api.log.warn({ err: String(err) }, 'sasl2: bind2 failed');
      s.write(success);
      s.sendStreamFeatures();
      return;
    }
    const bound = x('bound', NS_BIND2);
    for (const f of bind.elements()) {
      if (f.xmlns === NS.MR2 && f.name === 'enable') {
        session.mr2 = true;
        bound.append(x('enabled', NS.MR2));
      } else if (f.xmlns === NS.CARBONS && f.name === 'enable') {
        session.carbons = true;
      } else if (f.xmlns === NS.CSI && (f.name === 'inactive' || f.name === 'active')) {
        session.csiInactive = f.name === 'inactive';
      } else if (f.xmlns === NS.SM && f.name === 'enable' && sm) {
        bound.append(sm.enableInline(s, f));
      }
    }
    if (metadata) bound.append(metadata);
    aid.children = [session.jid.toString()];
    success.append(bound);
    this.m.bind2.inc({ resume: resume ? 'failed' : 'none' });
    s.write(success);
  }

  private async fastToken(username: string, a: Attempt): Promise<Element | undefined> {
    const req = a.auth.getChild('request-token', NS_FAST);
    const fast = a.auth.getChild('fast', NS_FAST);
    const used = a.mech instanceof HtServer ? a.mech.matched : undefined;
    if (used && (fast?.attrs.invalidate === 'true' || fast?.attrs.invalidate === '1')) {
      await this.tokens.remove(username, used.keyHash);
      return undefined;
    }
    const now = Date.now();
    const life = this.opts.tokenLifetime * 1000;
    const rotate = used !== undefined && now - used.createdAt > life / 2;
    if (used && !rotate && !req) {
      // XEP-0484 rotation: a token issued earlier stays valid until its successor is used. Using a
      // token retires the ones of this agent issued before it; a newer one (the client may not have
      // received it) stays until it is used or replaced.
      for (const t of await this.tokens.list(username)) {
        if (t.agent === used.agent && t.createdAt < used.createdAt && !t.keyHash.equals(used.keyHash)) await this.tokens.remove(username, t.keyHash);
      }
      return undefined;
    }
    if (!req && !rotate) return undefined;
    const mechanism = req?.attrs.mechanism ?? used?.mechanism ?? '';
    if (!a.agent || !(HT_MECHANISMS as readonly string[]).includes(mechanism)) return undefined;
    const acct = await this.server.credentials.getAccount(username);
    if (!acct) return undefined;
    const token = randomBytes(96).toString('base64url');
    // The previous token stays valid until the new one is used (a client may lose this answer).
    await this.tokens.removeForAgent(username, a.agent, used?.keyHash);
    await this.tokens.add({
      username, agent: a.agent, mechanism, keyHash: tokenKey(token), credStamp: credStamp(acct), createdAt: now, expiresAt: now + life, count: 0,
    });
    this.m.tokens.inc({ why: req ? 'requested' : 'rotated' });
    return x('token', NS_FAST, { token, expiry: new Date(now + life).toISOString() });
  }

  private async mamMetadata(username: string): Promise<Element | undefined> {
    const store = this.api.storage.archive;
    if (!store) return undefined;
    try {
      await store.flush();
      const b = await store.bounds(username);
      if (!b) return x('metadata', NS.MAM);
      return x('metadata', NS.MAM, {}, [
        x('start', NS.MAM, { id: b.first.id, timestamp: stampOf(seqToMs(b.first.seq)) }),
        x('end', NS.MAM, { id: b.last.id, timestamp: stampOf(seqToMs(b.last.seq)) }),
      ]);
    } catch (err) {
      this.api.log.warn({ err }, 'sasl2: archive metadata unavailable');
      return undefined;
    }
  }
}

export const sasl2Module: VeronaModule = {
  name: 'sasl2',
  load(api) {
    new Sasl2(api).load();
  },
};

