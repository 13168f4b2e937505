/**
 * Presence subscription states (RFC 6121 §3 and Appendix A) as pure
 * functions: a state and a subscription stanza in, the next state out, with
 * whether the stanza goes on and the reason. No I/O: the roster service
 * applies the result (store, roster push, delivery, presence side effects).
 *
 * A state is the RFC's "None/To/From/Both" plus the Pending Out ('ask'),
 * Pending In and pre-approval flags. Invariants kept by every transition:
 * Pending In only without a 'from' half (a contact already allowed to see the
 * user's presence has nothing to ask), Pending Out only without a 'to' half,
 * and pre-approval only without 'from'.
 *
 * "outbound" = the user sends the stanza to the contact (Appendix A.2 for
 * subscribed/unsubscribed; §3.1.2 and §3.3.2 for subscribe/unsubscribe, which
 * are always routed). "inbound" = the stanza arrives from the contact
 * (Appendix A.3).
 */
import type { Subscription } from '../../storage/roster.js';

export type { Subscription };

export type SubscriptionType = 'subscribe' | 'subscribed' | 'unsubscribe' | 'unsubscribed';

export interface ContactState {
  subscription: Subscription;
  /** Pending Out: the user asked to see the contact's presence. */
  pendingOut: boolean;
  /** Pending In: the contact asked to see the user's presence and the user has not answered. */
  pendingIn: boolean;
  /** Pre-approved (RFC 6121 §3.4). */
  approved: boolean;
}

export const NO_STATE: ContactState = Object.freeze({ subscription: 'none', pendingOut: false, pendingIn: false, approved: false });

export interface Transition {
  next: ContactState;
  /** Outbound: route the stanza to the contact. Inbound: deliver it to the user's resources. */
  forward: boolean;
  /** Some part of the state changed (store it). */
  changed: boolean;
  /** A part that the roster item shows (subscription, ask, approved) changed: roster push. */
  itemChanged: boolean;
  /** Inbound subscribe: the server answers 'subscribed' for the user (§3.1.3 rule 2, §3.4). */
  autoReply?: 'subscribed';
  /**
   * Presence side effect towards the contact (RFC 6121 §3.1.5, §3.2.2, §3.3.3, §3.4):
   * 'available' = send the current presence of the user's available resources,
   * 'unavailable' = send unavailable from each of them.
   */
  presence?: 'available' | 'unavailable';
  reason: string;
}

export function hasTo(s: Subscription): boolean {
  return s === 'to' || s === 'both';
}

export function hasFrom(s: Subscription): boolean {
  return s === 'from' || s === 'both';
}

function sub(to: boolean, from: boolean): Subscription {
  return to ? (from ? 'both' : 'to') : from ? 'from' : 'none';
}

function result(prev: ContactState, next: ContactState, forward: boolean, reason: string, extra?: Partial<Transition>): Transition {
  const itemChanged = prev.subscription !== next.subscription || prev.pendingOut !== next.pendingOut || prev.approved !== next.approved;
  const changed = itemChanged || prev.pendingIn !== next.pendingIn;
  return { next, forward, changed, itemChanged, reason, ...extra };
}

/** The user sends a subscription stanza to the contact. */
export function outbound(s: ContactState, type: SubscriptionType): Transition {
  const to = hasTo(s.subscription);
  const from = hasFrom(s.subscription);
  switch (type) {
    case 'subscribe':
      // §3.1.2: always routed (the contact's server may have lost the state).
      if (to) return result(s, s, true, 'already-subscribed');
      if (s.pendingOut) return result(s, s, true, 'already-pending');
      return result(s, { ...s, pendingOut: true }, true, 'pending-out');
    case 'unsubscribe':
      // §3.3.2: always routed; drops the 'to' half and any Pending Out.
      if (!to && !s.pendingOut) return result(s, s, true, 'not-subscribed');
      return result(s, { ...s, subscription: sub(false, from), pendingOut: false }, true, to ? 'unsubscribed-to' : 'request-cancelled');
    case 'subscribed':
      // Appendix A.2.1.
      if (from) return result(s, s, false, 'already-approved');
      if (s.pendingIn) {
        return result(s, { ...s, subscription: sub(to, true), pendingIn: false, approved: false }, true, 'approved', { presence: 'available' });
      }
      if (s.approved) return result(s, s, false, 'already-pre-approved');
      return result(s, { ...s, approved: true }, false, 'pre-approved');
    case 'unsubscribed':
      // Appendix A.2.2; in the no-change rows a pre-approval is cancelled (§3.4).
      if (from) {
        return result(s, { ...s, subscription: sub(to, false), pendingIn: false, approved: false }, true, 'cancelled-from', { presence: 'unavailable' });
      }
      if (s.pendingIn) return result(s, { ...s, pendingIn: false, approved: false }, true, 'denied');
      if (s.approved) return result(s, { ...s, approved: false }, false, 'pre-approval-cancelled');
      return result(s, s, false, 'nothing-to-cancel');
  }
}

/** A subscription stanza from the contact arrives for the user. */
export function inbound(s: ContactState, type: SubscriptionType): Transition {
  const to = hasTo(s.subscription);
  const from = hasFrom(s.subscription);
  switch (type) {
    case 'subscribe':
      // Appendix A.3.1 and §3.1.3.
      if (from) return result(s, s, false, 'already-approved', { autoReply: 'subscribed', presence: 'available' });
      if (s.approved) {
        return result(s, { ...s, subscription: sub(to, true), approved: false, pendingIn: false }, false, 'pre-approved', {
          autoReply: 'subscribed',
          presence: 'available',
        });
      }
      if (s.pendingIn) return result(s, s, false, 'already-pending');
      return result(s, { ...s, pendingIn: true }, true, 'pending-in');
    case 'unsubscribe':
      // Appendix A.3.2: the contact no longer wants the user's presence (or withdraws its request).
      if (from) return result(s, { ...s, subscription: sub(to, false) }, true, 'unsubscribed-from', { presence: 'unavailable' });
      if (s.pendingIn) return result(s, { ...s, pendingIn: false }, true, 'request-withdrawn');
      return result(s, s, false, 'not-subscribed');
    case 'subscribed':
      // Appendix A.3.3: only an outstanding request can be approved.
      if (!s.pendingOut || to) return result(s, s, false, 'not-requested');
      return result(s, { ...s, subscription: sub(true, from), pendingOut: false }, true, 'approved');
    case 'unsubscribed':
      // Appendix A.3.4: the contact cancels the user's subscription or denies the request.
      if (!to && !s.pendingOut) return result(s, s, false, 'not-subscribed');
      return result(s, { ...s, subscription: sub(false, from), pendingOut: false }, true, to ? 'cancelled-to' : 'denied');
  }
}

export function isSubscriptionType(t: string | undefined): t is SubscriptionType {
  return t === 'subscribe' || t === 'subscribed' || t === 'unsubscribe' || t === 'unsubscribed';
}

/** RFC 6121 Appendix A state names, for logs and tests ("None + Pending Out/In"). */
export function stateName(s: ContactState): string {
  const base = s.subscription === 'none' ? 'None' : s.subscription === 'to' ? 'To' : s.subscription === 'from' ? 'From' : 'Both';
  const pend = s.pendingOut && s.pendingIn ? ' + Pending Out/In' : s.pendingOut ? ' + Pending Out' : s.pendingIn ? ' + Pending In' : '';
  return base + pend + (s.approved ? ' + Pre-Approved' : '');
}

/** Parse a state name back (tests write tables with the RFC's names). */
export function parseState(name: string): ContactState {
  const approved = name.includes('Pre-Approved');
  const base = name.split(' ')[0]?.toLowerCase() as Subscription;
  if (!['none', 'to', 'from', 'both'].includes(base)) throw new Error(`bad state ${name}`);
  return {
    subscription: base,
    pendingOut: /Pending Out/.test(name),
    pendingIn: /Pending (In|Out\/In)/.test(name),
    approved,
  };
}
