/**
 * XEP-0050 Ad-Hoc Commands, serving the XEP-0133 Service Administration set
 * (commands.ts) to the accounts listed in `admin.users`.
 *
 * The server answers `<command/>` IQs addressed to its domain. A command
 * with a form runs in two stages: `execute` returns the form and a
 * sessionid (status 'executing'), submitting it (`complete`, `execute` or
 * `next`, with the sessionid) runs the action (status 'completed', with a
 * note and, for lists, a result form). A client may also submit the form
 * with its first request. `cancel` ends a session.
 *
 * Who may: only local accounts listed in `admin.users`, from a bound
 * session (never a remote JID). Everyone else sees an empty command list and
 * gets <forbidden/> when executing (XEP-0050 §4.5). Open command sessions are
 * bounded (64 at once, 10 minutes each) so that forms left half-filled
 * cannot pile up.
 */
import { randomBytes } from 'node:crypto';
import { x, type Element } from '../../xml/element.js';
import { StanzaError } from '../../core/errors.js';
import { NS } from '../../core/namespaces.js';
import type { VeronaModule } from '../../core/module.js';
import { parseJID, type JID } from '../../jid/jid.js';
import type { DiscoNode } from '../disco.js';
import type { AdminActions } from '../../admin/actions.js';
import { NS_DATA, submitted } from './forms.js';
import { adminCommands, type AdhocCommand } from './commands.js';

export const NS_COMMANDS = 'http://jabber.org/protocol/commands';
const MAX_SESSIONS = 64;
const SESSION_MS = 10 * 60 * 1000;

interface CommandSession {
  node: string;
  owner: string;
  expires: number;
}

/** XEP-0050 §4.6 specific conditions, inside a general stanza error. */
function commandError(condition: 'bad-request' | 'item-not-found' | 'forbidden' | 'resource-constraint', specific: string | undefined, text: string): StanzaError {
  return new StanzaError(condition, text, undefined, specific === undefined ? undefined : x(specific, NS_COMMANDS));
}

/** Prepared bare JIDs of the configured admins; entries that are not JIDs are reported and ignored. */
export function adminSet(users: readonly string[], warn: (entry: string) => void): Set<string> {
  const out = new Set<string>();
  for (const u of users) {
    try {
      const j = parseJID(u);
      if (j.local === '' || j.resource !== '') throw new Error('not a bare account JID');
      out.add(j.bareString());
    } catch {
      warn(u);
    }
  }
  return out;
}

export const adhocModule: VeronaModule = {
  name: 'adhoc',
  load(api) {
    const admins = adminSet(api.config.admin.users, (entry) => api.log.warn({ entry }, 'admin.users: not a bare account JID; ignored'));
    const actions = api.service<AdminActions>('admin');
    const commands: AdhocCommand[] = actions ? adminCommands(actions) : [];
    const byNode = new Map(commands.map((c) => [c.node, c]));
    const sessions = new Map<string, CommandSession>();
    const executed = api.metrics.counter('verona_adhoc_commands_total', 'Ad-hoc commands (XEP-0050) by node and result');

    const isAdmin = (from: JID): boolean => api.router.hosts.has(from.domain) && admins.has(from.bareString());
    const visible = (from: JID): AdhocCommand[] => (isAdmin(from) ? commands : []);

    api.discoFeature(NS_COMMANDS);
    const nodes = api.service<Map<string, DiscoNode>>('disco-nodes');
    if (nodes) {
      nodes.set(NS_COMMANDS, {
        info: () => x('query', NS.DISCO_INFO, { node: NS_COMMANDS }, [x('identity', NS.DISCO_INFO, { category: 'automation', type: 'command-list', name: 'Commands' })]),
        items: (from) => visible(from).map((c) => x('item', NS.DISCO_ITEMS, { jid: api.domain, node: c.node, name: c.name })),
      });
      for (const c of commands) {
        nodes.set(c.node, {
          info: (from) =>
            isAdmin(from)
              ? x('query', NS.DISCO_INFO, { node: c.node }, [
                  x('identity', NS.DISCO_INFO, { category: 'automation', type: 'command-node', name: c.name }),
                  x('feature', NS.DISCO_INFO, { var: NS_COMMANDS }),
                  x('feature', NS.DISCO_INFO, { var: NS_DATA }),
                ])
              : undefined,
        });
      }
    }

    const prune = (now: number): void => {
      for (const [id, s] of sessions) if (s.expires <= now) sessions.delete(id);
    };

    api.iq('server', 'set', NS_COMMANDS, async (ctx) => {
      const cmdEl = ctx.payload;
      const node = cmdEl.attrs.node ?? '';
      const action = cmdEl.attrs.action ?? 'execute';
      const command = byNode.get(node);
      if (command === undefined) throw commandError('item-not-found', undefined, `No command ${node}`);
      if (!ctx.origin || !isAdmin(ctx.from)) {
        executed.inc({ node, result: 'forbidden' });
        api.log.info({ from: ctx.from.toString(), node }, 'ad-hoc command refused: not an admin');
        throw commandError('forbidden', undefined, 'Only administrators may run this command');
      }
      const owner = ctx.from.toString();
      const now = Date.now();
      prune(now);
      const sid = cmdEl.attrs.sessionid;
      if (sid !== undefined) {
        const s = sessions.get(sid);
        if (s === undefined || s.owner !== owner || s.node !== node) throw commandError('bad-request', 'bad-sessionid', 'Unknown or expired session');
      }
      const reply = (status: string, sessionid: string, children: Element[]): Element => x('command', NS_COMMANDS, { node, sessionid, status }, children);

      if (action === 'cancel') {
        if (sid !== undefined) sessions.delete(sid);
        return reply('canceled', sid ?? newSid(), []);
      }
      if (action === 'prev') throw commandError('bad-request', 'bad-action', 'This command has one stage');
      if (action !== 'execute' && action !== 'complete' && action !== 'next') throw commandError('bad-request', 'malformed-action', `Unknown action ${action}`);

      const values = submitted(cmdEl.getChild('x', NS_DATA));
      if (values === undefined && command.form !== undefined) {
        if (sid !== undefined) throw commandError('bad-request', 'bad-payload', 'Submit the form');
        if (sessions.size >= MAX_SESSIONS) throw commandError('resource-constraint', 'session-expired', 'Too many open command sessions; try again later');
        const id = newSid();
        sessions.set(id, { node, owner, expires: now + SESSION_MS });
        return reply('executing', id, [x('actions', NS_COMMANDS, { execute: 'complete' }, [x('complete', NS_COMMANDS)]), command.form()]);
      }
      if (sid !== undefined) sessions.delete(sid);
      const result = await command.run(values ?? new Map(), ctx.from);
      executed.inc({ node, result: result.ok ? 'completed' : 'failed' });
      api.log.info({ from: owner, node, ok: result.ok }, 'ad-hoc command run');
      const children: Element[] = [];
      for (const n of result.notes) children.push(x('note', NS_COMMANDS, { type: n.type }, [n.text]));
      if (result.form) children.push(result.form);
      return reply('completed', sid ?? newSid(), children);
    });
  },
};

function newSid(): string {
  return randomBytes(9).toString('base64url');
}
