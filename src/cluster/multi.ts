/**
 * `verona start --nodes N`: N cluster nodes on one host, so that a machine with N cores is used
 * fully. The first process is a supervisor (node:cluster primary): it forks N workers, each a
 * full Verona node and cluster member; the listening sockets are shared (the primary hands each
 * new connection to a worker in turn), so clients see one server on the configured ports.
 *
 * Needs what every cluster needs: cluster.redis and storage.driver postgres. A worker that dies
 * is replaced (under a new node name, so that the cluster reaps the old one and its contacts see
 * its sessions go); SIGTERM/SIGINT stop every worker cleanly, then the supervisor.
 */
import cluster, { type Worker } from 'node:cluster';
import { hostname } from 'node:os';
import type { Config } from '../config/types.js';

export interface Output {
  out(line: string): void;
  err(line: string): void;
}

/** Set in a worker's environment: its index among the N nodes. */
export const WORKER_ENV = 'VERONA_NODE_INDEX';

/** In a worker: the node's name and admin socket for index i (only node 0 keeps the admin socket). */
export function workerConfig(config: Config, index: number, generation: string): Config {
  const base = config.cluster.node !== '' ? config.cluster.node : hostname();
  return {
    ...config,
    cluster: { ...config.cluster, node: `${base}-${index}.${generation}` },
    admin: { ...config.admin, socket: index === 0 ? config.admin.socket : '' },
  };
}

export function checkNodesConfig(config: Config, n: number): void {
  if (!Number.isInteger(n) || n < 1 || n > 64) throw new Error('--nodes must be a whole number from 1 to 64');
  if (n > 1 && (config.cluster.redis === '' || config.storage.driver !== 'postgres')) {
    throw new Error('--nodes needs cluster.redis and storage.driver: postgres (docs/operations.md, Cluster)');
  }
}

/** The supervisor: resolves with the exit code once every worker has stopped. */
export async function runNodes(config: Config, n: number, io: Output): Promise<number> {
  checkNodesConfig(config, n);
  const workers = new Map<number, Worker>();
  let stopping = false;
  let readyCount = 0;
  let firstPorts: Record<string, number> | undefined;
  let generation = 0;
  let everReady = false;
  let exitCode = 0;
  let stopAll: (signal: NodeJS.Signals) => void = () => undefined;

  const fork = (i: number): void => {
    const w = cluster.fork({ [WORKER_ENV]: String(i), VERONA_NODE_GENERATION: String(++generation) });
    workers.set(i, w);
    let ready = false;
    w.on('message', (m: unknown) => {
      if (typeof m !== 'object' || m === null || (m as { verona?: unknown }).verona !== 'ready') return;
      ready = true;
      everReady = true;
      const ports = (m as { ports?: Record<string, number> }).ports ?? {};
      if (i === 0) firstPorts = ports;
      if (++readyCount === n) io.out(`READY ${JSON.stringify({ ...firstPorts, nodes: n })}`);
    });
    w.on('exit', (code, signal) => {
      if (workers.get(i) === w) workers.delete(i);
      if (stopping) return;
      if (!ready && readyCount < n && !everReady) {
        // Start-up failed (configuration, Redis or PostgreSQL unreachable): no restart loop.
        io.err(`verona: node ${i} failed to start (${signal ?? code}); stopping`);
        exitCode = 1;
        stopAll('SIGTERM');
        return;
      }
      io.err(`verona: node ${i} exited (${signal ?? code}${ready ? '' : ' before it was ready'}); starting it again`);
      if (ready) readyCount--;
      setTimeout(() => {
        if (!stopping) fork(i);
      }, 1000).unref();
    });
  };

  const done = new Promise<void>((resolve) => {
    stopAll = (signal: NodeJS.Signals): void => {
      if (stopping && signal !== 'SIGKILL') return;
      stopping = true;
      for (const w of workers.values()) w.process.kill(signal);
      const check = (): void => {
        if (workers.size === 0) resolve();
      };
      for (const w of workers.values()) w.once('exit', () => setImmediate(check));
      check();
    };
    process.on('SIGTERM', stopAll);
    process.on('SIGINT', stopAll);
  });
  for (let i = 0; i < n; i++) fork(i);
  await done;
  process.removeListener('SIGTERM', stopAll);
  process.removeListener('SIGINT', stopAll);
  return exitCode;
}
