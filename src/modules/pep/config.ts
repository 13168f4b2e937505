/**
 * Node configuration for PEP nodes (XEP-0060 §8.2 and §16.4.3,
 * `http://jabber.org/protocol/pubsub#node_config`) and publish-options
 * preconditions (§7.1.5): parsing submitted forms, building the form a client
 * edits, and comparing options with a node's configuration. Pure functions.
 */
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import type { AccessModel, NodeConfig, SendLastPublished } from '../../storage/pubsub.js';

export const NS_NODE_CONFIG = 'http://jabber.org/protocol/pubsub#node_config';
export const NS_PUBLISH_OPTIONS = 'http://jabber.org/protocol/pubsub#publish-options';

export const ACCESS_MODELS: readonly AccessModel[] = ['open', 'presence', 'whitelist'];
const SEND_LAST: readonly SendLastPublished[] = ['never', 'on_sub', 'on_sub_and_presence'];

/** Submitted form fields: var -> values (FORM_TYPE kept apart). */
export interface SubmittedForm {
  type: string;
  formType: string | undefined;
  fields: Map<string, string[]>;
}

export function readForm(el: Element | undefined): SubmittedForm | undefined {
  if (!el || !el.is('x', NS.DATA_FORMS)) return undefined;
  const fields = new Map<string, string[]>();
  let formType: string | undefined;
  for (const f of el.getChildren('field', NS.DATA_FORMS)) {
    const v = f.attrs.var;
    if (v === undefined) continue;
    const values = f.getChildren('value', NS.DATA_FORMS).map((e) => e.text());
    if (v === 'FORM_TYPE') formType = values[0];
    else fields.set(v, values);
  }
  return { type: el.attrs.type ?? 'form', formType, fields };
}

export function defaultConfig(defaultMaxItems: number | 'max'): NodeConfig {
  return {
    accessModel: 'presence', // XEP-0163 §4.1.2: the PEP default
    persistItems: true,
    maxItems: defaultMaxItems,
    notifyRetract: true,
    notifyDelete: true,
    sendLastPublishedItem: 'on_sub_and_presence', // XEP-0163 §4.1.2
    deliverNotifications: true,
    deliverPayloads: true,
    notificationType: 'headline',
    title: '',
  };
}

/** The number of items a node keeps (persistent nodes only). */
export function keepCount(config: NodeConfig, limit: number): number {
  if (!config.persistItems) return 0;
  return config.maxItems === 'max' ? limit : Math.min(config.maxItems, limit);
}

function parseBool(v: string | undefined): boolean | undefined {
  if (v === '1' || v === 'true') return true;
  if (v === '0' || v === 'false') return false;
  return undefined;
}

export type FieldError = { field: string; reason: 'unknown-field' | 'invalid-value' };
export interface ParsedConfig {
  patch: Partial<NodeConfig>;
  errors: FieldError[];
}

/**
 * Turn submitted fields into a configuration patch. Values outside what PEP
 * implements (another access model, max_items above the server limit) are
 * 'invalid-value'; fields PEP does not know are 'unknown-field'.
 */
export function parseConfigFields(fields: Map<string, string[]>, limit: number): ParsedConfig {
  const patch: Partial<NodeConfig> = {};
  const errors: FieldError[] = [];
  const bool = (field: string, v: string | undefined, set: (b: boolean) => void): void => {
    const b = parseBool(v);
    if (b === undefined) errors.push({ field, reason: 'invalid-value' });
    else set(b);
  };
  for (const [field, values] of fields) {
    const v = values[0];
    switch (field) {
      case 'pubsub#access_model':
        if (v !== undefined && (ACCESS_MODELS as readonly string[]).includes(v)) patch.accessModel = v as AccessModel;
        else errors.push({ field, reason: 'invalid-value' });
        break;
      case 'pubsub#persist_items':
        bool(field, v, (b) => (patch.persistItems = b));
        break;
      case 'pubsub#max_items':
        if (v === 'max') patch.maxItems = 'max';
        else if (v !== undefined && /^[0-9]{1,9}$/.test(v) && Number(v) >= 1 && Number(v) <= limit) patch.maxItems = Number(v);
        else errors.push({ field, reason: 'invalid-value' });
        break;
      case 'pubsub#notify_retract':
        bool(field, v, (b) => (patch.notifyRetract = b));
        break;
      case 'pubsub#notify_delete':
        bool(field, v, (b) => (patch.notifyDelete = b));
        break;
      case 'pubsub#deliver_notifications':
        bool(field, v, (b) => (patch.deliverNotifications = b));
        break;
      case 'pubsub#deliver_payloads':
        bool(field, v, (b) => (patch.deliverPayloads = b));
        break;
      case 'pubsub#send_last_published_item':
        if (v !== undefined && (SEND_LAST as readonly string[]).includes(v)) patch.sendLastPublishedItem = v as SendLastPublished;
        else errors.push({ field, reason: 'invalid-value' });
        break;
      case 'pubsub#notification_type':
        if (v === 'headline' || v === 'normal') patch.notificationType = v;
        else errors.push({ field, reason: 'invalid-value' });
        break;
      case 'pubsub#title':
        patch.title = values.join('\n');
        break;
      default:
        errors.push({ field, reason: 'unknown-field' });
    }
  }
  return { patch, errors };
}

/** max_items as a number, so that 'max' and the limit itself are the same setting. */
function resolvedMax(v: number | 'max', limit: number): number {
  return v === 'max' ? limit : v;
}

/**
 * XEP-0060 §7.1.5: each publish option must equal the node's setting.
 * Returns the first field that differs, or undefined when all match.
 */
export function unmetPrecondition(config: NodeConfig, patch: Partial<NodeConfig>, limit: number): string | undefined {
  for (const [k, v] of Object.entries(patch) as Array<[keyof NodeConfig, NodeConfig[keyof NodeConfig]]>) {
    if (k === 'maxItems') {
      if (resolvedMax(v as number | 'max', limit) !== resolvedMax(config.maxItems, limit)) return 'pubsub#max_items';
    } else if (config[k] !== v) {
      return FIELD_OF[k];
    }
  }
  return undefined;
}

const FIELD_OF: Record<keyof NodeConfig, string> = {
  accessModel: 'pubsub#access_model',
  persistItems: 'pubsub#persist_items',
  maxItems: 'pubsub#max_items',
  notifyRetract: 'pubsub#notify_retract',
  notifyDelete: 'pubsub#notify_delete',
  sendLastPublishedItem: 'pubsub#send_last_published_item',
  deliverNotifications: 'pubsub#deliver_notifications',
  deliverPayloads: 'pubsub#deliver_payloads',
  notificationType: 'pubsub#notification_type',
  title: 'pubsub#title',
};

function field(v: string, type: string, label: string | undefined, values: string[], options?: readonly string[]): Element {
  const f = x('field', NS.DATA_FORMS, { var: v, type, label });
  if (options) for (const o of options) f.append(x('option', NS.DATA_FORMS, {}, [x('value', NS.DATA_FORMS, {}, [o])]));
  for (const val of values) f.append(x('value', NS.DATA_FORMS, {}, [val]));
  return f;
}

const b = (v: boolean): string => (v ? '1' : '0');

/** The configuration as a data form (type 'form' to edit, XEP-0060 §8.2.1). */
export function configForm(config: NodeConfig, type: 'form' | 'result' = 'form'): Element {
  return x('x', NS.DATA_FORMS, { type }, [
    field('FORM_TYPE', 'hidden', undefined, [NS_NODE_CONFIG]),
    field('pubsub#title', 'text-single', 'A friendly name for the node', [config.title]),
    field('pubsub#access_model', 'list-single', 'Who may subscribe and retrieve items', [config.accessModel], ACCESS_MODELS),
    field('pubsub#persist_items', 'boolean', 'Persist items to storage', [b(config.persistItems)]),
    field('pubsub#max_items', 'text-single', 'Max # of items to persist (or max)', [String(config.maxItems)]),
    field('pubsub#notify_retract', 'boolean', 'Notify subscribers when items are removed from the node', [b(config.notifyRetract)]),
    field('pubsub#notify_delete', 'boolean', 'Notify subscribers when the node is deleted', [b(config.notifyDelete)]),
    field('pubsub#deliver_notifications', 'boolean', 'Deliver event notifications', [b(config.deliverNotifications)]),
    field('pubsub#deliver_payloads', 'boolean', 'Deliver payloads with event notifications', [b(config.deliverPayloads)]),
    field('pubsub#send_last_published_item', 'list-single', 'When to send the last published item', [config.sendLastPublishedItem], SEND_LAST),
    field('pubsub#notification_type', 'list-single', 'Message type of event notifications', [config.notificationType], ['headline', 'normal']),
  ]);
}
