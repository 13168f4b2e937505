/**
 * XEP-0077 In-Band Registration (jabber:iq:register).
 *
 * Three things share the namespace:
 *   - creating an account on a stream that has not authenticated (off by
 *     default: `enabled`). Such IQs arrive before any session exists, through
 *     the 'stream/nonza' hook, and are answered with stream.write. The stream
 *     feature <register xmlns='http://jabber.org/features/iq-register'/> is
 *     offered before authentication when creation is enabled (and, with
 *     c2s.requireTls, only once the stream is encrypted);
 *   - changing the own password (§3.3), `allowPasswordChange`;
 *   - cancelling the own account (§3.2, <remove/>), `allowRemove`: the
 *     account's contacts see it go offline and lose their subscriptions, the
 *     IQ is answered, every stream of the account ends with a <not-authorized/>
 *     stream error, and then every piece of its data is deleted
 *     (storage.deleteUserData; milliseconds after the answer, once what the
 *     ending sessions write has settled).
 * The last two work on any authenticated stream, bound or not, and do not
 * depend on `enabled`.
 *
 * Creation is rate limited per client address (`maxPerAddress` accounts per
 * `window` seconds, counted when an attempt starts so that parallel requests
 * cannot overshoot); addresses in `exemptAddresses` (loopback by default, for
 * local administration and the benchmark driver) are not limited. Beyond the
 * limit the answer is <policy-violation/> of type 'wait'.
 *
 * Errors: disabled creation -> service-unavailable; missing username or
 * password, a username that is not a valid localpart, a password SASLprep
 * refuses or shorter than `minPasswordLength` -> not-acceptable; a taken
 * username -> conflict.
 */
import { isIP } from 'node:net';
import { x, type Element } from '../xml/element.js';
import { NS } from '../core/namespaces.js';
import { StanzaError, errorReply } from '../core/errors.js';
import type { ModuleApi, VeronaModule } from '../core/module.js';
import type { Session } from '../core/session.js';
import type { C2SStreamApi } from '../core/stream-api.js';
import { prepareLocal } from '../jid/jid.js';
import { deriveAllScram } from '../sasl/credentials.js';
import { saslprep } from '../sasl/saslprep.js';
import { AccountExistsError } from '../storage/types.js';
import type { RosterApi } from './roster/api.js';
import type { BlockingService } from './blocking.js';

export const NS_REGISTER = 'jabber:iq:register';
export const NS_REGISTER_FEATURE = 'http://jabber.org/features/iq-register';

export interface RegisterOptions {
  /** Allow creating accounts in-band. */
  enabled: boolean;
  allowPasswordChange: boolean;
  allowRemove: boolean;
  /** Accounts one address may create per window; 0 = no limit. */
  maxPerAddress: number;
  /** Seconds. */
  window: number;
  exemptAddresses: string[];
  minPasswordLength: number;
  instructions: string;
}

const DEFAULTS: RegisterOptions = {
  enabled: false,
  allowPasswordChange: true,
  allowRemove: true,
  maxPerAddress: 5,
  window: 3600,
  exemptAddresses: ['127.0.0.1', '::1'],
  minPasswordLength: 1,
  instructions: 'Choose a username and password to register with this server.',
};

export function registerOptions(options: Record<string, unknown>): RegisterOptions {
  const out: RegisterOptions = { ...DEFAULTS, exemptAddresses: [...DEFAULTS.exemptAddresses] };
  const where = (k: string): string => `moduleOptions.register.${k}`;
  for (const [k, v] of Object.entries(options)) {
    if (v === undefined || v === null) continue;
    switch (k) {
      case 'enabled':
      case 'allowPasswordChange':
      case 'allowRemove':
        if (typeof v !== 'boolean') throw new Error(`${where(k)} must be true or false (got ${JSON.stringify(v)})`);
        out[k] = v;
        break;
      case 'maxPerAddress':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new Error(`${where(k)} must be an integer >= 0 (got ${JSON.stringify(v)})`);
        out[k] = v;
        break;
      case 'window':
      case 'minPasswordLength':
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`${where(k)} must be a positive integer (got ${JSON.stringify(v)})`);
        out[k] = v;
        break;
      case 'exemptAddresses':
        if (!Array.isArray(v) || !v.every((a) => typeof a === 'string' && isIP(a) !== 0)) {
          throw new Error(`${where(k)} must be a list of IP addresses (got ${JSON.stringify(v)})`);
        }
        out[k] = (v as string[]).map(normalizeAddress);
        break;
      case 'instructions':
        if (typeof v !== 'string') throw new Error(`${where(k)} must be a string`);
        out[k] = v;
        break;
      default:
        throw new Error(`${where(k)}: unknown option (known: ${Object.keys(DEFAULTS).join(', ')})`);
    }
  }
  return out;
}

/** IPv4-mapped IPv6 (::ffff:1.2.3.4, what a dual-stack listener reports) counts as the IPv4 address. */
export function normalizeAddress(addr: string): string {
  const m = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(addr);
  return (m ? (m[1] as string) : addr).toLowerCase();
}

/** Sliding-window count of account creations per client address. */
export class RegistrationLimiter {
  private readonly hits = new Map<string, number[]>();

  constructor(
    private readonly max: number,
    private readonly windowMs: number,
    private readonly exempt: ReadonlySet<string>,
    private readonly now: () => number = Date.now,
  ) {}

  /** Take one slot for `addr`; false when the address is at its limit. */
  reserve(addr: string): boolean {
    const a = normalizeAddress(addr);
    if (this.max === 0 || this.exempt.has(a)) return true;
    const t = this.now();
    const list = (this.hits.get(a) ?? []).filter((h) => t - h < this.windowMs);
    if (list.length >= this.max) {
      this.hits.set(a, list);
      return false;
    }
    list.push(t);
    this.hits.set(a, list);
    this.prune(t);
    return true;
  }

  /** Give back the slot of an attempt that created nothing (taken name, bad password). */
  release(addr: string): void {
    const a = normalizeAddress(addr);
    const list = this.hits.get(a);
    if (!list) return;
    list.pop();
    if (list.length === 0) this.hits.delete(a);
  }

  /** Forget addresses whose hits are all outside the window (bounded memory under many addresses). */
  private prune(t: number): void {
    if (this.hits.size < 1024) return;
    for (const [a, list] of this.hits) if (list.every((h) => t - h >= this.windowMs)) this.hits.delete(a);
  }
}

interface ServerControl {
  endSession(session: Session, reason: string): void;
}

/** Who asks: an authenticated account (bound session or not), or an anonymous stream. */
interface Requester {
  /** Account key (src/core/vhosts.ts) when authenticated. */
  username: string | undefined;
  /** The hosted domain asked (the stream's): new accounts are made there. */
  domain: string;
  address: string;
  /** The bound session the request came on, if any. */
  session?: Session;
  /** The stream, when no session is bound (account removal closes it). */
  stream?: C2SStreamApi;
  /**
   * Send the IQ result at once. Account removal answers before it ends the
   * streams and deletes the data (so that nothing written while the sessions
   * end survives); the caller then skips its own reply.
   */
  reply: () => void;
}

function field(q: Element, name: string): string | undefined {
  const el = q.getChild(name, NS_REGISTER);
  return el === undefined ? undefined : el.text();
}

export class Registration {
  private readonly limiter: RegistrationLimiter;

  constructor(
    private readonly api: ModuleApi,
    readonly opts: RegisterOptions,
  ) {
    this.limiter = new RegistrationLimiter(opts.maxPerAddress, opts.window * 1000, new Set(opts.exemptAddresses));
  }

  private count(result: string): void {
    this.api.metrics.counter('verona_registrations_total', 'In-band registration requests (XEP-0077), by result').inc({ result });
  }

  /** Answer a get: the form for a new account, or the current registration. */
  form(who: Requester): Element {
    if (who.username !== undefined) {
      return x('query', NS_REGISTER, {}, [x('registered', NS_REGISTER), x('username', NS_REGISTER, {}, [this.api.router.hosts.localOf(who.username)]), x('password', NS_REGISTER)]);
    }
    if (!this.opts.enabled) throw new StanzaError('service-unavailable', 'In-band registration is disabled');
    return x('query', NS_REGISTER, {}, [x('instructions', NS_REGISTER, {}, [this.opts.instructions]), x('username', NS_REGISTER), x('password', NS_REGISTER)]);
  }

  /** Handle a set. */
  async set(who: Requester, q: Element): Promise<void> {
    if (q.getChild('remove', NS_REGISTER)) {
      if (who.username === undefined) throw new StanzaError('registration-required', 'Authenticate as the account to remove it');
      if (!this.opts.allowRemove) throw new StanzaError('not-allowed', 'Removing accounts in-band is disabled');
      await this.remove(who.username, who);
      return;
    }
    if (who.username !== undefined) return this.changePassword(who.username, q);
    return this.create(who, q);
  }

  private checkPassword(password: string | undefined): string {
    if (password === undefined || password === '') throw new StanzaError('not-acceptable', 'A password is required');
    try {
      saslprep(password);
    } catch {
      throw new StanzaError('not-acceptable', 'The password contains characters that cannot be used');
    }
    if ([...password].length < this.opts.minPasswordLength) {
      throw new StanzaError('not-acceptable', `The password must have at least ${this.opts.minPasswordLength} characters`);
    }
    return password;
  }

  /** In-band registration on `domain`: its `domains.<d>.register`, else the module's `enabled` (virtual hosts). */
  enabledOn(domain: string): boolean {
    return this.api.config.domains[domain]?.register ?? this.opts.enabled;
  }

  private async create(who: Requester, q: Element): Promise<void> {
    if (!this.enabledOn(who.domain)) {
      this.count('disabled');
      throw new StanzaError('service-unavailable', 'In-band registration is disabled');
    }
    const rawUser = field(q, 'username')?.trim();
    if (rawUser === undefined || rawUser === '') throw new StanzaError('not-acceptable', 'A username is required');
    let username: string;
    try {
      username = this.api.router.hosts.keyFor(prepareLocal(rawUser), who.domain);
    } catch {
      this.count('bad-username');
      throw new StanzaError('not-acceptable', 'The username is not valid');
    }
    const password = this.checkPassword(field(q, 'password'));
    // Checked before any work: taking a name costs two PBKDF2 derivations.
    if (await this.api.storage.accounts.exists(username)) {
      this.count('conflict');
      throw new StanzaError('conflict', 'The username is taken');
    }
    if (!this.limiter.reserve(who.address)) {
      this.count('rate-limited');
      this.api.log.info({ addr: who.address }, 'registration refused: too many from this address');
      throw new StanzaError('policy-violation', 'Too many registrations from this address; try again later', 'wait');
    }
    try {
      const scram = await deriveAllScram(password, this.api.config.auth.scramIterations);
      await this.api.storage.accounts.create({ username, createdAt: Date.now(), scram });
    } catch (err) {
      this.limiter.release(who.address);
      if (err instanceof AccountExistsError) {
        this.count('conflict');
        throw new StanzaError('conflict', 'The username is taken');
      }
      throw err;
    }
    this.count('created');
    this.api.log.info({ user: username, addr: who.address }, 'account registered in-band');
  }

  private async changePassword(username: string, q: Element): Promise<void> {
    if (!this.opts.allowPasswordChange) throw new StanzaError('not-allowed', 'Changing passwords in-band is disabled');
    const rawUser = field(q, 'username')?.trim();
    if (rawUser !== undefined && rawUser !== '') {
      let named: string | undefined;
      try {
        named = this.api.router.hosts.keyFor(prepareLocal(rawUser), this.api.router.hosts.domainOf(username));
      } catch {
        named = undefined;
      }
      if (named !== username) throw new StanzaError('not-allowed', 'You can change only the password of your own account');
    }
    if (field(q, 'password') === undefined) throw new StanzaError('bad-request', 'A password is required');
    const password = this.checkPassword(field(q, 'password'));
    const scram = await deriveAllScram(password, this.api.config.auth.scramIterations);
    if (!(await this.api.storage.accounts.setCredentials(username, scram))) throw new StanzaError('registration-required');
    this.count('password-changed');
    this.api.log.info({ user: username }, 'password changed in-band');
  }

  /** Remove an account for an operator (admin socket, XEP-0133): the same order as §3.2, with nobody to answer. */
  removeAccount(username: string): Promise<void> {
    return this.remove(username, { username, domain: this.api.router.hosts.domainOf(username), address: 'admin', reply: () => undefined });
  }

  /**
   * §3.2. Order matters: contacts are told first; then the result goes out
   * and every stream of the account ends (not-authorized); only when what
   * ending them writes (stream management's final state, unacked messages
   * handed to offline storage, queued archive commits) has settled is the
   * data deleted, so that no row of the account survives.
   */
  private async remove(username: string, who: Requester): Promise<void> {
    const server = this.api.service<ServerControl>('server');
    const sessions = [...this.api.sessions.byUser(username)];
    await this.goOffline(username, sessions);
    who.reply();
    for (const s of sessions) {
      server?.endSession(s, 'account-removed');
      s.stream.closeWith('not-authorized', 'The account was removed');
    }
    if (who.stream && !who.session) who.stream.closeWith('not-authorized', 'The account was removed');
    await Promise.all(sessions.map((s) => s.inboundTail.catch(() => undefined)));
    await new Promise((r) => setImmediate(r));
    await this.api.storage.archive?.flush();
    await this.api.storage.deleteUserData(username);
    this.api.service<BlockingService>('blocking')?.forget(username);
    await this.api.service<{ removeUser(u: string): Promise<unknown> }>('upload')?.removeUser(username).catch(() => undefined);
    this.count('removed');
    this.api.log.info({ user: this.api.router.hosts.bareOf(username) }, 'account removed in-band');
  }

  /**
   * Contacts stop seeing the account and lose their subscriptions to and from
   * it (XEP-0077 §3.2, RFC 6121 §3.2-§3.3). The sessions are marked
   * unavailable here, having said so to everyone who saw them, so that their
   * end triggers no second broadcast from the presence module (which would
   * read the roster again while it is being deleted).
   */
  private async goOffline(username: string, sessions: Session[]): Promise<void> {
    const roster = this.api.service<RosterApi>('roster');
    const items = roster ? await roster.items(username) : [];
    const bare = this.api.router.hosts.bareOf(username);
    for (const s of sessions) {
      const targets = new Set<string>(s.directedTo);
      if (s.available) for (const i of items) if (i.subscription === 'from' || i.subscription === 'both') targets.add(i.jid);
      if (!s.closed) for (const t of targets) this.api.router.route(x('presence', NS.CLIENT, { type: 'unavailable', from: s.jid.toString(), to: t }));
      s.available = false;
      s.presence = undefined;
      s.directedTo.clear();
    }
    for (const i of items) {
      if (i.subscription === 'from' || i.subscription === 'both') {
        this.api.router.route(x('presence', NS.CLIENT, { type: 'unsubscribed', from: bare, to: i.jid }));
      }
      if (i.subscription === 'to' || i.subscription === 'both' || i.ask) {
        this.api.router.route(x('presence', NS.CLIENT, { type: 'unsubscribe', from: bare, to: i.jid }));
      }
    }
  }
}



export const registerModule: VeronaModule = {
  name: 'register',
  load(api) {
    const opts = registerOptions(api.options);
    const reg = new Registration(api, opts);
    // The admin actions (src/admin/actions.ts) delete accounts the same way.
    api.provide('account-removal', reg);
    const tlsFirst = (stream: C2SStreamApi): boolean => api.config.c2s.requireTls && !stream.secure;

    const anyEnabled = opts.enabled || api.router.hosts.list().some((d) => reg.enabledOn(d));
    if (anyEnabled || opts.allowPasswordChange || opts.allowRemove) api.discoFeature(NS_REGISTER);

    api.hook('stream/features', (e) => {
      if (e.stage !== 'pre-auth' || !reg.enabledOn(e.stream.localDomain) || tlsFirst(e.stream)) return;
      e.features.append(x('register', NS_REGISTER_FEATURE));
    });

    // Before a resource is bound, IQs do not reach the router: they come here.
    api.hook('stream/nonza', (e) => {
      const el = e.el;
      const stream = e.stream;
      if (stream.session || el.name !== 'iq' || el.xmlns !== NS.CLIENT) return;
      const q = el.getChild('query', NS_REGISTER);
      if (!q) return;
      // Unencrypted when encryption is required: the core's not-authorized stream error applies.
      if (tlsFirst(stream)) return;
      const type = el.attrs.type;
      if (type !== 'get' && type !== 'set') return true; // stray result/error: nothing to answer
      const result = (payload?: Element): Element => x('iq', NS.CLIENT, { type: 'result', id: el.attrs.id }, payload ? [payload] : []);
      let replied = false;
      const who: Requester = {
        username: stream.authenticated ? stream.username : undefined,
        domain: stream.localDomain,
        address: stream.remoteAddress,
        stream,
        reply: () => {
          replied = true;
          stream.write(result());
        },
      };
      const work = type === 'get' ? Promise.resolve().then(() => reg.form(who)) : reg.set(who, q).then(() => undefined);
      work.then(
        (payload) => {
          if (!replied) stream.write(result(payload));
        },
        (err: unknown) => {
          if (!(err instanceof StanzaError)) api.log.error({ err }, 'registration failed');
          const se = err instanceof StanzaError ? err : new StanzaError('internal-server-error');
          const reply = errorReply(el, se);
          delete reply.attrs.to;
          if (reply.attrs.from === undefined) delete reply.attrs.from;
          stream.write(reply);
        },
      );
      return true;
    });

    // After binding: the account's own requests (to the server, or without 'to').
    const fromSession = (origin: Session, stanza: Element): Requester => ({
      username: origin.username,
      domain: origin.jid.domain,
      address: origin.stream.remoteAddress,
      session: origin,
      // The router would answer too, but by then the session has ended and its answer goes nowhere.
      reply: () => origin.send(x('iq', NS.CLIENT, { type: 'result', id: stanza.attrs.id, to: stanza.attrs.from, from: stanza.attrs.to })),
    });
    api.iq('server', 'get', NS_REGISTER, (ctx) => {
      if (!ctx.origin) throw new StanzaError('service-unavailable');
      return reg.form(fromSession(ctx.origin, ctx.stanza));
    });
    api.iq('server', 'set', NS_REGISTER, async (ctx) => {
      if (!ctx.origin) throw new StanzaError('service-unavailable');
      await reg.set(fromSession(ctx.origin, ctx.stanza), ctx.payload);
      return undefined;
    });
  },
};
