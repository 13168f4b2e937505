/**
 * Push to an app server on another domain (issue 13): two Verona processes on
 * the phone area's loopback addresses (127.0.30.1 and .2), a.localhost with
 * the phone's account and b.localhost hosting the push app server as a
 * component (push.b.localhost), found through `s2s.hosts` (no DNS). Dialback
 * with self-signed certificates, as between most servers and app servers.
 */
import { startFedServer, type FedServer } from './s2s-servers.js';
import { PushApp } from './push-app.js';

export const PHONE_S2S = { a: '127.0.30.1', b: '127.0.30.2' } as const;
export const APP_DOMAIN = 'push.b.localhost';
const APP_SECRET = 'phone-s2s-app-secret';

export interface PushFederation {
  A: FedServer;
  B: FedServer;
  app: PushApp;
  stop(): Promise<void>;
}

export async function startPushFederation(usersA: Array<[string, string]>): Promise<PushFederation> {
  const b = `${PHONE_S2S.b}:5269`;
  const [A, B] = await Promise.all([
    startFedServer({ domain: 'a.localhost', address: PHONE_S2S.a, peers: { 'b.localhost': b, [APP_DOMAIN]: b }, users: usersA }),
    startFedServer({
      domain: 'b.localhost',
      address: PHONE_S2S.b,
      peers: { 'a.localhost': `${PHONE_S2S.a}:5269` },
      config: { moduleOptions: { component: { port: 0, components: { [APP_DOMAIN]: { secret: APP_SECRET } } } } },
    }),
  ]);
  const app = await PushApp.connect(B.ports.component as number, APP_DOMAIN, APP_SECRET);
  return {
    A,
    B,
    app,
    async stop() {
      app.close();
      await Promise.all([A.stop(), B.stop()]);
      A.cleanup();
      B.cleanup();
    },
  };
}
