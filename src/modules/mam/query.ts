/**
 * XEP-0313 queries: parse the form and the RSM set (XEP-0059) into a plan,
 * run it against the ArchiveStore, and build the result messages and <fin/>.
 *
 * Paging semantics:
 * - no RSM after/before: the oldest `max` messages of the result set
 *   (from `index` when given);
 * - <after>ID</after>: the `max` messages following ID;
 * - <before>ID</before>: the `max` messages preceding ID; <before/> (empty):
 *   the last page;
 * - results are always sent oldest first, unless <flip-page/> asks for the
 *   page newest first (the page's content is the same);
 * - <fin complete='true'> when the page reached the end of the result set
 *   in the paging direction (forward: nothing after it; backward: nothing
 *   before it).
 * Every page is one index range read of max+1 rows. <count/> is given when
 * the result set has at most COUNT_CAP messages (counting is an index walk),
 * and `index` on <first/> when it is known without one.
 */
import { x, type Element } from '../../xml/element.js';
import { NS } from '../../core/namespaces.js';
import { StanzaError } from '../../core/errors.js';
import { tryParseJID } from '../../jid/jid.js';
import type { ArchiveRange, ArchiveRecord, ArchiveStore } from '../../storage/archive.js';
import { parseDateTime } from './ids.js';

export const COUNT_CAP = 10000;

export const KNOWN_FIELDS = new Set(['FORM_TYPE', 'with', 'start', 'end', 'after-id', 'before-id', 'ids']);

export interface QueryPlan {
  queryId: string | undefined;
  range: ArchiveRange;
  /** #extended ids field. */
  ids: string[] | undefined;
  max: number;
  /** Paging: 'forward' from the lower bound or `after`; 'backward' from the upper bound or `before`. */
  direction: 'forward' | 'backward';
  /** RSM after / before ids (resolved to seq in run()). */
  rsmAfter: string | undefined;
  rsmBefore: string | undefined;
  index: number | undefined;
  flip: boolean;
  /** Form ids to resolve: after-id / before-id. */
  afterId: string | undefined;
  beforeId: string | undefined;
}

export interface QueryLimits {
  defaultMax: number;
  maxMax: number;
}

function fieldValues(field: Element): string[] {
  return field.getChildren('value').map((v) => v.text());
}

/** Parse a <query xmlns='urn:xmpp:mam:2'/> of an IQ set. Throws StanzaError on bad input. */
export function parseQuery(query: Element, username: string, limits: QueryLimits): QueryPlan {
  if (query.attrs.node !== undefined) throw new StanzaError('feature-not-implemented', 'This archive has no nodes');
  const range: ArchiveRange = { username };
  const plan: QueryPlan = {
    queryId: query.attrs.queryid,
    range,
    ids: undefined,
    max: limits.defaultMax,
    direction: 'forward',
    rsmAfter: undefined,
    rsmBefore: undefined,
    index: undefined,
    flip: query.getChild('flip-page', NS.MAM) !== undefined,
    afterId: undefined,
    beforeId: undefined,
  };
  const form = query.getChild('x', NS.DATA_FORMS);
  if (form) {
    if (form.attrs.type !== undefined && form.attrs.type !== 'submit') throw new StanzaError('bad-request', 'The query form must be of type submit');
    for (const f of form.getChildren('field', NS.DATA_FORMS)) {
      const v = f.attrs.var ?? '';
      const values = fieldValues(f);
      const one = values[0]?.trim();
      if (!KNOWN_FIELDS.has(v)) throw new StanzaError('feature-not-implemented', `Unknown query field '${v}'`);
      if (v === 'FORM_TYPE') {
        if (one !== NS.MAM) throw new StanzaError('bad-request', `FORM_TYPE must be ${NS.MAM}`);
        continue;
      }
      if (v === 'ids') {
        plan.ids = [...(plan.ids ?? []), ...values.map((s) => s.trim()).filter((s) => s !== '')];
        continue;
      }
      if (one === undefined || one === '') continue; // an empty field filters nothing
      switch (v) {
        case 'with': {
          const j = tryParseJID(one);
          if (!j) throw new StanzaError('jid-malformed', 'Invalid JID in the with field');
          range.with = j.bare.toString();
          if (!j.isBare()) range.withResource = j.resource;
          break;
        }
        case 'start': {
          const ms = parseDateTime(one);
          if (ms === undefined) throw new StanzaError('bad-request', 'start is not a XEP-0082 DateTime');
          range.minSeq = ms * 1000;
          break;
        }
        case 'end': {
          const ms = parseDateTime(one);
          if (ms === undefined) throw new StanzaError('bad-request', 'end is not a XEP-0082 DateTime');
          range.maxSeq = ms * 1000 + 999;
          break;
        }
        case 'after-id':
          plan.afterId = one;
          break;
        case 'before-id':
          plan.beforeId = one;
          break;
      }
    }
  }
  const set = query.getChild('set', NS.RSM);
  if (set) {
    const maxText = set.getChildText('max');
    if (maxText !== undefined) {
      const n = Number(maxText.trim());
      if (!Number.isInteger(n) || n < 0) throw new StanzaError('bad-request', 'RSM max must be a non-negative integer');
      plan.max = Math.min(n, limits.maxMax);
    }
    const after = set.getChild('after');
    const before = set.getChild('before');
    if (after && before) throw new StanzaError('bad-request', 'RSM after and before together are undefined; use after-id and before-id');
    if (after) {
      const id = after.text().trim();
      if (id === '') throw new StanzaError('bad-request', 'RSM after needs an id');
      plan.rsmAfter = id;
    }
    if (before) {
      plan.direction = 'backward';
      const id = before.text().trim();
      if (id !== '') plan.rsmBefore = id;
    }
    const indexText = set.getChildText('index');
    if (indexText !== undefined) {
      const n = Number(indexText.trim());
      if (!Number.isInteger(n) || n < 0) throw new StanzaError('bad-request', 'RSM index must be a non-negative integer');
      if (after || before) throw new StanzaError('bad-request', 'RSM index cannot be combined with after or before');
      plan.index = n;
    }
  }
  return plan;
}

export interface QueryOutcome {
  /** The page, oldest first (flip-page only changes the order of sending). */
  items: ArchiveRecord[];
  complete: boolean;
  count: number | undefined;
  /** Index of the first item in the whole result set, when known. */
  firstIndex: number | undefined;
}

function inRange(r: ArchiveRecord, q: ArchiveRange): boolean {
  if (q.with !== undefined && r.with !== q.with) return false;
  if (q.withResource !== undefined && r.withResource !== q.withResource) return false;
  if (q.minSeq !== undefined && r.seq < q.minSeq) return false;
  if (q.maxSeq !== undefined && r.seq > q.maxSeq) return false;
  if (q.afterSeq !== undefined && r.seq <= q.afterSeq) return false;
  if (q.beforeSeq !== undefined && r.seq >= q.beforeSeq) return false;
  return true;
}

async function seqOrNotFound(store: ArchiveStore, username: string, id: string): Promise<number> {
  const seq = await store.seqOf(username, id);
  if (seq === undefined) throw new StanzaError('item-not-found', `No message with id ${id} in this archive`);
  return seq;
}

/** Resolve ids and read the page. Throws item-not-found for an unknown id. */
export async function runQuery(store: ArchiveStore, plan: QueryPlan): Promise<QueryOutcome> {
  const range: ArchiveRange = { ...plan.range };
  const username = range.username;
  // after-id / before-id narrow the result set itself (they are filters, not paging).
  if (plan.afterId !== undefined) {
    const s = await seqOrNotFound(store, username, plan.afterId);
    range.afterSeq = Math.max(range.afterSeq ?? -Infinity, s);
  }
  if (plan.beforeId !== undefined) {
    const s = await seqOrNotFound(store, username, plan.beforeId);
    range.beforeSeq = Math.min(range.beforeSeq ?? Infinity, s);
  }

  if (plan.ids !== undefined) {
    const found = await store.byIds(username, plan.ids);
    if (found.length !== new Set(plan.ids).size) {
      const have = new Set(found.map((r) => r.id));
      const missing = plan.ids.find((id) => !have.has(id));
      throw new StanzaError('item-not-found', `No message with id ${missing ?? ''} in this archive`);
    }
    const matching = found.filter((r) => inRange(r, range));
    const items = matching.slice(0, plan.max);
    return { items, complete: items.length === matching.length, count: matching.length, firstIndex: 0 };
  }

  // Paging bounds on top of the result set.
  const paged: ArchiveRange = { ...range };
  if (plan.rsmAfter !== undefined) {
    const s = await seqOrNotFound(store, username, plan.rsmAfter);
    paged.afterSeq = Math.max(paged.afterSeq ?? -Infinity, s);
  }
  if (plan.rsmBefore !== undefined) {
    const s = await seqOrNotFound(store, username, plan.rsmBefore);
    paged.beforeSeq = Math.min(paged.beforeSeq ?? Infinity, s);
  }

  const count = await store.count(range, COUNT_CAP);
  if (plan.max === 0) return { items: [], complete: count === 0, count, firstIndex: undefined };

  const backward = plan.direction === 'backward';
  const rows = await store.page({ ...paged, order: backward ? 'desc' : 'asc', limit: plan.max + 1, offset: backward ? undefined : plan.index });
  const more = rows.length > plan.max;
  const page = more ? rows.slice(0, plan.max) : rows;
  if (backward) page.reverse();

  let firstIndex: number | undefined;
  if (!backward && plan.rsmAfter === undefined) firstIndex = plan.index ?? 0;
  else if (backward && plan.rsmBefore === undefined && count !== undefined) firstIndex = count - page.length;

  return { items: page, complete: !more, count, firstIndex };
}

/** The <fin/> of the IQ result. */
export function finElement(outcome: QueryOutcome): Element {
  const set = x('set', NS.RSM);
  // RSM first/last name the page's ends in result-set order, flipped or not, so paging works either way.
  const first = outcome.items[0];
  const last = outcome.items[outcome.items.length - 1];
  if (first && last) {
    set.append(x('first', NS.RSM, { index: outcome.firstIndex === undefined ? undefined : String(outcome.firstIndex) }, [first.id]));
    set.append(x('last', NS.RSM, {}, [last.id]));
  }
  if (outcome.count !== undefined) set.append(x('count', NS.RSM, {}, [String(outcome.count)]));
  return x('fin', NS.MAM, { complete: outcome.complete ? 'true' : undefined }, [set]);
}

/** The form a client gets with an IQ get of <query/> (XEP-0313 §4.1.5). */
export function queryForm(): Element {
  const field = (v: string, type: string, children: Element[] = []): Element => x('field', NS.DATA_FORMS, { var: v, type }, children);
  return x('query', NS.MAM, {}, [
    x('x', NS.DATA_FORMS, { type: 'form' }, [
      field('FORM_TYPE', 'hidden', [x('value', NS.DATA_FORMS, {}, [NS.MAM])]),
      field('with', 'jid-single'),
      field('start', 'text-single'),
      field('end', 'text-single'),
      field('before-id', 'text-single'),
      field('after-id', 'text-single'),
      field('ids', 'list-multi', [x('validate', 'http://jabber.org/protocol/xdata-validate', { datatype: 'xs:string' }, [x('open', 'http://jabber.org/protocol/xdata-validate')])]),
    ]),
  ]);
}

