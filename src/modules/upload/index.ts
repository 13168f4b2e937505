/**
 * XEP-0363 HTTP File Upload (version 1.1.0), served by Verona itself: the
 * service JID (upload.<domain> by default) hands out slots, the web
 * listener's /upload/ route (http.ts) takes the PUT and serves the GET, and
 * the files live under <dataDir>/upload/ (store.ts).
 *
 *   slot request  <request filename size content-type/> from a local account
 *                 -> <slot><put url><header name='Authorization'/></put><get url/></slot>
 *   refusals      bad-request (no name or size), not-acceptable with
 *                 <file-too-large><max-file-size/></file-too-large>,
 *                 resource-constraint (quota, too many unused slots),
 *                 not-allowed (not an account of this server)
 *   disco         identity store/file, the feature, and a XEP-0128 form with
 *                 max-file-size (XEP-0363 §3) plus x-quota and x-expire-after
 *   cleanup       unused slots lapse after slotTimeout; files older than
 *                 expireAfter and files of deleted accounts are removed by a
 *                 sweep every cleanupInterval (and at start); an in-band
 *                 account removal removes them at once (service 'upload').
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { x } from '../../xml/element.js';
import { StanzaError } from '../../core/errors.js';
import type { VeronaModule } from '../../core/module.js';
import { HTTP_ROUTES_SERVICE, type HttpRoute } from '../../net/web/routes.js';
import { hostService, infoForm } from './hosted.js';
import { parseUploadOptions } from './options.js';
import { safeFilename, slotVerdict } from './policy.js';
import { UploadStore, type Entry } from './store.js';
import { UPLOAD_PATH, uploadRoute } from './http.js';

export const NS_UPLOAD = 'urn:xmpp:http:upload:0';

/** What other modules (account removal) may ask of the upload service. */
export interface UploadService {
  removeUser(username: string): Promise<number>;
  /** Where slots point (scheme, host, port): the chat page lets converse.js PUT to and show images from it. */
  origin(): string;
}

interface Ports {
  readonly ports: Record<string, number>;
}

export const uploadModule: VeronaModule = {
  name: 'upload',
  async load(api) {
    const opts = parseUploadOptions(api.options);
    const web = api.config.web;
    if (!opts.enabled) return;
    if (opts.baseUrl === '' && web.publicUrl === '' && web.tlsPort < 0) {
      api.log.warn('HTTP file upload is off: it needs web.tlsPort, web.publicUrl or moduleOptions.upload.baseUrl');
      return;
    }
    const domain = opts.domain === '' ? `upload.${api.domain}` : opts.domain;
    const store = new UploadStore(path.join(api.config.dataDir, 'upload'));
    const loaded = await store.load();
    const events = api.metrics.counter('verona_upload_events_total', 'HTTP file upload events (slots, stores, refusals), by event and reason');
    const expireMs = opts.expireAfter * 1000;

    const baseUrl = (): string => {
      if (opts.baseUrl !== '') return opts.baseUrl;
      if (web.publicUrl !== '') return web.publicUrl.replace(/\/+$/, '');
      const port = api.service<Ports>('server')?.ports.https ?? web.tlsPort;
      return `https://${api.domain}${port === 443 ? '' : `:${port}`}`;
    };

    const removeLater = (e: Entry): void => {
      void store.remove(e).catch((err: unknown) => api.log.warn({ err, slot: e.id }, 'removing an upload failed'));
    };

    const unhost = hostService(api, {
      domain,
      kind: 'upload',
      name: 'HTTP File Upload',
      identities: [{ category: 'store', type: 'file', name: 'HTTP File Upload' }],
      features: [NS_UPLOAD],
      forms: [infoForm(NS_UPLOAD, { 'max-file-size': opts.maxFileSize, 'x-quota': opts.quota, 'x-expire-after': opts.expireAfter })],
      iq: {
        [`get ${NS_UPLOAD}`]: (q) => {
          if (q.payload.name !== 'request') throw new StanzaError('bad-request', 'Expected <request/>');
          if (!api.router.hosts.isAccount(q.from)) throw new StanzaError('not-allowed', 'Only accounts of this server may upload');
          const rawName = q.payload.attrs.filename;
          const rawSize = q.payload.attrs.size;
          if (rawName === undefined || rawName === '' || rawSize === undefined || !/^\d{1,15}$/.test(rawSize)) {
            throw new StanzaError('bad-request', 'A slot request needs a filename and a size in bytes');
          }
          const size = Number(rawSize);
          const user = api.router.hosts.keyOf(q.from);
          const verdict = slotVerdict(size, store.usageOf(user), opts);
          if (!verdict.ok) {
            events.inc({ event: 'slot-refused', reason: verdict.reason });
            switch (verdict.reason) {
              case 'file-too-large':
                throw new StanzaError('not-acceptable', `The largest file allowed is ${opts.maxFileSize} bytes`, 'modify',
                  x('file-too-large', NS_UPLOAD, {}, [x('max-file-size', NS_UPLOAD, {}, [String(opts.maxFileSize)])]));
              case 'quota-exceeded':
                throw new StanzaError('resource-constraint', `Upload quota of ${opts.quota} bytes exceeded`, 'wait');
              case 'too-many-pending-slots':
                throw new StanzaError('resource-constraint', 'Too many unused upload slots; use or let them lapse first', 'wait');
              default:
                throw new StanzaError('bad-request', 'The size must be a positive number of bytes');
            }
          }
          const ctype = q.payload.attrs['content-type'];
          const e: Entry = {
            id: randomBytes(16).toString('base64url'),
            user,
            name: safeFilename(rawName),
            size,
            type: ctype === undefined || ctype === '' ? undefined : ctype,
            created: Date.now(),
            state: 'pending',
            putToken: randomBytes(24).toString('base64url'),
            slotExpires: Date.now() + opts.slotTimeout * 1000,
          };
          store.addPending(e);
          setTimeout(() => {
            if (e.state === 'pending') store.dropPending(e);
          }, opts.slotTimeout * 1000 + 1000).unref();
          events.inc({ event: 'slot' });
          const url = `${baseUrl()}${UPLOAD_PATH}${e.id}/${encodeURIComponent(e.name)}`;
          return x('slot', NS_UPLOAD, {}, [
            x('put', NS_UPLOAD, { url }, [x('header', NS_UPLOAD, { name: 'Authorization' }, [`Bearer ${e.putToken}`])]),
            x('get', NS_UPLOAD, { url }),
          ]);
        },
      },
    });

    let routes = api.service<HttpRoute[]>(HTTP_ROUTES_SERVICE);
    if (!routes) {
      routes = [];
      api.provide(HTTP_ROUTES_SERVICE, routes);
    }
    routes.push(uploadRoute({ store, log: api.log, expireMs, putTimeout: opts.putTimeout, events, expired: removeLater }));

    /** Expired files and files of accounts that no longer exist (deleted in-band, by the CLI, or while we were down). */
    const sweep = async (): Promise<void> => {
      const now = Date.now();
      for (const e of [...store.entries.values()]) {
        if (e.state === 'stored' && expireMs > 0 && e.created + expireMs <= now) {
          await store.remove(e);
          events.inc({ event: 'expired' });
        }
      }
      for (const user of store.users()) {
        if (!(await api.storage.accounts.exists(user))) {
          const n = await store.removeUser(user);
          api.log.info({ user, files: n }, 'removed the uploads of a deleted account');
        }
      }
    };
    const runSweep = (): void => void sweep().catch((err: unknown) => api.log.warn({ err }, 'upload cleanup failed'));
    runSweep();
    const timer = setInterval(runSweep, opts.cleanupInterval * 1000);
    timer.unref();

    const service: UploadService = { removeUser: (u) => store.removeUser(u), origin: () => new URL(baseUrl()).origin };
    api.provide('upload', service);
    api.onClose(() => {
      clearInterval(timer);
      unhost();
    });
    api.log.debug({ domain, files: loaded }, 'HTTP file upload ready');
  },
};
