/**
 * Schema migrations for the SQLite backend. Each entry is applied once, in
 * order, inside its own transaction, and recorded in `schema_migrations`.
 * Later issues append entries; never edit or reorder one that has shipped.
 *
 * Convention every table must follow: a table holding per-account data names
 * the owning account's column `username` (the prepared localpart).
 * `deleteUserData` finds those tables from the schema and deletes from all of
 * them, so a new table is covered without touching the deletion code. Do not
 * use a column called `username` for anything else (e.g. a contact).
 */
import type { Database } from 'better-sqlite3';
import { ROSTER_MIGRATION_SQL } from './roster.js';
import { BLOCKLIST_MIGRATION_SQL } from './blocklist.js';
import { PUBSUB_MIGRATION_SQL } from './pubsub.js';
import { MUC_MIGRATION_SQL } from './muc.js';
import { PUSH_MIGRATION_SQL } from './push.js';
import { FAST_MIGRATION_SQL } from './fast.js';
import { SM_SESSIONS_MIGRATION_SQL } from './sm-sessions.js';

export interface Migration {
  /** Unique and sortable: 'NNNN-what'. */
  id: string;
  sql: string;
}

export const migrations: Migration[] = [
  {
    id: '0001-accounts',
    // SCRAM credentials as columns rather than a blob: readable with the
    // sqlite3 shell and cheap to update one hash at a time.
    sql: `
      CREATE TABLE accounts (
        username TEXT PRIMARY KEY,
        created_at INTEGER NOT NULL,
        sha1_salt BLOB NOT NULL,
        sha1_iterations INTEGER NOT NULL,
        sha1_stored_key BLOB NOT NULL,
        sha1_server_key BLOB NOT NULL,
        sha256_salt BLOB NOT NULL,
        sha256_iterations INTEGER NOT NULL,
        sha256_stored_key BLOB NOT NULL,
        sha256_server_key BLOB NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    id: '0002-kv',
    sql: `
      CREATE TABLE kv (
        username TEXT NOT NULL,
        store TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (username, store, key)
      ) WITHOUT ROWID;
    `,
  },
  // Roster items, versions, tombstones and pending requests (src/storage/sqlite/roster.ts).
  { id: '0003-roster', sql: ROSTER_MIGRATION_SQL },
  {
    id: '0004-sm-state',
    // Final inbound h of ended resumable XEP-0198 sessions, for <failed h=…/> after expiry or restart.
    sql: `
      CREATE TABLE sm_state (
        username TEXT NOT NULL,
        id TEXT NOT NULL,
        h INTEGER NOT NULL,
        reason TEXT NOT NULL,
        ended_at INTEGER NOT NULL,
        PRIMARY KEY (username, id)
      ) WITHOUT ROWID;
      CREATE INDEX sm_state_ended_at ON sm_state (ended_at);
    `,
  },
  {
    id: '0005-archive',
    // Message archive (XEP-0313), see src/storage/sqlite/archive.ts. seq is the
    // rowid: unique across archives (one clock), growing, so inserts append.
    // The two indexes end, implicitly, with the rowid: (username, seq) and
    // (username, with_jid, seq), which every page query seeks into.
    sql: `
      CREATE TABLE archive (
        seq INTEGER PRIMARY KEY,
        username TEXT NOT NULL,
        id TEXT NOT NULL,
        with_jid TEXT NOT NULL,
        with_resource TEXT NOT NULL DEFAULT '',
        outgoing INTEGER NOT NULL,
        stanza TEXT NOT NULL
      );
      CREATE INDEX archive_by_user ON archive (username);
      CREATE INDEX archive_by_with ON archive (username, with_jid);
      CREATE UNIQUE INDEX archive_by_id ON archive (username, id);
      CREATE TABLE archive_prefs (
        username TEXT PRIMARY KEY,
        default_mode TEXT NOT NULL,
        always_jids TEXT NOT NULL,
        never_jids TEXT NOT NULL
      ) WITHOUT ROWID;
    `,
  },
  {
    id: '0006-offline',
    // Offline messages (XEP-0160), see src/storage/sqlite/offline.ts.
    sql: `
      CREATE TABLE offline (
        seq INTEGER PRIMARY KEY,
        username TEXT NOT NULL,
        stamp INTEGER NOT NULL,
        stanza TEXT NOT NULL,
        archive_id TEXT
      );
      CREATE INDEX offline_by_user ON offline (username);
    `,
  },
  // Blocked JIDs per account (XEP-0191), see src/storage/sqlite/blocklist.ts.
  { id: '0007-blocklist', sql: BLOCKLIST_MIGRATION_SQL },
  // PEP nodes, items and the XEP-0115 caps cache (src/storage/sqlite/pubsub.ts).
  { id: '0008-pubsub', sql: PUBSUB_MIGRATION_SQL },
  // Persistent MUC rooms (src/storage/sqlite/muc.ts).
  { id: '0009-muc', sql: MUC_MIGRATION_SQL },
  // Phones (docs/phones.md): ids in their own range so parallel work does not collide.
  { id: '0100-push-registrations', sql: PUSH_MIGRATION_SQL },
  { id: '0101-fast-tokens', sql: FAST_MIGRATION_SQL },
  // Hibernated resumable SM sessions, kept across a restart (src/storage/sqlite/sm-sessions.ts).
  { id: '0110-sm-sessions', sql: SM_SESSIONS_MIGRATION_SQL },
];

export class MigrationError extends Error {
  override readonly name = 'MigrationError';
}

/**
 * Apply the migrations `db` has not seen yet; returns the ids applied now.
 * Safe when several processes open the same file at once: each missing
 * migration runs in an IMMEDIATE transaction (taking the write lock before
 * checking `schema_migrations` again), so exactly one of them applies it.
 */
export function runMigrations(db: Database, list: readonly Migration[] = migrations): string[] {
  const ids = new Set<string>();
  for (const m of list) {
    if (ids.has(m.id)) throw new MigrationError(`duplicate migration id ${m.id}`);
    ids.add(m.id);
  }
  // Everything up to the first missing migration only reads, so opening a
  // current database never waits for another process's write lock.
  const hasTable = db.prepare("SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_migrations'").get();
  if (hasTable === undefined) {
    db.exec('CREATE TABLE IF NOT EXISTS schema_migrations (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL) WITHOUT ROWID');
  }
  const done = db.prepare<[string], { id: string }>('SELECT id FROM schema_migrations WHERE id = ?');
  const record = db.prepare<[string, number]>('INSERT INTO schema_migrations (id, applied_at) VALUES (?, ?)');

  // A database written by a newer Verona has migrations we do not know;
  // running on it could corrupt data the newer schema relies on.
  const known = db.prepare<[], { id: string }>('SELECT id FROM schema_migrations').all();
  const unknown = known.filter((r) => !ids.has(r.id)).map((r) => r.id);
  if (unknown.length > 0) {
    throw new MigrationError(
      `database ${db.name} was migrated by a newer Verona (unknown migrations: ${unknown.join(', ')}); upgrade Verona or restore a backup`,
    );
  }

  const applied: string[] = [];
  for (const m of list) {
    if (done.get(m.id) !== undefined) continue;
    const apply = db.transaction(() => {
      // Checked again under the write lock: another process may have won the race.
      if (done.get(m.id) !== undefined) return false;
      db.exec(m.sql);
      record.run(m.id, Date.now());
      return true;
    });
    try {
      if (apply.immediate()) applied.push(m.id);
    } catch (err) {
      throw new MigrationError(`migration ${m.id} failed: ${(err as Error).message}`, { cause: err });
    }
  }
  return applied;
}
