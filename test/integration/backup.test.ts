/**
 * `verona backup DIR` while the server is under load, then a restore:
 * Romeo keeps sending to Juliet (each message is archived before it is
 * delivered, so a message Juliet received is committed); the backup runs in
 * the middle of that; the server is stopped; the copy is put in place of the
 * database of a fresh data directory (the documented restore) and a server
 * started on it. Every message Juliet had received before the backup began is
 * in her archive on the restored server, and nothing is there twice. Romeo's
 * stream uses stream management (XEP-0198) and asks for acks all along: every
 * message the server had acked to him before the backup began is in the
 * restored archive too (an ack means archived, docs/protocol.md).
 */
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli, startVerona, type Verona } from '../helpers/server.js';
import { connectClient, nextId } from '../helpers/client.js';

const HOST = '127.0.0.76';
const servers: Verona[] = [];
const backups = mkdtempSync(path.join(tmpdir(), 'verona-backups-'));
after(async () => {
  for (const s of servers) {
    await s.stop();
    s.cleanup();
  }
  rmSync(backups, { recursive: true, force: true });
});

test('an online backup under load restores every message delivered before it began', { timeout: 240_000 }, async () => {
  const v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et']], config: { c2s: { host: HOST } } });
  servers.push(v);
  const romeo = await connectClient({ port: v.ports.c2s, host: HOST, user: 'romeo', password: 'r0meo', resource: 'a' });
  const juliet = await connectClient({ port: v.ports.c2s, host: HOST, user: 'juliet', password: 'jul1et', resource: 'b', presence: true });
  romeo.send("<enable xmlns='urn:xmpp:sm:3'/>");
  await romeo.next((el) => el.name === 'enabled', 30_000);
  const received: string[] = [];
  let sent = 0;
  let stop = false;
  // Acks: Romeo sends nothing but these messages after <enable/>, so h = n acks msg-1..msg-n.
  let acked = 0;
  const acks = (async () => {
    while (!stop) {
      romeo.send("<r xmlns='urn:xmpp:sm:3'/>");
      const a = await romeo.next((el) => el.name === 'a', 60_000);
      acked = Math.max(acked, Number(a.attrs.h));
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  // Romeo sends in a window of 20 in flight, as long as the test runs.
  const load = (async () => {
    const inflight = new Set<Promise<void>>();
    while (!stop) {
      const body = `msg-${++sent}`;
      romeo.send(`<message to='juliet@localhost' type='chat' id='${nextId()}'><body>${body}</body></message>`);
      const p = juliet.next((el) => el.is('message') && el.getChildText('body') === body, 60_000).then(() => void received.push(body));
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (inflight.size >= 20) await Promise.race(inflight);
    }
    await Promise.all(inflight);
  })();
  // Some traffic first, then the backup in the middle of it.
  while (received.length < 200) await new Promise((r) => setTimeout(r, 50));
  const before = [...received];
  const ackedBefore = acked;
  const out = await runCli(['backup', backups, '--config', v.configFile]);
  const during = received.length;
  while (received.length < during + 100) await new Promise((r) => setTimeout(r, 50));
  stop = true;
  await load;
  await acks;
  romeo.destroy();
  juliet.destroy();
  assert.match(out.stdout, /^backup .*verona-\d{8}T\d{6}Z\.sqlite\n2 accounts, \d+ archived messages, \d+ bytes, \d+ ms, integrity ok\n$/);
  await v.stop();

  // Restore as docs/operations.md says: the copy becomes the database of a stopped server.
  const file = readdirSync(backups).find((f) => f.endsWith('.sqlite'));
  assert.ok(file !== undefined);
  const restored = mkdtempSync(path.join(tmpdir(), 'verona-restored-'));
  mkdirSync(restored, { recursive: true });
  copyFileSync(path.join(backups, file), path.join(restored, 'verona.sqlite'));
  const r = await startVerona({ dataDir: restored, config: { c2s: { host: HOST } } });
  servers.push(r);
  const j = await connectClient({ port: r.ports.c2s, host: HOST, user: 'juliet', password: 'jul1et', resource: 'c' });
  const bodies: string[] = [];
  let after: string | undefined;
  for (;;) {
    const q = nextId();
    const rsm = `<set xmlns='http://jabber.org/protocol/rsm'><max>500</max>${after === undefined ? '' : `<after>${after}</after>`}</set>`;
    j.send(`<iq type='set' id='${q}'><query xmlns='urn:xmpp:mam:2' queryid='${q}'>${rsm}</query></iq>`);
    const fin = await j.next((el) => el.is('iq') && el.attrs.id === q, 60_000);
    for (;;) {
      const i = j.received.findIndex((el) => el.is('message') && el.getChild('result')?.attrs.queryid === q);
      if (i < 0) break;
      const [m] = j.received.splice(i, 1);
      const body = m.getChild('result')?.getChild('forwarded')?.getChild('message')?.getChildText('body');
      if (body) bodies.push(body);
    }
    const f = fin.getChild('fin');
    if (f?.attrs.complete === 'true') break;
    after = f?.getChild('set')?.getChildText('last') ?? undefined;
    if (after === undefined) break;
  }
  j.destroy();
  const have = new Set(bodies);
  assert.equal(have.size, bodies.length, 'no message twice');
  const missing = before.filter((b) => !have.has(b));
  assert.deepEqual(missing, [], `all ${before.length} messages delivered before the backup are in it (it has ${bodies.length} of ${sent})`);
  assert.ok(bodies.length >= before.length);
  const unarchivedAcks = Array.from({ length: ackedBefore }, (_, i) => `msg-${i + 1}`).filter((b) => !have.has(b));
  assert.ok(ackedBefore > 0, 'Romeo had acks before the backup');
  assert.deepEqual(unarchivedAcks, [], `all ${ackedBefore} messages acked before the backup are in it`);
});
