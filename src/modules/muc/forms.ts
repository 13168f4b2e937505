/**
 * XEP-0045 data forms (XEP-0004): the room configuration form
 * (muc#roomconfig, §10.2 and §15.5.3) and the room information extension of
 * disco#info (muc#roominfo, §15.5.4). Parsing is strict: an unknown value is
 * a bad-request, never silently ignored.
 */
import { x, type Element } from '../../xml/element.js';
import { StanzaError } from '../../core/errors.js';
import type { AllowPm, RoomConfig, Whois } from '../../storage/muc.js';

export const NS_DATA = 'jabber:x:data';
export const NS_ROOMCONFIG = 'http://jabber.org/protocol/muc#roomconfig';
export const NS_ROOMINFO = 'http://jabber.org/protocol/muc#roominfo';

function field(v: string, type: string, label: string | undefined, values: string[], options?: Array<[string, string]>): Element {
  const f = x('field', NS_DATA, { var: v, type, label });
  for (const [value, l] of options ?? []) f.append(x('option', NS_DATA, { label: l }, [x('value', NS_DATA, {}, [value])]));
  for (const val of values) f.append(x('value', NS_DATA, {}, [val]));
  return f;
}

const bool = (b: boolean): string => (b ? '1' : '0');

/** The owner's configuration form with the room's current values. */
export function configForm(c: RoomConfig, maxUsersLimit: number, historyMax: number): Element {
  return x('x', NS_DATA, { type: 'form' }, [
    x('title', NS_DATA, {}, ['Room configuration']),
    field('FORM_TYPE', 'hidden', undefined, [NS_ROOMCONFIG]),
    field('muc#roomconfig_roomname', 'text-single', 'Name', [c.name]),
    field('muc#roomconfig_roomdesc', 'text-single', 'Description', [c.description]),
    field('muc#roomconfig_persistentroom', 'boolean', 'Keep the room when it is empty', [bool(c.persistent)]),
    field('muc#roomconfig_publicroom', 'boolean', 'List the room publicly', [bool(c.public)]),
    field('muc#roomconfig_membersonly', 'boolean', 'Members only', [bool(c.membersOnly)]),
    field('muc#roomconfig_moderatedroom', 'boolean', 'Moderated (visitors have no voice)', [bool(c.moderated)]),
    field('muc#roomconfig_passwordprotectedroom', 'boolean', 'Password protected', [bool(c.password !== '')]),
    field('muc#roomconfig_roomsecret', 'text-private', 'Password', [c.password]),
    field('muc#roomconfig_maxusers', 'text-single', `Most occupants (at most ${maxUsersLimit})`, [String(c.maxUsers)]),
    field('muc#roomconfig_whois', 'list-single', 'Who may see real JIDs', [c.whois], [
      ['moderators', 'Moderators only'],
      ['anyone', 'Anyone'],
    ]),
    field('muc#roomconfig_changesubject', 'boolean', 'Participants may change the subject', [bool(c.changeSubject)]),
    field('muc#roomconfig_allowinvites', 'boolean', 'Occupants may invite others', [bool(c.allowInvites)]),
    field('muc#roomconfig_allowpm', 'list-single', 'Who may send private messages', [c.allowPm], [
      ['anyone', 'Anyone'],
      ['participants', 'Participants'],
      ['moderators', 'Moderators'],
      ['none', 'Nobody'],
    ]),
    field('muc#roomconfig_enablearchiving', 'boolean', 'Archive messages (MAM)', [bool(c.archive)]),
    field('muc#roomconfig_historylength', 'text-single', `History sent to new occupants (at most ${historyMax})`, [String(c.historyLength)]),
  ]);
}

function parseBool(v: string, name: string): boolean {
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  throw new StanzaError('bad-request', `${name}: not a boolean`);
}

function parseCount(v: string, name: string, max: number, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new StanzaError('bad-request', `${name}: not a whole number >= ${min}`);
  return Math.min(n, max);
}

/**
 * Apply a submitted form to a copy of `current`. Fields left out keep their
 * value (XEP-0004 §3.4 lets a submitter send only what changed). An empty
 * submit is the instant room of §10.1.2.
 */
export function applyConfigForm(current: RoomConfig, form: Element, maxUsersLimit: number, historyMax: number): RoomConfig {
  if (form.attrs.type !== 'submit') throw new StanzaError('bad-request', 'The form must be of type submit');
  const c: RoomConfig = { ...current };
  let passwordProtected: boolean | undefined;
  let secret: string | undefined;
  for (const f of form.getChildren('field', NS_DATA)) {
    const name = f.attrs.var ?? '';
    const values = f.getChildren('value', NS_DATA).map((v) => v.text());
    const v = (values[0] ?? '').trim();
    switch (name) {
      case 'FORM_TYPE':
        if (v !== NS_ROOMCONFIG) throw new StanzaError('bad-request', `FORM_TYPE must be ${NS_ROOMCONFIG}`);
        break;
      case 'muc#roomconfig_roomname':
        c.name = values[0] ?? '';
        break;
      case 'muc#roomconfig_roomdesc':
        c.description = values[0] ?? '';
        break;
      case 'muc#roomconfig_persistentroom':
        c.persistent = parseBool(v, name);
        break;
      case 'muc#roomconfig_publicroom':
        c.public = parseBool(v, name);
        break;
      case 'muc#roomconfig_membersonly':
        c.membersOnly = parseBool(v, name);
        break;
      case 'muc#roomconfig_moderatedroom':
        c.moderated = parseBool(v, name);
        break;
      case 'muc#roomconfig_passwordprotectedroom':
        passwordProtected = parseBool(v, name);
        break;
      case 'muc#roomconfig_roomsecret':
        secret = values[0] ?? '';
        break;
      case 'muc#roomconfig_maxusers':
        c.maxUsers = v === '' || v === 'none' ? maxUsersLimit : parseCount(v, name, maxUsersLimit, 1);
        break;
      case 'muc#roomconfig_whois':
        if (v !== 'moderators' && v !== 'anyone') throw new StanzaError('bad-request', `${name}: moderators or anyone`);
        c.whois = v as Whois;
        break;
      case 'muc#roomconfig_changesubject':
        c.changeSubject = parseBool(v, name);
        break;
      case 'muc#roomconfig_allowinvites':
        c.allowInvites = parseBool(v, name);
        break;
      case 'muc#roomconfig_allowpm':
        if (!['anyone', 'participants', 'moderators', 'none'].includes(v)) throw new StanzaError('bad-request', `${name}: anyone, participants, moderators or none`);
        c.allowPm = v as AllowPm;
        break;
      case 'muc#roomconfig_enablearchiving':
      case 'mam':
        c.archive = parseBool(v, name);
        break;
      case 'muc#roomconfig_historylength':
        c.historyLength = parseCount(v, name, historyMax);
        break;
      default:
        // Fields other servers offer (e.g. muc#roomconfig_lang) are not settable here: say so.
        throw new StanzaError('not-acceptable', `Unknown configuration field '${name}'`);
    }
  }
  if (secret !== undefined) c.password = secret;
  if (passwordProtected === false) c.password = '';
  if (passwordProtected === true && c.password === '') throw new StanzaError('not-acceptable', 'A password-protected room needs a password (muc#roomconfig_roomsecret)');
  return c;
}

/** muc#roominfo for the room's disco#info (§15.5.4). */
export function roomInfoForm(c: RoomConfig, occupants: number, subject: string): Element {
  return x('x', NS_DATA, { type: 'result' }, [
    field('FORM_TYPE', 'hidden', undefined, [NS_ROOMINFO]),
    field('muc#roominfo_description', 'text-single', 'Description', [c.description]),
    field('muc#roominfo_occupants', 'text-single', 'Number of occupants', [String(occupants)]),
    field('muc#roominfo_subject', 'text-single', 'Subject', [subject]),
    field('muc#roomconfig_roomname', 'text-single', 'Name', [c.name]),
    field('muc#maxhistoryfetch', 'text-single', 'Most history messages', [String(c.historyLength)]),
  ]);
}

export const NS_REQUEST = 'http://jabber.org/protocol/muc#request';

/** The fields of a muc#request form (§7.13 request, §8.6 answer), by var, first value each. */
export function requestFields(form: Element): Map<string, string> {
  const out = new Map<string, string>();
  for (const f of form.getChildren('field', NS_DATA)) {
    const name = f.attrs.var;
    if (name !== undefined && !out.has(name)) out.set(name, (f.getChildren('value', NS_DATA)[0]?.text() ?? '').trim());
  }
  return out;
}

/** Is this message's data form a muc#request form? */
export function isRequestForm(form: Element | undefined): form is Element {
  return form !== undefined && requestFields(form).get('FORM_TYPE') === NS_REQUEST;
}

/** §8.6 example 90: the approval form the moderators receive for a visitor's voice request. */
export function voiceRequestForm(jid: string, nick: string): Element {
  return x('x', NS_DATA, { type: 'form' }, [
    x('title', NS_DATA, {}, ['Voice request']),
    x('instructions', NS_DATA, {}, ['To approve this request for voice, select the "Grant voice to this person?" checkbox and click OK. To skip this request, click the cancel button.']),
    field('FORM_TYPE', 'hidden', undefined, [NS_REQUEST]),
    field('muc#role', 'list-single', 'Requested role', ['participant'], [['participant', 'Participant']]),
    field('muc#jid', 'jid-single', 'User ID', [jid]),
    field('muc#roomnick', 'text-single', 'Room Nickname', [nick]),
    field('muc#request_allow', 'boolean', 'Grant voice to this person?', ['false']),
  ]);
}

/** A submitted boolean field: XEP-0004 §3.3 allows 1/0 and true/false. */
export function formBool(v: string | undefined): boolean {
  return v === '1' || v === 'true';
}

export const NS_REGISTER_FORM = 'http://jabber.org/protocol/muc#register';

/** §7.10 example 67: the registration form a room hands out (only the nickname is asked). */
export function registerForm(roomName: string): Element {
  return x('x', NS_DATA, { type: 'form' }, [
    x('title', NS_DATA, {}, [`Register a nickname in ${roomName}`]),
    x('instructions', NS_DATA, {}, ['Reserve a nickname in this room; you become a member of it.']),
    field('FORM_TYPE', 'hidden', undefined, [NS_REGISTER_FORM]),
    x('field', NS_DATA, { var: 'muc#register_roomnick', type: 'text-single', label: 'Desired Nickname' }, [x('required', NS_DATA)]),
  ]);
}
