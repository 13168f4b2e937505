/**
 * A raw SASL2 / Bind2 / FAST client (XEP-0388, XEP-0386, XEP-0484) on the
 * raw test connection, for what no installed client library does: inline
 * MR2/carbons/CSI, inline resumption, channel binding, revoked tokens.
 */
import net from 'node:net';
import tls from 'node:tls';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { Element } from '@xmpp/xml';
import { RawConnection } from './client.js';

export const SASL2 = 'urn:xmpp:sasl:2';
export const BIND2 = 'urn:xmpp:bind:0';
export const FAST = 'urn:xmpp:fast:0';

export async function openRaw(port: number, secure = false): Promise<RawConnection> {
  const sock = await new Promise<net.Socket>((resolve, reject) => {
    const s = secure
      ? tls.connect({ port, host: '127.0.0.1', rejectUnauthorized: false, servername: 'localhost', ALPNProtocols: ['xmpp-client'] }, () => resolve(s))
      : net.connect({ port, host: '127.0.0.1' }, () => resolve(s));
    s.once('error', reject);
  });
  return new RawConnection(sock);
}

/** TLS channel-binding data as the client sees it (RFC 9266 / RFC 5929). */
export function clientChannelBinding(c: RawConnection, type: 'tls-exporter' | 'tls-server-end-point'): Buffer {
  const s = c.socket as tls.TLSSocket;
  if (type === 'tls-exporter') return s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
  return createHash('sha256').update(s.getPeerCertificate().raw).digest();
}

export interface AuthOptions {
  mechanism: string;
  initial: Buffer;
  agent?: string;
  /** Extra inline XML inside <authenticate/> (bind, resume, request-token, fast). */
  inline?: string;
}

/** Send <authenticate/>, return the server's first answer (challenge, success or failure). */
export async function authenticate(c: RawConnection, o: AuthOptions): Promise<Element> {
  const agent = o.agent ? `<user-agent id='${o.agent}'><software>verona-test</software></user-agent>` : '';
  c.send(`<authenticate xmlns='${SASL2}' mechanism='${o.mechanism}'><initial-response>${o.initial.toString('base64')}</initial-response>${agent}${o.inline ?? ''}</authenticate>`);
  return c.next((el) => ['challenge', 'success', 'failure', 'continue'].includes(String(el.name)));
}

export function plainInitial(user: string, password: string): Buffer {
  return Buffer.from(`\0${user}\0${password}`);
}

export function htInitial(user: string, token: string, cb: Buffer = Buffer.alloc(0)): Buffer {
  const mac = createHmac('sha256', Buffer.from(token, 'utf8')).update('Initiator').update(cb).digest();
  return Buffer.concat([Buffer.from(`${user}\0`), mac]);
}

export function htResponder(token: string, cb: Buffer = Buffer.alloc(0)): string {
  return createHmac('sha256', Buffer.from(token, 'utf8')).update('Responder').update(cb).digest('base64');
}

/** A SCRAM-SHA-256(-PLUS) exchange over SASL2; `cb` is what the client binds to (may be deliberately wrong). */
export function scram256(c: RawConnection, user: string, password: string, plus?: { type: string; data: Buffer }, inline = '', agent?: string): Promise<Element> {
  return scram(c, 'sha256', user, password, plus, inline, agent);
}

/** A SCRAM-SHA-1(-PLUS) or SCRAM-SHA-256(-PLUS) exchange over SASL2. */
export async function scram(c: RawConnection, hash: 'sha1' | 'sha256', user: string, password: string, plus?: { type: string; data: Buffer }, inline = '', agent?: string): Promise<Element> {
  const gs2 = plus ? `p=${plus.type},,` : 'n,,';
  const nonce = randomBytes(18).toString('base64');
  const first = `n=${user},r=${nonce}`;
  const name = hash === 'sha1' ? 'SCRAM-SHA-1' : 'SCRAM-SHA-256';
  const ch = await authenticate(c, { mechanism: plus ? `${name}-PLUS` : name, initial: Buffer.from(gs2 + first), inline, agent });
  if (ch.name !== 'challenge') return ch;
  const sf = Buffer.from(ch.text(), 'base64').toString('utf8');
  const attrs = Object.fromEntries(sf.split(',').map((a) => [a[0], a.slice(2)]));
  const cbind = Buffer.concat([Buffer.from(gs2), plus?.data ?? Buffer.alloc(0)]).toString('base64');
  const withoutProof = `c=${cbind},r=${String(attrs.r)}`;
  const salted = pbkdf2Sync(password, Buffer.from(String(attrs.s), 'base64'), Number(attrs.i), hash === 'sha1' ? 20 : 32, hash);
  const clientKey = createHmac(hash, salted).update('Client Key').digest();
  const storedKey = createHash(hash).update(clientKey).digest();
  const sig = createHmac(hash, storedKey).update(`${first},${sf},${withoutProof}`).digest();
  const proof = Buffer.from(clientKey.map((b, i) => b ^ (sig[i] as number)));
  c.send(`<response xmlns='${SASL2}'>${Buffer.from(`${withoutProof},p=${proof.toString('base64')}`).toString('base64')}</response>`);
  return c.next((el) => ['challenge', 'success', 'failure'].includes(String(el.name)));
}

/** The SASL failure condition of a <failure/>. */
export function failureOf(el: Element): string | undefined {
  return el.getChildElements().find((c) => c.getNS() === 'urn:ietf:params:xml:ns:xmpp-sasl')?.name;
}
