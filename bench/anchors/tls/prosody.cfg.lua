-- Copy of /work/shared/bench/prosody/prosody.cfg.lua with TLS added (bench/anchors/README.md).
-- Benchmark config for Prosody 0.12 (Debian bookworm). Loopback only.
-- Started by bench/anchors/anchor.sh, which fills in @DIR@, @CERT@ and @KEY@.
pidfile = "@DIR@/prosody.pid"
data_path = "@DIR@/data"
daemonize = false
log = { info = "@DIR@/prosody.log"; error = "@DIR@/prosody.err" }

-- network: loopback only, c2s on 5222, no s2s/http/components
interfaces = { "127.0.0.1" }
c2s_interfaces = { "127.0.0.1" }
c2s_ports = { 15222 }
s2s_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
c2s_direct_tls_ports = { 15223 }
network_backend = "epoll"

admins = { }

modules_enabled = {
    "tls";          -- STARTTLS (TLS bench)
    "roster"; "saslauth"; "disco"; "presence"; "message"; "iq"; "ping"; "version"; "uptime"; "time";
    "carbons";      -- XEP-0280
    "mam";          -- XEP-0313
    "smacks";       -- XEP-0198 (core module in 0.12)
    "csi_simple";   -- XEP-0352
    "register";     -- XEP-0077 in-band registration, used for bulk user creation on loopback
    "admin_shell";  -- prosodyctl shell (user:create ...)
    -- NOTE: "limits" (c2s rate limiting) deliberately NOT loaded for the benchmark
}
modules_disabled = { "s2s"; }

-- TLS (bench/anchors): STARTTLS offered on 15222 (plaintext still allowed, as for the other servers),
-- direct TLS (XEP-0368) on 15223, one self-signed P-256 certificate shared by all three servers
ssl = { certificate = "@CERT@"; key = "@KEY@"; }
c2s_direct_tls_ssl = { certificate = "@CERT@"; key = "@KEY@"; }
-- SASL PLAIN allowed in plaintext too
c2s_require_encryption = false
s2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = true
min_seconds_between_registrations = 0
registration_throttle_max = nil

authentication = "internal_hashed"   -- SCRAM-SHA-1 + PLAIN
storage = "sql"
sql = { driver = "SQLite3", database = "prosody.sqlite" }  -- relative to data_path

-- MAM: archive every 1-1 message by default
default_archive_policy = true
archive_expires_after = "never"
max_archive_query_results = 50

-- Stream management: keep resumable sessions 5 min
smacks_hibernation_time = 300
smacks_max_queue_size = 5000

-- stanza size limit default (256k in 0.12) left as is
VirtualHost "bench.localhost"
    ssl = { certificate = "@CERT@"; key = "@KEY@"; }
