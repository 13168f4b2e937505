/**
 * CLI commands that act on the running server through its admin socket
 * (src/admin/socket.ts): sessions, kick, disable, enable, announce; and the
 * "is a server running?" question deluser and passwd ask so that they can end
 * the account's live sessions.
 */
import { resolve } from 'node:path';
import type { Config } from '../config/types.js';
import { AdminUnavailable, adminRequest } from '../admin/socket.js';
import type { SessionInfo } from '../admin/actions.js';
import { DISABLED_KEY, DISABLED_STORE } from '../admin/actions.js';
import { openStorage } from '../storage/index.js';
import { CliError, runtimeError, usageError } from './errors.js';
import { accountName, hostsOf } from './accounts.js';

export function socketPath(config: Config): string | undefined {
  return config.admin.socket === '' ? undefined : resolve(config.dataDir, config.admin.socket);
}

/**
 * Ask the running server. Resolves with the result, or with `undefined` when
 * no server runs (no socket, nobody listening); an action the server refused
 * becomes a CliError with its message.
 */
export async function viaServer(config: Config, request: Record<string, unknown>): Promise<{ result: unknown } | undefined> {
  const path = socketPath(config);
  if (path === undefined) return undefined;
  let r;
  try {
    r = await adminRequest(path, request);
  } catch (err) {
    if (err instanceof AdminUnavailable) return undefined;
    throw err;
  }
  if (r.ok) return { result: r.result };
  throw r.code === 'bad-request' ? usageError(r.error) : runtimeError(r.error);
}

async function needServer(config: Config, request: Record<string, unknown>): Promise<unknown> {
  const r = await viaServer(config, request);
  if (r === undefined) {
    const path = socketPath(config);
    throw new CliError(path === undefined ? 'admin.socket is off in the configuration: no way to reach the server' : `the server is not running (nothing answers at ${path})`, 1);
  }
  return r.result;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/** `verona sessions [JID]`: one line per session, then a count. */
export async function listSessions(config: Config, user: string | undefined): Promise<string[]> {
  const list = (await needServer(config, user === undefined ? { action: 'sessions' } : { action: 'sessions', user })) as SessionInfo[];
  const lines = list.map((s) => `${s.jid}\t${s.address}\t${s.transport}\t${new Date(s.since).toISOString()}\t${s.available ? `available (priority ${s.priority})` : 'unavailable'}`);
  lines.push(plural(list.length, 'session'));
  return lines;
}

/** `verona kick JID`: a full JID ends that session, a bare JID all of the account's. */
export async function kick(config: Config, jid: string): Promise<string> {
  const ended = (await needServer(config, { action: 'kick', jid })) as string[];
  return ended.length === 0 ? `${jid} had no sessions` : `ended ${plural(ended.length, 'session')}: ${ended.join(', ')}`;
}

export async function announce(config: Config, body: string): Promise<string> {
  const n = (await needServer(config, { action: 'announce', body })) as number;
  return `announced to ${plural(n, 'session')}`;
}

/** `verona disable JID` / `verona enable JID`: through the server when it runs (it ends the sessions), else in the database. */
export async function setDisabled(config: Config, jidArg: string, disable: boolean): Promise<string> {
  const username = accountName(jidArg, config);
  const jid = hostsOf(config).bareOf(username);
  const r = await viaServer(config, { action: disable ? 'disable' : 'enable', user: username });
  if (r !== undefined) {
    const ended = disable ? (r.result as string[]).length : 0;
    return disable ? `disabled ${jid} (ended ${plural(ended, 'session')})` : `enabled ${jid}`;
  }
  const storage = await openStorage(config);
  try {
    if (!(await storage.accounts.exists(username))) throw runtimeError(`no account ${jid}`);
    await storage.kv.set(username, DISABLED_STORE, DISABLED_KEY, disable ? 'Disabled by an administrator' : undefined);
    return disable ? `disabled ${jid}` : `enabled ${jid}`;
  } finally {
    await storage.close();
  }
}
