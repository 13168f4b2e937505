/**
 * Login admission: at most `limit` c2s connections between accept and successful SASL at once;
 * later ones wait, unread, until one of those authenticates or goes away.
 *
 * Why: after a restart or a network blip thousands of clients reconnect in the same second.
 * Every one of them costs the event loop a TLS handshake, stream set-up and SASL; admitted all at
 * once, each turn of the loop carries hundreds of those steps, and a message for a user who is
 * already online waits behind them (the login storm of docs/benchmarks.md). Bounding the logins
 * in progress bounds that work per turn; logins/s stay what the CPU allows, since the CPU is the
 * limit either way. A waiting client sees a slower connect (its bytes sit in the kernel), not an
 * error.
 */
export class LoginGate {
  private active = 0;
  private readonly waiting: Array<{ start: () => void; state: 'waiting' | 'in' | 'out' }> = [];

  /** limit <= 0: no limit. */
  constructor(readonly limit: number) {}

  get inProgress(): number {
    return this.active;
  }

  get queued(): number {
    return this.waiting.length;
  }

  /**
   * `start` runs now if a slot is free, else when one frees. The returned release frees the
   * slot (or drops the entry from the queue); calling it again does nothing.
   */
  enter(start: () => void): () => void {
    const e = { start, state: 'waiting' as 'waiting' | 'in' | 'out' };
    if (this.limit <= 0 || this.active < this.limit) this.admit(e);
    else this.waiting.push(e);
    return () => {
      if (e.state === 'in') {
        e.state = 'out';
        this.active--;
        this.next();
      } else if (e.state === 'waiting') {
        e.state = 'out';
        const i = this.waiting.indexOf(e);
        if (i >= 0) this.waiting.splice(i, 1);
      }
    };
  }

  private admit(e: { start: () => void; state: 'waiting' | 'in' | 'out' }): void {
    e.state = 'in';
    this.active++;
    e.start();
  }

  private next(): void {
    while (this.active < this.limit || this.limit <= 0) {
      const e = this.waiting.shift();
      if (e === undefined) return;
      if (e.state === 'waiting') this.admit(e);
    }
  }
}
