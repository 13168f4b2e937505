/**
 * Options of the `upload` module (config `moduleOptions.upload`), validated
 * at load. Documented in docs/apps.md and docs/configuration.md.
 */

export interface UploadOptions {
  /** Turn the service off (it is on by default when an HTTPS listener or web.publicUrl exists). */
  enabled: boolean;
  /** The service's JID; '' = upload.<domain>. */
  domain: string;
  /** Base of the slot URLs; '' = web.publicUrl, else https://<domain>:<HTTPS port>. */
  baseUrl: string;
  /** Largest file in bytes (advertised as max-file-size). */
  maxFileSize: number;
  /** Bytes per account, files stored plus slots handed out (0 = no quota). */
  quota: number;
  /** Seconds a stored file is kept (0 = forever). */
  expireAfter: number;
  /** Seconds a PUT slot stays usable. */
  slotTimeout: number;
  /** Unused slots an account may hold at once. */
  maxPendingSlots: number;
  /** Seconds between cleanup sweeps (expired files, files of deleted accounts). */
  cleanupInterval: number;
  /** Seconds a PUT may take to arrive in full (the web listener's request timeout is raised to this). */
  putTimeout: number;
}

export const UPLOAD_DEFAULTS: UploadOptions = {
  enabled: true,
  domain: '',
  baseUrl: '',
  maxFileSize: 100 * 1024 * 1024,
  quota: 1024 * 1024 * 1024,
  expireAfter: 30 * 24 * 3600,
  slotTimeout: 300,
  maxPendingSlots: 20,
  cleanupInterval: 3600,
  putTimeout: 600,
};

export function parseUploadOptions(raw: Record<string, unknown>): UploadOptions {
  const out: UploadOptions = { ...UPLOAD_DEFAULTS };
  for (const [k, v] of Object.entries(raw)) {
    if (!Object.hasOwn(UPLOAD_DEFAULTS, k)) {
      throw new Error(`moduleOptions.upload.${k}: unknown option (known: ${Object.keys(UPLOAD_DEFAULTS).join(', ')})`);
    }
    const d = UPLOAD_DEFAULTS[k as keyof UploadOptions];
    if (typeof d === 'boolean') {
      if (typeof v !== 'boolean') throw new Error(`moduleOptions.upload.${k}: expected true or false, got ${JSON.stringify(v)}`);
      (out as unknown as Record<string, unknown>)[k] = v;
    } else if (typeof d === 'string') {
      if (typeof v !== 'string') throw new Error(`moduleOptions.upload.${k}: expected a string, got ${JSON.stringify(v)}`);
      (out as unknown as Record<string, unknown>)[k] = v;
    } else {
      if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
        throw new Error(`moduleOptions.upload.${k}: expected a number >= 0, got ${JSON.stringify(v)}`);
      }
      (out as unknown as Record<string, unknown>)[k] = v;
    }
  }
  if (out.maxFileSize < 1) throw new Error('moduleOptions.upload.maxFileSize: must be at least 1');
  if (out.slotTimeout < 1) throw new Error('moduleOptions.upload.slotTimeout: must be at least 1');
  if (out.cleanupInterval < 1) throw new Error('moduleOptions.upload.cleanupInterval: must be at least 1');
  if (out.baseUrl !== '') {
    let u: URL;
    try {
      u = new URL(out.baseUrl);
    } catch {
      throw new Error(`moduleOptions.upload.baseUrl: not a URL: ${out.baseUrl}`);
    }
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error('moduleOptions.upload.baseUrl: must be an http(s) URL');
    out.baseUrl = out.baseUrl.replace(/\/+$/, '');
  }
  return out;
}
