/**
 * The module list, in load order. Load order matters only for services one
 * module provides to another; hook order is set by priorities (core/events.ts).
 */
import type { VeronaModule } from '../core/module.js';
import { discoModule } from './disco.js';
import { pingModule } from './ping.js';
import { versionModule } from './version.js';
import { timeModule } from './time.js';
import { rosterModule } from './roster/index.js';
import { csiModule } from './csi.js';
import { smModule } from './sm/index.js';
import { mr2Module } from './mr2.js';
import { stanzaIdModule } from './stanza-id.js';
import { carbonsModule } from './carbons.js';
import { mamModule } from './mam/index.js';
import { offlineModule } from './offline.js';
import { blockingModule } from './blocking.js';
import { vcardModule } from './vcard.js';
import { privateModule } from './private.js';
import { registerModule } from './register.js';
import { pepModule } from './pep/index.js';
import { mucModule } from './muc/index.js';
import { uploadModule } from './upload/index.js';
import { extdiscoModule } from './extdisco.js';
import { contactAddressesModule } from './contact-addresses.js';
import { bookmarksModule } from './bookmarks.js';
import { avatarModule } from './avatar.js';
import { proxy65Module } from './proxy65.js';
import { componentModule } from '../component/index.js';
import { pushModule } from './push/index.js';
import { sasl2Module } from '../c2s/sasl2.js';
import { mdsModule } from './mds.js';
import { adhocModule } from './adhoc/index.js';
import { stanzaLimitsModule } from '../limits/stanza-limits.js';

export const allModules: readonly VeronaModule[] = [discoModule, pingModule, versionModule, timeModule, rosterModule,
  mr2Module, stanzaIdModule, carbonsModule, mamModule, offlineModule,
  blockingModule, vcardModule, privateModule, registerModule, pepModule, adhocModule,
  // muc after mam: it shares the archive clock.
  mucModule,
  uploadModule, extdiscoModule, contactAddressesModule, bookmarksModule, avatarModule, proxy65Module,
  componentModule,
  // sm last: at shutdown it closes first and still hands unacked messages to offline storage.
  csiModule, smModule,
  // After sm: push uses its 'sm-control' service (long hibernation, resumption).
  pushModule, sasl2Module, mdsModule,
  // Per-session/per-account stanza limits (docs/security.md); only the 'stanza/client' hook, so order does not matter.
  stanzaLimitsModule];
