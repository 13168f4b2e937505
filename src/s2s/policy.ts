/**
 * The decisions of server-to-server streams as pure functions, each with a
 * reason (for logs, metrics and table tests): which authentication an
 * outgoing stream uses, what an incoming stream offers, whether a dialback
 * request is accepted, and whether a stanza on an incoming stream may be
 * routed at all.
 */

export interface OutgoingView {
  /** What the peer's current <stream:features/> offers. */
  starttls: boolean;
  external: boolean;
  dialback: boolean;
  /** TLS is up on this stream. */
  secure: boolean;
  /** The peer's certificate chains to a trusted CA and names the peer's domain. */
  peerCertValid: boolean;
  requireTls: boolean;
  secureAuth: boolean;
  /** The peer is listed in s2s.insecureDomains. */
  insecurePeer: boolean;
  /** SASL EXTERNAL was tried on this stream and refused. */
  externalFailed: boolean;
}

export type OutgoingStep =
  | { action: 'starttls'; reason: string }
  | { action: 'external'; reason: string }
  | { action: 'dialback'; reason: string }
  | { action: 'fail'; reason: string };

/** RFC 6120 §5, XEP-0178, XEP-0220: the next step of an outgoing stream after features. */
export function outgoingStep(v: OutgoingView): OutgoingStep {
  if (!v.secure && v.starttls) return { action: 'starttls', reason: 'tls-offered' };
  if (!v.secure && v.requireTls && !v.insecurePeer) return { action: 'fail', reason: 'peer-offers-no-tls' };
  // Talking to an impostor of the domain must not go unnoticed when only certificates count.
  if (v.secureAuth && !v.insecurePeer && !v.peerCertValid) return { action: 'fail', reason: 'peer-certificate-invalid' };
  if (v.secure && v.external && !v.externalFailed) return { action: 'external', reason: 'external-offered' };
  if (v.dialback) return { action: 'dialback', reason: v.externalFailed ? 'external-refused' : 'no-external' };
  return { action: 'fail', reason: 'no-common-authentication' };
}

export interface IncomingFeaturesView {
  secure: boolean;
  canStartTls: boolean;
  requireTls: boolean;
  secureAuth: boolean;
  /** The domain in the stream header's 'from' is listed in s2s.insecureDomains. */
  insecurePeer: boolean;
  /** The peer presented a certificate that chains to a trusted CA. */
  peerCertTrusted: boolean;
}

export interface IncomingFeatures {
  starttls: 'none' | 'optional' | 'required';
  external: boolean;
  dialback: boolean;
}

/** What an incoming stream offers before authentication. */
export function incomingFeatures(v: IncomingFeaturesView): IncomingFeatures {
  const tlsMissing = !v.secure && v.requireTls && !v.insecurePeer;
  const starttls = v.secure || !v.canStartTls ? 'none' : tlsMissing ? 'required' : 'optional';
  if (tlsMissing) return { starttls, external: false, dialback: false };
  return {
    starttls,
    external: v.secure && v.peerCertTrusted,
    dialback: !v.secureAuth || v.insecurePeer || v.peerCertTrusted,
  };
}

/**
 * The domains this server answers for on s2s: its own, or a test for it and
 * the domains hosted beside it (components, MUC, upload), which peers reach
 * over the same listener.
 */
export type LocalDomains = string | ((domain: string) => boolean);

export function isLocal(local: LocalDomains, domain: string): boolean {
  return typeof local === 'string' ? domain === local : local(domain);
}

export interface DialbackRequestView {
  /** The domain the request is for (our side): must be ours. */
  to: string;
  localDomain: LocalDomains;
  secure: boolean;
  requireTls: boolean;
  secureAuth: boolean;
  insecurePeer: boolean;
  /** The stream's peer certificate is valid for the domain in 'from'. */
  peerCertValidForFrom: boolean;
}

export type DialbackDecision =
  | { action: 'accept'; reason: string }
  | { action: 'verify'; reason: string }
  | { action: 'refuse'; condition: 'item-not-found' | 'not-acceptable' | 'policy-violation'; reason: string };

/** XEP-0220 §2.2, XEP-0344: what to do with <db:result from to>KEY</db:result> on an incoming stream. */
export function dialbackRequest(v: DialbackRequestView): DialbackDecision {
  if (!isLocal(v.localDomain, v.to)) return { action: 'refuse', condition: 'item-not-found', reason: 'not-our-domain' };
  if (!v.secure && v.requireTls && !v.insecurePeer) return { action: 'refuse', condition: 'policy-violation', reason: 'tls-required' };
  // XEP-0344 §2.4: a certificate valid for the originating domain proves it already.
  if (v.peerCertValidForFrom) return { action: 'accept', reason: 'certificate' };
  if (v.secureAuth && !v.insecurePeer) return { action: 'refuse', condition: 'not-acceptable', reason: 'secure-auth' };
  return { action: 'verify', reason: 'dialback' };
}

export type StanzaCheck =
  | { ok: true }
  | { ok: false; condition: 'not-authorized' | 'improper-addressing' | 'invalid-from' | 'host-unknown'; reason: string };

/**
 * RFC 6120 §4.9.3 and §8.1.1.2: a stanza on an incoming stream must name a
 * sender of a domain this stream authenticated and a recipient of ours.
 * Anything else is a stream error: it is never routed.
 */
export function checkIncomingStanza(authenticated: ReadonlySet<string>, fromDomain: string | undefined, toDomain: string | undefined, localDomain: LocalDomains): StanzaCheck {
  if (authenticated.size === 0) return { ok: false, condition: 'not-authorized', reason: 'unauthenticated' };
  if (fromDomain === undefined || toDomain === undefined) return { ok: false, condition: 'improper-addressing', reason: 'missing-from-or-to' };
  if (!authenticated.has(fromDomain)) return { ok: false, condition: 'invalid-from', reason: 'from-not-authenticated' };
  if (!isLocal(localDomain, toDomain)) return { ok: false, condition: 'host-unknown', reason: 'not-our-domain' };
  return { ok: true };
}

export interface BidiView {
  /** s2s.bidi */
  enabled: boolean;
  /** TLS is up on this stream. */
  secure: boolean;
  requireTls: boolean;
  /** The peer is listed in s2s.insecureDomains. */
  insecurePeer: boolean;
  /** A domain is already authenticated on this stream (XEP-0288 §2.2: bidi is negotiated before SASL or dialback). */
  authenticated: boolean;
}

export type BidiDecision = { use: true; reason: string } | { use: false; reason: string };

/**
 * XEP-0288: may this stream carry stanzas both ways? The same rule decides
 * whether an incoming stream offers `<bidi xmlns='urn:xmpp:features:bidi'/>`,
 * whether an outgoing stream answers that offer with `<bidi xmlns='urn:xmpp:bidi'/>`,
 * and whether an incoming stream accepts such a request. Only on a stream
 * that is encrypted when TLS is required (as Prosody's mod_s2s_bidi does):
 * a stream that may never carry stanzas must not carry them both ways either.
 */
export function bidiDecision(v: BidiView): BidiDecision {
  if (!v.enabled) return { use: false, reason: 'disabled' };
  if (v.authenticated) return { use: false, reason: 'after-authentication' };
  if (!v.secure && v.requireTls && !v.insecurePeer) return { use: false, reason: 'tls-required' };
  return { use: true, reason: v.secure ? 'offered' : 'offered-insecure-peer' };
}

/**
 * The outgoing stream (and queue) key of a (hosted domain, remote domain) pair: the remote domain
 * alone for the primary domain, as before virtual hosts; both names for another hosted domain,
 * whose stream authenticates as that domain (pure).
 */
export function outgoingKey(primary: string, local: string, remote: string): string {
  return local === primary ? remote : `${local} ${remote}`;
}
