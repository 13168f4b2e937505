/**
 * Per-account key/value pairs (vcard, private XML, PEP, settings) in one table.
 */
import type { Database, Statement } from 'better-sqlite3';
import type { KeyValueStore } from '../types.js';

export class SqliteKeyValueStore implements KeyValueStore {
  private readonly getStmt: Statement<[string, string, string], { value: string }>;
  private readonly setStmt: Statement<[string, string, string, string]>;
  private readonly delStmt: Statement<[string, string, string]>;
  private readonly keysStmt: Statement<[string, string], { key: string }>;

  constructor(db: Database) {
    this.getStmt = db.prepare('SELECT value FROM kv WHERE username = ? AND store = ? AND key = ?');
    this.setStmt = db.prepare(
      'INSERT INTO kv (username, store, key, value) VALUES (?, ?, ?, ?) ON CONFLICT (username, store, key) DO UPDATE SET value = excluded.value',
    );
    this.delStmt = db.prepare('DELETE FROM kv WHERE username = ? AND store = ? AND key = ?');
    this.keysStmt = db.prepare('SELECT key FROM kv WHERE username = ? AND store = ? ORDER BY key');
  }

  async get(username: string, store: string, key: string): Promise<string | undefined> {
    return this.getStmt.get(username, store, key)?.value;
  }

  /** `undefined` removes the key. */
  async set(username: string, store: string, key: string, value: string | undefined): Promise<void> {
    if (value === undefined) this.delStmt.run(username, store, key);
    else this.setStmt.run(username, store, key, value);
  }

  async keys(username: string, store: string): Promise<string[]> {
    return this.keysStmt.all(username, store).map((r) => r.key);
  }
}
