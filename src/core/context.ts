/** What the c2s layer and transports need from the running server. */
import type { HostedDomains } from './vhosts.js';
import type { Config } from '../config/types.js';
import type { Storage } from '../storage/types.js';
import type { Metrics } from '../metrics/metrics.js';
import type { CredentialLookup } from '../sasl/contract.js';
import type { AuthThrottle } from '../sasl/throttle.js';
import type { HookEvents } from './events.js';
import type { Hooks } from './hooks.js';
import type { Logger } from './logger.js';
import type { SessionRegistry } from './registry.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { C2SStream } from '../c2s/stream.js';

export interface ServerContext {
  readonly config: Config;
  readonly domain: string;
  /** Every hosted domain (virtual hosts, src/core/vhosts.ts); `domain` is the primary. */
  readonly hosts: HostedDomains;
  readonly log: Logger;
  readonly hooks: Hooks<HookEvents>;
  readonly router: Router;
  readonly sessions: SessionRegistry;
  readonly storage: Storage;
  readonly metrics: Metrics;
  readonly throttle: AuthThrottle;
  readonly credentials: CredentialLookup;
  /** Per-process secret (fake SCRAM salts for unknown users). */
  readonly secret: Buffer;
  /** Every open c2s stream (for keepalives, pings and shutdown). */
  readonly streams: Set<C2SStream>;
  /** The stream under a session is gone: SM may keep it for resumption, else it ends. */
  detachSession(session: Session, reason: string): void;
  /** Why logins to this account are refused (disabled by an operator), or undefined. */
  accountDisabled?(username: string): string | undefined;
  /** End a session for good: out of the registry, 'session/ended' fired. */
  endSession(session: Session, reason: string): void;
}
