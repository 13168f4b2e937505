/**
 * `verona storage migrate SOURCE TARGET`: copy a whole installation between
 * SQLite and PostgreSQL (either way), resumable, verified by counts and
 * checksums, archive ids preserved (src/storage/migrate.ts, docs/storage.md).
 *
 * SOURCE and TARGET: a SQLite file (`sqlite:PATH` or a path) or a
 * `postgres://` URL. The word `config` stands for the storage the
 * configuration file names.
 */
import { resolve } from 'node:path';
import type { Config } from '../config/types.js';
import { describeEndpoint, migrateStorage, MigrateError, openSide, parseEndpoint, type Endpoint } from '../storage/migrate.js';
import { runtimeError, usageError } from './errors.js';

function endpoint(arg: string, config: Config): Endpoint {
  if (arg === 'config') {
    const s = config.storage;
    return s.driver === 'postgres' ? { kind: 'postgres', url: s.postgres.url } : { kind: 'sqlite', path: resolve(config.dataDir, s.sqlite.path) };
  }
  const e = parseEndpoint(arg);
  return e.kind === 'sqlite' ? { kind: 'sqlite', path: resolve(e.path) } : e;
}

export async function storageCommand(config: Config, args: string[], out: (line: string) => void): Promise<void> {
  const [sub, from, to, ...rest] = args;
  if (sub !== 'migrate') throw usageError(`unknown storage action "${sub ?? ''}" (use "storage migrate SOURCE TARGET")`);
  if (from === undefined || to === undefined) throw usageError('storage migrate needs SOURCE and TARGET (a SQLite file, a postgres:// URL, or "config")');
  if (rest.length > 0) throw usageError(`unexpected argument "${rest[0]}" for storage migrate`);
  const src = endpoint(from, config);
  const dst = endpoint(to, config);
  if (describeEndpoint(src) === describeEndpoint(dst)) throw usageError('SOURCE and TARGET are the same storage');
  const source = await openSide(src);
  try {
    const target = await openSide(dst);
    try {
      out(`migrating ${source.label} -> ${target.label}`);
      const report = await migrateStorage(source, target, { log: (l) => out(`  ${l}`) });
      const total = report.tables.reduce((n, t) => n + t.rows, 0);
      out(`verified: ${report.tables.length} tables, ${total} rows, counts and checksums equal${report.resumed ? ' (resumed an earlier run)' : ''}`);
    } finally {
      await target.close();
    }
  } catch (err) {
    if (err instanceof MigrateError) throw runtimeError(err.message);
    throw err;
  } finally {
    await source.close();
  }
}
