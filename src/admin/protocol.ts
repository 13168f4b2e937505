/**
 * The admin socket's protocol: one JSON object per line each way.
 *
 *   -> {"action":"kick","jid":"romeo@example.org/phone"}
 *   <- {"ok":true,"result":["romeo@example.org/phone"]}
 *   <- {"ok":false,"code":"item-not-found","error":"no session romeo@example.org/phone"}
 *
 * Parsing a request is a pure function (table-tested); running it is a call
 * on AdminActions. SCRAM credentials travel base64-encoded: `verona passwd`
 * derives them itself so that the password never crosses the socket.
 */
import type { AccountRecord, ScramCredential } from '../storage/types.js';
import { AdminError, type AdminActions } from './actions.js';

export type AdminRequest =
  | { action: 'ping' }
  | { action: 'sessions'; user?: string }
  | { action: 'online-users' }
  | { action: 'kick'; jid: string }
  | { action: 'adduser'; user: string; password: string }
  | { action: 'passwd'; user: string; scram: AccountRecord['scram'] }
  | { action: 'deluser'; user: string }
  | { action: 'disable'; user: string; reason?: string }
  | { action: 'enable'; user: string }
  | { action: 'announce'; body: string; subject?: string };

export type AdminResponse = { ok: true; result: unknown } | { ok: false; code: string; error: string };

/** Longest request line accepted (an announcement is the biggest thing sent). */
export const MAX_REQUEST_BYTES = 1024 * 1024;

function str(o: Record<string, unknown>, key: string, optional = false): string | undefined {
  const v = o[key];
  if (v === undefined && optional) return undefined;
  if (typeof v !== 'string') throw new AdminError('bad-request', `"${key}" must be a string`);
  return v;
}

function credential(v: unknown, name: string): ScramCredential {
  const o = (typeof v === 'object' && v !== null ? v : {}) as Record<string, unknown>;
  const b64 = (k: string): Buffer => {
    const s = o[k];
    if (typeof s !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(s)) throw new AdminError('bad-request', `scram.${name}.${k} must be base64`);
    return Buffer.from(s, 'base64');
  };
  const it = o.iterations;
  if (typeof it !== 'number' || !Number.isInteger(it) || it < 4096) throw new AdminError('bad-request', `scram.${name}.iterations must be an integer >= 4096`);
  return { salt: b64('salt'), iterations: it, storedKey: b64('storedKey'), serverKey: b64('serverKey') };
}

/** Credentials as JSON (the CLI side of `passwd`). */
export function encodeScram(scram: AccountRecord['scram']): Record<string, unknown> {
  const one = (c: ScramCredential) => ({
    salt: c.salt.toString('base64'),
    iterations: c.iterations,
    storedKey: c.storedKey.toString('base64'),
    serverKey: c.serverKey.toString('base64'),
  });
  return { 'SHA-1': one(scram['SHA-1']), 'SHA-256': one(scram['SHA-256']) };
}

/** Parse one request line; throws AdminError('bad-request') with the reason. */
export function parseRequest(line: string): AdminRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw new AdminError('bad-request', 'not JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new AdminError('bad-request', 'expected a JSON object');
  const o = v as Record<string, unknown>;
  switch (o.action) {
    case 'ping':
    case 'online-users':
      return { action: o.action };
    case 'sessions':
      return { action: 'sessions', user: str(o, 'user', true) };
    case 'kick':
      return { action: 'kick', jid: str(o, 'jid') as string };
    case 'adduser':
      return { action: 'adduser', user: str(o, 'user') as string, password: str(o, 'password') as string };
    case 'passwd': {
      const s = (typeof o.scram === 'object' && o.scram !== null ? o.scram : {}) as Record<string, unknown>;
      return { action: 'passwd', user: str(o, 'user') as string, scram: { 'SHA-1': credential(s['SHA-1'], 'SHA-1'), 'SHA-256': credential(s['SHA-256'], 'SHA-256') } };
    }
    case 'deluser':
    case 'enable':
      return { action: o.action, user: str(o, 'user') as string };
    case 'disable':
      return { action: 'disable', user: str(o, 'user') as string, reason: str(o, 'reason', true) };
    case 'announce':
      return { action: 'announce', body: str(o, 'body') as string, subject: str(o, 'subject', true) };
    default:
      throw new AdminError('bad-request', `unknown action ${JSON.stringify(o.action)}`);
  }
}

/** Carry out a parsed request. */
export async function runRequest(actions: AdminActions, r: AdminRequest): Promise<unknown> {
  switch (r.action) {
    case 'ping':
      return 'pong';
    case 'sessions':
      return actions.sessions(r.user);
    case 'online-users':
      return actions.onlineUsers();
    case 'kick':
      return actions.kick(r.jid);
    case 'adduser':
      return actions.addUser(r.user, r.password);
    case 'passwd':
      return actions.changePassword(r.user, { scram: r.scram });
    case 'deluser':
      return actions.deleteUser(r.user);
    case 'disable':
      return actions.disable(r.user, r.reason);
    case 'enable':
      return actions.enable(r.user);
    case 'announce':
      return actions.announce(r.body, r.subject);
  }
}

/** One line in, one response out; never throws. */
export async function answer(actions: AdminActions, line: string): Promise<AdminResponse> {
  try {
    const result = await runRequest(actions, parseRequest(line));
    return { ok: true, result: result ?? null };
  } catch (err) {
    if (err instanceof AdminError) return { ok: false, code: err.code, error: err.message };
    return { ok: false, code: 'internal-server-error', error: (err as Error).message ?? String(err) };
  }
}
