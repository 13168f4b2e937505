/**
 * The storage conformance suite on the in-memory reference stores (roster,
 * SM state, blocklist, PEP, MUC rooms, push registrations, FAST tokens). They define the semantics the database
 * backends are held to.
 */
import { MemoryRosterStore } from '../../src/storage/roster.js';
import { MemorySmStateStore } from '../../src/storage/sm-state.js';
import { MemorySmSessionStore } from '../../src/storage/sm-sessions.js';
import { MemoryBlocklistStore } from '../../src/storage/blocklist.js';
import { MemoryPubsubStore } from '../../src/storage/pubsub.js';
import { MemoryMucStore } from '../../src/storage/muc.js';
import { MemoryPushStore } from '../../src/storage/push.js';
import { MemoryFastTokenStore } from '../../src/storage/fast.js';
import { storageConformance } from '../helpers/storage-conformance.js';

storageConformance(
  'in-memory reference stores',
  async () => {
    const roster = new MemoryRosterStore();
    const blocklist = new MemoryBlocklistStore();
    const pubsub = new MemoryPubsubStore();
    const push = new MemoryPushStore();
    const fastTokens = new MemoryFastTokenStore();
    const smSessions = new MemorySmSessionStore();
    return {
      roster,
      rosterSmall: new MemoryRosterStore(2),
      smState: new MemorySmStateStore(),
      smSessions,
      blocklist,
      pubsub,
      muc: new MemoryMucStore(),
      push,
      fastTokens,
      deleteUser: async (u) => {
        roster.deleteUser(u);
        smSessions.deleteUser(u);
        await blocklist.clear(u);
        pubsub.deleteUser(u);
        // The memory push and FAST stores have no account deletion of their own: the server's
        // account removal goes through Storage.deleteUserData, which only databases implement.
        for (const r of await push.list(u)) await push.remove(u, r.jid, r.node);
        for (const t of await fastTokens.list(u)) await fastTokens.remove(u, t.keyHash);
      },
      close: async () => undefined,
    };
  },
  { stores: [] },
);
