/**
 * Rows an account has in every per-account table (the `username` column
 * convention), read straight from the database a server's config names:
 * SQLite file or PostgreSQL. For tests that check "all data gone".
 */
import Database from 'better-sqlite3';
import pg from 'pg';
import { loadConfig } from '../../src/config/load.js';

export async function userRows(configFile: string, user: string): Promise<Record<string, number>> {
  const config = loadConfig({ file: configFile });
  const out: Record<string, number> = {};
  if (config.storage.driver === 'postgres') {
    const c = new pg.Client({ connectionString: config.storage.postgres.url });
    await c.connect();
    try {
      const tables = await c.query<{ t: string }>(
        `SELECT c.table_name AS t FROM information_schema.columns c JOIN information_schema.tables t USING (table_schema, table_name)
         WHERE c.table_schema = current_schema() AND c.column_name = 'username' AND t.table_type = 'BASE TABLE'`,
      );
      for (const { t } of tables.rows) {
        const n = (await c.query<{ n: number }>(`SELECT count(*)::int AS n FROM "${t.replace(/"/g, '""')}" WHERE username = $1`, [user])).rows[0]?.n ?? 0;
        if (n > 0) out[t] = n;
      }
    } finally {
      await c.end();
    }
    return out;
  }
  const db = new Database(config.storage.sqlite.path, { readonly: true, fileMustExist: true });
  try {
    const tables = db
      .prepare<[], { name: string }>("SELECT m.name AS name FROM sqlite_schema m, pragma_table_info(m.name) c WHERE m.type = 'table' AND c.name = 'username'")
      .all()
      .map((t) => t.name);
    for (const t of tables) {
      const n = db.prepare<[string], { n: number }>(`SELECT count(*) AS n FROM "${t}" WHERE username = ?`).get(user)?.n ?? 0;
      if (n > 0) out[t] = n;
    }
  } finally {
    db.close();
  }
  return out;
}
