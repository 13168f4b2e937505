/**
 * SCRAM-SHA-1 / SCRAM-SHA-256 server (RFC 5802, RFC 7677): the RFC test
 * vectors, full exchanges against an independent client written here from
 * RFC 5802 §3, and every way a client can get it wrong.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, createHmac, pbkdf2Sync, randomBytes } from 'node:crypto';
import type { CredentialLookup, SaslMechanism, SaslStep } from '../../src/sasl/contract.js';
import type { AccountRecord } from '../../src/storage/types.js';
import { deriveAllScram, deriveScram } from '../../src/sasl/credentials.js';
import { ScramServer, decodeSaslName, encodeSaslName } from '../../src/sasl/scram.js';
import { MECHANISM_NAMES, createMechanism } from '../../src/sasl/mechanisms.js';

type Hash = 'SHA-1' | 'SHA-256';
const algo = (h: Hash): string => (h === 'SHA-1' ? 'sha1' : 'sha256');
const SECRET = Buffer.from('0123456789abcdef0123456789abcdef');
const DOMAIN = 'example.com';

/** In-memory accounts: a real implementation of the lookup interface. */
class MemoryLookup implements CredentialLookup {
  readonly accounts = new Map<string, AccountRecord>();
  readonly asked: string[] = [];
  async getAccount(username: string): Promise<AccountRecord | undefined> {
    this.asked.push(username);
    return this.accounts.get(username);
  }
  async add(username: string, password: string, iterations = 4096): Promise<void> {
    this.accounts.set(username, { username, createdAt: 0, scram: await deriveAllScram(password, iterations) });
  }
}

/** A SCRAM client per RFC 5802 §3, independent of the server code. */
class ScramClient {
  readonly clientNonce: string;
  clientFirstBare = '';
  authMessage = '';
  saltedPassword = Buffer.alloc(0);
  constructor(
    readonly hash: Hash,
    readonly user: string,
    readonly password: string,
    readonly gs2Header = 'n,,',
    nonce?: string,
  ) {
    this.clientNonce = nonce ?? randomBytes(18).toString('base64');
  }
  first(): Buffer {
    const name = this.user.replace(/=/g, '=3D').replace(/,/g, '=2C');
    this.clientFirstBare = `n=${name},r=${this.clientNonce}`;
    return Buffer.from(this.gs2Header + this.clientFirstBare);
  }
  /** client-final-message; `over` tampers with single fields. */
  final(serverFirst: Buffer, over: { c?: string; r?: string; ext?: string; proof?: (p: Buffer) => Buffer } = {}): Buffer {
    const sf = serverFirst.toString('utf8');
    const attrs = Object.fromEntries(sf.split(',').map((a) => [a[0], a.slice(2)]));
    assert.ok(attrs.r.startsWith(this.clientNonce), 'server nonce must extend ours');
    const salt = Buffer.from(attrs.s, 'base64');
    const c = over.c ?? Buffer.from(this.gs2Header).toString('base64');
    const withoutProof = `c=${c},r=${over.r ?? attrs.r}${over.ext ?? ''}`;
    this.authMessage = `${this.clientFirstBare},${sf},${withoutProof}`;
    this.saltedPassword = pbkdf2Sync(this.password, salt, Number(attrs.i), this.hash === 'SHA-1' ? 20 : 32, algo(this.hash));
    const clientKey = createHmac(algo(this.hash), this.saltedPassword).update('Client Key').digest();
    const storedKey = createHash(algo(this.hash)).update(clientKey).digest();
    const sig = createHmac(algo(this.hash), storedKey).update(this.authMessage).digest();
    let proof: Buffer = Buffer.from(clientKey.map((b, i) => b ^ sig[i]));
    if (over.proof) proof = over.proof(proof);
    return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`);
  }
  serverFinal(): string {
    const serverKey = createHmac(algo(this.hash), this.saltedPassword).update('Server Key').digest();
    return `v=${createHmac(algo(this.hash), serverKey).update(this.authMessage).digest('base64')}`;
  }
}

async function exchange(mech: SaslMechanism, client: ScramClient, over: Parameters<ScramClient['final']>[1] = {}): Promise<SaslStep> {
  const s1 = await mech.start(client.first());
  if (s1.kind !== 'challenge') return s1;
  return mech.step(client.final(s1.data, over));
}

function server(hash: Hash, lookup: CredentialLookup, extra: Partial<ConstructorParameters<typeof ScramServer>[2]> = {}): ScramServer {
  return new ScramServer(hash, lookup, { domain: DOMAIN, secret: SECRET, ...extra });
}

const failure = (condition: string): { kind: string; condition: string } => ({ kind: 'failure', condition });
function assertFailure(step: SaslStep, condition: string): void {
  assert.equal(step.kind, 'failure', `expected failure ${condition}, got ${JSON.stringify(step)}`);
  assert.deepEqual({ kind: step.kind, condition: step.kind === 'failure' ? step.condition : '' }, failure(condition));
}

describe('RFC test vectors', () => {
  test('RFC 5802 §5 SCRAM-SHA-1 exchange for user/pencil', async () => {
    const lookup = new MemoryLookup();
    const sha1 = await deriveScram('pencil', 'SHA-1', 4096, Buffer.from('QSXCR+Q6sek8bf92', 'base64'));
    const sha256 = await deriveScram('pencil', 'SHA-256', 4096);
    lookup.accounts.set('user', { username: 'user', createdAt: 0, scram: { 'SHA-1': sha1, 'SHA-256': sha256 } });
    const mech = server('SHA-1', lookup, { nonce: () => '3rfcNHYJY1ZVvWVs7j' });
    assert.equal(mech.name, 'SCRAM-SHA-1');

    const s1 = await mech.start(Buffer.from('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'));
    assert.equal(s1.kind, 'challenge');
    assert.equal(s1.kind === 'challenge' && s1.data.toString(), 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    const s2 = await mech.step(
      Buffer.from('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
    );
    assert.equal(s2.kind, 'success');
    assert.equal(s2.kind === 'success' && s2.username, 'user');
    assert.equal(s2.kind === 'success' && s2.data?.toString(), 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
  });

  test('RFC 7677 §3 SCRAM-SHA-256 exchange for user/pencil', async () => {
    const lookup = new MemoryLookup();
    const sha256 = await deriveScram('pencil', 'SHA-256', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    const sha1 = await deriveScram('pencil', 'SHA-1', 4096);
    lookup.accounts.set('user', { username: 'user', createdAt: 0, scram: { 'SHA-1': sha1, 'SHA-256': sha256 } });
    const mech = server('SHA-256', lookup, { nonce: () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    assert.equal(mech.name, 'SCRAM-SHA-256');

    const s1 = await mech.start(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    assert.equal(
      s1.kind === 'challenge' && s1.data.toString(),
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    const s2 = await mech.step(
      Buffer.from(
        'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      ),
    );
    assert.equal(s2.kind, 'success');
    assert.equal(s2.kind === 'success' && s2.data?.toString(), 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });

  test('the vector\'s proof fails for a wrong stored password', async () => {
    const lookup = new MemoryLookup();
    const salt = Buffer.from('QSXCR+Q6sek8bf92', 'base64');
    lookup.accounts.set('user', {
      username: 'user',
      createdAt: 0,
      scram: { 'SHA-1': await deriveScram('pencil2', 'SHA-1', 4096, salt), 'SHA-256': await deriveScram('x', 'SHA-256', 4096) },
    });
    const mech = server('SHA-1', lookup, { nonce: () => '3rfcNHYJY1ZVvWVs7j' });
    await mech.start(Buffer.from('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'));
    const s2 = await mech.step(
      Buffer.from('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
    );
    assertFailure(s2, 'not-authorized');
  });
});

for (const hash of ['SHA-1', 'SHA-256'] as const) {
  describe(`SCRAM-${hash} exchanges`, () => {
    let lookup: MemoryLookup;
    const setup = async (): Promise<void> => {
      lookup = new MemoryLookup();
      await lookup.add('juliet', 'r0m30 & s3cret', 4096);
      await lookup.add('a,b=c', 'pw', 4096);
    };

    test('correct password succeeds and the server signature verifies', async () => {
      await setup();
      const client = new ScramClient(hash, 'juliet', 'r0m30 & s3cret');
      const step = await exchange(server(hash, lookup), client);
      assert.equal(step.kind, 'success');
      assert.equal(step.kind === 'success' && step.username, 'juliet');
      assert.equal(step.kind === 'success' && step.data?.toString(), client.serverFinal());
    });

    test('without an initial response the server sends an empty challenge first', async () => {
      await setup();
      const mech = server(hash, lookup);
      const s0 = await mech.start(undefined);
      assert.deepEqual(s0, { kind: 'challenge', data: Buffer.alloc(0) });
      const client = new ScramClient(hash, 'juliet', 'r0m30 & s3cret');
      const s1 = await mech.step(client.first());
      assert.equal(s1.kind, 'challenge');
      const s2 = await mech.step(client.final(s1.kind === 'challenge' ? s1.data : Buffer.alloc(0)));
      assert.equal(s2.kind, 'success');
    });

    test('username is prepared like a localpart (case folded)', async () => {
      await setup();
      const step = await exchange(server(hash, lookup), new ScramClient(hash, 'JuLiEt', 'r0m30 & s3cret'));
      assert.equal(step.kind === 'success' && step.username, 'juliet');
      assert.deepEqual(lookup.asked, ['juliet']);
    });

    test('usernames with , and = travel escaped as =2C and =3D', async () => {
      await setup();
      const client = new ScramClient(hash, 'a,b=c', 'pw');
      assert.match(client.first().toString(), /n=a=2Cb=3Dc,/);
      const step = await exchange(server(hash, lookup), client);
      assert.equal(step.kind === 'success' && step.username, 'a,b=c');
    });

    test('the server nonce is fresh per exchange and extends the client nonce', async () => {
      await setup();
      const nonces = new Set<string>();
      for (let i = 0; i < 3; i++) {
        const s1 = await server(hash, lookup).start(Buffer.from('n,,n=juliet,r=abc'));
        const r = s1.kind === 'challenge' ? s1.data.toString().split(',')[0] : '';
        assert.match(r, /^r=abc.{16,}$/);
        nonces.add(r);
      }
      assert.equal(nonces.size, 3);
    });

    test('wrong password fails with not-authorized', async () => {
      await setup();
      assertFailure(await exchange(server(hash, lookup), new ScramClient(hash, 'juliet', 'wrong')), 'not-authorized');
    });

    test('a tampered proof fails with not-authorized', async () => {
      await setup();
      const client = new ScramClient(hash, 'juliet', 'r0m30 & s3cret');
      const step = await exchange(server(hash, lookup), client, {
        proof: (p) => {
          p[0] ^= 1;
          return p;
        },
      });
      assertFailure(step, 'not-authorized');
    });

    test('a proof of the wrong length is malformed', async () => {
      await setup();
      const client = new ScramClient(hash, 'juliet', 'r0m30 & s3cret');
      assertFailure(await exchange(server(hash, lookup), client, { proof: (p) => p.subarray(1) }), 'malformed-request');
    });

    test('a nonce that differs from the combined nonce is refused', async () => {
      await setup();
      const client = new ScramClient(hash, 'juliet', 'r0m30 & s3cret', 'n,,', 'clientnonce');
      // keeps the client prefix but changes the server part
      assertFailure(await exchange(server(hash, lookup), client, { r: 'clientnonceXYZ' }), 'malformed-request');
      // only the client nonce
      assertFailure(await exchange(server(hash, lookup), client, { r: 'clientnonce' }), 'malformed-request');
      // a proof computed over the bad nonce is still not accepted later
      const mech = server(hash, lookup, { nonce: () => 'SERVER' });
      const s1 = await mech.start(client.first());
      const bad = client.final(s1.kind === 'challenge' ? s1.data : Buffer.alloc(0), { r: 'otherSERVER' });
      assertFailure(await mech.step(bad), 'malformed-request');
    });

    test('c= must repeat the GS2 header', async () => {
      await setup();
      const client = new ScramClient(hash, 'juliet', 'r0m30 & s3cret');
      const y = Buffer.from('y,,').toString('base64');
      assertFailure(await exchange(server(hash, lookup), client, { c: y }), 'malformed-request');
      assertFailure(await exchange(server(hash, lookup), client, { c: 'not base64!' }), 'malformed-request');
      const withAuthz = new ScramClient(hash, 'juliet', 'r0m30 & s3cret', 'n,a=juliet,');
      assertFailure(await exchange(server(hash, lookup), withAuthz, { c: 'biws' }), 'malformed-request');
    });

    test('channel binding flags: y accepted, p= refused, others malformed', async () => {
      await setup();
      const ok = await exchange(server(hash, lookup), new ScramClient(hash, 'juliet', 'r0m30 & s3cret', 'y,,'));
      assert.equal(ok.kind, 'success');
      assertFailure(
        await exchange(server(hash, lookup), new ScramClient(hash, 'juliet', 'r0m30 & s3cret', 'p=tls-exporter,,')),
        'malformed-request',
      );
      assertFailure(await exchange(server(hash, lookup), new ScramClient(hash, 'juliet', 'x', 'q,,')), 'malformed-request');
      // once -PLUS is offered, 'y' means a downgrade attack
      assertFailure(
        await exchange(server(hash, lookup, { channelBindingOffered: true }), new ScramClient(hash, 'juliet', 'r0m30 & s3cret', 'y,,')),
        'not-authorized',
      );
    });

    test('authzid: empty, username or bare JID pass; anything else is invalid-authzid', async () => {
      await setup();
      for (const header of ['n,a=juliet,', 'n,a=Juliet@Example.COM,', 'n,a=juliet@example.com,']) {
        const step = await exchange(server(hash, lookup), new ScramClient(hash, 'juliet', 'r0m30 & s3cret', header));
        assert.equal(step.kind, 'success', header);
      }
      for (const header of ['n,a=romeo,', 'n,a=romeo@example.com,', 'n,a=juliet@other.org,', 'n,a=juliet@example.com/balcony,']) {
        const step = await exchange(server(hash, lookup), new ScramClient(hash, 'juliet', 'r0m30 & s3cret', header));
        assertFailure(step, 'invalid-authzid');
      }
    });

    test('unknown user gets a plausible exchange and fails like a wrong password', async () => {
      await setup();
      const first = async (user: string, secret = SECRET): Promise<string> => {
        const s = await new ScramServer(hash, lookup, { domain: DOMAIN, secret, fakeIterations: 4096 }).start(
          Buffer.from(`n,,n=${user},r=abc`),
        );
        assert.equal(s.kind, 'challenge');
        return s.kind === 'challenge' ? s.data.toString() : '';
      };
      const real = await first('juliet');
      const ghost = await first('nobody');
      const shape = (m: string): string => m.replace(/^r=abc[^,]+,s=([A-Za-z0-9+/=]+),i=(\d+)$/, (_x, s: string, i: string) => `${Buffer.from(s, 'base64').length}/${i}`);
      assert.equal(shape(ghost), shape(real)); // same salt length and iteration count
      assert.equal(shape(ghost), '16/4096');
      const salt = (m: string): string => m.split(',')[1];
      assert.equal(salt(await first('nobody')), salt(ghost), 'fake salt is stable per user');
      assert.notEqual(salt(await first('nobody2')), salt(ghost));
      assert.notEqual(salt(await first('nobody', Buffer.from('another secret'))), salt(ghost));
      // the client cannot tell until the end, where it gets the same failure
      assertFailure(await exchange(server(hash, lookup), new ScramClient(hash, 'nobody', 'whatever')), 'not-authorized');
      // a username that can never be a localpart goes the same way
      assertFailure(await exchange(server(hash, lookup), new ScramClient(hash, 'no body', 'x')), 'not-authorized');
    });

    test('a failing account store gives temporary-auth-failure', async () => {
      const broken: CredentialLookup = {
        getAccount: async () => {
          throw new Error('database is locked');
        },
      };
      assertFailure(await exchange(server(hash, broken), new ScramClient(hash, 'juliet', 'x')), 'temporary-auth-failure');
    });
  });
}

describe('malformed messages never throw and give malformed-request', () => {
  const firsts: Array<[string, Buffer]> = [
    ['empty', Buffer.alloc(0)],
    ['invalid UTF-8', Buffer.from([0x6e, 0x2c, 0x2c, 0x6e, 0x3d, 0xff, 0x2c, 0x72, 0x3d, 0x61])],
    ['no GS2 header', Buffer.from('n=user,r=abc')],
    ['only a GS2 header', Buffer.from('n,,')],
    ['missing nonce', Buffer.from('n,,n=user')],
    ['missing username', Buffer.from('n,,r=abc')],
    ['attributes in the wrong order', Buffer.from('n,,r=abc,n=user')],
    ['empty username', Buffer.from('n,,n=,r=abc')],
    ['empty nonce', Buffer.from('n,,n=user,r=')],
    ['nonce with a control character', Buffer.from('n,,n=user,r=a\u0001b')],
    ['bad =XX escape', Buffer.from('n,,n=us=2Xer,r=abc')],
    ['truncated escape', Buffer.from('n,,n=user=2,r=abc')],
    ['mandatory extension', Buffer.from('n,,m=ext,n=user,r=abc')],
    ['bad extension', Buffer.from('n,,n=user,r=abc,!!')],
    ['authzid without a=', Buffer.from('n,user,n=user,r=abc')],
    ['empty a=', Buffer.from('n,a=,n=user,r=abc')],
    ['huge message', Buffer.from(`n,,n=user,r=${'a'.repeat(10000)}`)],
  ];
  for (const [what, msg] of firsts) {
    test(`client-first: ${what}`, async () => {
      const lookup = new MemoryLookup();
      await lookup.add('user', 'pencil', 4096);
      const mech = server('SHA-256', lookup);
      assertFailure(await mech.start(msg), 'malformed-request');
      // and the exchange is over
      assertFailure(await mech.step(Buffer.from('c=biws,r=x,p=AAAA')), 'malformed-request');
    });
  }

  const finals: Array<[string, (r: string) => string]> = [
    ['empty', () => ''],
    ['no proof', (r) => `c=biws,r=${r}`],
    ['proof not last', (r) => `c=biws,p=AAAA,r=${r}`],
    ['attributes in the wrong order', (r) => `r=${r},c=biws,p=${'A'.repeat(44)}`],
    ['missing c=', (r) => `r=${r},p=${'A'.repeat(44)}`],
    ['proof not base64', (r) => `c=biws,r=${r},p=***`],
    ['bad extension', (r) => `c=biws,r=${r},1=x,p=${'A'.repeat(44)}`],
  ];
  for (const [what, build] of finals) {
    test(`client-final: ${what}`, async () => {
      const lookup = new MemoryLookup();
      await lookup.add('user', 'pencil', 4096);
      const mech = server('SHA-256', lookup, { nonce: () => 'SRV' });
      const s1 = await mech.start(Buffer.from('n,,n=user,r=abc'));
      assert.equal(s1.kind, 'challenge');
      assertFailure(await mech.step(Buffer.from(build('abcSRV'))), 'malformed-request');
    });
  }

  test('start twice, step before start, step after success', async () => {
    const lookup = new MemoryLookup();
    await lookup.add('user', 'pencil', 4096);
    const m1 = server('SHA-1', lookup);
    await m1.start(undefined);
    assertFailure(await m1.start(undefined), 'malformed-request');
    assertFailure(await server('SHA-1', lookup).step(Buffer.from('n,,n=user,r=abc')), 'malformed-request');
    const m2 = server('SHA-1', lookup);
    assert.equal((await exchange(m2, new ScramClient('SHA-1', 'user', 'pencil'))).kind, 'success');
    assertFailure(await m2.step(Buffer.alloc(0)), 'malformed-request');
  });

  test('random garbage in either message never throws', async () => {
    const lookup = new MemoryLookup();
    await lookup.add('user', 'pencil', 4096);
    for (let i = 0; i < 200; i++) {
      const mech = server(i % 2 ? 'SHA-1' : 'SHA-256', lookup);
      const junk = randomBytes(i % 64);
      const s = await mech.start(i % 3 === 0 ? Buffer.concat([Buffer.from('n,,n=user,r=abc'), junk]) : junk);
      assert.ok(s.kind === 'challenge' || (s.kind === 'failure' && s.condition === 'malformed-request'));
      if (s.kind === 'challenge') {
        const f = await mech.step(randomBytes(i % 80));
        assert.equal(f.kind, 'failure');
      }
    }
  });
});

describe('saslname escaping and the mechanism registry', () => {
  test('decodeSaslName / encodeSaslName', () => {
    assert.equal(decodeSaslName('a=2Cb=3Dc'), 'a,b=c');
    assert.equal(decodeSaslName('a=2cb=3dc'), 'a,b=c'); // ABNF literals are case-insensitive
    assert.equal(decodeSaslName('a=3D2C'), 'a=2C');
    assert.equal(decodeSaslName('a=41'), undefined);
    assert.equal(decodeSaslName('a='), undefined);
    assert.equal(decodeSaslName(''), undefined);
    assert.equal(encodeSaslName('a,b=c'), 'a=2Cb=3Dc');
    assert.equal(decodeSaslName(encodeSaslName('=,==,')), '=,==,');
  });

  test('createMechanism knows exactly the advertised names', () => {
    const lookup = new MemoryLookup();
    assert.deepEqual([...MECHANISM_NAMES], ['SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']);
    for (const name of MECHANISM_NAMES) {
      assert.equal(createMechanism(name, lookup, { domain: DOMAIN, secret: SECRET })?.name, name);
    }
    assert.equal(createMechanism('DIGEST-MD5', lookup, { domain: DOMAIN, secret: SECRET }), undefined);
    assert.equal(createMechanism('scram-sha-1', lookup, { domain: DOMAIN, secret: SECRET }), undefined);
    assert.equal(createMechanism('SCRAM-SHA-1-PLUS', lookup, { domain: DOMAIN, secret: SECRET }), undefined);
  });

  test('created mechanisms run a full exchange', async () => {
    const lookup = new MemoryLookup();
    await lookup.add('user', 'pencil', 4096);
    for (const hash of ['SHA-1', 'SHA-256'] as const) {
      const mech = createMechanism(`SCRAM-${hash}`, lookup, { domain: DOMAIN, secret: SECRET });
      assert.ok(mech);
      assert.equal((await exchange(mech, new ScramClient(hash, 'user', 'pencil'))).kind, 'success');
    }
  });
});
