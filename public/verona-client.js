// Starts converse.js for this server. The settings come from the JSON block
// in index.html, which the server fills in (docs/web.md, "Chat page").
const cfg = JSON.parse(document.getElementById('verona-config').textContent);

// Absolute endpoint URLs from the host the page was loaded from, so the page
// works on localhost, an IP address or behind a proxy without configuration.
const wsScheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
const websocketUrl = cfg.websocketUrl || (cfg.websocketPath ? `${wsScheme}//${location.host}${cfg.websocketPath}` : undefined);
const boshUrl = cfg.boshUrl || (cfg.boshPath ? `${location.origin}${cfg.boshPath}` : undefined);

// This server, and its upload service (which may be named by the XMPP domain, not the page's host).
const mediaHosts = [location.hostname, ...(cfg.uploadHost ? [cfg.uploadHost] : [])];

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
  // Nothing on this page may reach past this server (docs/web.md, "No third-party requests"):
  // emojis as the system draws them, not images from a CDN; links in messages stay links
  // (fetching them would tell a stranger's server who reads the chat, and when).
  use_system_emojis: true,
  emoji_image_path: '/converse/',
  // Media is shown only from this server (files shared through its HTTP upload service):
  // converse.js renders nothing from any other domain.
  render_media: true,
  allowed_image_domains: mediaHosts,
  allowed_video_domains: mediaHosts,
  allowed_audio_domains: mediaHosts,
  embed_3rd_party_media_players: false,
  fetch_url_headers: false,
  show_background: false,
};

// Verona's brand instead of converse.js's, and no sponsor logos (the stock footer loads
// them from conversejs.org). converse.js only registers an element whose name is still
// free, so these must be defined before converse.initialize().
const esc = (t) => String(t).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]);
class VeronaBrand extends window.HTMLElement {
  connectedCallback() {
    this.innerHTML = `<span class="brand-heading verona-brand"><span class="brand-name">${esc(cfg.title || 'Verona')}</span>` +
      `<span class="byline verona-byline">${esc(cfg.domain)}</span></span>`;
  }
}
class VeronaFooter extends window.HTMLElement {
  connectedCallback() {
    this.innerHTML = '<footer class="verona-footer">Verona XMPP server. Chat client: ' +
      '<a href="https://conversejs.org" target="_blank" rel="noopener noreferrer">converse.js</a> (MPL-2.0). ' +
      'Any XMPP client works with this server too.</footer>';
  }
}
for (const [name, cls] of [['converse-brand-logo', VeronaBrand], ['converse-footer', VeronaFooter]]) {
  if (!window.customElements.get(name)) window.customElements.define(name, cls);
}

const start = (converse) => converse.initialize(settings);
if (window.converse) start(window.converse);
else window.addEventListener('converse-loaded', (ev) => start(ev.detail.converse), { once: true });
