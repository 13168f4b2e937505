/**
 * Typed, prioritised hooks (Prosody's module:hook is the model).
 *
 * Handlers run synchronously in priority order, highest first; a handler
 * that returns `true` has handled the event and stops the chain. Work that
 * must finish before a stanza is delivered (an archive commit) is not
 * awaited here: a handler pushes its promise into the event's `waits`, and
 * the router awaits those before the delivery phase. Keeping hooks
 * synchronous keeps per-session ordering trivial and the hot path cheap.
 */
export type HookHandler<E> = (event: E) => boolean | void;

interface Entry<E> {
  handler: HookHandler<E>;
  priority: number;
  owner: string;
}

export class Hooks<Events extends object> {
  private readonly table = new Map<keyof Events, Entry<never>[]>();
  private readonly onError: (name: string, owner: string, err: unknown) => void;

  constructor(onError: (name: string, owner: string, err: unknown) => void) {
    this.onError = onError;
  }

  on<K extends keyof Events>(name: K, handler: HookHandler<Events[K]>, priority = 0, owner = 'core'): () => void {
    const list = (this.table.get(name) ?? []) as Entry<Events[K]>[];
    const entry: Entry<Events[K]> = { handler, priority, owner };
    list.push(entry);
    // Stable sort: equal priorities keep registration order.
    list.sort((a, b) => b.priority - a.priority);
    this.table.set(name, list as Entry<never>[]);
    return () => {
      const cur = this.table.get(name) as Entry<Events[K]>[] | undefined;
      if (cur) {
        const i = cur.indexOf(entry);
        if (i >= 0) cur.splice(i, 1);
      }
    };
  }

  /**
   * Run the handlers; returns true when one handled the event. A handler
   * that throws is logged and skipped, unless `rethrow` is set (the router
   * sets it for stanza hooks so a StanzaError becomes an error reply).
   */
  fire<K extends keyof Events>(name: K, event: Events[K], rethrow = false): boolean {
    const list = this.table.get(name) as Entry<Events[K]>[] | undefined;
    if (!list) return false;
    for (const e of list) {
      try {
        if (e.handler(event) === true) return true;
      } catch (err) {
        if (rethrow) throw err;
        this.onError(String(name), e.owner, err);
      }
    }
    return false;
  }

  has<K extends keyof Events>(name: K): boolean {
    const list = this.table.get(name);
    return list !== undefined && list.length > 0;
  }

  /** For docs and tests: the handler owners of a hook in run order. */
  owners<K extends keyof Events>(name: K): string[] {
    return (this.table.get(name) ?? []).map((e) => `${e.owner}@${e.priority}`);
  }
}
