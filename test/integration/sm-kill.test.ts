/**
 * Stream management after kill -9 of a single node (SQLite, the default): both parties of a
 * conversation under SM load resume with <resumed/> on the restarted process, and afterwards
 * every message is in both archives exactly once and each client received every message of its
 * archive exactly once across its two streams (docs/stream-management.md, "After a crash").
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona, type Verona } from '../helpers/server.js';
import { chatLoad, checkExactlyOnce, connectTalker, resumeTalker, until, type Talker } from '../helpers/sm-kill.js';

const PW = 'secret';
const CONFIG = { log: { level: 'info' }, moduleOptions: { sm: { resumeTimeout: 300 } } };

async function metric(server: Verona, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.ports.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

test('kill -9 under SM load, restart on the same data: both clients resume, every message once in both archives and once at each client', async () => {
  const s1 = await startVerona({ users: [['romeo', PW], ['juliet', PW]], config: CONFIG });
  let s2: Verona | undefined;
  const talkers: Talker[] = [];
  try {
    const port = s1.ports.c2s as number;
    // Romeo uses MR2; Juliet is a legacy client (SM and presence only).
    const romeo = await connectTalker({ port, user: 'romeo', password: PW, resource: 'phone', mr2: true }, 'r', 'juliet@localhost');
    const juliet = await connectTalker({ port, user: 'juliet', password: PW, resource: 'desk' }, 'j', 'romeo@localhost');
    talkers.push(romeo, juliet);
    const load = chatLoad([romeo, juliet]);
    // Kill once both have a good number of acked messages and received some.
    await until(() => romeo.c.acked.length >= 60 && juliet.c.acked.length >= 60 && romeo.c.h > 30 && juliet.c.h > 30, 'acks under load', 90000);
    await s1.stop('SIGKILL');
    await load.stop();

    s2 = await startVerona({ dataDir: s1.dataDir, config: CONFIG });
    assert.equal(await metric(s2, 'verona_sm_restored_total{outcome="crashed"}'), 2, 'both sessions back from their checkpoints');
    const port2 = s2.ports.c2s as number;
    await resumeTalker(romeo, { port: port2 });
    await resumeTalker(juliet, { port: port2 });
    // A little more conversation on the resumed streams.
    const more = chatLoad([romeo, juliet]);
    await until(() => romeo.sent >= romeo.c.acked.length + 10 || romeo.sent > 400, 'more messages');
    await more.stop();
    await checkExactlyOnce(romeo, juliet, 'romeo@localhost', 'juliet@localhost');
    assert.equal(await metric(s2, 'verona_sm_resumptions_total{outcome="resumed"}'), 2);
    // Informative (timing decides how many): stanzas rebuilt from the archive, resent messages recognised.
    console.log(`rebuilt ${await metric(s2, 'verona_sm_rebuilt_total')}, deduplicated ${await metric(s2, 'verona_sm_resent_deduped_total')}`);
  } catch (err) {
    console.log(s1.output.slice(-30).join('\n'), '\n----\n', s2?.output.slice(-60).join('\n'));
    throw err;
  } finally {
    for (const t of talkers) for (const c of t.streams) c.kill();
    await s1.stop();
    await s2?.stop();
    s1.cleanup();
  }
});
