/**
 * Crash safety (issue 5): an ack means "archived", even when the server
 * process is killed with SIGKILL. A short version of bench/crash-soak.ts
 * (which runs 50 cycles) plus one deterministic case: kill -9 right after
 * the <a/>.
 */
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { startVerona } from '../helpers/server.js';
import { SmClient, mamAll } from './sm-client.js';
import { crashSoak, type SoakReport } from '../../bench/crash-soak.js';

const PW = 'pw';

test('kill -9 right after the ack: the message is in both archives after the restart', async () => {
  const s1 = await startVerona({ users: [['romeo', PW], ['juliet', PW]] });
  let s2: Awaited<ReturnType<typeof startVerona>> | undefined;
  try {
    const r = await SmClient.connect({ port: s1.ports.c2s as number, user: 'romeo', password: PW, resource: 'k', mr2: true });
    for (let i = 1; i <= 20; i++) {
      r.sendStanza(`<message to='juliet@localhost' type='chat' id='k${i}'><body>${i}</body><origin-id xmlns='urn:xmpp:sid:0' id='k${i}'/></message>`, `k${i}`);
    }
    assert.equal(await r.requestAck(), 20);
    await s1.stop('SIGKILL');
    r.kill();
    s2 = await startVerona({ dataDir: s1.dataDir });
    const r2 = await SmClient.connect({ port: s2.ports.c2s as number, user: 'romeo', password: PW, resource: 'k2' });
    const j = await SmClient.connect({ port: s2.ports.c2s as number, user: 'juliet', password: PW, resource: 'k2' });
    const mine = (await mamAll(r2)).map((a) => a.msg.attrs.id);
    const hers = (await mamAll(j)).map((a) => a.msg.attrs.id);
    const want = Array.from({ length: 20 }, (_, i) => `k${i + 1}`);
    assert.deepEqual(mine, want);
    assert.deepEqual(hers, want);
    r2.kill();
    j.kill();
  } finally {
    await s1.stop();
    await s2?.stop();
    s1.cleanup();
  }
});

describe('crash soak, 3 cycles', () => {
  let report: SoakReport;
  const lines: string[] = [];
  before(async () => {
    report = await crashSoak({ cycles: 3, senders: 2, minUpMs: 300, maxUpMs: 900, window: 20, gapMs: 5, log: (l) => lines.push(l) });
  });

  test('every acked message is in both archives, none twice, nothing a sender wrote is lost', () => {
    assert.deepEqual(report.problems, [], lines.join('\n'));
    assert.ok(report.acked > 50, `enough traffic to mean something (${report.acked} acked)`);
    assert.equal(report.senderArchiveRows, report.written);
    assert.equal(report.receiverArchiveRows, report.written);
  });

  // Holds because the router delivers archived messages in archive-id order (Router.chain).
  test('the receiver, catching up after the last id it saw, sees each message exactly once', () => {
    assert.deepEqual(report.receiverProblems, []);
  });
});
