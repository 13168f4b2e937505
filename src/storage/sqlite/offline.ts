/**
 * Offline messages in SQLite (schema: migration '0004-offline' in
 * migrations.ts). Few rows per account (bounded by the module's limit), read
 * once and deleted, so a plain index on (username, seq) is all it needs.
 */
import type { Database, Statement, Transaction } from 'better-sqlite3';
import type { OfflineMessage, OfflineStore } from '../offline.js';

interface Row {
  seq: number;
  stamp: number;
  stanza: string;
  archive_id: string | null;
}

export class SqliteOfflineStore implements OfflineStore {
  private readonly countStmt: Statement<[string], { n: number }>;
  private readonly insertStmt: Statement<[string, number, string, string | null]>;
  private readonly listStmt: Statement<[string], Row>;
  private readonly deleteAllStmt: Statement<[string]>;
  private readonly dropArchivedStmt: Statement<[string]>;
  private readonly storeTx: Transaction<(u: string, m: Omit<OfflineMessage, 'seq'>, limit: number) => boolean>;
  private readonly takeTx: Transaction<(u: string) => Row[]>;

  constructor(db: Database) {
    this.countStmt = db.prepare('SELECT count(*) AS n FROM offline WHERE username = ?');
    this.insertStmt = db.prepare('INSERT INTO offline (username, stamp, stanza, archive_id) VALUES (?, ?, ?, ?)');
    this.listStmt = db.prepare('SELECT seq, stamp, stanza, archive_id FROM offline WHERE username = ? ORDER BY seq');
    this.deleteAllStmt = db.prepare('DELETE FROM offline WHERE username = ?');
    this.dropArchivedStmt = db.prepare('DELETE FROM offline WHERE username = ? AND archive_id IS NOT NULL');
    // Count and insert in one transaction, so two concurrent writers cannot both pass the limit.
    this.storeTx = db.transaction((u: string, m: Omit<OfflineMessage, 'seq'>, limit: number) => {
      if ((this.countStmt.get(u)?.n ?? 0) >= limit) return false;
      this.insertStmt.run(u, m.stamp, m.stanza, m.archiveId ?? null);
      return true;
    });
    this.takeTx = db.transaction((u: string) => {
      const rows = this.listStmt.all(u);
      if (rows.length > 0) this.deleteAllStmt.run(u);
      return rows;
    });
  }

  async store(username: string, msg: Omit<OfflineMessage, 'seq'>, limit: number): Promise<boolean> {
    return this.storeTx.immediate(username, msg, limit);
  }

  async count(username: string): Promise<number> {
    return this.countStmt.get(username)?.n ?? 0;
  }

  async peek(username: string): Promise<OfflineMessage[]> {
    return this.listStmt.all(username).map((r) => ({ seq: r.seq, stamp: r.stamp, stanza: r.stanza, archiveId: r.archive_id ?? undefined }));
  }

  async take(username: string): Promise<OfflineMessage[]> {
    // Nearly every login finds nothing: answer that from a plain read instead of a write
    // transaction. Nothing else runs between this read and the transaction (synchronous calls).
    if (this.countStmt.get(username)?.n === 0) return [];
    return this.takeTx.immediate(username).map((r) => ({ seq: r.seq, stamp: r.stamp, stanza: r.stanza, archiveId: r.archive_id ?? undefined }));
  }

  async dropArchived(username: string): Promise<number> {
    return this.dropArchivedStmt.run(username).changes;
  }
}
