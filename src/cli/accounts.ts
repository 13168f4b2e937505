/**
 * verona adduser | passwd | deluser. They open the same database file as a
 * running server (WAL + busy_timeout make that safe) and derive SCRAM
 * credentials exactly as in-band registration does.
 */
import { JIDError, parseJID, prepareLocal } from '../jid/jid.js';
import { deriveAllScram } from '../sasl/credentials.js';
import { openStorage } from '../storage/index.js';
import { AccountExistsError, type AccountRecord } from '../storage/types.js';
import type { Config } from '../config/types.js';
import { HostedDomains } from '../core/vhosts.js';
import { runtimeError, usageError } from './errors.js';
import { obtainPassword } from './prompt.js';
import { viaServer } from './admin.js';
import { encodeScram } from '../admin/protocol.js';

/** The hosted domains of a configuration (virtual hosts). */
export function hostsOf(config: Config): HostedDomains {
  return new HostedDomains(config.domain, Object.keys(config.domains));
}

/**
 * `user` (the primary domain) or `user@domain` (any hosted domain) -> the account key
 * (src/core/vhosts.ts); an unknown domain is a usage error naming the hosted ones.
 */
export function accountName(input: string, config: Config): string {
  if (input.includes('/')) throw usageError(`give a bare JID without a resource, not "${input}"`);
  try {
    if (!input.includes('@')) return prepareLocal(input);
    const jid = parseJID(input);
    if (jid.local === '') throw usageError(`"${input}" has no user part`);
    const hosts = hostsOf(config);
    if (!hosts.has(jid.domain)) {
      throw usageError(`${jid.bareString()} is not on this server's domain (${hosts.list().join(', ')})`);
    }
    return hosts.keyOf(jid);
  } catch (err) {
    if (err instanceof JIDError) throw usageError(`invalid JID "${input}": ${err.message}`);
    throw err;
  }
}

async function derive(password: string, config: Config): Promise<AccountRecord['scram']> {
  try {
    return await deriveAllScram(password, config.auth.scramIterations);
  } catch (err) {
    // SASLprep refuses some passwords (control characters, unassigned code points).
    throw usageError(`password refused: ${(err as Error).message}`);
  }
}

export async function addUser(config: Config, jidArg: string, password: string | undefined): Promise<string> {
  const username = accountName(jidArg, config);
  const jid = hostsOf(config).bareOf(username);
  const storage = await openStorage(config);
  try {
    // Checked before asking for the password so that nobody types one for nothing.
    if (await storage.accounts.exists(username)) throw runtimeError(`account ${jid} already exists`);
    const pw = await obtainPassword(password, jid);
    const scram = await derive(pw, config);
    try {
      await storage.accounts.create({ username, createdAt: Date.now(), scram });
    } catch (err) {
      if (err instanceof AccountExistsError) throw runtimeError(`account ${jid} already exists`);
      throw err;
    }
    return `created account ${jid}`;
  } finally {
    await storage.close();
  }
}

export async function changePassword(config: Config, jidArg: string, password: string | undefined): Promise<string> {
  const username = accountName(jidArg, config);
  const jid = hostsOf(config).bareOf(username);
  const storage = await openStorage(config);
  try {
    if (!(await storage.accounts.exists(username))) throw runtimeError(`no account ${jid}`);
    const pw = await obtainPassword(password, jid);
    const scram = await derive(pw, config);
    // A running server stores the new credentials and ends the sessions logged in with the old password.
    const r = await viaServer(config, { action: 'passwd', user: username, scram: encodeScram(scram) });
    if (r !== undefined) return `changed the password of ${jid} (ended ${sessions((r.result as string[]).length)})`;
    if (!(await storage.accounts.setCredentials(username, scram))) throw runtimeError(`no account ${jid}`);
    return `changed the password of ${jid}`;
  } finally {
    await storage.close();
  }
}

export async function deleteUser(config: Config, jidArg: string): Promise<string> {
  const username = accountName(jidArg, config);
  const jid = hostsOf(config).bareOf(username);
  // A running server tells the contacts, ends the sessions, then deletes every trace.
  const r = await viaServer(config, { action: 'deluser', user: username });
  if (r !== undefined) return `deleted account ${jid} and all its data (ended ${sessions((r.result as string[]).length)})`;
  const storage = await openStorage(config);
  try {
    if (!(await storage.accounts.delete(username))) throw runtimeError(`no account ${jid}`);
    return `deleted account ${jid} and all its data`;
  } finally {
    await storage.close();
  }
}

function sessions(n: number): string {
  return `${n} session${n === 1 ? '' : 's'}`;
}
