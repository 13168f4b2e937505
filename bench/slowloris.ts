/**
 * Slowloris check (a benchmark, not a unit test): N connections that send
 * half a stream header and then one byte every few seconds, never
 * authenticating. Measures the server's resident memory per held connection,
 * checks that logins keep working meanwhile (and how long they take), and
 * that every slow connection is closed after c2s.authTimeout.
 *
 *   node dist/bench/slowloris.js [--n 10000] [--auth-timeout 60] [--out FILE]
 *
 * Client sockets come from 127.0.0.90-99 (this area's loopback range) so
 * that 10,000 connections do not exhaust one source address's ports; the
 * server and this driver each hold N descriptors (the limit here is 20,000
 * per process).
 */
import net from 'node:net';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startVerona } from '../test/helpers/server.js';
import { connectClient } from '../test/helpers/client.js';

const { values } = parseArgs({
  options: { n: { type: 'string', default: '10000' }, 'auth-timeout': { type: 'string', default: '60' }, out: { type: 'string' } },
});
const N = Number(values.n);
const AUTH_TIMEOUT = Number(values['auth-timeout']);

function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function main(): Promise<void> {
  const v = await startVerona({
    users: [['probe', 'pr0be']],
    config: { c2s: { authTimeout: AUTH_TIMEOUT }, limits: { c2sConnectionsPerAddress: 0 }, log: { level: 'error' } },
  });
  const pid = v.proc.pid as number;
  try {
    await sleep(2000);
    const baseline = rssMiB(pid);
    const sockets: net.Socket[] = [];
    let closed = 0;
    let refused = 0;
    const started = Date.now();
    const half = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='local";
    for (let i = 0; i < N; i++) {
      const s = net.connect({ port: v.ports.c2s, host: '127.0.0.1', localAddress: `127.0.0.${90 + (i % 10)}` });
      s.on('error', () => undefined);
      s.on('connect', () => s.write(half));
      s.on('close', () => closed++);
      s.on('data', () => undefined);
      sockets.push(s);
      if (i % 200 === 199) await sleep(20); // let accept() keep up
      if (s.destroyed) refused++;
    }
    // Wait until every connection is established.
    for (let i = 0; i < 600 && sockets.some((s) => s.connecting); i++) await sleep(100);
    const openedMs = Date.now() - started;
    // One more byte on each every 5 s (what keeps a slowloris connection "active").
    const trickle = setInterval(() => {
      for (const s of sockets) if (!s.destroyed) s.write('h');
    }, 5000);
    await sleep(5000);
    const held = rssMiB(pid);
    // Logins while the slow connections are held.
    const loginMs: number[] = [];
    for (let i = 0; i < 20; i++) {
      const t0 = Date.now();
      const c = await connectClient({ port: v.ports.c2s, user: 'probe', password: 'pr0be', resource: `r${i}` });
      loginMs.push(Date.now() - t0);
      c.destroy();
    }
    // Every slow connection is closed after the auth timeout (the trickle does not keep it open).
    const waitStart = Date.now();
    while (closed < N && Date.now() - waitStart < (AUTH_TIMEOUT + 60) * 1000) await sleep(500);
    clearInterval(trickle);
    const closedAfterS = (Date.now() - started) / 1000;
    loginMs.sort((a, b) => a - b);
    const result = {
      date: new Date().toISOString(),
      connections: N,
      refusedAtConnect: refused,
      openedInMs: openedMs,
      serverRssBaselineMiB: Math.round(baseline),
      serverRssHeldMiB: Math.round(held),
      kibPerConnection: Math.round(((held - baseline) * 1024) / N * 10) / 10,
      loginsWhileHeld: loginMs.length,
      loginMsMedian: loginMs[Math.floor(loginMs.length / 2)],
      loginMsMax: loginMs[loginMs.length - 1],
      authTimeoutS: AUTH_TIMEOUT,
      closedByServer: closed,
      allClosedAfterS: Math.round(closedAfterS),
    };
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
    const out = values.out ?? path.join('bench', 'results', `slowloris-${result.date.replace(/[:.]/g, '-')}.json`);
    mkdirSync(path.dirname(out), { recursive: true });
    writeFileSync(out, JSON.stringify(result, null, 2));
    for (const s of sockets) s.destroy();
    if (closed < N) process.exitCode = 1;
  } finally {
    await v.stop();
    v.cleanup();
  }
}

await main();
