/**
 * Default configuration. Every value here is documented in
 * docs/configuration.md; keep the two in step.
 */
import type { Config } from './types.js';

/** A fresh copy of the defaults (callers may mutate it). */
export function defaultConfig(): Config {
  return {
    domain: 'localhost',
    domains: {},
    dataDir: './data',
    log: { level: 'info' },
    c2s: {
      host: '0.0.0.0',
      port: 5222,
      tlsPort: 5223,
      requireTls: true,
      allowPlainWithoutTls: false,
      maxStanzaSize: 262144,
      // RFC 6120 §13.12: a server must accept stanzas of at least 10000 bytes.
      maxStanzaSizePreAuth: 10000,
      // Real stanzas nest about 10 deep (MAM result > forwarded > message >
      // payload ...); 64 leaves room for PEP payloads and XHTML without letting
      // an attacker build pathological trees.
      maxDepth: 64,
      maxAttributes: 64,
      // 300 s as Prosody: a client may stop in the TLS handshake to ask its user
      // about the certificate (Profanity did, and missed a 30 s window). Before
      // TLS nobody is being asked anything, so a plain socket gets 30 s.
      authTimeout: 300,
      authTimeoutPreTls: 30,
      pingInterval: 300,
      pingTimeout: 30,
      keepaliveInterval: 60,
      // Login storms (issue 15): in a 3,000-client storm on the loaded benchmark machine, 874
      // clients got in with 32 against 147 without a limit (the rest hit c2s.authTimeout or
      // their own timeout): docs/benchmarks.md, "Over TLS".
      maxPendingLogins: 128,
    },
    tls: { cert: 'tls/cert.pem', key: 'tls/key.pem', generate: true },
    // A renewal writes the chain and the key a moment apart: read them 2 s after the last write.
    certWatch: { enabled: true, debounceMs: 2000 },
    auth: {
      // RFC 7677 §4 asks for at least 4096 iterations.
      scramIterations: 4096,
      mechanisms: ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN'],
      failuresPerAddress: 5,
      failuresPerAccount: 5,
      failureWindow: 60,
    },
    storage: {
      driver: 'sqlite',
      sqlite: { path: 'verona.sqlite', synchronous: 'FULL', archiveSync: 'commit' },
      postgres: { url: '', poolSize: 10 },
    },
    modules: { disabled: [] },
    moduleOptions: {},
    // Generous for people, tight for floods: a stanza of c2s.maxStanzaSize fits in the burst.
    limits: { c2sConnectionsPerAddress: 64, readRate: 65536, readBurst: 524288, sessionsPerAccount: 100, exemptAddresses: ['127.0.0.1', '::1'],
      // Stanza limits (src/limits/stanza-limits.ts): generous enough for a client's login burst and a MAM catch-up in pages.
      iqPerSecond: 20, iqBurst: 300, mamRowsPerSecond: 500, mamRowsBurst: 10000, presencePerMinute: 60, presenceBurst: 20,
      subscriptionsPerMinute: 20, subscriptionBurst: 200, directedPresences: 1000 },
    // The admin socket is only reachable by the server's own user (mode 0600); nobody is an XMPP admin until listed.
    admin: { socket: 'admin.sock', users: [] },
    // No Redis: one node, exactly as before (docs/operations.md, Cluster).
    cluster: { redis: '', node: '', heartbeat: 2, nodeTimeout: 10 },
    // Web clients (docs/web.md). Loopback only by default: the quick start
    // opens http://localhost:5280/ in a browser on the same machine.
    web: {
      host: '127.0.0.1',
      port: 5280,
      tlsPort: 5443,
      publicUrl: '',
      trustedProxies: [],
      allowedOrigins: [],
      maxConnectionsPerAddress: 64,
      websocket: { enabled: true, pingInterval: 60 },
      // XEP-0124 suggests wait 60; inactivity must outlast a client's round trip between requests.
      bosh: { enabled: true, maxWait: 60, maxHold: 1, inactivity: 60, polling: 2, maxPause: 300, maxBodySize: 1048576 },
      client: { enabled: true, title: 'Verona' },
      metrics: { enabled: true, allowFrom: ['127.0.0.1', '::1'] },
    },
    // Federation (docs/federation.md): RFC 6120 ports, TLS and verified identities by default.
    s2s: {
      enabled: true,
      host: '0.0.0.0',
      port: 5269,
      tlsPort: 5270,
      requireTls: true,
      secureAuth: false,
      insecureDomains: [],
      ca: [],
      hosts: {},
      dialbackSecret: '',
      connectTimeout: 30,
      authTimeout: 30,
      idleTimeout: 600,
      maxStanzaSize: 262144,
      maxStreamsPerAddress: 8,
      maxQueue: 1000,
      bidi: true,
    },
  };
}
