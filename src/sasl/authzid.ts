/**
 * Authorization identities (RFC 6120 §6.3.8): Verona only lets an entity act
 * as itself, so an authzid must be empty, the username, or the user's bare JID.
 */
import { prepareDomain, prepareLocal, tryParseJID } from '../jid/jid.js';

/** The configured domain in prepared form (falls back to lower case). */
export function preparedDomain(domain: string): string {
  try {
    return prepareDomain(domain);
  } catch {
    return domain.toLowerCase();
  }
}

/** True when `authzid` names the account `username` (prepared) of `domain` (prepared). */
export function authzidAllowed(authzid: string, username: string, domain: string): boolean {
  if (authzid === '') return true;
  if (!authzid.includes('@') && !authzid.includes('/')) {
    try {
      return prepareLocal(authzid) === username;
    } catch {
      return false;
    }
  }
  const jid = tryParseJID(authzid);
  return jid !== undefined && jid.isBare() && jid.local === username && jid.domain === domain;
}

// ignoreBOM keeps a leading BOM: the bytes must round-trip into AuthMessage.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict UTF-8 decoding; undefined for invalid sequences. */
export function decodeUtf8(data: Buffer): string | undefined {
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}
