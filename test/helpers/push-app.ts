/**
 * A test push app server (XEP-0357 §7) connected as a real XEP-0114
 * component: it collects the pubsub publishes it receives and answers each
 * with a result (or the error the test asks for).
 */
import type { Element } from '@xmpp/xml';
import { connectComponent, type ComponentClient } from './component-client.js';

export interface Publish {
  iq: Element;
  node: string;
  /** The urn:xmpp:push:summary fields. */
  summary: Record<string, string>;
  /** The publish-options fields (the client's secret). */
  options: Record<string, string>;
}

function fields(form: Element | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const f of form?.getChildren('field') ?? []) out[String(f.attrs.var)] = f.getChildText('value') ?? '';
  return out;
}

const PUBSUB = 'http://jabber.org/protocol/pubsub';

export class PushApp {
  /** Answer the next publishes with this error instead of a result ('cancel' errors count towards dropping). */
  failWith: { type: string; condition: string } | undefined;

  constructor(readonly c: ComponentClient) {}

  static async connect(port: number, domain: string, secret: string): Promise<PushApp> {
    return new PushApp(await connectComponent(port, domain, secret));
  }

  private isPublish(node?: string) {
    return (el: Element): boolean => {
      const p = el.name === 'iq' ? el.getChild('pubsub', PUBSUB)?.getChild('publish') : undefined;
      return p !== undefined && (node === undefined || p.attrs.node === node);
    };
  }

  /** The next publish (for `node`), answered. */
  async next(node?: string, timeoutMs = 10000): Promise<Publish> {
    const iq = await this.c.next(this.isPublish(node), timeoutMs);
    const pubsub = iq.getChild('pubsub', PUBSUB) as Element;
    const publish = pubsub.getChild('publish') as Element;
    const summary = fields(publish.getChild('item')?.getChild('notification', 'urn:xmpp:push:0')?.getChild('x', 'jabber:x:data'));
    const options = fields(pubsub.getChild('publish-options')?.getChild('x', 'jabber:x:data'));
    const f = this.failWith;
    const reply = f
      ? `<iq type='error' id='${String(iq.attrs.id)}' from='${String(iq.attrs.to)}' to='${String(iq.attrs.from)}'><error type='${f.type}'><${f.condition} xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`
      : `<iq type='result' id='${String(iq.attrs.id)}' from='${String(iq.attrs.to)}' to='${String(iq.attrs.from)}'/>`;
    this.c.send(reply);
    return { iq, node: String(publish.attrs.node), summary, options };
  }

  /** No publish (for `node`) arrives within `ms`. */
  none(node?: string, ms = 800): Promise<void> {
    return this.c.nothing(this.isPublish(node), ms);
  }

  close(): void {
    this.c.close();
  }
}
