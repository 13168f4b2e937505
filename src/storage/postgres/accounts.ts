/**
 * Accounts in PostgreSQL: one row per account, SCRAM credentials as columns
 * (the same layout as the SQLite table).
 */
import type pg from 'pg';
import { AccountExistsError, type AccountRecord, type AccountStore, type ScramCredential } from '../types.js';
import { sqlState } from './db.js';

interface Row {
  username: string;
  created_at: number;
  sha1_salt: Buffer;
  sha1_iterations: number;
  sha1_stored_key: Buffer;
  sha1_server_key: Buffer;
  sha256_salt: Buffer;
  sha256_iterations: number;
  sha256_stored_key: Buffer;
  sha256_server_key: Buffer;
}

const cred = (salt: Buffer, iterations: number, storedKey: Buffer, serverKey: Buffer): ScramCredential => ({ salt, iterations, storedKey, serverKey });

function credValues(scram: AccountRecord['scram']): unknown[] {
  const a = scram['SHA-1'];
  const b = scram['SHA-256'];
  return [a.salt, a.iterations, a.storedKey, a.serverKey, b.salt, b.iterations, b.storedKey, b.serverKey];
}

export class PgAccountStore implements AccountStore {
  /** @param deleteAll removes every row of the account in every table (see PostgresStorage). */
  constructor(
    private readonly pool: pg.Pool,
    private readonly deleteAll: (username: string) => Promise<boolean>,
  ) {}

  async get(username: string): Promise<AccountRecord | undefined> {
    const r = (await this.pool.query<Row>({ name: 'acct-get', text: 'SELECT * FROM accounts WHERE username = $1', values: [username] })).rows[0];
    if (!r) return undefined;
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
    const r = await this.pool.query({ name: 'acct-exists', text: 'SELECT 1 FROM accounts WHERE username = $1', values: [username] });
    return (r.rowCount ?? 0) > 0;
  }

  async create(record: AccountRecord): Promise<void> {
    try {
      await this.pool.query(
        `INSERT INTO accounts (username, created_at,
           sha1_salt, sha1_iterations, sha1_stored_key, sha1_server_key,
           sha256_salt, sha256_iterations, sha256_stored_key, sha256_server_key)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
        [record.username, record.createdAt, ...credValues(record.scram)],
      );
    } catch (err) {
      if (sqlState(err) === '23505') throw new AccountExistsError(`account ${record.username} already exists`);
      throw err;
    }
  }

  async setCredentials(username: string, scram: AccountRecord['scram']): Promise<boolean> {
    const r = await this.pool.query(
      `UPDATE accounts SET
         sha1_salt = $2, sha1_iterations = $3, sha1_stored_key = $4, sha1_server_key = $5,
         sha256_salt = $6, sha256_iterations = $7, sha256_stored_key = $8, sha256_server_key = $9
       WHERE username = $1`,
      [username, ...credValues(scram)],
    );
    return (r.rowCount ?? 0) > 0;
  }

  async delete(username: string): Promise<boolean> {
    return this.deleteAll(username);
  }

  async list(): Promise<string[]> {
    return (await this.pool.query<{ username: string }>('SELECT username FROM accounts ORDER BY username')).rows.map((r) => r.username);
  }
}
