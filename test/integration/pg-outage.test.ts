/**
 * Issue 16's test "PostgreSQL unavailable for 10 s: archive-failed reported,
 * recovery without restart", with every part real: a Verona server process
 * on a PostgreSQL server this test starts (on this area's loopback address),
 * stops for at least 10 s under two connected MR2 clients, and starts again.
 *
 * While the database is down every message the sender sends is still
 * delivered (without a <stanza-id/>: it is in no archive) and the MR2 sender
 * gets <archive-failed reason='storage'/> for it. After the database is back
 * the same server process (same PID, same client streams, no reconnect)
 * archives again, a new login works (credentials come from the database),
 * and the archive holds exactly the messages sent while it was up.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { device, copyWithBody, mamQuery, stanzaId, type Dev } from './mr2-helpers.js';

/** This area's loopback range (127.0.80.0/24), so no other helper's PostgreSQL collides. */
const HOST = '127.0.80.1';
/** How long the database stays away: the figure. */
const OUTAGE_MS = 10_000;

let db: TestPostgres;
let v: Verona;
before(async () => {
  db = await startPostgres({ host: HOST });
  const url = await db.createDatabase();
  v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'ju1iet']], config: { storage: { driver: 'postgres', postgres: { url } } } });
});
after(async () => {
  await v?.stop();
  v?.cleanup();
  await db?.stop();
});

test('PostgreSQL unavailable for 10 s: every message meanwhile gets archive-failed and is still delivered; recovery without a restart', { timeout: 600_000 }, async () => {
  const port = v.ports.c2s as number;
  const romeo = await device({ port, user: 'romeo', password: 'r0meo', resource: 'desk', kind: 'mr2' });
  const juliet = await device({ port, user: 'juliet', password: 'ju1iet', resource: 'phone', kind: 'mr2' });
  const clients: Dev[] = [romeo, juliet];
  const pid = v.proc.pid;
  try {
    romeo.send(`<message to='juliet@localhost' type='chat' id='up-1'><body>before</body></message>`);
    assert.ok(stanzaId(await copyWithBody(juliet, 'before', 60_000)), 'archived while the database is up');

    await db.pause();
    const down = Date.now();
    // Messages across the whole outage, one at a time: each one waits for the pool's
    // connection timeout, so on a slow machine there are fewer of them, never none.
    let n = 0;
    do {
      n++;
      romeo.send(`<message to='juliet@localhost' type='chat' id='down-${n}'><body>during-${n}</body></message>`);
      const failed = await romeo.next((el) => el.name === 'archive-failed' && el.attrs.id === `down-${n}`, 120_000);
      assert.equal(failed.attrs.xmlns, 'urn:xmpp:mr2:0');
      assert.equal(failed.attrs.reason, 'storage');
      const copy = await copyWithBody(juliet, `during-${n}`, 120_000);
      assert.equal(stanzaId(copy), undefined, 'a message in no archive carries no stanza-id');
    } while (Date.now() - down < OUTAGE_MS);
    assert.ok(n >= 1);
    await db.restart();

    // The pool replaces its broken connections by itself: archiving comes back on the same
    // streams. The first messages may still meet a connection that died with the old server.
    let archived = false;
    let k = 0;
    while (!archived) {
      k++;
      assert.ok(k <= 30, 'archiving came back after the database returned');
      romeo.send(`<message to='juliet@localhost' type='chat' id='back-${k}'><body>after-${k}</body></message>`);
      const copy = await copyWithBody(juliet, `after-${k}`, 120_000);
      archived = stanzaId(copy) !== undefined;
      if (!archived) await romeo.next((el) => el.name === 'archive-failed' && el.attrs.id === `back-${k}`, 120_000);
    }
    assert.equal(v.proc.pid, pid);
    assert.equal(v.proc.exitCode, null, 'the server process never stopped');

    // A new login reads credentials from the database again.
    const phone = await device({ port, user: 'romeo', password: 'r0meo', resource: 'phone', kind: 'mr2' });
    clients.push(phone);
    const page = await mamQuery(phone, { timeoutMs: 60_000 });
    const bodies = page.items.map((i) => i.body);
    assert.equal(bodies[0], 'before');
    assert.equal(bodies[bodies.length - 1], `after-${k}`);
    assert.ok(!bodies.some((b) => b?.startsWith('during-')), `nothing sent during the outage is in the archive: ${bodies.join(', ')}`);

    const metrics = await (await fetch(`http://127.0.0.1:${v.ports.http}/metrics`)).text();
    const failures = Number(metrics.match(/verona_archive_failures_total\{side="sender"\} (\d+)/)?.[1] ?? 0);
    assert.ok(failures >= n, `every failed sender write is counted (${failures} >= ${n})`);
    assert.ok(v.output.some((l) => l.includes('archive write failed')), 'the failures are logged');
  } finally {
    for (const c of clients) c.close();
  }
});
