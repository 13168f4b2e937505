/**
 * verona import FILE|DIR (src/portable/import.ts does the work). Runs against the
 * database file like adduser does; stop the server first for a large import, or
 * accounts appear while it runs (safe: WAL).
 */
import { existsSync } from 'node:fs';
import type { Config } from '../config/types.js';
import { importPortable } from '../portable/import.js';
import { exportPortable } from '../portable/export.js';
import { openStorage } from '../storage/index.js';
import { runtimeError } from './errors.js';
import { pepOptions } from '../modules/pep/index.js';
import { EjabberdArchive } from '../portable/ejabberd-mam.js';
import { hostsOf } from './accounts.js';

export async function runImport(config: Config, target: string, ejabberdMam?: string): Promise<string[]> {
  if (!existsSync(target)) throw runtimeError(`${target} not found`);
  if (ejabberdMam !== undefined && !existsSync(ejabberdMam)) throw runtimeError(`${ejabberdMam} not found`);
  const storage = await openStorage(config);
  let mam: EjabberdArchive | undefined;
  try {
    const pep = pepOptions(config.moduleOptions.pep ?? {});
    if (ejabberdMam !== undefined) {
      try {
        mam = new EjabberdArchive(ejabberdMam);
      } catch (err) {
        throw runtimeError((err as Error).message);
      }
    }
    const r = await importPortable(storage, config.domain, target, config.auth.scramIterations, {
      pepMaxItems: pep.maxItems,
      pepDefaultMaxItems: pep.defaultMaxItems,
      ejabberdMam: mam,
    }, hostsOf(config));
    const lines = [
      `imported ${r.accounts} accounts, ${r.rosterItems} roster items, ${r.vcards} vCards, ${r.privateFragments} private XML fragments, ${r.archived} archived messages`,
      `imported ${r.pepNodes} PEP nodes with ${r.pepItems} items, ${r.offline} offline messages, ${r.blocked} blocked JIDs`,
    ];
    for (const s of r.skipped) lines.push(`skipped: ${s}`);
    if (r.sha1Only.length > 0) {
      lines.push(
        `note: ${r.sha1Only.length} accounts came with SCRAM-SHA-1 credentials only (${r.sha1Only.join(', ')}): ` +
          'they log in with SCRAM-SHA-1 until their password is changed; keep auth.mechanisms to SCRAM-SHA-1 during the move (docs/migration.md)',
      );
    }
    return lines;
  } finally {
    mam?.close();
    await storage.close();
  }
}

export async function runExport(config: Config, dir: string): Promise<string[]> {
  const storage = await openStorage(config);
  try {
    const r = await exportPortable(storage, config.domain, dir, hostsOf(config));
    return [
      `exported ${r.accounts} accounts, ${r.rosterItems} roster items, ${r.archived} archived messages to ${dir} (one XEP-0227 file per account; they hold credentials: keep them private)`,
      `exported ${r.pepNodes} PEP nodes, ${r.offline} offline messages, ${r.blocked} blocked JIDs`,
    ];
  } finally {
    await storage.close();
  }
}
