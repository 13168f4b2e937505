// The load driver over TLS (bench/driver/conn.ts): STARTTLS and direct TLS (XEP-0368) against a
// real Verona, SCRAM and PLAIN, and TLS session resumption on reconnect.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { TlsSessionStore, XmppConn, type TlsMode } from '../../bench/driver/conn.js';
import { pickMechanism } from '../../bench/driver/sasl.js';
import { startVerona, type Verona } from '../helpers/server.js';

let server: Verona;

before(async () => {
  server = await startVerona({ users: [['alice', 'wonderland']] });
});

after(async () => {
  await server.stop();
  server.cleanup();
});

function conn(tls: TlsMode, mech: 'PLAIN' | 'SCRAM', store?: TlsSessionStore): XmppConn {
  const port = tls === 'direct' ? server.ports['c2s-tls'] : server.ports['c2s'];
  assert.ok(port, 'the server reports its c2s ports');
  return new XmppConn({
    host: '127.0.0.1', port, domain: server.domain, user: 'alice', password: 'wonderland', resource: `r${Math.random()}`, mech, tls,
    ...(store ? { tlsSessions: store, tlsSessionKey: 'alice' } : {}),
  });
}

test('the strongest SCRAM offered is chosen, and a missing mechanism is refused', () => {
  assert.equal(pickMechanism('SCRAM', ['PLAIN', 'SCRAM-SHA-1', 'SCRAM-SHA-256']), 'SCRAM-SHA-256');
  assert.equal(pickMechanism('SCRAM', ['PLAIN', 'SCRAM-SHA-1']), 'SCRAM-SHA-1');
  assert.equal(pickMechanism('SCRAM', ['PLAIN']), null);
  assert.equal(pickMechanism('PLAIN', ['SCRAM-SHA-1']), null);
  assert.equal(pickMechanism('SCRAM-SHA-1', ['SCRAM-SHA-1', 'SCRAM-SHA-256']), 'SCRAM-SHA-1');
});

for (const tls of ['starttls', 'direct'] as const) {
  for (const mech of ['PLAIN', 'SCRAM'] as const) {
    test(`login over ${tls} with ${mech}`, async () => {
      const c = conn(tls, mech);
      try {
        await c.login({});
        assert.ok(c.tlsInfo, 'TLS is up');
        assert.match(c.tlsInfo.protocol ?? '', /^TLSv1\.[23]$/);
        assert.equal(c.tlsInfo.resumed, false, 'a first connection has nothing to resume');
        assert.equal(c.usedMech, mech === 'SCRAM' ? 'SCRAM-SHA-256' : 'PLAIN');
        assert.match(c.jid, /^alice@localhost\//);
      } finally {
        await c.close();
      }
    });
  }
}

test('plaintext stays plaintext', async () => {
  const c = conn('none', 'PLAIN');
  try {
    await c.login({});
    assert.equal(c.tlsInfo, null);
  } finally {
    await c.close();
  }
});

for (const tls of ['starttls', 'direct'] as const) {
  test(`a reconnecting client resumes its TLS session over ${tls}`, async () => {
    const store = new TlsSessionStore();
    const first = conn(tls, 'SCRAM', store);
    await first.login({});
    await first.close();
    // The server's tickets arrive after the handshake; login() ends with a round trip, so they are in.
    assert.equal(store.size, 1, 'the ticket is kept for the user');
    const second = conn(tls, 'SCRAM', store);
    try {
      await second.login({});
      assert.equal(second.tlsInfo?.resumed, true);
    } finally {
      await second.close();
    }
    // Without a store nothing is resumed.
    const third = conn(tls, 'SCRAM');
    try {
      await third.login({});
      assert.equal(third.tlsInfo?.resumed, false);
    } finally {
      await third.close();
    }
  });
}

test('STARTTLS refused by a server without it is an error, not a plaintext login', async () => {
  // The direct TLS port speaks TLS from the first byte: a plaintext client gets no features and
  // the driver must fail rather than carry on unencrypted.
  const c = new XmppConn({ host: '127.0.0.1', port: server.ports['c2s-tls'] as number, domain: server.domain, user: 'alice', password: 'wonderland', tls: 'starttls' });
  await assert.rejects(c.open(), /./);
  c.destroy();
});
