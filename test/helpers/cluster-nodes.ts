/**
 * N real Verona processes as one cluster: one PostgreSQL database (test/helpers/pg.ts), one Redis
 * (test/helpers/cluster-redis.ts), node i listening on 127.0.70.(2+i).
 */
import { startVerona, type Verona } from './server.js';
import { nodeHost } from './cluster-redis.js';

export interface ClusterNodeHandle {
  v: Verona;
  host: string;
  name: string;
}

export interface ClusterNodesOptions {
  count: number;
  redisUrl: string;
  pgUrl: string;
  users?: Array<[string, string]>;
  /** Extra config for every node (deep-merged). */
  config?: Record<string, unknown>;
  /** Address of node i (default 127.0.70.(2+i)). */
  host?: (i: number) => string;
}

export function nodeConfig(i: number, redisUrl: string, pgUrl: string, extra: Record<string, unknown> = {}, host = nodeHost(i)): Record<string, unknown> {
  return {
    c2s: { host, port: 0, tlsPort: -1 },
    web: { host, port: 0, tlsPort: -1 },
    storage: { driver: 'postgres', postgres: { url: pgUrl, poolSize: 4 } },
    // Short timings so that the death of a node is noticed within the test's patience.
    cluster: { redis: redisUrl, node: `node${i}`, heartbeat: 1, nodeTimeout: 3 },
    ...extra,
  };
}

/** Start node `i` (users are created once, through the first node's CLI). */
export async function startNode(i: number, o: ClusterNodesOptions, dataDir?: string): Promise<ClusterNodeHandle> {
  const v = await startVerona({
    config: nodeConfig(i, o.redisUrl, o.pgUrl, o.config, o.host?.(i)),
    users: i === 0 ? o.users : undefined,
    ...(dataDir ? { dataDir } : {}),
  });
  return { v, host: o.host?.(i) ?? nodeHost(i), name: `node${i}` };
}

export async function startNodes(o: ClusterNodesOptions): Promise<ClusterNodeHandle[]> {
  const out: ClusterNodeHandle[] = [];
  for (let i = 0; i < o.count; i++) out.push(await startNode(i, o));
  return out;
}
