/**
 * `verona start --nodes 2`: two cluster nodes on one host behind the same ports (a supervisor and
 * two workers sharing the listening sockets), on real PostgreSQL and Redis. Clients that land on
 * different workers chat with each other; both workers are members in Redis; SIGTERM stops all.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { startPostgres, type TestPostgres } from '../helpers/pg.js';
import { startRedis, nodeHost, type TestRedis } from '../helpers/cluster-redis.js';
import { BIN, runCli, testConfig } from '../helpers/server.js';
import { device, bodyOf, type Dev } from './mr2-helpers.js';

let pg: TestPostgres;
let redis: TestRedis;
let proc: ChildProcess;
let dataDir: string;
let port = 0;
const host = nodeHost(10);
const clients: Dev[] = [];
const output: string[] = [];

before(async () => {
  pg = await startPostgres();
  redis = await startRedis();
  dataDir = mkdtempSync(path.join(tmpdir(), 'verona-nodes-'));
  const configFile = path.join(dataDir, 'verona.yml');
  const cfg = testConfig(dataDir, {
    c2s: { host, port: 0, tlsPort: -1 },
    web: { host, port: -1, tlsPort: -1 },
    storage: { driver: 'postgres', postgres: { url: await pg.createDatabase('nodes'), poolSize: 4 } },
    cluster: { redis: redis.url, node: 'multi', heartbeat: 1, nodeTimeout: 3 },
  });
  writeFileSync(configFile, JSON.stringify(cfg));
  for (const u of ['a', 'b', 'c', 'd']) await runCli(['adduser', u, '--password', 'pw', '--config', configFile]);
  proc = spawn(process.execPath, [BIN, 'start', '--nodes', '2', '--config', configFile], { stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  port = await new Promise<number>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no READY in 120 s:\n${output.join('')}`)), 120000);
    let buf = '';
    proc.stdout?.on('data', (d: Buffer) => {
      buf += d.toString();
      const m = /READY (\{.*\})/.exec(buf);
      if (m) {
        clearTimeout(t);
        resolve((JSON.parse(m[1] as string) as { c2s: number }).c2s);
      }
    });
    proc.once('exit', (code) => reject(new Error(`exited ${code}:\n${output.join('')}`)));
  });
});

after(async () => {
  for (const c of clients) c.destroy();
  if (proc && proc.exitCode === null && proc.signalCode === null) {
    const exited = new Promise((r) => proc.once('exit', r));
    proc.kill('SIGTERM');
    const t = setTimeout(() => proc.kill('SIGKILL'), 20000);
    await exited;
    clearTimeout(t);
  }
  rmSync(dataDir, { recursive: true, force: true });
  await redis?.stop();
  await pg?.stop();
});

test('two nodes on one host share the port and act as one server', async () => {
  const r = new Redis(redis.url);
  try {
    const members = await r.hkeys('verona:nodes');
    assert.equal(members.length, 2, `two members: ${members.join(', ')}`);
    assert.ok(members.every((m) => m.startsWith('multi-')));
  } finally {
    r.disconnect();
  }
  for (const u of ['a', 'b', 'c', 'd']) clients.push(await device({ port, host, user: u, password: 'pw', resource: 'r', kind: 'plain' }));
  // Each sends to every other; whichever worker each landed on, everybody gets everything once.
  const end = Date.now() + 30000;
  for (;;) {
    const tag = `t${Date.now()}`;
    for (const from of clients) for (const to of clients) if (from !== to) from.send(`<message to='${to.user}@localhost/r' type='chat'><body>${tag} ${from.user}</body></message>`);
    const ok = await Promise.all(
      clients.map(async (c) => {
        const want = new Set(clients.filter((o) => o !== c).map((o) => `${tag} ${o.user}`));
        const stop = Date.now() + 2000;
        while (want.size > 0 && Date.now() < stop) {
          try {
            const el = await c.next((e) => (bodyOf(e) ?? '').startsWith(tag), stop - Date.now());
            want.delete(bodyOf(el) as string);
          } catch {
            break;
          }
        }
        return want.size === 0;
      }),
    );
    // The first round may go out before every worker has seen the others' sessions (eventual).
    if (ok.every(Boolean)) break;
    if (Date.now() > end) assert.fail('messages between workers did not all arrive');
  }
  // The shared port spread the clients over both workers (round robin), so messages crossed nodes.
  const r2 = new Redis(redis.url);
  try {
    for (const m of await r2.hkeys('verona:nodes')) {
      const fields = (await r2.hkeys(`verona:sess:${m}`)).filter((f) => f !== '#q');
      assert.ok(fields.length >= 1, `node ${m} has sessions: ${fields.join(', ')}`);
    }
  } finally {
    r2.disconnect();
  }
});

test('SIGTERM stops the supervisor and both workers', async () => {
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.kill('SIGTERM');
  assert.equal(await exited, 0);
  const r = new Redis(redis.url);
  try {
    assert.deepEqual(await r.hkeys('verona:nodes'), [], 'both left the cluster');
  } finally {
    r.disconnect();
  }
});
