/** XEP-0199 XMPP Ping: answer pings to the server and to accounts (server-side pings live in the sweeper). */
import { NS } from '../core/namespaces.js';
import type { VeronaModule } from '../core/module.js';

export const pingModule: VeronaModule = {
  name: 'ping',
  load(api) {
    api.discoFeature(NS.PING);
    api.iq('server', 'get', NS.PING, () => undefined);
    // A ping to one's own bare JID is answered by the server (XEP-0199 §4.3 allows it).
    api.iq('account', 'get', NS.PING, (ctx) => {
      if (!ctx.self) return undefined;
      return undefined;
    });
  },
};
