/**
 * Joining a cluster (cluster.redis set): the node's registry becomes a ClusterRegistry
 * (Server's constructor) and, once the modules are loaded and before any listener accepts a
 * client, the node connects to Redis, takes an archive lane and loads the other nodes' sessions.
 * Without cluster.redis nothing here runs and a node is exactly a single server.
 */
import type { Server } from '../core/server.js';
import type { ArchiveClock } from '../modules/mam/ids.js';
import { ClusterNode } from './node.js';
import { ClusterRegistry } from './registry.js';
import { MarkSource, OrderGate } from './order-gate.js';
import { seqOfArchiveId } from '../modules/mam/ids.js';
import { NS } from '../core/namespaces.js';
import { CLUSTER_SM_ASK_SERVICE, SM_HANDOVER_SERVICE, type ClusterSmAsk, type SmHandover } from '../modules/sm/index.js';

export { ClusterRegistry } from './registry.js';

/**
 * Archive-id order of deliveries per recipient across nodes (src/cluster/order.ts): every local
 * session gets the order filter; this node's mark is made from its archive clock and its router's
 * delivery queue, and goes to every node (and to its own gate).
 */
function wireOrder(server: Server, registry: ClusterRegistry, node: ClusterNode): void {
  const router = server.router;
  const clock = server.services.get('archive-clock') as ArchiveClock | undefined;
  const source = new MarkSource({
    clock: () => clock,
    pending: () => router.archivedPending,
    publish: (w) => {
      gate.mark(node.id, w);
      node.publishMark(w);
    },
  });
  const gate: OrderGate = new OrderGate(node.id, {
    metrics: server.metrics,
    selfMark: () => source.current(),
    ask: (n, seq) => (n === node.id ? source.asked(seq) : node.sendTo(n, { t: 'wm-ask', u: '', r: '', f: node.id, w: seq })),
  });
  if (clock) clock.onNext = (seq) => source.assigned(seq);
  router.onArchivedDelivered = (e) => {
    source.delivered([e?.recipientArchiveId, e?.senderArchiveId].map((id) => (id === undefined ? undefined : seqOfArchiveId(id))));
    // This node's own copies wait for its mark too (its later messages may carry smaller ids than a held copy of another node).
    gate.mark(node.id, source.current());
  };
  node.order = {
    members: (nodes) => gate.setMembers(nodes),
    up: (n) => gate.up(n),
    gone: (n) => gate.gone(n),
    mark: (n, w) => gate.mark(n, w),
    asked: (seq) => source.asked(seq),
    sentCopy: (xml) => {
      if (xml.includes(NS.SID)) source.sentAcross();
    },
  };
  registry.onLocal = (s) => s.addFilter(gate.filter);
  server.onClose(() => gate.close());
}

export async function startCluster(server: Server, registry: ClusterRegistry): Promise<ClusterNode> {
  const c = server.config.cluster;
  // Every node must see every account, roster and archive: SQLite is one machine's file.
  if (server.config.storage.driver !== 'postgres') throw new Error('cluster.redis needs storage.driver: postgres (shared by every node)');
  const log = server.log.child({ component: 'cluster' });
  const node = new ClusterNode(
    { url: c.redis, node: c.node, heartbeatMs: c.heartbeat * 1000, timeoutMs: c.nodeTimeout * 1000 },
    registry,
    {
      log,
      metrics: server.metrics,
      endLocal: (s, reason) => server.endSession(s, reason),
      endedRemote: (s) => void server.hooks.fire('session/ended', { session: s, reason: 'node-died' }),
      // No MAM module (disabled): no archive, nothing to keep apart.
      onLane: (index, count) => (server.services.get('archive-clock') as ArchiveClock | undefined)?.setLane(index, count),
      smGive: (u, id) => (server.services.get(SM_HANDOVER_SERVICE) as SmHandover | undefined)?.give(u, id) ?? Promise.resolve(false),
      smAdopt: (n) => (server.services.get(SM_HANDOVER_SERVICE) as SmHandover | undefined)?.adopt(n) ?? Promise.resolve(new Set<string>()),
    },
  );
  // A client resumes here a session of another node: ask the nodes that have sessions of the account.
  const ask: ClusterSmAsk = (u, id) => {
    const nodes = new Set<string>();
    for (const s of registry.byUser(u)) if (s.remoteNode !== undefined) nodes.add(s.remoteNode);
    // A handover takes a commit's time; a node that does not answer within 5 s is dying (it is reaped later).
    return node.askHandover([...nodes], u, id, Math.min(c.nodeTimeout * 1000, 5000));
  };
  server.services.set(CLUSTER_SM_ASK_SERVICE, ask);
  wireOrder(server, registry, node);
  await node.start();
  server.onClose(() => node.stop());
  return node;
}
