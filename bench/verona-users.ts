/**
 * Bulk account creation for benchmarks: `node dist/bench/verona-users.js --config F --count N
 * [--start 1] [--prefix user] [--pwprefix pass] [--extra mamsrc:mamsrc,mamdst:mamdst]`.
 *
 * `verona adduser` is one process per account (Node start-up plus two PBKDF2s each), which makes
 * 50,000 benchmark users take most of an hour. This does the same thing as adduser (the same
 * config loader, storage and SCRAM derivation, so the accounts are indistinguishable) in one
 * process, with the PBKDF2s spread over the libuv thread pool. Existing accounts are skipped, so
 * a rerun only adds what is missing. Prints `USERS {"created":n,"existing":m,"secs":s}`.
 */
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { loadConfig } from '../src/config/load.js';
import { deriveAllScram } from '../src/sasl/credentials.js';
import { openStorage } from '../src/storage/index.js';
import { AccountExistsError } from '../src/storage/types.js';

export interface BulkUsersOptions {
  configFile: string;
  accounts: Array<[string, string]>;
  /** PBKDF2s in flight (the thread pool has 4 threads by default). */
  parallel?: number;
}

export async function createAccounts(o: BulkUsersOptions): Promise<{ created: number; existing: number; secs: number }> {
  const config = loadConfig({ file: o.configFile });
  const storage = await openStorage(config);
  const t0 = performance.now();
  let created = 0;
  let existing = 0;
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < o.accounts.length) {
      const [username, password] = o.accounts[next++] as [string, string];
      if (await storage.accounts.exists(username)) {
        existing++;
        continue;
      }
      const scram = await deriveAllScram(password, config.auth.scramIterations);
      try {
        await storage.accounts.create({ username, createdAt: Date.now(), scram });
        created++;
      } catch (err) {
        if (err instanceof AccountExistsError) existing++;
        else throw err;
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: o.parallel ?? 8 }, worker));
  } finally {
    await storage.close();
  }
  return { created, existing, secs: Math.round(performance.now() - t0) / 1000 };
}

async function cli(): Promise<void> {
  const { values: a } = parseArgs({
    options: {
      config: { type: 'string' },
      count: { type: 'string', default: '0' },
      start: { type: 'string', default: '1' },
      prefix: { type: 'string', default: 'user' },
      pwprefix: { type: 'string', default: 'pass' },
      extra: { type: 'string', default: '' },
    },
  });
  if (!a.config) throw new Error('--config is required');
  const start = Number(a.start);
  const accounts: Array<[string, string]> = Array.from({ length: Number(a.count) }, (_, k) => [
    a.prefix + (start + k),
    a.pwprefix + (start + k),
  ]);
  for (const e of a.extra.split(',').filter(Boolean)) {
    const [u, p] = e.split(':');
    accounts.push([u as string, p ?? (u as string)]);
  }
  const r = await createAccounts({ configFile: a.config, accounts });
  process.stdout.write(`USERS ${JSON.stringify(r)}\n`);
}

if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  cli().then(
    () => process.exit(0),
    (e: unknown) => {
      process.stderr.write(`verona-users: ${(e as Error).message}\n`);
      process.exit(1);
    },
  );
}
