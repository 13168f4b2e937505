/**
 * The HTTP side of XEP-0363: PUT into a slot, GET/HEAD a stored file,
 * OPTIONS for CORS preflight. URLs: /upload/<slot id>/<file name>.
 *
 * A PUT must carry the slot's bearer token (handed out only to the account
 * that asked for the slot, in the slot's <header name='Authorization'/>),
 * exactly the announced number of bytes, and the announced type when one was
 * given; a slot takes one successful PUT (single use), a second gets 409.
 * A GET needs only the URL: its 128-bit random slot id is the capability, as
 * XEP-0363 §11 expects. Files are served with the headers of policy.ts.
 */
import type http from 'node:http';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { timingSafeEqual } from 'node:crypto';
import { pipeline } from 'node:stream/promises';
import type { HttpRoute } from '../../net/web/routes.js';
import type { Logger } from '../../core/logger.js';
import type { Counter } from '../../metrics/metrics.js';
import { SERVING_HEADERS, contentDisposition, parseRange, servingDecision } from './policy.js';
import type { Entry, UploadStore } from './store.js';

export const UPLOAD_PATH = '/upload/';

function send(res: http.ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(body), ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

function mimeEssence(t: string | undefined): string {
  return (t ?? '').split(';')[0]?.trim().toLowerCase() ?? '';
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (header === undefined || token === '') return false;
  const m = /^Bearer\s+(\S+)$/i.exec(header.trim());
  if (!m) return false;
  const a = Buffer.from(m[1] as string);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface UploadHttpDeps {
  store: UploadStore;
  log: Logger;
  /** Milliseconds a stored file lives (0 = forever). */
  expireMs: number;
  putTimeout: number;
  events: Counter;
  /** A stored file went past its lifetime: remove it. */
  expired(e: Entry): void;
}

export function uploadRoute(d: UploadHttpDeps): HttpRoute {
  const cors = (req: http.IncomingMessage): Record<string, string> => {
    const origin = req.headers.origin;
    // No cookies are involved (PUT authority is the bearer token, GET the URL), so any origin may read.
    return origin === undefined ? {} : { 'Access-Control-Allow-Origin': origin, Vary: 'Origin' };
  };

  const find = (id: string, name: string): Entry | undefined => {
    const e = d.store.entries.get(id);
    return e !== undefined && e.name === name ? e : undefined;
  };

  const put = (req: http.IncomingMessage, res: http.ServerResponse, e: Entry | undefined): void => {
    const h = cors(req);
    const refuse = (status: number, text: string, reason: string): void => {
      d.events.inc({ event: 'put-refused', reason });
      req.resume();
      send(res, status, text, { ...h, Connection: 'close' });
    };
    if (!e) return refuse(404, 'No such upload slot', 'unknown-slot');
    if (e.state !== 'pending') return refuse(409, 'This slot was already used', 'slot-used');
    if (e.slotExpires < Date.now()) return refuse(403, 'This upload slot has expired', 'slot-expired');
    if (!tokenMatches(req.headers.authorization, e.putToken)) return refuse(403, 'This slot belongs to someone else', 'bad-token');
    const declared = req.headers['content-length'];
    if (declared === undefined) return refuse(411, 'Content-Length is required', 'no-length');
    if (Number(declared) !== e.size) {
      return refuse(Number(declared) > e.size ? 413 : 400, `The slot is for exactly ${e.size} bytes`, 'size-mismatch');
    }
    if (e.type !== undefined && req.headers['content-type'] !== undefined && mimeEssence(req.headers['content-type']) !== mimeEssence(e.type)) {
      return refuse(415, `The slot is for ${e.type}`, 'type-mismatch');
    }
    e.state = 'uploading';
    const dir = d.store.dir(e);
    const part = path.join(dir, 'data.part');
    let received = 0;
    const run = async (): Promise<void> => {
      await mkdir(dir, { recursive: true });
      const counter = async function* (src: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
        for await (const chunk of src) {
          received += chunk.length;
          if (received > e.size) throw new Error('more bytes than announced');
          yield chunk;
        }
      };
      await pipeline(req, counter, createWriteStream(part));
      if (received !== e.size) throw new Error('fewer bytes than announced');
      await d.store.commit(e);
    };
    run().then(
      () => {
        d.events.inc({ event: 'stored' });
        send(res, 201, 'Stored', h);
      },
      async (err: unknown) => {
        d.log.info({ err: (err as Error).message, slot: e.id }, 'upload failed');
        await rm(part, { force: true }).catch(() => undefined);
        // The slot stays usable (until it lapses) for a retry of the same file.
        if (e.state === 'uploading') e.state = 'pending';
        d.events.inc({ event: 'put-failed' });
        if (!res.destroyed) send(res, 400, 'Upload incomplete', { ...h, Connection: 'close' });
      },
    );
  };

  const get = (req: http.IncomingMessage, res: http.ServerResponse, e: Entry | undefined): void => {
    if (!e || e.state !== 'stored') return send(res, 404, 'Not found', { 'Access-Control-Allow-Origin': '*' });
    if (d.expireMs > 0 && e.created + d.expireMs <= Date.now()) {
      d.expired(e);
      return send(res, 404, 'Not found', { 'Access-Control-Allow-Origin': '*' });
    }
    const how = servingDecision(e.type);
    const etag = `"${e.id}"`;
    const headers: Record<string, string> = {
      ...SERVING_HEADERS,
      'Content-Type': how.contentType,
      'Content-Disposition': contentDisposition(how.disposition, e.name),
      'Last-Modified': new Date(e.created).toUTCString(),
      ETag: etag,
      'Accept-Ranges': 'bytes',
      // The bytes behind a URL never change; they only go away.
      'Cache-Control': 'public, max-age=86400, immutable',
    };
    if (req.headers['if-none-match'] === etag) {
      res.writeHead(304, headers);
      return void res.end();
    }
    const range = parseRange(req.headers.range, e.size);
    if (range === 'unsatisfiable') return send(res, 416, 'Range not satisfiable', { ...SERVING_HEADERS, 'Content-Range': `bytes */${e.size}` });
    const start = range?.start ?? 0;
    const end = range?.end ?? e.size - 1;
    headers['Content-Length'] = String(end - start + 1);
    if (range) headers['Content-Range'] = `bytes ${start}-${end}/${e.size}`;
    res.writeHead(range ? 206 : 200, headers);
    if (req.method === 'HEAD') return void res.end();
    d.events.inc({ event: 'served' });
    pipeline(createReadStream(path.join(d.store.dir(e), 'data'), { start, end }), res).catch(() => res.destroy());
  };

  return {
    prefix: UPLOAD_PATH,
    requestTimeout: d.putTimeout,
    handle(req, res) {
      const rest = new URL(req.url ?? '/', 'http://localhost').pathname.slice(UPLOAD_PATH.length);
      const slash = rest.indexOf('/');
      let name = '';
      try {
        name = slash < 0 ? '' : decodeURIComponent(rest.slice(slash + 1));
      } catch {
        return send(res, 400, 'Bad file name in URL');
      }
      const e = slash < 0 ? undefined : find(rest.slice(0, slash), name);
      switch (req.method) {
        case 'OPTIONS':
          res.writeHead(204, {
            ...cors(req),
            'Access-Control-Allow-Methods': 'GET, HEAD, PUT, OPTIONS',
            'Access-Control-Allow-Headers': 'Authorization, Content-Type, Expires',
            'Access-Control-Max-Age': '86400',
          });
          return void res.end();
        case 'PUT':
          return put(req, res, e);
        case 'GET':
        case 'HEAD':
          return get(req, res, e);
        default:
          return send(res, 405, 'Method not allowed', { Allow: 'GET, HEAD, PUT, OPTIONS' });
      }
    },
  };
}
