// Starts converse.js for this server. The settings come from the JSON block
// in index.html, which the server fills in (docs/web.md, "Chat page").
const cfg = JSON.parse(document.getElementById('verona-config').textContent);

// Absolute endpoint URLs from the host the page was loaded from, so the page
// works on localhost, an IP address or behind a proxy without configuration.
const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const websocketUrl = cfg.websocketUrl || (cfg.websocketPath ? `${wsScheme}//${location.host}${cfg.websocketPath}` : undefined);
const boshUrl = cfg.boshUrl || (cfg.boshPath ? `${location.origin}${cfg.boshPath}` : undefined);

const settings = {
  assets_path: cfg.assetsPath,
  view_mode: 'fullscreen',
  authentication: 'login',
  // Accounts live on this one domain: users type only their name.
  locked_domain: cfg.domain,
  default_domain: cfg.domain,
  discover_connection_methods: false,
  allow_registration: false,
  // WebSocket when the server offers it; BOSH otherwise.
  ...(websocketUrl ? { websocket_url: websocketUrl } : { bosh_service_url: boshUrl }),
  // Every device keeps the whole conversation: archive everything, fetch history from the server (MAM),
  // and see what this account sent from other devices (carbons).
  message_archiving: 'always',
  message_carbons: true,
  archived_messages_page_size: 50,
  enable_smacks: true,
  allow_non_roster_messaging: true,
  auto_reconnect: true,
  show_client_info: false,
  play_sounds: false,
  loglevel: 'warn',
};

const start = (converse) => converse.initialize(settings);
if (window.converse) start(window.converse);
else window.addEventListener('converse-loaded', (ev) => start(ev.detail.converse), { once: true });
