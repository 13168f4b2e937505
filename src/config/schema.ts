/**
 * The configuration schema and a small validator for it.
 *
 * Hand-written rather than a schema library (ajv, zod): the schema is two
 * levels deep with a dozen value kinds, and what matters most is the error
 * text ("c2s.port: expected an integer from -1 to 65535, got "abc"", "did
 * you mean ...", the file line). Getting that from a library means
 * post-processing its errors anyway, so ~150 lines of plain code are both
 * smaller and clearer, and add no dependency.
 */
import { isIP } from 'node:net';
import { prepareDomain } from '../jid/jid.js';
import type { Config, DomainSettings } from './types.js';

export type Rule =
  | { kind: 'int'; min: number; max: number; hint?: string }
  | { kind: 'bool' }
  /** `prepare` returns the normalised value or throws an Error whose message is the problem. */
  | { kind: 'string'; allowEmpty?: boolean; prepare?: (v: string) => string }
  | { kind: 'enum'; values: readonly string[] }
  | { kind: 'enumList'; values: readonly string[]; nonEmpty: boolean }
  | { kind: 'stringList' }
  | { kind: 'section'; fields: Readonly<Record<string, Rule>> }
  /** Free-form mapping of module name -> mapping of options (checked by each module). */
  | { kind: 'moduleOptions' }
  /** Mapping of string -> non-empty string (s2s.hosts); `prepare` checks each value. */
  | { kind: 'stringMap'; prepare?: (v: string) => string }
  /** `domains:` (virtual hosts): a list of domains, or a mapping domain -> per-domain settings (validateDomains). */
  | { kind: 'domains' };

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
const MECHANISMS = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'] as const;
const SYNCHRONOUS = ['OFF', 'NORMAL', 'FULL'] as const;

const port: Rule = { kind: 'int', min: -1, max: 65535, hint: '-1 disables the listener, 0 picks a free port' };
const seconds = (min: number, max: number): Rule => ({ kind: 'int', min, max });
const path: Rule = { kind: 'string' };

const HOSTNAME = /^(?=.{1,253}$)[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?(?:\.[a-zA-Z0-9_](?:[a-zA-Z0-9_-]{0,61}[a-zA-Z0-9_])?)*$/;

function prepareHost(v: string): string {
  if (isIP(v) !== 0 || HOSTNAME.test(v)) return v;
  throw new Error(`expected an IP address or host name, got ${JSON.stringify(v)}`);
}

function prepareServedDomain(v: string): string {
  try {
    return prepareDomain(v);
  } catch (err) {
    throw new Error(`${JSON.stringify(v)} is not a valid XMPP domain (${(err as Error).message})`);
  }
}

type Fields<T> = { readonly [K in keyof T]-?: Rule };

// Typed against Config so that a key added to types.ts without a rule here
// is a compile error rather than a silently unknown key.
const c2s: Fields<Config['c2s']> = {
  host: { kind: 'string', prepare: prepareHost },
  port,
  tlsPort: port,
  requireTls: { kind: 'bool' },
  allowPlainWithoutTls: { kind: 'bool' },
  maxStanzaSize: { kind: 'int', min: 10000, max: 16 * 1024 * 1024 },
  maxStanzaSizePreAuth: { kind: 'int', min: 1024, max: 16 * 1024 * 1024 },
  maxDepth: { kind: 'int', min: 8, max: 1024 },
  maxAttributes: { kind: 'int', min: 8, max: 1024 },
  authTimeout: seconds(1, 3600),
  authTimeoutPreTls: seconds(1, 3600),
  pingInterval: seconds(0, 86400),
  pingTimeout: seconds(1, 3600),
  keepaliveInterval: seconds(0, 86400),
  maxPendingLogins: { kind: 'int', min: 0, max: 1_000_000 },
};

const tls: Fields<Config['tls']> = { cert: path, key: path, generate: { kind: 'bool' } };

const auth: Fields<Config['auth']> = {
  scramIterations: { kind: 'int', min: 4096, max: 10_000_000, hint: 'RFC 7677 asks for at least 4096' },
  mechanisms: { kind: 'enumList', values: MECHANISMS, nonEmpty: true },
  failuresPerAddress: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
  failuresPerAccount: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
  failureWindow: seconds(1, 86400),
};

const storage: Fields<Config['storage']> = {
  driver: { kind: 'enum', values: ['sqlite', 'postgres'] },
  sqlite: {
    kind: 'section',
    fields: { path, synchronous: { kind: 'enum', values: SYNCHRONOUS }, archiveSync: { kind: 'enum', values: ['commit', 'threadpool'] } } satisfies Fields<Config['storage']['sqlite']>,
  },
  postgres: {
    kind: 'section',
    fields: { url: { kind: 'string', allowEmpty: true }, poolSize: { kind: 'int', min: 1, max: 1000 } } satisfies Fields<Config['storage']['postgres']>,
  },
};

// Web clients (docs/web.md); list entries and cross-key rules are checked by checkWebConfig (src/net/web/options.ts).
const web: Fields<Config['web']> = {
  host: { kind: 'string', prepare: prepareHost },
  port,
  tlsPort: port,
  publicUrl: { kind: 'string', allowEmpty: true },
  trustedProxies: { kind: 'stringList' },
  allowedOrigins: { kind: 'stringList' },
  maxConnectionsPerAddress: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
  websocket: {
    kind: 'section',
    fields: { enabled: { kind: 'bool' }, pingInterval: seconds(0, 86400) } satisfies Fields<Config['web']['websocket']>,
  },
  bosh: {
    kind: 'section',
    fields: {
      enabled: { kind: 'bool' },
      maxWait: seconds(1, 3600),
      maxHold: { kind: 'int', min: 0, max: 16 },
      inactivity: seconds(5, 86400),
      polling: seconds(0, 3600),
      maxPause: seconds(0, 86400),
      maxBodySize: { kind: 'int', min: 16384, max: 64 * 1024 * 1024 },
    } satisfies Fields<Config['web']['bosh']>,
  },
  client: {
    kind: 'section',
    fields: { enabled: { kind: 'bool' }, title: { kind: 'string' } } satisfies Fields<Config['web']['client']>,
  },
  metrics: {
    kind: 'section',
    fields: { enabled: { kind: 'bool' }, allowFrom: { kind: 'stringList' } } satisfies Fields<Config['web']['metrics']>,
  },
};

// Federation (docs/federation.md).
function prepareHostPort(v: string): string {
  // An optional 'tls:' prefix means direct TLS (XEP-0368) to that address (src/s2s/resolve.ts).
  const m = /^(?:tls:)?(.+):(\d{1,5})$/.exec(v);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) throw new Error(`expected host:port or tls:host:port, got ${JSON.stringify(v)}`);
  prepareHost((m[1] as string).replace(/^\[(.*)\]$/, '$1'));
  return v;
}
const s2s: Fields<Config['s2s']> = {
  enabled: { kind: 'bool' },
  host: { kind: 'string', prepare: prepareHost },
  port,
  tlsPort: port,
  requireTls: { kind: 'bool' },
  secureAuth: { kind: 'bool' },
  insecureDomains: { kind: 'stringList' },
  ca: { kind: 'stringList' },
  hosts: { kind: 'stringMap', prepare: prepareHostPort },
  dialbackSecret: { kind: 'string', allowEmpty: true },
  connectTimeout: seconds(1, 3600),
  authTimeout: seconds(1, 3600),
  idleTimeout: seconds(0, 86400),
  maxStanzaSize: { kind: 'int', min: 10000, max: 16 * 1024 * 1024 },
  maxStreamsPerAddress: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
  maxQueue: { kind: 'int', min: 1, max: 1_000_000 },
  bidi: { kind: 'bool' },
};

const root: Fields<Config> = {
  domain: { kind: 'string', prepare: prepareServedDomain },
  dataDir: path,
  log: { kind: 'section', fields: { level: { kind: 'enum', values: LOG_LEVELS } } satisfies Fields<Config['log']> },
  c2s: { kind: 'section', fields: c2s },
  tls: { kind: 'section', fields: tls },
  certWatch: {
    kind: 'section',
    fields: { enabled: { kind: 'bool' }, debounceMs: { kind: 'int', min: 50, max: 600_000, hint: 'milliseconds' } } satisfies Fields<Config['certWatch']>,
  },
  auth: { kind: 'section', fields: auth },
  storage: { kind: 'section', fields: storage },
  modules: { kind: 'section', fields: { disabled: { kind: 'stringList' } } satisfies Fields<Config['modules']> },
  moduleOptions: { kind: 'moduleOptions' },
  web: { kind: 'section', fields: web },
  s2s: { kind: 'section', fields: s2s },
  limits: {
    kind: 'section',
    fields: {
      c2sConnectionsPerAddress: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
      readRate: { kind: 'int', min: 0, max: 1_000_000_000, hint: 'bytes per second; 0 turns the limit off' },
      readBurst: { kind: 'int', min: 0, max: 1_000_000_000, hint: 'bytes' },
      sessionsPerAccount: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
      exemptAddresses: { kind: 'stringList' },
      iqPerSecond: { kind: 'int', min: 0, max: 1_000_000, hint: 'IQ requests per second per session' },
      iqBurst: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the IQ limit off' },
      mamRowsPerSecond: { kind: 'int', min: 0, max: 1_000_000_000, hint: 'archive rows per second per account' },
      mamRowsBurst: { kind: 'int', min: 0, max: 1_000_000_000, hint: '0 turns the MAM budget off' },
      presencePerMinute: { kind: 'int', min: 0, max: 1_000_000, hint: 'presence broadcasts per minute per session' },
      presenceBurst: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
      subscriptionsPerMinute: { kind: 'int', min: 0, max: 1_000_000, hint: 'subscription requests per minute per account' },
      subscriptionBurst: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
      directedPresences: { kind: 'int', min: 0, max: 1_000_000, hint: '0 turns the limit off' },
    } satisfies Fields<Config['limits']>,
  },
  admin: {
    kind: 'section',
    fields: { socket: { kind: 'string', allowEmpty: true }, users: { kind: 'stringList' } } satisfies Fields<Config['admin']>,
  },
  cluster: {
    kind: 'section',
    fields: {
      redis: { kind: 'string', allowEmpty: true },
      node: { kind: 'string', allowEmpty: true },
      heartbeat: seconds(1, 60),
      nodeTimeout: seconds(2, 600),
    } satisfies Fields<Config['cluster']>,
  },
  domains: { kind: 'domains' },
};

export const configSchema: Rule = { kind: 'section', fields: root };

/** Raised through `Fail`; carries the path so the caller can add a location. */
export type Fail = (path: readonly string[], problem: string) => never;

/**
 * Thrown by a collecting `Fail` (`verona check-config`) after it has recorded
 * the problem: `validate(..., recover = true)` catches it at the nearest key
 * or list item, keeps the default there and goes on, so every error is found.
 */
export class Recorded extends Error {}

/** Run `f`; when recovering, a recorded problem yields `fallback` instead. */
function attempt<T>(recover: boolean, f: () => T, fallback: () => T): T {
  if (!recover) return f();
  try {
    return f();
  } catch (err) {
    if (err instanceof Recorded) return fallback();
    throw err;
  }
}

/**
 * Edit distance counting a swap of neighbours as one edit (optimal string
 * alignment), since "prot" for "port" is the typical typo.
 */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

/** The candidate a mistyped name most likely meant, if any is close enough. */
export function suggest(name: string, candidates: readonly string[]): string | undefined {
  // Same word in another spelling (max_stanza_size, MaxStanzaSize, max-stanza-size).
  const squash = (s: string): string => s.replace(/[-_\s]/g, '').toLowerCase();
  const exact = candidates.find((c) => squash(c) === squash(name));
  if (exact !== undefined) return exact;
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of candidates) {
    const d = distance(name.toLowerCase(), c.toLowerCase());
    if (d < bestD) {
      bestD = d;
      best = c;
    }
  }
  // Allow about one typo per three characters, at least one, at most three.
  const allowed = Math.min(3, Math.max(1, Math.floor(name.length / 3)));
  return bestD <= allowed ? best : undefined;
}

export function describeValue(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') {
    const shown = v.length > 60 ? `${v.slice(0, 57)}...` : v;
    const quoted = JSON.stringify(shown);
    return /^-?\d+$/.test(v) ? `the string ${quoted} (remove the quotes)` : quoted;
  }
  if (Array.isArray(v)) return 'a list';
  if (typeof v === 'object') return 'a mapping';
  return String(v);
}

const quoteList = (values: readonly string[]): string => values.map((x) => JSON.stringify(x)).join(', ');

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Validate `raw` against `rule`, filling absent (or null) values from `def`.
 * Returns a new value; `def` is not modified.
 */
export function validate(rule: Rule, raw: unknown, def: unknown, path: string[], fail: Fail, recover = false): unknown {
  if (raw === undefined || raw === null) {
    // Absent or written without a value (`key:`): keep the default.
    return structuredClone(def);
  }
  switch (rule.kind) {
    case 'int':
      if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < rule.min || raw > rule.max) {
        const hint = rule.hint === undefined ? '' : ` (${rule.hint})`;
        return fail(path, `expected an integer from ${rule.min} to ${rule.max}${hint}, got ${describeValue(raw)}`);
      }
      return raw;
    case 'bool':
      if (typeof raw !== 'boolean') return fail(path, `expected true or false, got ${describeValue(raw)}`);
      return raw;
    case 'string': {
      if (typeof raw !== 'string') return fail(path, `expected a string, got ${describeValue(raw)}`);
      if (raw === '' && rule.allowEmpty !== true) return fail(path, 'must not be empty');
      if (rule.prepare === undefined) return raw;
      try {
        return rule.prepare(raw);
      } catch (err) {
        return fail(path, (err as Error).message);
      }
    }
    case 'enum': {
      if (typeof raw === 'string' && rule.values.includes(raw)) return raw;
      const s = typeof raw === 'string' ? suggest(raw, rule.values) : undefined;
      const tail = s === undefined ? '' : ` (did you mean ${JSON.stringify(s)}?)`;
      return fail(path, `expected one of ${quoteList(rule.values)}, got ${describeValue(raw)}${tail}`);
    }
    case 'enumList': {
      if (!Array.isArray(raw)) return fail(path, `expected a list of ${quoteList(rule.values)}, got ${describeValue(raw)}`);
      if (rule.nonEmpty && raw.length === 0) return fail(path, 'must not be empty');
      const seen = new Set<string>();
      raw.forEach((item: unknown, i) =>
        attempt(
          recover,
          () => {
            if (item === null) fail([...path, String(i)], `expected one of ${quoteList(rule.values)}, got nothing`);
            validate({ kind: 'enum', values: rule.values }, item, undefined, [...path, String(i)], fail);
            if (seen.has(item as string)) fail([...path, String(i)], `${JSON.stringify(item)} is listed twice`);
            seen.add(item as string);
          },
          () => undefined,
        ),
      );
      return [...raw] as unknown[];
    }
    case 'stringList': {
      if (!Array.isArray(raw)) return fail(path, `expected a list of strings, got ${describeValue(raw)}`);
      raw.forEach((item: unknown, i) =>
        attempt(
          recover,
          () => {
            if (typeof item !== 'string' || item === '') fail([...path, String(i)], `expected a non-empty string, got ${describeValue(item)}`);
          },
          () => undefined,
        ),
      );
      return [...raw] as unknown[];
    }
    case 'section': {
      if (!isMapping(raw)) return fail(path, `expected a mapping of ${quoteList(Object.keys(rule.fields))}, got ${describeValue(raw)}`);
      const defs = (def ?? {}) as Record<string, unknown>;
      const known = Object.keys(rule.fields);
      const out: Record<string, unknown> = {};
      for (const key of Object.keys(raw)) {
        if (!Object.hasOwn(rule.fields, key)) {
          const s = suggest(key, known);
          const tail = s === undefined ? ` (known keys: ${known.join(', ')})` : ` (did you mean "${s}"?)`;
          attempt(recover, () => fail([...path, key], `unknown key${tail}`), () => undefined);
        }
      }
      for (const key of known) {
        out[key] = attempt(
          recover,
          () => validate(rule.fields[key], raw[key], defs[key], [...path, key], fail, recover),
          () => structuredClone(defs[key]),
        );
      }
      return out;
    }
    case 'moduleOptions': {
      if (!isMapping(raw)) return fail(path, `expected a mapping of module name to options, got ${describeValue(raw)}`);
      const out: Record<string, Record<string, unknown>> = {};
      for (const [name, opts] of Object.entries(raw)) {
        if (opts === null || opts === undefined) out[name] = {};
        else if (isMapping(opts)) out[name] = structuredClone(opts);
        else attempt(recover, () => fail([...path, name], `expected a mapping of options, got ${describeValue(opts)}`), () => undefined);
      }
      return out;
    }
    case 'domains':
      return validateDomains(raw, path, fail, recover);
    case 'stringMap': {
      if (!isMapping(raw)) return fail(path, `expected a mapping of names to strings, got ${describeValue(raw)}`);
      const out: Record<string, string> = {};
      for (const [k, v] of Object.entries(raw)) {
        if (typeof v !== 'string' || v === '') fail([...path, k], `expected a non-empty string, got ${describeValue(v)}`);
        try {
          out[k.toLowerCase()] = rule.prepare ? rule.prepare(v as string) : (v as string);
        } catch (err) {
          fail([...path, k], (err as Error).message);
        }
      }
      return out;
    }
  }
}

const DOMAIN_KEYS = ['tls', 'register'] as const;

/**
 * `domains:` is either a list (`[a.example, b.example]`, every domain with default settings) or a
 * mapping `domain: {tls: {cert, key}, register: bool}` (an empty value = defaults). Domains are
 * prepared like `domain:`; default certificate paths are tls/<domain>/cert.pem and key.pem
 * (resolved against dataDir by load.ts). The primary `domain:` may be listed too: load.ts drops it.
 */
function validateDomains(raw: unknown, path: string[], fail: Fail, recover: boolean): Record<string, DomainSettings> {
  const entries: Array<[string, unknown, string]> = [];
  if (Array.isArray(raw)) raw.forEach((d: unknown, i) => entries.push([typeof d === 'string' ? d : '', d, String(i)]));
  else if (isMapping(raw)) for (const [k, v] of Object.entries(raw)) entries.push([k, v, k]);
  else return fail(path, `expected a list of domains or a mapping of domain to settings (${DOMAIN_KEYS.join(', ')}), got ${describeValue(raw)}`);
  const out: Record<string, DomainSettings> = {};
  for (const [name, value, at] of entries) {
    attempt(
      recover,
      () => {
        if (Array.isArray(raw) && (typeof value !== 'string' || value === '')) fail([...path, at], `expected a domain name, got ${describeValue(value)}`);
        let d: string;
        try {
          d = prepareServedDomain(name);
        } catch (err) {
          return fail([...path, at], (err as Error).message);
        }
        if (Object.hasOwn(out, d)) fail([...path, at], `${d} is listed twice`);
        const settings: DomainSettings = { tls: { cert: `tls/${d}/cert.pem`, key: `tls/${d}/key.pem` } };
        if (value !== null && value !== undefined && !Array.isArray(raw)) {
          if (!isMapping(value)) fail([...path, at], `expected a mapping of ${quoteList(DOMAIN_KEYS)}, got ${describeValue(value)}`);
          const v = value as Record<string, unknown>;
          for (const k of Object.keys(v)) {
            if (!(DOMAIN_KEYS as readonly string[]).includes(k)) fail([...path, at, k], `unknown key (known keys: ${DOMAIN_KEYS.join(', ')})`);
          }
          if (v.tls !== undefined && v.tls !== null) {
            settings.tls = validate({ kind: 'section', fields: { cert: { kind: 'string' }, key: { kind: 'string' } } }, v.tls, settings.tls, [...path, at, 'tls'], fail) as DomainSettings['tls'];
          }
          if (v.register !== undefined && v.register !== null) settings.register = validate({ kind: 'bool' }, v.register, undefined, [...path, at, 'register'], fail) as boolean;
        }
        out[d] = settings;
      },
      () => undefined,
    );
  }
  return out;
}
