/**
 * A bound resource. Lives longer than the stream that carries it: stream
 * management resumption attaches the same Session to a new stream, so all
 * chat-state (MR2, carbons, CSI, presence, roster interest) lives here.
 */
import type { JID } from '../jid/jid.js';
import type { Element } from '../xml/element.js';
import type { SessionView } from './routing.js';

/**
 * One step of the outbound path. Returns the element to pass on, or null when
 * it took the element (e.g. CSI holds it). Filters run in ascending `order`;
 * SM sits last so it counts exactly what reaches the wire.
 */
export interface OutboundFilter {
  readonly name: string;
  readonly order: number;
  filter(el: Element, session: Session): Element | null;
}

/** The stream side of a session (C2SStream implements it). */
export interface SessionStream {
  readonly id: string;
  /**
   * Send an element to the client. A stanza (message/presence/iq) on a stream
   * with a bound session goes through that session's outbound filters, so
   * stream management counts it whoever wrote it (server pings, the
   * <session/> reply, bind results, module replies): there is one counted path.
   * Nonzas go straight to the wire.
   */
  write(el: Element): void;
  /** The end of the outbound path: straight to the transport, past every filter. Only Session and SM's replay use it. */
  writeWire(el: Element): void;
  /** Close the stream with a stream error condition (undefined = clean close). */
  closeWith(condition?: string, text?: string): void;
  readonly remoteAddress: string;
  readonly transportKind: string;
}

export class Session implements SessionView {
  readonly jid: JID;
  readonly username: string;
  stream: SessionStream;
  /** Stream id of the stream the session was created on (archive id prefix changes on resumption; see streamId). */
  readonly createdAt = Date.now();

  priority = 0;
  available = false;
  /** Last broadcast available presence (for probes and new sessions). */
  presence: Element | undefined;
  /** Requested the roster (RFC 6121 §2.1.6: "interested resource"). */
  interested = false;
  mr2 = false;
  carbons = false;
  csiInactive = false;
  /** JIDs that got directed presence from this session (RFC 6121 §4.6). */
  readonly directedTo = new Set<string>();
  /** Ended: no more delivery; kept only while SM may resume it. */
  closed = false;
  /** Module-private state, keyed by module name. */
  readonly data = new Map<string, unknown>();

  private filters: OutboundFilter[] = [];
  /**
   * Observer of every inbound stanza with the promise that settles when it is
   * handled (archived and routed). Stream management counts `h` with it.
   */
  onInbound: ((el: Element, handled: Promise<void>) => void) | undefined;
  /** Serialises inbound processing: delivery of stanza N+1 waits for stanza N. */
  inboundTail: Promise<void> = Promise.resolve();

  /** `username` is the account key (src/core/vhosts.ts): the localpart on the primary domain, user@domain on another hosted domain. */
  constructor(jid: JID, stream: SessionStream, username: string = jid.local) {
    this.jid = jid;
    this.username = username;
    this.stream = stream;
  }

  get resource(): string {
    return this.jid.resource;
  }

  get streamId(): string {
    return this.stream.id;
  }

  /**
   * The cluster node this session is bound on when it is a proxy of a session of another node
   * (src/cluster/registry.ts); undefined for a session of this process.
   */
  get remoteNode(): string | undefined {
    return undefined;
  }

  addFilter(f: OutboundFilter): void {
    this.filters = this.filters.filter((x) => x.name !== f.name);
    this.filters.push(f);
    this.filters.sort((a, b) => a.order - b.order);
  }

  removeFilter(name: string): void {
    this.filters = this.filters.filter((x) => x.name !== name);
  }

  /** Send a stanza to this resource through the outbound filters. */
  send(el: Element): void {
    let cur: Element | null = el;
    for (const f of this.filters) {
      cur = f.filter(cur, this);
      if (cur === null) return;
    }
    this.stream.writeWire(cur);
  }

  /** Send bypassing filters that run before `afterOrder` (used by CSI to release held stanzas). */
  sendFrom(afterOrder: number, el: Element): void {
    let cur: Element | null = el;
    for (const f of this.filters) {
      if (f.order <= afterOrder) continue;
      cur = f.filter(cur, this);
      if (cur === null) return;
    }
    this.stream.writeWire(cur);
  }

  getData<T>(module: string): T | undefined {
    return this.data.get(module) as T | undefined;
  }
}
