/**
 * The validated configuration. `src/config/load.ts` builds it from defaults,
 * the YAML file and command-line overrides; everything else reads only this.
 * Every option is documented in docs/configuration.md.
 */
export interface Config {
  /** The primary XMPP domain served (accounts stored under their bare username; docs/virtual-hosts.md). */
  domain: string;
  /** More hosted domains (virtual hosts), each with its own settings (docs/virtual-hosts.md). */
  domains: Record<string, DomainSettings>;
  dataDir: string;
  log: { level: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent' };
  c2s: {
    host: string; // listen address
    port: number; // STARTTLS port, 0 = ephemeral, -1 = disabled
    tlsPort: number; // direct TLS (XEP-0368), 0 = ephemeral, -1 = disabled
    requireTls: boolean; // refuse SASL/bind before STARTTLS (default true)
    allowPlainWithoutTls: boolean; // offer SASL PLAIN on unencrypted streams (default false)
    maxStanzaSize: number; // bytes after auth (default 262144)
    maxStanzaSizePreAuth: number; // bytes before auth (default 10000)
    maxDepth: number;
    maxAttributes: number;
    authTimeout: number; // seconds from the start of TLS (or of an encrypted connection) to authenticate
    authTimeoutPreTls: number; // seconds a plain connection may take to start TLS (STARTTLS)
    pingInterval: number; // seconds of silence before the server pings a session (0 = off)
    pingTimeout: number; // seconds to wait for the pong
    keepaliveInterval: number; // seconds between whitespace keepalives (0 = off)
    maxPendingLogins: number; // TCP connections between accept and SASL success at once; more wait unread (0 = no limit)
  };
  /** Reload tls.cert/tls.key when the files change (src/config/cert-watch.ts), besides SIGHUP. */
  certWatch: {
    enabled: boolean;
    debounceMs: number; // wait this long after the last change before reading the pair
  };
  tls: {
    cert: string; // path; relative paths are resolved against dataDir
    key: string;
    generate: boolean; // create a self-signed certificate when cert/key are missing
  };
  auth: {
    scramIterations: number; // >= 4096
    mechanisms: Array<'SCRAM-SHA-256' | 'SCRAM-SHA-1' | 'PLAIN'>;
    failuresPerAddress: number; // failed attempts per address per window before throttling
    failuresPerAccount: number;
    failureWindow: number; // seconds
  };
  storage: {
    driver: 'sqlite' | 'postgres';
    sqlite: {
      path: string;
      synchronous: 'OFF' | 'NORMAL' | 'FULL';
      /** FULL only: where the archive's WAL sync runs (docs/configuration.md, src/storage/sqlite/wal-sync.ts). */
      archiveSync: 'commit' | 'threadpool';
    };
    /** PostgreSQL (docs/storage.md): connection URL and pool size. */
    postgres: { url: string; poolSize: number };
  };
  modules: {
    /** Modules to leave out by name (e.g. ['version']). */
    disabled: string[];
  };
  /** Options of individual modules, by module name (validated by the module). */
  moduleOptions: Record<string, Record<string, unknown>>;
  /** Limits against floods and resource exhaustion (docs/security.md); 0 turns a limit off. */
  limits: {
    c2sConnectionsPerAddress: number; // open c2s TCP connections per client address (IPv6 per /64)
    readRate: number; // bytes per second read from one c2s TCP stream
    readBurst: number; // bytes a stream may send at once before readRate applies
    sessionsPerAccount: number; // bound resources per account
    exemptAddresses: string[]; // addresses not counted by c2sConnectionsPerAddress (loopback by default)
    iqPerSecond: number; // IQ requests (get/set) per second per session, after iqBurst
    iqBurst: number; // IQ requests a session may send at once; 0 = no IQ limit
    mamRowsPerSecond: number; // MAM rows (a query costs its page size) per second per account
    mamRowsBurst: number; // MAM rows an account may query at once; 0 = no MAM budget
    presencePerMinute: number; // presence broadcasts per minute per session (more are held, the newest wins)
    presenceBurst: number; // presence broadcasts a session may send at once; 0 = no limit
    subscriptionsPerMinute: number; // subscription requests per minute per account
    subscriptionBurst: number; // subscription requests an account may send at once; 0 = no limit
    directedPresences: number; // distinct directed-presence targets per session; 0 = no limit
  };
  /** Administration: the local admin socket and the accounts allowed XEP-0133 commands (docs/security.md). */
  admin: {
    socket: string; // unix socket path, relative to dataDir (default admin.sock); '' = no socket
    users: string[]; // bare JIDs allowed the XEP-0133 service administration commands
  };
  /** HTTP listener for web clients: WebSocket, BOSH, discovery, chat page, metrics (docs/web.md). */
  web: {
    host: string; // listen address (default 127.0.0.1)
    port: number; // plain HTTP (default 5280), 0 = ephemeral, -1 = disabled
    tlsPort: number; // HTTPS with the c2s certificate (default 5443), 0 = ephemeral, -1 = disabled
    publicUrl: string; // base URL clients use (behind a proxy); '' = derived from each request
    trustedProxies: string[]; // IPs/CIDRs whose X-Forwarded-For/-Proto/-Host are believed
    allowedOrigins: string[]; // extra browser origins allowed to connect; '*' = any
    maxConnectionsPerAddress: number; // sockets and XMPP sessions per client address (0 = no limit)
    websocket: { enabled: boolean; pingInterval: number };
    bosh: {
      enabled: boolean;
      maxWait: number; // seconds a request may be held
      maxHold: number; // requests held at once
      inactivity: number; // seconds without a request before the session ends
      polling: number; // shortest allowed seconds between empty polls
      maxPause: number; // longest pause a client may ask for (seconds)
      maxBodySize: number; // bytes per HTTP request body
    };
    client: { enabled: boolean; title: string };
    metrics: { enabled: boolean; allowFrom: string[] };
  };
  /** Server-to-server federation (docs/federation.md). */
  s2s: {
    enabled: boolean; // accept and open s2s streams (false: remote domains get remote-server-not-found)
    host: string; // listen address
    port: number; // STARTTLS s2s port (default 5269), 0 = ephemeral, -1 = disabled
    tlsPort: number; // direct TLS s2s port, XEP-0368 (default 5270), 0 = ephemeral, -1 = disabled
    requireTls: boolean; // refuse peers without TLS (except insecureDomains)
    secureAuth: boolean; // only certificate authentication (SASL EXTERNAL), never dialback
    insecureDomains: string[]; // peers allowed without TLS and with dialback even when secureAuth
    ca: string[]; // extra CA certificate files (PEM) trusted for peer certificates, besides the system CAs
    hosts: Record<string, string>; // domain -> host:port, overrides DNS SRV
    dialbackSecret: string; // XEP-0185 key secret; '' = random per process
    connectTimeout: number; // seconds to connect and authenticate an outgoing stream
    authTimeout: number; // seconds an incoming stream may stay unauthenticated
    idleTimeout: number; // seconds without stanzas before a stream is closed
    maxStanzaSize: number; // bytes per stanza on an s2s stream
    maxStreamsPerAddress: number; // incoming streams per remote IP (0 = no limit)
    maxQueue: number; // stanzas queued per domain while connecting
    bidi: boolean; // XEP-0288 bidirectional streams: one TCP connection per peer carries both directions
  };
  /** Several nodes as one server on shared PostgreSQL and Redis (docs/operations.md, Cluster). */
  cluster: {
    redis: string; // Redis/Valkey URL; '' = a single node (no cluster)
    node: string; // this node's name in the cluster; '' = derived from host name and PID
    heartbeat: number; // seconds between heartbeats
    nodeTimeout: number; // seconds without a heartbeat before a node counts as dead
  };
}

/** Settings of one hosted domain other than the primary (`domains:` map; docs/virtual-hosts.md). */
export interface DomainSettings {
  /** Its certificate and key (paths resolved against dataDir; default tls/<domain>/cert.pem, key.pem), generated like tls.* when missing and tls.generate is on. */
  tls: { cert: string; key: string };
  /** In-band registration (XEP-0077) of new accounts on this domain; undefined = moduleOptions.register.enabled. */
  register?: boolean;
}
