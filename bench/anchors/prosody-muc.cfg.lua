-- MUC benchmark config for Prosody 0.12: a copy of /work/shared/bench/prosody/prosody.cfg.lua
-- with its own address (127.0.40.51), data dir and pidfile, and a MUC component archived by
-- mod_muc_mam. Started by bench/anchors/prosody-start.sh (bench/muc-fanout.ts).
pidfile = "/tmp/muc-bench-prosody/prosody.pid"
data_path = "/tmp/muc-bench-prosody/data"
daemonize = false
log = { info = "/tmp/muc-bench-prosody/prosody.log"; error = "/tmp/muc-bench-prosody/prosody.err" }

-- network: loopback only, c2s on 5222, no s2s/http/components
interfaces = { "127.0.40.51" }
c2s_interfaces = { "127.0.40.51" }
c2s_ports = { 5222 }
s2s_ports = { }
component_ports = { }
http_ports = { }
https_ports = { }
c2s_direct_tls_ports = { }
network_backend = "epoll"

admins = { }

modules_enabled = {
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

-- plaintext c2s on loopback (no STARTTLS), SASL PLAIN allowed
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

-- MUC (XEP-0045) with the room archive (XEP-0313 on the room), like Verona's service.
Component "conference.bench.localhost" "muc"
    modules_enabled = { "muc_mam" }
    restrict_room_creation = false
    muc_log_by_default = true
    muc_log_all_rooms = true
    muc_room_default_history_length = 20
    max_history_messages = 50
    muc_max_occupants = 1000
