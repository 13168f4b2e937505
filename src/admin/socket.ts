/**
 * The local admin socket: a unix domain socket (by default `admin.sock` in
 * the data directory) through which `verona` commands reach the running
 * server. Never a TCP port: who may administer is decided by the file's
 * permissions (0600, created under a umask of 0177 so there is no moment in
 * which it is open to others) and the data directory's.
 *
 * The protocol is in protocol.ts: one JSON object per line each way.
 */
import net from 'node:net';
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import type { Logger } from '../core/logger.js';
import type { AdminActions } from './actions.js';
import { MAX_REQUEST_BYTES, answer, type AdminResponse } from './protocol.js';

/** Is something answering on this socket path? */
function inUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = net.connect(path);
    c.once('connect', () => {
      c.destroy();
      resolve(true);
    });
    c.once('error', () => resolve(false));
  });
}

export interface AdminSocketHandle {
  path: string;
  close(): Promise<void>;
}

/** Serve `actions` on a unix socket at `path`. Refuses when another server answers there. */
export async function startAdminSocket(path: string, actions: AdminActions, log: Logger): Promise<AdminSocketHandle> {
  if (existsSync(path)) {
    if (await inUse(path)) throw new Error(`another server is running with this data directory (its admin socket ${path} answers)`);
    // Left by a server that was killed: nobody listens any more.
    unlinkSync(path);
  }
  const sockets = new Set<net.Socket>();
  const server = net.createServer((sock) => {
    sockets.add(sock);
    sock.on('close', () => sockets.delete(sock));
    sock.on('error', () => undefined);
    let buf = '';
    let chain = Promise.resolve();
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_REQUEST_BYTES) {
        const r: AdminResponse = { ok: false, code: 'bad-request', error: 'request too long' };
        sock.end(`${JSON.stringify(r)}\n`);
        buf = '';
        return;
      }
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i).trim();
        buf = buf.slice(i + 1);
        if (line === '') continue;
        // Requests on one connection are answered in order.
        chain = chain.then(async () => {
          const r = await answer(actions, line);
          if (!sock.destroyed) sock.write(`${JSON.stringify(r)}\n`);
        });
      }
    });
  });
  const oldMask = process.umask(0o177);
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => {
        server.removeListener('error', reject);
        resolve();
      });
    });
  } finally {
    process.umask(oldMask);
  }
  // Belt and braces: the mode must not depend on the umask having applied.
  chmodSync(path, 0o600);
  server.on('error', (err) => log.error({ err }, 'admin socket error'));
  log.info({ path }, 'admin socket listening');
  return {
    path,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Why the CLI could not reach a server: not running (no socket, refused) vs other failures. */
export class AdminUnavailable extends Error {}

/**
 * Send one request to a running server and wait for its answer. Rejects with
 * AdminUnavailable when no server listens at `path`.
 */
export function adminRequest(path: string, request: Record<string, unknown>, timeoutMs = 60_000): Promise<AdminResponse> {
  return new Promise((resolve, reject) => {
    const c = net.connect(path);
    let buf = '';
    let done = false;
    const finish = (fn: () => void): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      c.destroy();
      fn();
    };
    const timer = setTimeout(() => finish(() => reject(new Error(`the server did not answer within ${timeoutMs / 1000} s`))), timeoutMs);
    c.setEncoding('utf8');
    c.once('connect', () => c.write(`${JSON.stringify(request)}\n`));
    c.on('data', (chunk: string) => {
      buf += chunk;
      const i = buf.indexOf('\n');
      if (i < 0) return;
      const line = buf.slice(0, i);
      finish(() => {
        try {
          resolve(JSON.parse(line) as AdminResponse);
        } catch {
          reject(new Error('the server sent an unreadable answer'));
        }
      });
    });
    c.once('error', (err: NodeJS.ErrnoException) => {
      const code = err.code ?? '';
      finish(() => reject(code === 'ENOENT' || code === 'ECONNREFUSED' ? new AdminUnavailable(`no server answers at ${path}`) : err));
    });
    c.once('close', () => finish(() => reject(new Error('the server closed the admin connection without answering'))));
  });
}
