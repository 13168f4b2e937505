/**
 * Opens the storage backend the configuration names.
 */
import { resolve } from 'node:path';
import type { Config } from '../config/types.js';
import { SqliteStorage } from './sqlite/index.js';
import { PostgresStorage } from './postgres/index.js';
import type { Storage } from './types.js';

/** Throws a ConfigError when the configured backend cannot be used (for check-config). */
export function assertStorageSupported(_config: Config): void {
  // Both backends are implemented; config/load.ts already requires a URL for postgres.
}

export interface OpenStorageHooks {
  /** A broken idle PostgreSQL connection (the database restarted or went away). */
  onPoolError?(err: Error): void;
}

export async function openStorage(config: Config, hooks: OpenStorageHooks = {}): Promise<Storage> {
  const s = config.storage;
  switch (s.driver) {
    case 'sqlite': {
      const path = s.sqlite.path === ':memory:' ? s.sqlite.path : resolve(config.dataDir, s.sqlite.path);
      return SqliteStorage.open(path, { synchronous: s.sqlite.synchronous, archiveSync: s.sqlite.archiveSync });
    }
    case 'postgres':
      return PostgresStorage.open({ url: s.postgres.url, poolSize: s.postgres.poolSize, onPoolError: hooks.onPoolError });
  }
}
