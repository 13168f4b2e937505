/**
 * verona backup DIR: a consistent copy of the SQLite database while the server
 * runs, with SQLite's online backup API (better-sqlite3 `db.backup`). The copy
 * is made from a read-only connection of its own; in WAL mode readers never
 * block the server's writes, and the backup restarts by itself if the database
 * changes between two of its steps, so what it writes is one consistent
 * snapshot. The result is checked (`PRAGMA integrity_check`) before the command
 * reports success. Restore: docs/operations.md, "Backups".
 */
import { mkdirSync, renameSync, statSync } from 'node:fs';
import path from 'node:path';
import Database from 'better-sqlite3';
import type { Config } from '../config/types.js';
import { runtimeError } from './errors.js';

/** File name for a backup taken at `now`: verona-20261203T115200Z.sqlite. */
export function backupName(now: Date): string {
  return `verona-${now.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z')}.sqlite`;
}

export async function backup(config: Config, dir: string): Promise<string[]> {
  if (config.storage.driver !== 'sqlite') {
    throw runtimeError('backup copies the SQLite database; for PostgreSQL use pg_dump (docs/operations.md, "Backups")');
  }
  const src = config.storage.sqlite.path;
  try {
    statSync(src);
  } catch {
    throw runtimeError(`no database at ${src}`);
  }
  mkdirSync(dir, { recursive: true });
  const dest = path.resolve(dir, backupName(new Date()));
  const partial = `${dest}.partial`;
  const db = new Database(src, { readonly: true, fileMustExist: true, timeout: 10_000 });
  const started = Date.now();
  try {
    // After the first step copy everything that is left in one step: one read
    // transaction, so a busy server cannot make the backup start over forever.
    await db.backup(partial, { progress: ({ remainingPages }) => Math.max(remainingPages, 100) });
  } finally {
    db.close();
  }
  const copy = new Database(partial, { fileMustExist: true });
  let check: string;
  let accounts: number;
  let archived: number;
  try {
    check = copy.pragma('integrity_check', { simple: true }) as string;
    accounts = (copy.prepare('SELECT count(*) AS n FROM accounts').get() as { n: number }).n;
    const hasArchive = copy.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'archive'").get() !== undefined;
    archived = hasArchive ? (copy.prepare('SELECT count(*) AS n FROM archive').get() as { n: number }).n : 0;
    // A standalone file: no WAL beside it.
    copy.pragma('journal_mode = DELETE');
  } finally {
    copy.close();
  }
  if (check !== 'ok') throw runtimeError(`the copy failed its integrity check: ${check}`);
  renameSync(partial, dest);
  return [
    `backup ${dest}`,
    `${accounts} accounts, ${archived} archived messages, ${statSync(dest).size} bytes, ${Date.now() - started} ms, integrity ok`,
  ];
}
