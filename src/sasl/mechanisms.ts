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
  /** TLS channel-binding data by type, for SCRAM-*-PLUS (XEP-0440). */
  channelBinding?: (type: 'tls-exporter' | 'tls-server-end-point') => Buffer | undefined;
  /** -PLUS is offered on this stream: a 'y' flag then means a downgrade. */
  channelBindingOffered?: boolean;
}

/**
 * The -PLUS variants to offer on a stream (XEP-0440): one per enabled SCRAM
 * mechanism, only when the connection has channel-binding data.
 */
export function plusMechanisms(enabled: readonly string[], hasChannelBinding: boolean): string[] {
  if (!hasChannelBinding) return [];
  return enabled.filter((m) => m.startsWith('SCRAM-')).map((m) => `${m}-PLUS`);
}

/** A fresh mechanism for one authentication attempt, or undefined for an unknown name. */
export function createMechanism(name: string, lookup: CredentialLookup, opts: MechanismOptions): SaslMechanism | undefined {
  switch (name) {
    case 'SCRAM-SHA-256':
      return new ScramServer('SHA-256', lookup, opts);
    case 'SCRAM-SHA-1':
      return new ScramServer('SHA-1', lookup, opts);
    // -PLUS only where the caller can give channel-binding data.
    case 'SCRAM-SHA-256-PLUS':
      return opts.channelBinding ? new ScramServer('SHA-256', lookup, opts, true) : undefined;
    case 'SCRAM-SHA-1-PLUS':
      return opts.channelBinding ? new ScramServer('SHA-1', lookup, opts, true) : undefined;
    case 'PLAIN':
      return new PlainServer(lookup, opts);
    default:
      return undefined;
  }
}
