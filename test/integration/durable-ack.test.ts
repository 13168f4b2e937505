/**
 * "An ack means archived", durably (issue 11):
 * - by default the server's own database connection syncs every commit
 *   (SQLite synchronous=FULL in WAL mode), read back from the live server
 *   through /metrics; `storage.sqlite.synchronous: NORMAL` is the explicit way
 *   to relax it;
 * - no <a/> leaves before the commit that holds the message: the test holds
 *   the database's write lock from a second connection (real contention, as
 *   `verona adduser` on a busy server would cause), the client asks for an ack
 *   and gets none while the lock is held; once released, the ack comes, and at
 *   the moment it arrives the message is already readable from the file.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import Database from 'better-sqlite3';
import { startVerona, type Verona } from '../helpers/server.js';
import { SmClient, SM } from './sm-client.js';

const PW = 'secret';

async function metric(v: Verona, name: string): Promise<number | undefined> {
  const text = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
  const m = text.match(new RegExp(`^${name} (\\d+)$`, 'm'));
  return m ? Number(m[1]) : undefined;
}

describe('durable acks', () => {
  let v: Verona;
  before(async () => {
    // Default storage settings: nothing about synchronous in the config.
    v = await startVerona({ users: [['romeo', PW], ['juliet', PW]], config: { moduleOptions: { sm: { requestEvery: 100000, requestAfter: 100000 } } } });
  });
  after(async () => {
    await v.stop();
    v.cleanup();
  });

  test('by default every commit is synced (synchronous=FULL on the live connection)', async () => {
    assert.equal(await metric(v, 'verona_storage_durable_commits'), 1);
  });

  test('no <a/> leaves before the commit: a held write lock holds the ack, and the row exists when the ack arrives', async () => {
    const romeo = await SmClient.connect({ port: v.ports.c2s as number, user: 'romeo', password: PW, resource: 'phone', sm: 'resume' });
    const db = new Database(path.join(v.dataDir, 'verona.sqlite'), { timeout: 5000 });
    try {
      // Take the write lock (WAL: readers go on, writers wait). The server's group commit now waits for it.
      db.exec('BEGIN IMMEDIATE');
      romeo.sendStanza(`<message to='juliet@localhost' type='chat' id='held-1'><body>held back</body></message>`, 'held-1');
      romeo.send(`<r xmlns='${SM}'/>`);
      await romeo.nothing((el) => el.name === 'a' && el.attrs.xmlns === SM, 1500);
      const before = db.prepare(`SELECT count(*) AS n FROM archive WHERE stanza LIKE '%held back%'`).get() as { n: number };
      assert.equal(before.n, 0, 'not committed while the lock is held');
      db.exec('COMMIT');
      const a = await romeo.next((el) => el.name === 'a' && el.attrs.xmlns === SM, 10000);
      assert.equal(a.attrs.h, '1');
      // The ack is out: both archive rows (Romeo's and Juliet's) are in the file.
      const after = db.prepare(`SELECT count(*) AS n FROM archive WHERE stanza LIKE '%held back%'`).get() as { n: number };
      assert.equal(after.n, 2);
    } finally {
      if (db.inTransaction) db.exec('ROLLBACK');
      db.close();
      await romeo.close();
    }
  });
});

describe('relaxed durability is an explicit choice', () => {
  test('storage.sqlite.synchronous: NORMAL turns per-commit syncs off, and /metrics says so', async () => {
    const v = await startVerona({ config: { storage: { sqlite: { synchronous: 'NORMAL' } } } });
    try {
      assert.equal(await metric(v, 'verona_storage_durable_commits'), 0);
    } finally {
      await v.stop();
      v.cleanup();
    }
  });
});
