/**
 * Accounts in SQLite: one row per account, SCRAM credentials as columns.
 */
import type { Database, Statement } from 'better-sqlite3';
import { AccountExistsError, type AccountRecord, type AccountStore, type ScramCredential } from '../types.js';

type CredParams = {
  sha1_salt: Buffer;
  sha1_iterations: number;
  sha1_stored_key: Buffer;
  sha1_server_key: Buffer;
  sha256_salt: Buffer;
  sha256_iterations: number;
  sha256_stored_key: Buffer;
  sha256_server_key: Buffer;
};

interface Row extends CredParams {
  username: string;
  created_at: number;
}

function credParams(scram: AccountRecord['scram']): CredParams {
  const a = scram['SHA-1'];
  const b = scram['SHA-256'];
  return {
    sha1_salt: a.salt,
    sha1_iterations: a.iterations,
    sha1_stored_key: a.storedKey,
    sha1_server_key: a.serverKey,
    sha256_salt: b.salt,
    sha256_iterations: b.iterations,
    sha256_stored_key: b.storedKey,
    sha256_server_key: b.serverKey,
  };
}

function cred(salt: Buffer, iterations: number, storedKey: Buffer, serverKey: Buffer): ScramCredential {
  return { salt, iterations, storedKey, serverKey };
}

export class SqliteAccountStore implements AccountStore {
  private readonly getStmt: Statement<[string], Row>;
  private readonly existsStmt: Statement<[string], { one: number }>;
  private readonly insertStmt: Statement<[CredParams & { username: string; created_at: number }]>;
  private readonly updateStmt: Statement<[CredParams & { username: string }]>;
  private readonly listStmt: Statement<[], { username: string }>;

  /** @param deleteAll removes every row of the account in every table (see SqliteStorage). */
  constructor(
    db: Database,
    private readonly deleteAll: (username: string) => boolean,
  ) {
    this.getStmt = db.prepare('SELECT * FROM accounts WHERE username = ?');
    this.existsStmt = db.prepare('SELECT 1 AS one FROM accounts WHERE username = ?');
    this.insertStmt = db.prepare(`
      INSERT INTO accounts (username, created_at,
        sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
        sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)
      VALUES (@username, @created_at,
        @sha1_salt, @sha1_iterations, @sha1_stored_key, @sha1_server_key,
        @sha256_salt, @sha256_iterations, @sha256_stored_key, @sha256_server_key)`);
    this.updateStmt = db.prepare(`
      UPDATE accounts SET
        sha1_salt = @sha1_salt, sha1_iterations = @sha1_iterations,
        sha1_stored_key = @sha1_stored_key, sha1_server_key = @sha1_server_key,
        sha256_salt = @sha256_salt, sha256_iterations = @sha256_iterations,
        sha256_stored_key = @sha256_stored_key, sha256_server_key = @sha256_server_key
      WHERE username = @username`);
    this.listStmt = db.prepare('SELECT username FROM accounts ORDER BY username');
  }

  async get(username: string): Promise<AccountRecord | undefined> {
    const r = this.getStmt.get(username);
    if (r === undefined) return undefined;
    return {
      username: r.username,
      createdAt: r.created_at,
      scram: {
        'SHA-1': cred(r.sha1_salt, r.sha1_iterations, r.sha1_stored_key, r.sha1_server_key),
        'SHA-256': cred(r.sha256_salt, r.sha256_iterations, r.sha256_stored_key, r.sha256_server_key),
      },
    };
  }

  async exists(username: string): Promise<boolean> {
    return this.existsStmt.get(username) !== undefined;
  }

  async create(record: AccountRecord): Promise<void> {
    try {
      this.insertStmt.run({ username: record.username, created_at: record.createdAt, ...credParams(record.scram) });
    } catch (err) {
      if ((err as { code?: string }).code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
        throw new AccountExistsError(`account ${record.username} already exists`);
      }
      throw err;
    }
  }

  async setCredentials(username: string, scram: AccountRecord['scram']): Promise<boolean> {
    return this.updateStmt.run({ username, ...credParams(scram) }).changes > 0;
  }

  /** Deletes the account together with all its data in other tables, in one transaction. */
  async delete(username: string): Promise<boolean> {
    return this.deleteAll(username);
  }

  async list(): Promise<string[]> {
    return this.listStmt.all().map((r) => r.username);
  }
}
