-- Prosody 0.12 with mod_http_file_share, for bench/upload.ts (a copy of
-- /work/shared/bench/prosody/prosody.cfg.lua, moved to 127.0.40.64 so it does
-- not collide with other benchmark runs, with HTTP upload enabled).
pidfile = "/tmp/apps-bench-prosody/prosody.pid"
data_path = "/tmp/apps-bench-prosody/data"
daemonize = false
log = { info = "/tmp/apps-bench-prosody/prosody.log"; error = "/tmp/apps-bench-prosody/prosody.err" }

interfaces = { "127.0.40.64" }
c2s_interfaces = { "127.0.40.64" }
c2s_ports = { 5222 }
s2s_ports = { }
component_ports = { }
http_interfaces = { "127.0.40.64" }
http_ports = { 5280 }
https_ports = { }
c2s_direct_tls_ports = { }
network_backend = "epoll"
http_external_url = "http://127.0.40.64:5280/"
-- Requests carry Host: 127.0.40.64:5280; route them to the upload component.
http_default_host = "upload.bench.localhost"
http_max_content_size = 64 * 1024 * 1024

modules_enabled = { "roster"; "saslauth"; "disco"; "presence"; "message"; "iq"; "ping"; "register"; "admin_shell" }
modules_disabled = { "s2s"; }
c2s_require_encryption = false
allow_unencrypted_plain_auth = true
allow_registration = true
min_seconds_between_registrations = 0
authentication = "internal_hashed"
storage = "sql"
sql = { driver = "SQLite3", database = "prosody.sqlite" }

VirtualHost "bench.localhost"

Component "upload.bench.localhost" "http_file_share"
    http_file_share_size_limit = 64 * 1024 * 1024
    http_file_share_daily_quota = 100 * 1024 * 1024 * 1024
    http_file_share_global_quota = 100 * 1024 * 1024 * 1024
