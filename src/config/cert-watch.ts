/**
 * Certificate reload on file change (config `certWatch`), beside SIGHUP: a renewal by
 * certbot or acme.sh takes effect without a deploy hook.
 *
 * Watches the DIRECTORIES of tls.cert and tls.key, not the files: certbot replaces the
 * symlinks in live/ and acme.sh may write a new file and rename it over the old one; a
 * watch on the old file's inode would see neither. Events are debounced (a renewal
 * writes the chain and the key one after the other), then the pair is read and checked
 * (parses, key matches certificate) BEFORE anything changes: a half-written or
 * mismatched pair is logged and the running certificate stays; the next write event
 * tries again. An unchanged pair (another file of the directory changed) does nothing.
 * Sessions are never touched: new TLS handshakes use the new context.
 */
import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname } from 'node:path';
import { certificatePaths, readCertificatePair, type CertificateFiles } from './cert.js';
import type { Config } from './types.js';
import type { Logger } from '../core/logger.js';

export interface CertWatchTarget {
  config: Config;
  log: Logger;
  tlsCredentials: { cert: string; key: string } | undefined;
}

/** What to do with the pair read after a change (a pure decision, table-tested). */
export type SwapDecision = { action: 'swap' } | { action: 'keep'; reason: 'unchanged' } | { action: 'keep'; reason: 'invalid'; error: string };

export function decideSwap(running: { cert: string; key: string } | undefined, read: CertificateFiles | Error): SwapDecision {
  if (read instanceof Error) return { action: 'keep', reason: 'invalid', error: read.message };
  if (running !== undefined && running.cert === read.cert && running.key === read.key) return { action: 'keep', reason: 'unchanged' };
  return { action: 'swap' };
}

export interface CertWatcher {
  close(): void;
}

/**
 * Start watching. `apply` installs a checked pair (the same swap SIGHUP does).
 * Returns undefined when the directories cannot be watched (logged; SIGHUP still works).
 */
export function watchCertificates(
  target: CertWatchTarget,
  apply: (pair: CertificateFiles) => void,
  debounceMs: number,
): CertWatcher | undefined {
  const { cert, key } = certificatePaths(target.config);
  const names = new Set([basename(cert), basename(key)]);
  const dirs = [...new Set([dirname(cert), dirname(key)])];
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const check = (): void => {
    timer = undefined;
    if (closed) return;
    let read: CertificateFiles | Error;
    try {
      read = readCertificatePair(target.config);
    } catch (err) {
      read = err instanceof Error ? err : new Error(String(err));
    }
    const d = decideSwap(target.tlsCredentials, read);
    if (d.action === 'swap' && !(read instanceof Error)) {
      try {
        apply(read);
        target.log.info({ cert }, 'certificate files changed: new certificate in use for new connections');
        for (const w of read.warnings) target.log.warn({ cert }, w);
      } catch (err) {
        target.log.error({ cert, err: (err as Error).message }, 'certificate files changed but could not be used; keeping the current certificate');
      }
    } else if (d.action === 'keep' && d.reason === 'invalid') {
      target.log.error({ cert, err: d.error }, 'certificate files changed but are not a valid pair (yet); keeping the current certificate');
    }
  };
  const onEvent = (_event: string, filename: string | Buffer | null): void => {
    // No file name (some platforms): check anyway, the comparison makes it cheap.
    if (filename !== null && !names.has(filename.toString())) return;
    if (timer !== undefined) clearTimeout(timer);
    timer = setTimeout(check, debounceMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  try {
    for (const d of dirs) {
      const w = watch(d, { persistent: false }, onEvent);
      w.on('error', (err) => target.log.warn({ dir: d, err: err.message }, 'certificate directory watch failed; SIGHUP still reloads'));
      watchers.push(w);
    }
  } catch (err) {
    for (const w of watchers) w.close();
    target.log.warn({ dirs, err: (err as Error).message }, 'cannot watch the certificate directories; reload with SIGHUP');
    return undefined;
  }
  return {
    close: () => {
      closed = true;
      if (timer !== undefined) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}
