/**
 * ejabberd's message archive, which its XEP-0227 export (export_piefxis, 23.01) leaves
 * out: `verona import DIR --ejabberd-mam FILE` reads it from ejabberd's SQLite
 * database (mod_mam with `db_type: sql`, `sql_type: sqlite`; table `archive`,
 * schema /usr/share/ejabberd/sql/lite.sql, old and new schema alike) and files each
 * account's one-to-one messages into its Verona archive with their original times.
 *
 * ejabberd's archive id of a message is its `timestamp` column (microseconds), the id
 * its <stanza-id/> carried; the import maps it to the new Verona id, so an offline
 * message that ejabberd had archived too keeps pointing at its archive entry.
 */
import Database from 'better-sqlite3';
import type { Database as Db, Statement } from 'better-sqlite3';

export interface EjabberdArchiveRow {
  /** Microseconds since the epoch: also ejabberd's archive id of the message. */
  timestamp: number;
  /** The message as ejabberd stored it (XML text). */
  xml: string;
}

export class EjabberdArchive {
  private readonly db: Db;
  private readonly rows: Statement<[string], EjabberdArchiveRow>;

  constructor(file: string) {
    this.db = new Database(file, { readonly: true, fileMustExist: true });
    const cols = new Set((this.db.prepare("SELECT name FROM pragma_table_info('archive')").all() as Array<{ name: string }>).map((c) => c.name));
    if (!cols.has('username') || !cols.has('timestamp') || !cols.has('xml')) {
      this.db.close();
      throw new Error(`${file}: no ejabberd archive table (username, timestamp, xml) in it`);
    }
    // kind 'groupchat' rows are MUC room archives (rooms are not accounts): left out.
    this.rows = this.db.prepare(
      `SELECT CAST(timestamp AS INTEGER) AS timestamp, xml FROM archive WHERE username = ? AND (kind IS NULL OR kind = 'chat') ORDER BY timestamp, id`,
    ) as Statement<[string], EjabberdArchiveRow>;
  }

  /** One account's archived one-to-one messages, oldest first. */
  messages(username: string): EjabberdArchiveRow[] {
    return this.rows.all(username);
  }

  close(): void {
    this.db.close();
  }
}
