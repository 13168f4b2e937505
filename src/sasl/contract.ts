/**
 * Contract of the SASL layer (implementation: ./mechanisms.ts, ./scram.ts).
 * c2s drives a Mechanism; the mechanism looks up credentials itself.
 */
import type { AccountRecord, ScramCredential } from '../storage/types.js';

export type SaslFailure =
  | 'aborted'
  | 'account-disabled'
  | 'credentials-expired'
  | 'encryption-required'
  | 'incorrect-encoding'
  | 'invalid-authzid'
  | 'invalid-mechanism'
  | 'malformed-request'
  | 'mechanism-too-weak'
  | 'not-authorized'
  | 'temporary-auth-failure';

/** One step's outcome. Payloads are raw bytes (c2s does the base64). */
export type SaslStep =
  | { kind: 'challenge'; data: Buffer }
  | { kind: 'success'; username: string; data?: Buffer }
  | { kind: 'failure'; condition: SaslFailure; text?: string };

export interface SaslMechanism {
  readonly name: string;
  /** The (prepared) account the client claims, once known: failures count against it (per-account throttle). */
  readonly claimedUser?: string;
  /** Called with the initial response (undefined when absent, empty buffer for '='). */
  start(initial: Buffer | undefined): Promise<SaslStep>;
  step(response: Buffer): Promise<SaslStep>;
}

export interface CredentialLookup {
  /** Prepared username -> record, undefined when unknown. */
  getAccount(username: string): Promise<AccountRecord | undefined>;
}

export type { ScramCredential };
