/**
 * Options of the `push` module (config `moduleOptions.push`), validated at
 * load. Documented in docs/phones.md and docs/configuration.md.
 */
export interface PushOptions {
  /** Seconds a push-enabled session is kept for resumption until its first push (72 h). */
  hibernation: number;
  /** Put the message body into the summary (`last-message-body`); off: the app server never sees text. */
  includeBody: boolean;
  /** Consecutive non-`wait` errors from the app server before a registration is dropped. */
  maxErrors: number;
  /** Seconds a push stays outstanding (further messages coalesced) when the device does not come back. */
  coalesceWindow: number;
  /** Seconds to wait for the app server's answer to a publish. */
  timeout: number;
}

export const PUSH_DEFAULTS: PushOptions = { hibernation: 72 * 3600, includeBody: false, maxErrors: 3, coalesceWindow: 120, timeout: 30 };

export function parsePushOptions(raw: Record<string, unknown>): PushOptions {
  const out: PushOptions = { ...PUSH_DEFAULTS };
  for (const [k, v] of Object.entries(raw)) {
    if (k === 'includeBody') {
      if (typeof v !== 'boolean') throw new Error(`moduleOptions.push.includeBody: expected true or false, got ${JSON.stringify(v)}`);
      out.includeBody = v;
      continue;
    }
    if (!Object.hasOwn(PUSH_DEFAULTS, k)) throw new Error(`moduleOptions.push.${k}: unknown option (known: ${Object.keys(PUSH_DEFAULTS).join(', ')})`);
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw new Error(`moduleOptions.push.${k}: expected an integer >= 1, got ${JSON.stringify(v)}`);
    (out as unknown as Record<string, number>)[k] = v;
  }
  return out;
}
