/**
 * The validated configuration. `src/config/load.ts` builds it from defaults,
 * the YAML file and command-line overrides; everything else reads only this.
 * Every option is documented in docs/configuration.md.
 */
export interface Config {
  /** The XMPP domain served (one virtual host). */
  domain: string;
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
    authTimeout: number; // seconds a connection may stay unauthenticated
    pingInterval: number; // seconds of silence before the server pings a session (0 = off)
    pingTimeout: number; // seconds to wait for the pong
    keepaliveInterval: number; // seconds between whitespace keepalives (0 = off)
    maxPendingLogins: number; // TCP connections between accept and SASL success at once; more wait unread (0 = no limit)
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
    sqlite: { path: string; synchronous: 'OFF' | 'NORMAL' | 'FULL' };
    postgres: { url: string };
  };
  modules: {
    /** Modules to leave out by name (e.g. ['version']). */
    disabled: string[];
  };
  /** Options of individual modules, by module name (validated by the module). */
  moduleOptions: Record<string, Record<string, unknown>>;
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
}
