/**
 * XEP-0004 data forms, as much as the XEP-0133 commands need: build a form
 * with typed fields, read the values of a submitted one. Pure.
 */
import { x, type Element } from '../../xml/element.js';

export const NS_DATA = 'jabber:x:data';

export interface FieldSpec {
  var: string;
  type: 'hidden' | 'text-single' | 'text-private' | 'text-multi' | 'jid-single' | 'jid-multi' | 'list-single' | 'fixed';
  label?: string;
  required?: boolean;
  values?: string[];
}

export function form(type: 'form' | 'result', title: string | undefined, instructions: string | undefined, fields: FieldSpec[]): Element {
  const f = x('x', NS_DATA, { type });
  if (title !== undefined) f.append(x('title', NS_DATA, {}, [title]));
  if (instructions !== undefined) f.append(x('instructions', NS_DATA, {}, [instructions]));
  for (const s of fields) {
    const field = x('field', NS_DATA, { var: s.var, type: s.type, label: s.label });
    if (s.required === true) field.append(x('required', NS_DATA));
    for (const v of s.values ?? []) field.append(x('value', NS_DATA, {}, [v]));
    f.append(field);
  }
  return f;
}

/** Values of a submitted form by field name (several for -multi fields); undefined when `el` is not a submit form. */
export function submitted(el: Element | undefined): Map<string, string[]> | undefined {
  if (el === undefined || el.attrs.type !== 'submit') return undefined;
  const out = new Map<string, string[]>();
  for (const f of el.elements()) {
    if (f.name !== 'field' || f.xmlns !== NS_DATA) continue;
    const name = f.attrs.var;
    if (name === undefined) continue;
    const values = f.elements().filter((v) => v.name === 'value' && v.xmlns === NS_DATA).map((v) => v.text());
    out.set(name, [...(out.get(name) ?? []), ...values]);
  }
  return out;
}

/** One value of a field (the first); text-multi fields joined with newlines. */
export function value(values: Map<string, string[]>, name: string, multiLine = false): string | undefined {
  const v = values.get(name);
  if (v === undefined || v.length === 0) return undefined;
  return multiLine ? v.join('\n') : v[0];
}
