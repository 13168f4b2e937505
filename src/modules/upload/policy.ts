/**
 * XEP-0363 HTTP File Upload, version 1.1.0: the decisions, as pure functions
 * with reasons (table-tested in test/unit/upload-policy.test.ts).
 *
 *   slotVerdict     may this account have a slot for a file of this size?
 *   safeFilename    the name used in the URL (no path, no control characters)
 *   servingHeaders  how a stored file is served so that a browser never runs it
 */

export interface Verdict {
  ok: boolean;
  reason: string;
}

export interface SlotLimits {
  maxFileSize: number;
  /** Bytes per account (0 = no quota). */
  quota: number;
  /** Unused PUT slots an account may hold at once. */
  maxPendingSlots: number;
}

export interface SlotUsage {
  /** Bytes stored plus bytes reserved by pending slots. */
  bytes: number;
  pendingSlots: number;
}

/**
 * XEP-0363 §4: a file larger than the maximum gets not-acceptable with
 * <file-too-large/>; beyond the quota (Verona's own limit, like Prosody's
 * mod_http_file_share) resource-constraint. A slot reserves its size at once,
 * so parallel requests cannot overrun the quota together.
 */
export function slotVerdict(size: number, usage: SlotUsage, limits: SlotLimits): Verdict {
  if (!Number.isSafeInteger(size) || size < 0) return { ok: false, reason: 'bad-size' };
  if (size === 0) return { ok: false, reason: 'empty-file' };
  if (size > limits.maxFileSize) return { ok: false, reason: 'file-too-large' };
  if (usage.pendingSlots >= limits.maxPendingSlots) return { ok: false, reason: 'too-many-pending-slots' };
  if (limits.quota > 0 && usage.bytes + size > limits.quota) return { ok: false, reason: 'quota-exceeded' };
  return { ok: true, reason: 'within-limits' };
}

/**
 * The file name as it appears in the URL and in Content-Disposition: the last
 * path component only, control characters and characters that confuse URLs
 * or headers replaced, at most 200 characters. Never empty.
 */
export function safeFilename(name: string): string {
  const last = name.split(/[/\\]/).pop() ?? '';
  // eslint-disable-next-line no-control-regex
  let s = last.replace(/[\u0000-\u001f\u007f"%*:<>?|]/g, '_').trim();
  if (s === '.' || s === '..') s = '';
  if (s.length > 200) {
    const dot = s.lastIndexOf('.');
    const ext = dot > 0 && s.length - dot <= 16 ? s.slice(dot) : '';
    s = s.slice(0, 200 - ext.length) + ext;
  }
  return s === '' ? 'file' : s;
}

/** Media types a browser shows without running anything: served inline (Converse.js shows images). */
const INLINE = /^(image\/(png|jpeg|gif|webp|avif|bmp|heic|heif)|audio\/[a-z0-9.+-]+|video\/[a-z0-9.+-]+|text\/plain)$/;
/** Media types that can carry script or markup: never served as such. */
const ACTIVE = /(html|xml|javascript|ecmascript|svg|css|x-shockwave|pdf|wasm)/;
const TOKEN = /^[a-z0-9!#$&^_.+-]+\/[a-z0-9!#$&^_.+-]+$/;

export interface ServingDecision {
  contentType: string;
  disposition: 'inline' | 'attachment';
  reason: string;
}

/**
 * How a file of the declared type is served. The uploader chooses the type,
 * so it is not trusted: markup, script, SVG, CSS and PDF (which can carry
 * script) are served as application/octet-stream and as an attachment; what
 * a browser only displays (images, audio, video, plain text) inline; anything
 * else as declared but as an attachment. With X-Content-Type-Options: nosniff
 * and a CSP of default-src 'none' plus sandbox, even a mislabelled file runs
 * nothing on our origin.
 */
export function servingDecision(declared: string | undefined): ServingDecision {
  const t = (declared ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
  if (t === '' || !TOKEN.test(t)) return { contentType: 'application/octet-stream', disposition: 'attachment', reason: 'no-or-bad-type' };
  if (ACTIVE.test(t)) return { contentType: 'application/octet-stream', disposition: 'attachment', reason: 'active-content' };
  if (INLINE.test(t)) return { contentType: t === 'text/plain' ? 'text/plain; charset=utf-8' : t, disposition: 'inline', reason: 'display-only' };
  return { contentType: t, disposition: 'attachment', reason: 'other-type' };
}

/** RFC 6266 Content-Disposition with an ASCII fallback and the UTF-8 name (RFC 8187). */
export function contentDisposition(disposition: 'inline' | 'attachment', filename: string): string {
  const ascii = filename.replace(/[^\x20-\x7e]/g, '_').replace(/["\\]/g, '_');
  const utf8 = encodeURIComponent(filename).replace(/['()]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `${disposition}; filename="${ascii}"; filename*=UTF-8''${utf8}`;
}

/** The security headers of every served file (safe serving, item 1 of issue 14). */
export const SERVING_HEADERS: Readonly<Record<string, string>> = {
  'X-Content-Type-Options': 'nosniff',
  // Nothing loads, nothing runs, and the document is in a unique origin if a browser renders it.
  'Content-Security-Policy': "default-src 'none'; sandbox; frame-ancestors 'none'",
  'Referrer-Policy': 'no-referrer',
  // Web clients on other origins show images and fetch (encrypted) files.
  'Cross-Origin-Resource-Policy': 'cross-origin',
  'Access-Control-Allow-Origin': '*',
};

/**
 * A single byte range of RFC 9110 §14 ("bytes=a-b", "bytes=a-", "bytes=-n"),
 * or 'unsatisfiable', or undefined to send the whole file (absent or multi-range).
 */
export function parseRange(header: string | undefined, size: number): { start: number; end: number } | 'unsatisfiable' | undefined {
  if (header === undefined) return undefined;
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  if (m[1] === '') {
    const n = Number(m[2]);
    if (n === 0) return 'unsatisfiable';
    return { start: Math.max(0, size - n), end: size - 1 };
  }
  const start = Number(m[1]);
  const end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
  if (start >= size || end < start) return 'unsatisfiable';
  return { start, end };
}
