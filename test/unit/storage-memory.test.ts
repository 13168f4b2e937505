/**
 * The storage conformance suite on the in-memory reference stores (roster,
 * SM state, blocklist, PEP). They define the semantics the database
 * backends are held to.
 */
import { MemoryRosterStore } from '../../src/storage/roster.js';
import { MemorySmStateStore } from '../../src/storage/sm-state.js';
import { MemoryBlocklistStore } from '../../src/storage/blocklist.js';
import { MemoryPubsubStore } from '../../src/storage/pubsub.js';
import { storageConformance } from '../helpers/storage-conformance.js';

storageConformance(
  'in-memory reference stores',
  async () => {
    const roster = new MemoryRosterStore();
    const blocklist = new MemoryBlocklistStore();
    const pubsub = new MemoryPubsubStore();
    return {
      roster,
      rosterSmall: new MemoryRosterStore(2),
      smState: new MemorySmStateStore(),
      blocklist,
      pubsub,
      deleteUser: async (u) => {
        roster.deleteUser(u);
        await blocklist.clear(u);
        pubsub.deleteUser(u);
      },
      close: async () => undefined,
    };
  },
  { stores: [] },
);
