/**
 * Hibernated resumable sessions (see src/storage/sm-sessions.ts) in the
 * database every cluster node shares: a client resumes on whichever node it
 * reaches, and `take` (DELETE ... RETURNING) hands a session to one node only.
 */
import type pg from 'pg';
import type { SmSessionRecord, SmSessionStore } from '../sm-sessions.js';

export const PG_SM_SESSIONS_MIGRATION_SQL = `
  CREATE TABLE sm_sessions (
    username TEXT NOT NULL,
    id TEXT NOT NULL,
    resource TEXT NOT NULL,
    node TEXT NOT NULL,
    deadline BIGINT NOT NULL,
    saved_at BIGINT NOT NULL,
    state TEXT NOT NULL,
    PRIMARY KEY (username, id)
  );
  CREATE INDEX sm_sessions_by_node ON sm_sessions (node);
  CREATE INDEX sm_sessions_by_deadline ON sm_sessions (deadline);`;

interface Row {
  username: string;
  id: string;
  resource: string;
  node: string;
  deadline: string;
  saved_at: string;
  state: string;
}

const COLS = 'username, id, resource, node, deadline, saved_at, state';

function toRecord(r: Row): SmSessionRecord {
  return { username: r.username, id: r.id, resource: r.resource, node: r.node, deadline: Number(r.deadline), savedAt: Number(r.saved_at), state: r.state };
}

export class PgSmSessionStore implements SmSessionStore {
  constructor(private readonly pool: pg.Pool) {}

  async put(r: SmSessionRecord): Promise<void> {
    await this.pool.query(
      `INSERT INTO sm_sessions (${COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7)
       ON CONFLICT (username, id) DO UPDATE SET resource = excluded.resource, node = excluded.node,
         deadline = excluded.deadline, saved_at = excluded.saved_at, state = excluded.state`,
      [r.username, r.id, r.resource, r.node, r.deadline, r.savedAt, r.state],
    );
  }

  /** One statement (one commit) for a whole checkpoint batch; the last row of a key wins. */
  async putMany(recs: readonly SmSessionRecord[]): Promise<void> {
    const last = new Map<string, SmSessionRecord>();
    for (const r of recs) last.set(`${r.username}\0${r.id}`, r);
    const rows = [...last.values()];
    if (rows.length === 0) return;
    const params: Array<string | number> = [];
    const values = rows.map((r, i) => {
      params.push(r.username, r.id, r.resource, r.node, r.deadline, r.savedAt, r.state);
      const b = i * 7;
      return `($${b + 1}, $${b + 2}, $${b + 3}, $${b + 4}, $${b + 5}, $${b + 6}, $${b + 7})`;
    });
    await this.pool.query(
      `INSERT INTO sm_sessions (${COLS}) VALUES ${values.join(', ')}
       ON CONFLICT (username, id) DO UPDATE SET resource = excluded.resource, node = excluded.node,
         deadline = excluded.deadline, saved_at = excluded.saved_at, state = excluded.state`,
      params,
    );
  }

  async remove(username: string, id: string): Promise<void> {
    await this.pool.query('DELETE FROM sm_sessions WHERE username = $1 AND id = $2', [username, id]);
  }

  async get(username: string, id: string): Promise<SmSessionRecord | undefined> {
    const r = (await this.pool.query<Row>(`SELECT ${COLS} FROM sm_sessions WHERE username = $1 AND id = $2`, [username, id])).rows[0];
    return r && toRecord(r);
  }

  async take(username: string, id: string): Promise<SmSessionRecord | undefined> {
    const r = (await this.pool.query<Row>(`DELETE FROM sm_sessions WHERE username = $1 AND id = $2 RETURNING ${COLS}`, [username, id])).rows[0];
    return r && toRecord(r);
  }

  async byNode(node: string): Promise<SmSessionRecord[]> {
    return (await this.pool.query<Row>(`SELECT ${COLS} FROM sm_sessions WHERE node = $1`, [node])).rows.map(toRecord);
  }

  async expired(before: number, limit: number): Promise<SmSessionRecord[]> {
    return (await this.pool.query<Row>(`SELECT ${COLS} FROM sm_sessions WHERE deadline < $1 ORDER BY deadline LIMIT $2`, [before, limit])).rows.map(toRecord);
  }
}
