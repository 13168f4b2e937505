/**
 * Builds the Config from defaults, the YAML file and command-line overrides
 * (in increasing priority), validates it and resolves every path to an
 * absolute one. Errors are ConfigErrors naming the key and the problem, with
 * the file line or the command-line flag the bad value came from.
 */
import { readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, type Document } from 'yaml';
import { defaultConfig } from './defaults.js';
import { configSchema, Recorded, validate, type Fail } from './schema.js';
import type { Config } from './types.js';
import { checkWebConfig } from '../net/web/options.js';

/** Values given on the command line; they win over the file. Numbers may arrive as strings. */
export interface CliOverrides {
  domain?: string;
  host?: string;
  c2sPort?: number | string;
  tlsPort?: number | string;
  dataDir?: string;
  logLevel?: string;
}

export interface LoadOptions {
  /** YAML file; without it only defaults and overrides are used. */
  file?: string;
  overrides?: CliOverrides;
  /**
   * Check that files the config points to exist (default true). `verona cert
   * generate` turns it off: it is the way to create a missing certificate.
   */
  checkFiles?: boolean;
  /** Directory for relative command-line paths and the default dataDir (default process.cwd()). */
  cwd?: string;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  /**
   * @param path dotted key path ('c2s.port'), or '' for whole-file problems
   * @param problem what is wrong, without the path
   * @param where file:line or command-line flag the value came from
   */
  constructor(
    readonly path: string,
    readonly problem: string,
    readonly where?: string,
    /** Line in the config file, when the value came from there (orders check-config's report). */
    readonly line?: number,
  ) {
    super(`${path === '' ? '' : `${path}: `}${problem}${where === undefined ? '' : ` (${where})`}`);
  }
}

/** Which command-line flag sets which key (for overrides and error messages). */
const FLAGS: ReadonlyArray<{ key: keyof CliOverrides; path: readonly string[]; flag: string; numeric: boolean }> = [
  { key: 'domain', path: ['domain'], flag: '--domain', numeric: false },
  { key: 'host', path: ['c2s', 'host'], flag: '--host', numeric: false },
  { key: 'c2sPort', path: ['c2s', 'port'], flag: '--c2s-port', numeric: true },
  { key: 'tlsPort', path: ['c2s', 'tlsPort'], flag: '--tls-port', numeric: true },
  { key: 'dataDir', path: ['dataDir'], flag: '--data-dir', numeric: false },
  { key: 'logLevel', path: ['log', 'level'], flag: '--log-level', numeric: false },
];

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

interface Parsed {
  raw: Record<string, unknown>;
  doc: Document;
  lines: LineCounter;
}

function parseFile(file: string, collect?: ConfigError[]): Parsed {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') throw new ConfigError('', `config file ${file} not found`);
    if (code === 'EISDIR') throw new ConfigError('', `config file ${file} is a directory`);
    throw new ConfigError('', `cannot read config file ${file}: ${(err as Error).message}`);
  }
  const lines = new LineCounter();
  // uniqueKeys: a key written twice is almost always a mistake; YAML 1.2 core
  // schema so that `yes`/`on` stay strings instead of silently becoming true.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true, schema: 'core' });
  const yamlErrors = doc.errors.map((e) => {
    const { line, col } = lines.linePos(e.pos[0]);
    return new ConfigError('', `${file}:${line}:${col}: bad YAML: ${e.message}`, undefined, line);
  });
  if (yamlErrors.length > 0) {
    // A file that does not parse has no keys to check: report every syntax error and stop.
    collect?.push(...yamlErrors.slice(1));
    throw yamlErrors[0];
  }
  const value: unknown = doc.toJS({ maxAliasCount: 100 });
  if (value === null || value === undefined) return { raw: {}, doc, lines };
  if (!isMapping(value)) throw new ConfigError('', `${file}: the top level must be a mapping of keys (domain:, c2s:, ...)`);
  return { raw: value, doc, lines };
}

export function loadConfig(opts: LoadOptions = {}): Config {
  return build(opts, undefined);
}

/**
 * For `verona check-config`: every problem instead of the first, in file order
 * (command-line flags first, then by line, then problems with no line such as
 * a missing default certificate). `config` is set only when there are none.
 */
export function checkConfig(opts: LoadOptions = {}): { config: Config | undefined; errors: ConfigError[] } {
  const errors: ConfigError[] = [];
  let config: Config | undefined;
  try {
    config = build(opts, errors);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    errors.push(err);
  }
  const rank = (e: ConfigError): number => (e.where?.startsWith('from --') === true ? 0 : (e.line ?? Number.MAX_SAFE_INTEGER));
  const ordered = errors.map((e, i) => ({ e, i })).sort((a, b) => rank(a.e) - rank(b.e) || a.i - b.i).map((x) => x.e);
  return { config: ordered.length === 0 ? config : undefined, errors: ordered };
}

function build(opts: LoadOptions, collect: ConfigError[] | undefined): Config {
  const cwd = opts.cwd ?? process.cwd();
  const file = opts.file;
  const parsed = file === undefined ? undefined : parseFile(resolve(cwd, file), collect);
  const raw: Record<string, unknown> = parsed === undefined ? {} : { ...parsed.raw };

  // Apply overrides onto the raw tree so that they pass the same validation.
  const origin = new Map<string, string>();
  for (const f of FLAGS) {
    let v = opts.overrides?.[f.key];
    if (v === undefined) continue;
    if (f.numeric && typeof v === 'string' && /^-?\d+$/.test(v.trim())) v = Number(v.trim());
    let node = raw;
    for (const seg of f.path.slice(0, -1)) {
      const child = node[seg];
      // A malformed section in the file is left alone: validation reports it.
      if (child !== undefined && child !== null && !isMapping(child)) break;
      node = node[seg] = { ...(child ?? {}) };
    }
    node[f.path[f.path.length - 1]] = v;
    origin.set(f.path.join('.'), f.flag);
  }

  const problem = (path: readonly string[], text: string): ConfigError => {
    const dotted = path.join('.');
    const flag = origin.get(dotted);
    let where: string | undefined = flag === undefined ? undefined : `from ${flag}`;
    let line: number | undefined;
    if (where === undefined && parsed !== undefined && file !== undefined) {
      const node = path.length === 0 ? undefined : parsed.doc.getIn(path, true);
      // An unknown key has no value node of its own worth pointing at: use its parent's pair.
      const range = (node as { range?: [number, number, number] } | undefined)?.range ?? keyRange(parsed.doc, path);
      if (range !== undefined) {
        line = parsed.lines.linePos(range[0]).line;
        where = `${file}:${line}`;
      }
    }
    return new ConfigError(dotted, text, where, line);
  };
  // Collecting (check-config): the schema pass records and recovers at the nearest key;
  // the rules after it are independent statements, so they record and go on.
  const failFast: Fail = (path, text) => {
    const e = problem(path, text);
    if (collect === undefined) throw e;
    collect.push(e);
    throw new Recorded(e.message);
  };
  const fail: Fail =
    collect === undefined
      ? failFast
      : ((path, text) => {
          collect.push(problem(path, text));
        }) as Fail;

  const config = validate(configSchema, raw, defaultConfig(), [], failFast, collect !== undefined) as Config;

  // Rules that involve more than one key.
  const { c2s } = config;
  if (c2s.port > 0 && c2s.port === c2s.tlsPort) fail(['c2s', 'tlsPort'], `same port as c2s.port (${c2s.port})`);
  if (c2s.maxStanzaSizePreAuth > c2s.maxStanzaSize) {
    fail(['c2s', 'maxStanzaSizePreAuth'], `must not exceed c2s.maxStanzaSize (${c2s.maxStanzaSize})`);
  }
  if (config.storage.driver === 'postgres' && config.storage.postgres.url === '') {
    fail(['storage', 'postgres', 'url'], 'required when storage.driver is "postgres"');
  }
  checkWebConfig(config, fail);

  // Paths: dataDir from the file is relative to the file (so a config in
  // /etc/verona works from any working directory); from the command line or
  // the default, relative to the working directory. Everything else lives
  // relative to dataDir.
  const fileDataDir = origin.has('dataDir') ? undefined : parsed?.raw.dataDir;
  const base = typeof fileDataDir === 'string' && file !== undefined ? dirname(resolve(cwd, file)) : cwd;
  config.dataDir = resolve(base, config.dataDir);
  config.tls.cert = resolve(config.dataDir, config.tls.cert);
  config.tls.key = resolve(config.dataDir, config.tls.key);
  // The primary domain may be listed among `domains:` too; it keeps the top-level settings.
  delete config.domains[config.domain];
  for (const d of Object.values(config.domains)) d.tls = { cert: resolve(config.dataDir, d.tls.cert), key: resolve(config.dataDir, d.tls.key) };
  if (config.storage.sqlite.path !== ':memory:') {
    config.storage.sqlite.path = resolve(config.dataDir, config.storage.sqlite.path);
  }

  if (opts.checkFiles !== false) checkFiles(config, fail);
  return config;
}

/** Where the key (not its value) of `path` is written, for keys whose value node has no range. */
function keyRange(doc: Document, path: readonly string[]): [number, number, number] | undefined {
  if (path.length === 0) return undefined;
  const parent = path.length === 1 ? doc.contents : doc.getIn(path.slice(0, -1), true);
  const items = (parent as { items?: Array<{ key?: { value?: unknown; range?: [number, number, number] } }> } | null)?.items;
  return items?.find((p) => String(p.key?.value) === path[path.length - 1])?.key?.range;
}

type Kind = 'file' | 'dir' | 'missing';

function kindOf(p: string): Kind {
  try {
    return statSync(p).isDirectory() ? 'dir' : 'file';
  } catch {
    return 'missing';
  }
}

function checkFiles(config: Config, fail: Fail): void {
  if (kindOf(config.dataDir) === 'file') fail(['dataDir'], `${config.dataDir} is a file, expected a directory`);
  const cert = kindOf(config.tls.cert);
  const key = kindOf(config.tls.key);
  if (cert === 'dir') fail(['tls', 'cert'], `${config.tls.cert} is a directory, expected a PEM file`);
  if (key === 'dir') fail(['tls', 'key'], `${config.tls.key} is a directory, expected a PEM file`);
  if (!config.tls.generate) {
    if (cert === 'missing') fail(['tls', 'cert'], `file ${config.tls.cert} not found (tls.generate is false)`);
    if (key === 'missing') fail(['tls', 'key'], `file ${config.tls.key} not found (tls.generate is false)`);
  } else if (cert !== key) {
    // Generating would overwrite the half that exists, which may be the
    // operator's own file: refuse and let them decide.
    const [missing, present] = cert === 'missing' ? (['cert', 'key'] as const) : (['key', 'cert'] as const);
    fail(
      ['tls', missing],
      `file ${config.tls[missing]} not found but tls.${present} exists; supply both files, or remove ${config.tls[present]} to have a new pair generated`,
    );
  }
  if (config.storage.driver === 'sqlite' && config.storage.sqlite.path !== ':memory:') {
    if (kindOf(config.storage.sqlite.path) === 'dir') {
      fail(['storage', 'sqlite', 'path'], `${config.storage.sqlite.path} is a directory, expected a database file`);
    }
  }
}
