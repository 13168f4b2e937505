/**
 * Raw-client steps shared by the certificate reload tests (SIGHUP in
 * cert-reload.test.ts, file watching in cert-watch.test.ts): a direct-TLS
 * connection that reports the certificate the server showed, a PLAIN login
 * with bind, a ping, and waiting for a server log line.
 */
import assert from 'node:assert/strict';
import tls from 'node:tls';
import { RawConnection, nextId } from './client.js';

/** Direct TLS to `host:port` (SNI localhost, certificate not verified): the connection and the server certificate's SHA-256 fingerprint. */
export function directTls(host: string, port: number, alpn?: string[]): Promise<{ conn: RawConnection; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host, port, servername: 'localhost', rejectUnauthorized: false, ...(alpn ? { ALPNProtocols: alpn } : {}) }, () => {
      resolve({ conn: new RawConnection(s), fingerprint: s.getPeerX509Certificate()?.fingerprint256 ?? '' });
    });
    s.once('error', reject);
  });
}

/** SASL PLAIN as romeo/r0meo, then bind; asserts each step succeeds. */
export async function login(c: RawConnection): Promise<void> {
  await c.open();
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from('\0romeo\0r0meo').toString('base64')}</auth>`);
  assert.equal((await c.next((el) => el.name === 'success' || el.name === 'failure', 30_000)).name, 'success');
  await c.open();
  const id = nextId();
  c.send(`<iq type='set' id='${id}'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
  assert.equal((await c.next((el) => el.attrs.id === id, 30_000)).attrs.type, 'result');
}

/** XEP-0199 ping to the server; the answer's type. */
export async function ping(c: RawConnection): Promise<string> {
  const id = nextId();
  c.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  return (await c.next((el) => el.attrs.id === id, 30_000)).attrs.type ?? '';
}

/** The first line of `out` from index `from` on that matches `re`, waiting up to `timeoutMs`. */
export function waitForLine(out: string[], re: RegExp, from: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + timeoutMs;
    const check = (): void => {
      const hit = out.slice(from).find((l) => re.test(l));
      if (hit !== undefined) return resolve(hit);
      if (Date.now() > deadline) return reject(new Error(`no log line ${re}:\n${out.slice(from).join('\n')}`));
      setTimeout(check, 100);
    };
    check();
  });
}
