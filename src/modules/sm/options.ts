/**
 * Options of the `sm` module (config `moduleOptions.sm`), validated at load.
 * Documented in docs/stream-management.md.
 */

export interface SmOptions {
  /** Seconds a session waits for resumption when the client asks for none (XEP-0198 `max`). */
  resumeTimeout: number;
  /** Upper bound on the `max` a client may ask for. */
  maxResumeTimeout: number;
  /** Unacked stanzas kept per session; beyond this the session ends (resource-constraint). */
  maxQueue: number;
  /** Ask for an ack (<r/>) once this many stanzas are unacked. */
  requestEvery: number;
  /** ...or once the oldest unacked stanza is this many seconds old. */
  requestAfter: number;
  /** Seconds to wait for the <a/> to our <r/> before treating the connection as dead (0 = never). */
  ackTimeout: number;
  /** Seconds an ended session's final h is remembered for <failed h=…/>. */
  keepEnded: number;
  /**
   * Milliseconds a running resumable session's checkpoint (counters, acked archive id) may lag
   * behind; 0 turns live checkpoints off (no resumption after kill -9). Archived stanzas never
   * wait this long: they are recorded in the next commit before they reach the wire.
   */
  checkpointLag: number;
}

export const SM_DEFAULTS: SmOptions = {
  resumeTimeout: 300,
  maxResumeTimeout: 900,
  maxQueue: 1000,
  requestEvery: 5,
  requestAfter: 5,
  ackTimeout: 60,
  keepEnded: 7 * 24 * 3600,
  checkpointLag: 200,
};

export function parseSmOptions(raw: Record<string, unknown>): SmOptions {
  const out: SmOptions = { ...SM_DEFAULTS };
  for (const [k, v] of Object.entries(raw)) {
    if (!Object.hasOwn(SM_DEFAULTS, k)) {
      throw new Error(`moduleOptions.sm.${k}: unknown option (known: ${Object.keys(SM_DEFAULTS).join(', ')})`);
    }
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) {
      throw new Error(`moduleOptions.sm.${k}: expected a number >= 0, got ${JSON.stringify(v)}`);
    }
    out[k as keyof SmOptions] = v;
  }
  if (out.maxQueue < 1) throw new Error('moduleOptions.sm.maxQueue: must be at least 1');
  if (out.requestEvery < 1) throw new Error('moduleOptions.sm.requestEvery: must be at least 1');
  if (out.maxResumeTimeout < out.resumeTimeout) out.maxResumeTimeout = out.resumeTimeout;
  return out;
}
