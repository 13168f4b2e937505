/**
 * Mechanism registry: c2s lists MECHANISM_NAMES (filtered by config and by
 * whether the stream is encrypted) and creates one mechanism per attempt.
 */
import type { CredentialLookup, SaslMechanism } from './contract.js';
import { PlainServer } from './plain.js';
import { ScramServer } from './scram.js';

/** In order of preference (strongest first), as advertised. */
export const MECHANISM_NAMES = ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'] as const;
export type MechanismName = (typeof MECHANISM_NAMES)[number];

export interface MechanismOptions {
  domain: string;
  /** Server secret (keys the fake salts that hide unknown users). */
  secret: Buffer;
  /** The configured SCRAM iteration count, shown for unknown users too. */
  fakeIterations?: number;
}

/** A fresh mechanism for one authentication attempt, or undefined for an unknown name. */
export function createMechanism(name: string, lookup: CredentialLookup, opts: MechanismOptions): SaslMechanism | undefined {
  switch (name) {
    case 'SCRAM-SHA-256':
      return new ScramServer('SHA-256', lookup, opts);
    case 'SCRAM-SHA-1':
      return new ScramServer('SHA-1', lookup, opts);
    case 'PLAIN':
      return new PlainServer(lookup, opts);
    default:
      return undefined;
  }
}
