/**
 * XEP-0133 Service Administration commands on the admin actions
 * (src/admin/actions.ts): each command is a form and a translation of its
 * fields into calls. Field names are the XEP's (accountjid, accountjids,
 * password, password-verify, announcement, ...).
 */
import type { Element } from '../../xml/element.js';
import type { JID } from '../../jid/jid.js';
import { AdminError, type AdminActions } from '../../admin/actions.js';
import { form, value, type FieldSpec } from './forms.js';

export const NS_ADMIN = 'http://jabber.org/protocol/admin';

export interface Note {
  type: 'info' | 'warn' | 'error';
  text: string;
}

export interface CommandResult {
  ok: boolean;
  notes: Note[];
  form?: Element;
}

export interface AdhocCommand {
  node: string;
  name: string;
  /** The form to fill; undefined for commands without input. */
  form?: () => Element;
  run(values: Map<string, string[]>, from: JID): Promise<CommandResult>;
}

const formType: FieldSpec = { var: 'FORM_TYPE', type: 'hidden', values: [NS_ADMIN] };

function adminForm(title: string, instructions: string, fields: FieldSpec[]): () => Element {
  return () => form('form', title, instructions, [formType, ...fields]);
}

function message(err: unknown): string {
  return err instanceof AdminError ? err.message : `failed: ${(err as Error).message}`;
}

/** Run `fn` for each JID; one note per JID, ok only when all succeeded. */
async function each(jids: string[] | undefined, fn: (jid: string) => Promise<string>): Promise<CommandResult> {
  const list = (jids ?? []).map((j) => j.trim()).filter((j) => j !== '');
  if (list.length === 0) return { ok: false, notes: [{ type: 'error', text: 'No account JID given' }] };
  const notes: Note[] = [];
  let ok = true;
  for (const jid of list) {
    try {
      notes.push({ type: 'info', text: await fn(jid) });
    } catch (err) {
      ok = false;
      notes.push({ type: 'error', text: `${jid}: ${message(err)}` });
    }
  }
  return { ok, notes };
}

async function one(fn: () => Promise<string>): Promise<CommandResult> {
  try {
    return { ok: true, notes: [{ type: 'info', text: await fn() }] };
  } catch (err) {
    return { ok: false, notes: [{ type: 'error', text: message(err) }] };
  }
}

const accountjids: FieldSpec = { var: 'accountjids', type: 'jid-multi', label: 'The Jabber ID(s)', required: true };

export function adminCommands(a: AdminActions): AdhocCommand[] {
  const n = (s: string): string => `${NS_ADMIN}#${s}`;
  const sessionsWord = (k: number): string => `${k} session${k === 1 ? '' : 's'}`;
  return [
    {
      node: n('add-user'),
      name: 'Add a User',
      form: adminForm('Adding a User', 'Fill out this form to add a user.', [
        { var: 'accountjid', type: 'jid-single', label: 'The Jabber ID for the account to be added', required: true },
        { var: 'password', type: 'text-private', label: 'The password for this account', required: true },
        { var: 'password-verify', type: 'text-private', label: 'Retype password', required: true },
      ]),
      run: (v) =>
        one(async () => {
          const jid = value(v, 'accountjid') ?? '';
          const pw = value(v, 'password') ?? '';
          const again = value(v, 'password-verify');
          if (again !== undefined && again !== pw) throw new AdminError('bad-request', 'the passwords do not match');
          return `created ${await a.addUser(jid, pw)}`;
        }),
    },
    {
      node: n('delete-user'),
      name: 'Delete a User',
      form: adminForm('Deleting a User', 'Fill out this form to delete a user.', [accountjids]),
      run: (v) => each(v.get('accountjids'), async (jid) => `deleted ${jid} and all its data (ended ${sessionsWord((await a.deleteUser(jid)).length)})`),
    },
    {
      node: n('disable-user'),
      name: 'Disable a User',
      form: adminForm('Disabling a User', 'Fill out this form to disable a user.', [accountjids]),
      run: (v) => each(v.get('accountjids'), async (jid) => `disabled ${jid} (ended ${sessionsWord((await a.disable(jid)).length)})`),
    },
    {
      node: n('reenable-user'),
      name: 'Re-Enable a User',
      form: adminForm('Re-Enabling a User', 'Fill out this form to re-enable a user.', [accountjids]),
      run: (v) =>
        each(v.get('accountjids'), async (jid) => {
          await a.enable(jid);
          return `enabled ${jid}`;
        }),
    },
    {
      node: n('end-user-session'),
      name: 'End User Session',
      form: adminForm('Ending a User Session', 'Fill out this form to end a user\u2019s session (a full JID) or all its sessions (a bare JID).', [accountjids]),
      run: (v) => each(v.get('accountjids'), async (jid) => `ended ${sessionsWord(a.kick(jid).length)} of ${jid}`),
    },
    {
      node: n('change-user-password'),
      name: 'Change User Password',
      form: adminForm('Changing a User Password', 'Fill out this form to change a user\u2019s password; the user\u2019s sessions end.', [
        { var: 'accountjid', type: 'jid-single', label: 'The Jabber ID for this account', required: true },
        { var: 'password', type: 'text-private', label: 'The password for this account', required: true },
      ]),
      run: (v) =>
        one(async () => {
          const jid = value(v, 'accountjid') ?? '';
          const ended = await a.changePassword(jid, { password: value(v, 'password') ?? '' });
          return `changed the password of ${jid} (ended ${sessionsWord(ended.length)})`;
        }),
    },
    {
      node: n('get-online-users-num'),
      name: 'Get Number of Online Users',
      run: async () => {
        const users = a.onlineUsers();
        return { ok: true, notes: [], form: form('result', 'Number of Online Users', undefined, [formType, { var: 'onlineusersnum', type: 'text-single', label: 'The number of online users', values: [String(users.length)] }]) };
      },
    },
    {
      node: n('get-online-users-list'),
      name: 'Get List of Online Users',
      run: async () => {
        const users = a.onlineUsers();
        return { ok: true, notes: [], form: form('result', 'List of Online Users', undefined, [formType, { var: 'onlineuserjids', type: 'jid-multi', label: 'The list of all online users', values: users }]) };
      },
    },
    {
      node: n('get-online-users'),
      name: 'Get List of Online Sessions',
      run: async () => {
        const jids = a.sessions().map((s) => s.jid);
        return { ok: true, notes: [], form: form('result', 'List of Online Sessions', undefined, [formType, { var: 'onlineuserjids', type: 'jid-multi', label: 'Every online session', values: jids }]) };
      },
    },
    {
      node: n('announce'),
      name: 'Send Announcement to Online Users',
      form: adminForm('Making an Announcement', 'Fill out this form to make an announcement to all active users of this service.', [
        { var: 'subject', type: 'text-single', label: 'Subject' },
        { var: 'announcement', type: 'text-multi', label: 'Announcement', required: true },
      ]),
      run: (v) => one(async () => `announced to ${sessionsWord(a.announce(value(v, 'announcement', true) ?? '', value(v, 'subject')))}`),
    },
  ];
}
