/**
 * Opens the storage backend the configuration names.
 */
import { resolve } from 'node:path';
import { ConfigError } from '../config/load.js';
import type { Config } from '../config/types.js';
import { SqliteStorage } from './sqlite/index.js';
import type { Storage } from './types.js';

/** Throws a ConfigError when the configured backend cannot be used (for check-config). */
export function assertStorageSupported(config: Config): void {
  if (config.storage.driver === 'postgres') {
    throw new ConfigError('storage.driver', '"postgres" is not implemented yet; use "sqlite"');
  }
}

export function openStorage(config: Config): Storage {
  assertStorageSupported(config);
  const s = config.storage;
  switch (s.driver) {
    case 'sqlite': {
      const path = s.sqlite.path === ':memory:' ? s.sqlite.path : resolve(config.dataDir, s.sqlite.path);
      return SqliteStorage.open(path, { synchronous: s.sqlite.synchronous });
    }
    case 'postgres':
      throw new Error('unreachable: assertStorageSupported refuses postgres');
  }
}
