/**
 * What the HTTP listener serves besides the XMPP endpoints: connection
 * discovery (XEP-0156 host-meta, XML and JSON), and the chat page, which is
 * converse.js (the npm package, its dist/ files served from node_modules)
 * configured for this server by public/index.html + public/verona-client.js.
 */
import { createReadStream, readFileSync, statSync, type Stats } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzip } from 'node:zlib';
import type http from 'node:http';
import type { WebFront, ClientInfo } from './http.js';
import { text } from './http.js';
import { WEBSOCKET_PATH } from './websocket.js';
import { BOSH_PATH } from './bosh.js';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.gif': 'image/gif',
  '.ico': 'image/x-icon',
  '.webp': 'image/webp',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.otf': 'font/otf',
  '.wasm': 'application/wasm',
  '.mp3': 'audio/mpeg',
  '.ogg': 'audio/ogg',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};
/** Worth compressing: text formats, and only above this size. */
const COMPRESSIBLE = /^(text\/|application\/(json|javascript|manifest\+json|wasm)|image\/svg)/;
const MIN_GZIP = 1024;

/** The repository root: the folder with our package.json (dist/ and src/ layouts alike). */
function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string };
      if (pkg.name === 'verona-xmpp') return dir;
    } catch {
      // not here; keep walking up
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the verona-xmpp package root');
    dir = up;
  }
}

/** converse.js's dist/ folder, or undefined when the package is not installed. */
function converseDist(): string | undefined {
  try {
    return path.dirname(createRequire(import.meta.url).resolve('converse.js/dist/converse.min.js'));
  } catch {
    return undefined;
  }
}

function converseVersion(dist: string): string {
  try {
    return (JSON.parse(readFileSync(path.join(dist, '..', 'package.json'), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** JSON for embedding in an HTML <script> element: '<' can never close the element. */
function jsonForHtml(v: unknown): string {
  return JSON.stringify(v).replace(/</g, '\\u003c').replace(/>/g, '\\u003e').replace(/&/g, '\\u0026');
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

interface Compressed {
  mtimeMs: number;
  data: Buffer;
}

export class WebSite {
  private readonly publicDir: string;
  private readonly converseDir: string | undefined;
  readonly converseVersion: string;
  private readonly gzCache = new Map<string, Compressed | Promise<Compressed>>();
  private indexTemplate: string | undefined;

  constructor(private readonly front: WebFront) {
    this.publicDir = path.join(packageRoot(), 'public');
    this.converseDir = converseDist();
    this.converseVersion = this.converseDir ? converseVersion(this.converseDir) : 'missing';
    const c = front.server.config.web.client;
    if (c.enabled && !this.converseDir) front.server.log.warn('web.client is enabled but the converse.js package is not installed; the chat page is unavailable');
  }

  // ---- discovery (XEP-0156) ------------------------------------------------------

  /** Base URL clients should use: publicUrl, or what this request came in on. */
  baseUrl(info: ClientInfo): string {
    const pub = this.front.server.config.web.publicUrl;
    if (pub !== '') return pub;
    const host = info.host ?? `${this.front.server.domain}`;
    return `${info.https ? 'https' : 'http'}://${host}`;
  }

  endpoints(info: ClientInfo): { websocket?: string; bosh?: string } {
    const base = this.baseUrl(info);
    const out: { websocket?: string; bosh?: string } = {};
    if (this.front.ws) out.websocket = base.replace(/^http/, 'ws') + WEBSOCKET_PATH;
    if (this.front.bosh) out.bosh = base + BOSH_PATH;
    return out;
  }

  preflight(res: http.ServerResponse): void {
    res.writeHead(204, { 'Access-Control-Allow-Origin': '*', 'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS', 'Access-Control-Max-Age': '86400' });
    res.end();
  }

  private hostMeta(json: boolean, req: http.IncomingMessage, res: http.ServerResponse, info: ClientInfo): void {
    const e = this.endpoints(info);
    const links: Array<{ rel: string; href: string }> = [];
    if (e.websocket) links.push({ rel: 'urn:xmpp:alt-connections:websocket', href: e.websocket });
    if (e.bosh) links.push({ rel: 'urn:xmpp:alt-connections:xbosh', href: e.bosh });
    let body: string;
    let type: string;
    if (json) {
      body = JSON.stringify({ links }, null, 2) + '\n';
      type = 'application/json; charset=utf-8';
    } else {
      const lines = links.map((l) => `  <Link rel="${l.rel}" href="${escapeHtml(l.href)}"/>`);
      body = `<?xml version="1.0" encoding="utf-8"?>\n<XRD xmlns="http://docs.oasis-open.org/ns/xri/xrd-1.0">\n${lines.join('\n')}\n</XRD>\n`;
      type = 'application/xrd+xml; charset=utf-8';
    }
    // Public information that browser clients on any site must be able to read (XEP-0156 §3.2).
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Access-Control-Allow-Origin': '*',
      'Cache-Control': 'public, max-age=300',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  }

  // ---- files ---------------------------------------------------------------------

  serve(urlPath: string, req: http.IncomingMessage, res: http.ServerResponse, info: ClientInfo): void {
    if (urlPath === '/.well-known/host-meta') return this.hostMeta(false, req, res, info);
    if (urlPath === '/.well-known/host-meta.json') return this.hostMeta(true, req, res, info);
    const client = this.front.server.config.web.client;
    if (!client.enabled || !this.converseDir) {
      if (urlPath === '/') return text(res, 200, 'Verona XMPP server. The web chat page is disabled (web.client.enabled).');
      return text(res, 404, 'Not found');
    }
    if (urlPath === '/' || urlPath === '/index.html') return this.index(req, res, info);
    if (urlPath.startsWith('/converse/')) return this.file(this.converseDir, urlPath.slice('/converse/'.length), req, res, 86400);
    if (urlPath === '/favicon.ico') return this.file(this.converseDir, 'images/favicon.ico', req, res, 86400);
    return this.file(this.publicDir, urlPath.slice(1), req, res, 300);
  }

  private index(req: http.IncomingMessage, res: http.ServerResponse, info: ClientInfo): void {
    const srv = this.front.server;
    if (this.indexTemplate === undefined) this.indexTemplate = readFileSync(path.join(this.publicDir, 'index.html'), 'utf8');
    const pub = srv.config.web.publicUrl;
    const e = pub !== '' ? this.endpoints(info) : {};
    // Paths, not URLs, unless publicUrl says otherwise: the page works under whatever host the browser used.
    const uploadOrigin = (srv.services.get('upload') as { origin(): string } | undefined)?.origin();
    const config = {
      domain: srv.domain,
      websocketPath: this.front.ws ? WEBSOCKET_PATH : null,
      boshPath: this.front.bosh ? BOSH_PATH : null,
      websocketUrl: e.websocket ?? null,
      boshUrl: e.bosh ?? null,
      assetsPath: '/converse/',
      title: srv.config.web.client.title,
      uploadHost: uploadOrigin === undefined ? null : new URL(uploadOrigin).hostname,
    };
    const html = this.indexTemplate
      .replaceAll('{{TITLE}}', escapeHtml(srv.config.web.client.title))
      .replaceAll('{{CONVERSE_VERSION}}', escapeHtml(this.converseVersion))
      .replace('{{CONFIG}}', jsonForHtml(config));
    res.writeHead(200, {
      'Content-Type': 'text/html; charset=utf-8',
      'Content-Length': Buffer.byteLength(html),
      'Cache-Control': 'no-cache',
      'Referrer-Policy': 'no-referrer',
      // The chat page must not be framed by other sites (clickjacking), and it reaches
      // nothing but this server (no CDN emojis, sponsor logos or previews of links).
      'Content-Security-Policy': pageCsp(this.endpoints(info), uploadOrigin),
      'X-Frame-Options': 'SAMEORIGIN',
    });
    res.end(req.method === 'HEAD' ? undefined : html);
  }

  /** A file under `root`; never anything outside it (no '..', no symlink games via the path). */
  private file(root: string, rel: string, req: http.IncomingMessage, res: http.ServerResponse, maxAge: number): void {
    let decoded: string;
    try {
      decoded = decodeURIComponent(rel);
    } catch {
      return text(res, 400, 'Bad request');
    }
    if (decoded.includes('\0')) return text(res, 400, 'Bad request');
    const full = path.resolve(root, decoded);
    if (!full.startsWith(root + path.sep)) return text(res, 404, 'Not found');
    let st: Stats;
    try {
      st = statSync(full);
    } catch {
      return text(res, 404, 'Not found');
    }
    if (!st.isFile()) return text(res, 404, 'Not found');
    const type = TYPES[path.extname(full).toLowerCase()] ?? 'application/octet-stream';
    const etag = `"${st.size.toString(36)}-${Math.floor(st.mtimeMs).toString(36)}"`;
    const headers: Record<string, string> = {
      'Content-Type': type,
      ETag: etag,
      'Cache-Control': `public, max-age=${maxAge}`,
      Vary: 'Accept-Encoding',
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers);
      return void res.end();
    }
    const acceptsGzip = /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
    if (acceptsGzip && COMPRESSIBLE.test(type) && st.size >= MIN_GZIP) {
      this.gzipped(full, st).then(
        (gz) => {
          res.writeHead(200, { ...headers, 'Content-Encoding': 'gzip', 'Content-Length': String(gz.data.length) });
          res.end(req.method === 'HEAD' ? undefined : gz.data);
        },
        (err: unknown) => {
          this.front.server.log.error({ err, file: full }, 'compressing a static file failed');
          if (!res.headersSent) text(res, 500, 'Internal server error');
        },
      );
      return;
    }
    res.writeHead(200, { ...headers, 'Content-Length': String(st.size) });
    if (req.method === 'HEAD') return void res.end();
    const stream = createReadStream(full);
    stream.on('error', () => res.destroy());
    stream.pipe(res);
  }

  /** Compressed once per file version and kept: the set of files is small and fixed (converse's dist). */
  private gzipped(full: string, st: Stats): Promise<Compressed> {
    const cached = this.gzCache.get(full);
    if (cached !== undefined) {
      if (cached instanceof Promise) return cached;
      if (cached.mtimeMs === st.mtimeMs) return Promise.resolve(cached);
    }
    const p = new Promise<Compressed>((resolve, reject) => {
      let data: Buffer;
      try {
        data = readFileSync(full);
      } catch (err) {
        return reject(err);
      }
      gzip(data, { level: 6 }, (err, out) => {
        if (err) {
          this.gzCache.delete(full);
          return reject(err);
        }
        const c = { mtimeMs: st.mtimeMs, data: out };
        this.gzCache.set(full, c);
        resolve(c);
      });
    });
    this.gzCache.set(full, p);
    return p;
  }
}

/**
 * The chat page's Content-Security-Policy: everything from this server only. The
 * endpoints (WebSocket, BOSH) may be on another origin when web.publicUrl says so.
 * converse.js needs inline styles (lit) and WebAssembly (OMEMO's curve25519).
 */
export function pageCsp(endpoints: { websocket?: string; bosh?: string }, uploadOrigin?: string): string {
  const origins = new Set<string>();
  // HTTP upload (XEP-0363): converse.js PUTs the file to this server's upload service and shows it.
  const up = uploadOrigin === undefined ? '' : ` ${uploadOrigin}`;
  for (const u of [endpoints.websocket, endpoints.bosh]) {
    if (u !== undefined) origins.add(new URL(u).origin);
  }
  return [
    "default-src 'self'",
    "script-src 'self' 'wasm-unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    `img-src 'self' data: blob:${up}`,
    `media-src 'self' blob:${up}`,
    "font-src 'self' data:",
    `connect-src 'self' ${[...origins].join(' ')}${up}`.trimEnd(),
    "worker-src 'self' blob:",
    "frame-ancestors 'self'",
    "base-uri 'self'",
    "form-action 'self'",
  ].join('; ');
}
