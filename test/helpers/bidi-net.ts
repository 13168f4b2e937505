/**
 * Helpers of the XEP-0288 tests: how many TCP connections really exist
 * between federated servers (read from the kernel with `ss`, iproute2,
 * listed in .ci/apt.d/bidi), and a minimal logged-in Prosody client.
 */
import { execFileSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { connectRaw, type RawConnection } from './client.js';
import type { Prosody } from './s2s-prosody.js';

/**
 * Established TCP connections accepted on `listeners` ("addr:port" each).
 * On loopback both ends of a connection are local, so each one is listed
 * twice by `ss`; only the accepting end has the listener's address and port
 * as its local side, so each connection is counted once.
 */
export function acceptedConnections(listeners: readonly string[]): number {
  const out = execFileSync('ss', ['-Htn', 'state', 'established'], { encoding: 'utf8' });
  let n = 0;
  for (const line of out.split('\n')) {
    const cols = line.trim().split(/\s+/);
    // Recv-Q Send-Q Local:Port Peer:Port
    const local = cols[2];
    if (local !== undefined && listeners.includes(local)) n++;
  }
  return n;
}

/** A plain client of Prosody (PLAIN without TLS, as the test config allows), bound, with its roster, available. */
export async function prosodyClient(p: Prosody, user: string, password: string, resource: string): Promise<RawConnection> {
  const c = await connectRaw(p.c2sPort, p.address);
  await c.open(p.domain);
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${password}`).toString('base64')}</auth>`);
  const r = await c.next((el) => el.name === 'success' || el.name === 'failure', 20000);
  assert.equal(r.name, 'success', `login to Prosody: ${r.toString()}`);
  await c.open(p.domain);
  c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await c.next((el) => el.name === 'iq' && el.attrs.id === 'bind', 20000);
  // Prosody echoes presence only to resources that fetched the roster.
  c.send(`<iq type='get' id='roster'><query xmlns='jabber:iq:roster'/></iq>`);
  await c.next((el) => el.name === 'iq' && el.attrs.id === 'roster', 20000);
  c.send(`<presence/>`);
  await c.next((el) => el.name === 'presence' && String(el.attrs.from).startsWith(`${user}@`), 20000);
  return c;
}
