/**
 * XEP-0198 (Stream Management, urn:xmpp:sm:3, version 1.6) counters and the
 * unacked queue of one session, without I/O: unit-tested on its own,
 * including the wrap of `h` at 2^32.
 *
 * Counters are kept as plain integers that never wrap (2^53 stanzas is out of
 * reach) and are reduced mod 2^32 only where they meet the wire, so every
 * comparison inside the server is a simple `<=`.
 */
import type { Element } from '../../xml/element.js';

export const H_MOD = 2 ** 32;

/** `h` as it is written on the wire: the count mod 2^32. */
export function wireH(count: number): number {
  return count % H_MOD;
}

/** Parse an `h` attribute: an unsigned 32-bit decimal integer, else undefined. */
export function parseH(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,10}$/.test(v)) return undefined;
  const n = Number(v);
  return n < H_MOD ? n : undefined;
}

export interface AckResult {
  ok: boolean;
  /** Stanzas the ack released from the queue (oldest first). */
  acked: Element[];
  /** On failure: what the client claimed and what we sent, both as wire values. */
  claimed?: number;
  sent?: number;
}

export class SmCounters {
  /** Stanzas sent to the client since enable (outbound count). */
  outCount: number;
  /** Of those, acknowledged by the client. */
  outAcked: number;
  /** Unacked outbound stanzas; queue[i] is stanza number outAcked + i + 1. */
  readonly queue: Element[] = [];
  /** Inbound stanzas received since enable. */
  inReceived: number;
  /** Inbound stanzas handled (archived and routed), always in order. */
  inHandled: number;

  /** `start` lets tests begin near 2^32 to exercise the wrap. */
  constructor(start = 0) {
    this.outCount = start;
    this.outAcked = start;
    this.inReceived = start;
    this.inHandled = start;
  }

  /** Record an outbound stanza; returns the queue length. */
  sent(el: Element): number {
    this.outCount++;
    this.queue.push(el);
    return this.queue.length;
  }

  /**
   * Apply an `h` from the client (<a/> or <resume/>). Valid when it acks at
   * most what is still queued: the distance from the last ack, mod 2^32.
   * An `h` behind the last ack (within half the counter space) is stale, not
   * wrong: two instances of a client resuming the same session at once each
   * report what they saw. It acks nothing new. Anything else claims stanzas
   * that were never sent (XEP-0198 §4: undefined-condition).
   */
  ack(h: number): AckResult {
    const delta = (h - wireH(this.outAcked) + H_MOD) % H_MOD;
    if (delta > this.queue.length) {
      const behind = (wireH(this.outAcked) - h + H_MOD) % H_MOD;
      if (behind <= this.outAcked && behind < H_MOD / 2) return { ok: true, acked: [] };
      return { ok: false, acked: [], claimed: h, sent: wireH(this.outCount) };
    }
    const acked = this.queue.splice(0, delta);
    this.outAcked += delta;
    return { ok: true, acked };
  }

  /** Number the next inbound stanza gets (for waiting on it). */
  received(): number {
    return ++this.inReceived;
  }

  /** Mark the next inbound stanza handled (callers keep them in order). */
  handled(): number {
    return ++this.inHandled;
  }

  get h(): number {
    return wireH(this.inHandled);
  }
}
