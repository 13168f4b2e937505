/**
 * Stanza and stream errors, declared once (RFC 6120 §8.3 and §4.9).
 * Handlers throw StanzaError; the router turns it into an error reply.
 */
import { Element, x } from '../xml/element.js';
import { NS } from './namespaces.js';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

export type StanzaErrorCondition =
  | 'bad-request'
  | 'conflict'
  | 'feature-not-implemented'
  | 'forbidden'
  | 'gone'
  | 'internal-server-error'
  | 'item-not-found'
  | 'jid-malformed'
  | 'not-acceptable'
  | 'not-allowed'
  | 'not-authorized'
  | 'policy-violation'
  | 'recipient-unavailable'
  | 'redirect'
  | 'registration-required'
  | 'remote-server-not-found'
  | 'remote-server-timeout'
  | 'resource-constraint'
  | 'service-unavailable'
  | 'subscription-required'
  | 'undefined-condition'
  | 'unexpected-request';

/** Default error type per condition (RFC 6120 §8.3.3 examples). */
const DEFAULT_TYPE: Record<StanzaErrorCondition, StanzaErrorType> = {
  'bad-request': 'modify',
  conflict: 'cancel',
  'feature-not-implemented': 'cancel',
  forbidden: 'auth',
  gone: 'cancel',
  'internal-server-error': 'cancel',
  'item-not-found': 'cancel',
  'jid-malformed': 'modify',
  'not-acceptable': 'modify',
  'not-allowed': 'cancel',
  'not-authorized': 'auth',
  'policy-violation': 'modify',
  'recipient-unavailable': 'wait',
  redirect: 'modify',
  'registration-required': 'auth',
  'remote-server-not-found': 'cancel',
  'remote-server-timeout': 'wait',
  'resource-constraint': 'wait',
  'service-unavailable': 'cancel',
  'subscription-required': 'auth',
  'undefined-condition': 'cancel',
  'unexpected-request': 'wait',
};

export class StanzaError extends Error {
  readonly condition: StanzaErrorCondition;
  readonly type: StanzaErrorType;
  readonly text: string | undefined;
  /** Extra application-specific condition element (e.g. <blocked xmlns='urn:xmpp:blocking:errors'/>). */
  readonly appCondition: Element | undefined;

  constructor(condition: StanzaErrorCondition, text?: string, type?: StanzaErrorType, appCondition?: Element) {
    super(text ?? condition);
    this.condition = condition;
    this.type = type ?? DEFAULT_TYPE[condition];
    this.text = text;
    this.appCondition = appCondition;
  }

  toElement(by?: string): Element {
    const err = x('error', NS.CLIENT, { type: this.type, by });
    err.append(x(this.condition, NS.STANZA_ERRORS));
    if (this.text !== undefined) err.append(x('text', NS.STANZA_ERRORS, { 'xml:lang': 'en' }, [this.text]));
    if (this.appCondition) err.append(this.appCondition);
    return err;
  }
}

/**
 * Build the error reply to `stanza`: to/from swapped, same id, original
 * payload dropped for messages/presence (no content echoed back to leak),
 * kept for IQs as RFC 6120 allows.
 */
export function errorReply(stanza: Element, error: StanzaError): Element {
  const reply = x(stanza.name, NS.CLIENT, {
    type: 'error',
    id: stanza.attrs.id,
    to: stanza.attrs.from,
    from: stanza.attrs.to,
  });
  if (stanza.name === 'iq') {
    const payload = stanza.elements()[0];
    if (payload) reply.append(payload.clone());
  }
  reply.append(error.toElement());
  return reply;
}

export type StreamErrorCondition =
  | 'bad-format'
  | 'bad-namespace-prefix'
  | 'conflict'
  | 'connection-timeout'
  | 'host-gone'
  | 'host-unknown'
  | 'improper-addressing'
  | 'internal-server-error'
  | 'invalid-from'
  | 'invalid-namespace'
  | 'invalid-xml'
  | 'not-authorized'
  | 'not-well-formed'
  | 'policy-violation'
  | 'remote-connection-failed'
  | 'reset'
  | 'resource-constraint'
  | 'restricted-xml'
  | 'see-other-host'
  | 'system-shutdown'
  | 'undefined-condition'
  | 'unsupported-encoding'
  | 'unsupported-feature'
  | 'unsupported-stanza-type'
  | 'unsupported-version';

export function streamError(condition: StreamErrorCondition, text?: string): Element {
  const el = x('error', NS.STREAM);
  el.append(x(condition, NS.STREAM_ERRORS));
  if (text !== undefined) el.append(x('text', NS.STREAM_ERRORS, { 'xml:lang': 'en' }, [text]));
  return el;
}
