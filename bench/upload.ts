/**
 * HTTP File Upload throughput (XEP-0363), one driver for every server:
 * log in with xmpp.js, find the upload service in disco, then for each file
 * size request a slot, PUT the bytes and GET them back, `--repeat` times,
 * one transfer at a time. Reports MB/s (10^6 bytes per second) per size for
 * PUT and GET, medians of the repeats, and the slot request latency.
 * A benchmark, not a test (bench/upload-compare.sh runs it against Verona,
 * Prosody and ejabberd; docs/benchmarks.md has the figures).
 *
 *   node dist/bench/upload.js --label verona --service xmpp://127.0.40.63:5222 --domain bench.localhost \
 *     --user up1 --password pass1 --sizes 1,10 --repeat 5
 */
import http from 'node:http';
import https from 'node:https';
import { randomBytes } from 'node:crypto';
import { client, xml } from '@xmpp/client';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // servers on loopback with self-signed certificates

const NS = 'urn:xmpp:http:upload:0';

function arg(name: string, dflt?: string): string {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? process.argv[i + 1] : dflt;
  if (v === undefined) throw new Error(`--${name} is required`);
  return v;
}

function transfer(method: 'PUT' | 'GET', url: string, headers: Record<string, string>, body?: Buffer): Promise<{ status: number; bytes: number; ms: number }> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve, reject) => {
    const req = mod.request(u, { method, headers, rejectUnauthorized: false, agent: false }, (res) => {
      let bytes = 0;
      res.on('data', (c: Buffer) => (bytes += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, bytes, ms: Number(process.hrtime.bigint() - t0) / 1e6 }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function main(): Promise<void> {
  const label = arg('label');
  const domain = arg('domain');
  const sizes = arg('sizes', '1,10').split(',').map(Number);
  const repeat = Number(arg('repeat', '5'));
  const c = client({ service: arg('service'), domain, username: arg('user'), password: arg('password'), resource: 'bench' });
  c.on('error', () => undefined);
  await c.start();
  try {
    const items = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#items' }), domain);
    let service: string | undefined;
    for (const it of items.getChildren('item')) {
      const jid = String(it.attrs.jid);
      const info = await c.iqCaller.get(xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' }), jid).catch(() => undefined);
      if (info?.getChildren('feature').some((f) => f.attrs.var === NS)) service = jid;
    }
    if (!service) throw new Error('no upload service in disco#items');
    for (const mb of sizes) {
      const size = Math.round(mb * 1e6);
      const body = randomBytes(size);
      const put: number[] = [];
      const get: number[] = [];
      const slotMs: number[] = [];
      for (let i = 0; i < repeat; i++) {
        const t0 = process.hrtime.bigint();
        const res = await c.iqCaller.request(xml('iq', { type: 'get', to: service }, xml('request', { xmlns: NS, filename: `bench-${i}.bin`, size: String(size), 'content-type': 'application/octet-stream' })));
        slotMs.push(Number(process.hrtime.bigint() - t0) / 1e6);
        const slot = res.getChild('slot', NS);
        const putUrl = String(slot?.getChild('put')?.attrs.url);
        const getUrl = String(slot?.getChild('get')?.attrs.url);
        const headers: Record<string, string> = { 'Content-Length': String(size), 'Content-Type': 'application/octet-stream' };
        for (const h of slot?.getChild('put')?.getChildren('header') ?? []) headers[String(h.attrs.name)] = h.text();
        const p = await transfer('PUT', putUrl, headers, body);
        if (p.status < 200 || p.status > 299) throw new Error(`PUT ${p.status}`);
        const g = await transfer('GET', getUrl, {});
        if (g.status !== 200 || g.bytes !== size) throw new Error(`GET ${g.status}, ${g.bytes} bytes`);
        put.push(size / 1e6 / (p.ms / 1000));
        get.push(size / 1e6 / (g.ms / 1000));
      }
      const r = (xs: number[]): number => Math.round(median(xs) * 10) / 10;
      console.log(`RESULT ${JSON.stringify({ label, sizeMB: mb, repeat, putMBps: r(put), getMBps: r(get), slotMs: r(slotMs), putAll: put.map((v) => Math.round(v)), getAll: get.map((v) => Math.round(v)) })}`);
    }
  } finally {
    await c.stop();
  }
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
