/**
 * The pure parts of federation, table by table: the s2s decisions
 * (src/s2s/policy.ts), the jabber:client <-> jabber:server translation
 * (src/s2s/ns.ts), dialback keys (src/s2s/dialback.ts, XEP-0185) and SRV
 * ordering (src/s2s/resolve.ts).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { bidiDecision, checkIncomingStanza, dialbackRequest, incomingFeatures, outgoingStep, type OutgoingView } from '../../src/s2s/policy.js';
import { fromServerNs, toServerNs, NS_SERVER } from '../../src/s2s/ns.js';
import { dialbackKey, dialbackKeyValid } from '../../src/s2s/dialback.js';
import { parseHostPort, resolveTargets, srvTargets } from '../../src/s2s/resolve.js';
import { serialize, x } from '../../src/xml/element.js';
import { parseXml } from '../../src/xml/parser.js';

describe('outgoingStep', () => {
  const base: OutgoingView = {
    starttls: false,
    external: false,
    dialback: true,
    secure: true,
    peerCertValid: false,
    requireTls: true,
    secureAuth: false,
    insecurePeer: false,
    externalFailed: false,
  };
  const rows: Array<[string, Partial<OutgoingView>, string, string]> = [
    ['TLS offered on a plain stream', { secure: false, starttls: true }, 'starttls', 'tls-offered'],
    ['no TLS offered, TLS required', { secure: false }, 'fail', 'peer-offers-no-tls'],
    ['no TLS offered, insecure peer', { secure: false, insecurePeer: true }, 'dialback', 'no-external'],
    ['no TLS, not required', { secure: false, requireTls: false }, 'dialback', 'no-external'],
    ['EXTERNAL offered', { external: true }, 'external', 'external-offered'],
    ['EXTERNAL refused: dialback', { external: true, externalFailed: true }, 'dialback', 'external-refused'],
    ['secureAuth, peer certificate invalid', { secureAuth: true }, 'fail', 'peer-certificate-invalid'],
    ['secureAuth, peer certificate valid', { secureAuth: true, peerCertValid: true, external: true }, 'external', 'external-offered'],
    ['secureAuth, insecure peer', { secureAuth: true, insecurePeer: true }, 'dialback', 'no-external'],
    ['nothing in common', { dialback: false }, 'fail', 'no-common-authentication'],
  ];
  for (const [name, v, action, reason] of rows) {
    test(name, () => assert.deepEqual(outgoingStep({ ...base, ...v }), { action, reason }));
  }
});

describe('incomingFeatures', () => {
  const base = { secure: false, canStartTls: true, requireTls: true, secureAuth: false, insecurePeer: false, peerCertTrusted: false };
  test('plain stream, TLS required: only STARTTLS (required)', () =>
    assert.deepEqual(incomingFeatures(base), { starttls: 'required', external: false, dialback: false }));
  test('plain stream, insecure peer: optional STARTTLS and dialback', () =>
    assert.deepEqual(incomingFeatures({ ...base, insecurePeer: true }), { starttls: 'optional', external: false, dialback: true }));
  test('TLS with a trusted certificate: EXTERNAL and dialback', () =>
    assert.deepEqual(incomingFeatures({ ...base, secure: true, peerCertTrusted: true }), { starttls: 'none', external: true, dialback: true }));
  test('TLS without a trusted certificate: dialback only', () =>
    assert.deepEqual(incomingFeatures({ ...base, secure: true }), { starttls: 'none', external: false, dialback: true }));
  test('secureAuth without a trusted certificate: nothing to authenticate with', () =>
    assert.deepEqual(incomingFeatures({ ...base, secure: true, secureAuth: true }), { starttls: 'none', external: false, dialback: false }));
});

describe('bidiDecision (XEP-0288: offer, request and accept)', () => {
  const base = { enabled: true, secure: true, requireTls: true, insecurePeer: false, authenticated: false };
  const rows: Array<[string, Partial<typeof base>, boolean, string]> = [
    ['TLS up, enabled', {}, true, 'offered'],
    ['s2s.bidi false', { enabled: false }, false, 'disabled'],
    ['before TLS, TLS required', { secure: false }, false, 'tls-required'],
    ['before TLS, insecure peer', { secure: false, insecurePeer: true }, true, 'offered-insecure-peer'],
    ['before TLS, TLS not required', { secure: false, requireTls: false }, true, 'offered-insecure-peer'],
    ['after a domain authenticated', { authenticated: true }, false, 'after-authentication'],
  ];
  for (const [name, v, use, reason] of rows) {
    test(name, () => assert.deepEqual(bidiDecision({ ...base, ...v }), { use, reason }));
  }
});

describe('dialbackRequest', () => {
  const base = { to: 'a.example', localDomain: 'a.example', secure: true, requireTls: true, secureAuth: false, insecurePeer: false, peerCertValidForFrom: false };
  const rows: Array<[string, Partial<typeof base>, string, string]> = [
    ['for another domain', { to: 'c.example' }, 'refuse', 'not-our-domain'],
    ['before TLS', { secure: false }, 'refuse', 'tls-required'],
    ['before TLS, insecure peer', { secure: false, insecurePeer: true }, 'verify', 'dialback'],
    ['certificate valid for the domain (XEP-0344)', { peerCertValidForFrom: true }, 'accept', 'certificate'],
    ['secureAuth without a valid certificate', { secureAuth: true }, 'refuse', 'secure-auth'],
    ['plain dialback', {}, 'verify', 'dialback'],
  ];
  for (const [name, v, action, reason] of rows) {
    test(name, () => {
      const d = dialbackRequest({ ...base, ...v });
      assert.equal(d.action, action);
      assert.equal(d.reason, reason);
    });
  }
});

describe('checkIncomingStanza', () => {
  const auth = new Set(['b.example']);
  const rows: Array<[string, ReadonlySet<string>, string | undefined, string | undefined, string]> = [
    ['nothing authenticated', new Set(), 'b.example', 'a.example', 'not-authorized'],
    ['no from', auth, undefined, 'a.example', 'improper-addressing'],
    ['no to', auth, 'b.example', undefined, 'improper-addressing'],
    ['from another domain', auth, 'evil.example', 'a.example', 'invalid-from'],
    ['to another domain', auth, 'b.example', 'c.example', 'host-unknown'],
  ];
  for (const [name, a, from, to, cond] of rows) {
    test(name, () => {
      const c = checkIncomingStanza(a, from, to, 'a.example');
      assert.equal(c.ok, false);
      if (!c.ok) assert.equal(c.condition, cond);
    });
  }
  test('from the authenticated domain to ours', () => assert.deepEqual(checkIncomingStanza(auth, 'b.example', 'a.example', 'a.example'), { ok: true }));
});

describe('namespace translation', () => {
  test('stanza-namespace children move, other namespaces and forwarded client messages stay', () => {
    const fwd = x('message', 'jabber:client', { to: 'c@d' }, [x('body', 'jabber:client', {}, ['inner'])]);
    const msg = x('message', 'jabber:client', { to: 'a@b' }, [
      x('body', 'jabber:client', {}, ['hi']),
      x('x', 'urn:other', {}, [x('forwarded', 'urn:xmpp:forward:0', {}, [fwd])]),
    ]);
    const wire = serialize(toServerNs(msg), NS_SERVER);
    assert.equal(wire, '<message to="a@b"><body>hi</body><x xmlns="urn:other"><forwarded xmlns="urn:xmpp:forward:0"><message xmlns="jabber:client" to="c@d"><body>inner</body></message></forwarded></x></message>');
    const back = fromServerNs(parseXml(`<message xmlns='${NS_SERVER}' to='a@b'><body>hi</body><error type='cancel'/></message>`));
    assert.equal(back.xmlns, 'jabber:client');
    assert.deepEqual(back.elements().map((c) => c.xmlns), ['jabber:client', 'jabber:client']);
  });
});

describe('dialback keys (XEP-0185)', () => {
  test('the XEP-0185 example key', () => {
    // XEP-0185 §3 example: secret 's3cr3tf0rd14lb4ck', receiving xmpp.example.com, originating example.org, stream id D60000229F.
    assert.equal(dialbackKey('s3cr3tf0rd14lb4ck', 'xmpp.example.com', 'example.org', 'D60000229F'), '37c69b1cf07a3f67c04a5ef5902fa5114f2c76fe4a2686482ba5b89323075643');
  });
  test('valid only for the same secret, domains and stream', () => {
    const k = dialbackKey('s', 'b', 'a', 'id1');
    assert.equal(dialbackKeyValid('s', 'b', 'a', 'id1', k), true);
    assert.equal(dialbackKeyValid('s', 'b', 'a', 'id2', k), false);
    assert.equal(dialbackKeyValid('t', 'b', 'a', 'id1', k), false);
    assert.equal(dialbackKeyValid('s', 'a', 'b', 'id1', k), false);
    assert.equal(dialbackKeyValid('s', 'b', 'a', 'id1', 'short'), false);
  });
});

describe('resolution', () => {
  test('s2s.hosts wins over DNS', async () =>
    assert.deepEqual(await resolveTargets('b.example', { 'b.example': '127.0.0.22:5269' }), [{ host: '127.0.0.22', port: 5269, directTls: false }]));
  test('s2s.hosts with tls: means direct TLS', async () =>
    assert.deepEqual(await resolveTargets('b.example', { 'b.example': 'tls:[::1]:5270' }), [{ host: '::1', port: 5270, directTls: true }]));
  test('host:port with IPv6', () => assert.deepEqual(parseHostPort('[::1]:5270'), { host: '::1', port: 5270 }));
  test('direct TLS first, then STARTTLS, each by priority then weight', () => {
    const t = srvTargets(
      [{ name: 'tls2', port: 5270, priority: 10, weight: 0 }],
      [
        { name: 'b', port: 5269, priority: 20, weight: 0 },
        { name: 'a', port: 5269, priority: 10, weight: 5 },
      ],
    );
    assert.deepEqual(t, [
      { host: 'tls2', port: 5270, directTls: true },
      { host: 'a', port: 5269, directTls: false },
      { host: 'b', port: 5269, directTls: false },
    ]);
  });
  test('a "." target means no service (RFC 2782)', () => assert.equal(srvTargets([], [{ name: '.', port: 0, priority: 0, weight: 0 }]), 'refused'));
});
