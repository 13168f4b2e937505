/**
 * PostgreSQL table `fast_tokens` (see src/storage/fast.ts), the same columns
 * as SQLite's: only SHA-256 of a token is stored; keyed by username, so
 * account deletion revokes every token.
 */
import type pg from 'pg';
import type { FastToken, FastTokenStore } from '../fast.js';

export const PG_FAST_MIGRATION_SQL = `
  CREATE TABLE fast_tokens (
    username TEXT NOT NULL,
    key_hash BYTEA NOT NULL,
    agent TEXT NOT NULL,
    mechanism TEXT NOT NULL,
    cred_stamp TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    count BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (username, key_hash)
  );`;

interface Row {
  username: string;
  agent: string;
  mechanism: string;
  key_hash: Buffer;
  cred_stamp: string;
  created_at: number;
  expires_at: number;
  count: number;
}

export class PgFastTokenStore implements FastTokenStore {
  constructor(private readonly pool: pg.Pool) {}

  async list(username: string): Promise<FastToken[]> {
    const now = Date.now();
    // Expired tokens are pruned when the account's tokens are read (as in SQLite): no sweeper needed.
    await this.pool.query('DELETE FROM fast_tokens WHERE username = $1 AND expires_at <= $2', [username, now]);
    const r = await this.pool.query<Row>('SELECT * FROM fast_tokens WHERE username = $1 AND expires_at > $2', [username, now]);
    return r.rows.map((x) => ({
      username: x.username, agent: x.agent, mechanism: x.mechanism, keyHash: x.key_hash, credStamp: x.cred_stamp,
      createdAt: x.created_at, expiresAt: x.expires_at, count: x.count,
    }));
  }

  async add(t: FastToken): Promise<void> {
    await this.pool.query(
      `INSERT INTO fast_tokens (username, key_hash, agent, mechanism, cred_stamp, created_at, expires_at, count) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
       ON CONFLICT (username, key_hash) DO UPDATE SET agent = excluded.agent, mechanism = excluded.mechanism, cred_stamp = excluded.cred_stamp,
         created_at = excluded.created_at, expires_at = excluded.expires_at, count = excluded.count`,
      [t.username, t.keyHash, t.agent, t.mechanism, t.credStamp, t.createdAt, t.expiresAt, t.count],
    );
  }

  async remove(username: string, keyHash: Buffer): Promise<void> {
    await this.pool.query('DELETE FROM fast_tokens WHERE username = $1 AND key_hash = $2', [username, keyHash]);
  }

  async removeForAgent(username: string, agent: string, keep?: Buffer): Promise<void> {
    await this.pool.query('DELETE FROM fast_tokens WHERE username = $1 AND agent = $2 AND key_hash <> $3', [username, agent, keep ?? Buffer.alloc(0)]);
  }

  async setCount(username: string, keyHash: Buffer, count: number): Promise<void> {
    await this.pool.query('UPDATE fast_tokens SET count = $1 WHERE username = $2 AND key_hash = $3', [count, username, keyHash]);
  }
}
