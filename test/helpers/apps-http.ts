/**
 * HTTPS requests against the test server's self-signed certificate, and the
 * upload slot as the server hands it out (for the upload tests and bench).
 */
import https from 'node:https';
import http from 'node:http';

export interface HttpResult {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

/** One request; `url` may be http or https (certificate not verified: the test server's is self-signed). */
export function request(method: string, url: string, headers: Record<string, string> = {}, body?: Buffer): Promise<HttpResult> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method, headers, rejectUnauthorized: false, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

export interface Slot {
  put: string;
  get: string;
  headers: Record<string, string>;
}

interface SlotElement {
  getChild(name: string, ns?: string): SlotElement | undefined;
  getChildren(name: string): SlotElement[];
  attrs: Record<string, string | undefined>;
  text(): string;
}

/** The <slot/> of an IQ result (ltx element from @xmpp/client or the raw client). */
export function parseSlot(slot: SlotElement | undefined): Slot {
  const put = slot?.getChild('put');
  const get = slot?.getChild('get');
  if (!put?.attrs.url || !get?.attrs.url) throw new Error('no slot in the answer');
  const headers: Record<string, string> = {};
  for (const h of put.getChildren('header')) headers[h.attrs.name ?? ''] = h.text();
  return { put: put.attrs.url, get: get.attrs.url, headers };
}
