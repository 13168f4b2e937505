/**
 * SASL PLAIN (RFC 4616) against stored SCRAM credentials.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { CredentialLookup, SaslStep } from '../../src/sasl/contract.js';
import type { AccountRecord } from '../../src/storage/types.js';
import { deriveAllScram, deriveScram } from '../../src/sasl/credentials.js';
import { PlainServer } from '../../src/sasl/plain.js';
import { createMechanism } from '../../src/sasl/mechanisms.js';

const SECRET = Buffer.from('plain-test-secret');
const DOMAIN = 'example.com';

class MemoryLookup implements CredentialLookup {
  readonly accounts = new Map<string, AccountRecord>();
  async getAccount(username: string): Promise<AccountRecord | undefined> {
    return this.accounts.get(username);
  }
}

let lookupPromise: Promise<MemoryLookup> | undefined;
function accounts(): Promise<MemoryLookup> {
  lookupPromise ??= (async () => {
    const l = new MemoryLookup();
    l.accounts.set('juliet', { username: 'juliet', createdAt: 0, scram: await deriveAllScram('balcony\u00a0rose', 4096) });
    l.accounts.set('romeo', { username: 'romeo', createdAt: 0, scram: await deriveAllScram('montague', 4096) });
    return l;
  })();
  return lookupPromise;
}

async function plain(message: string | Buffer, viaStep = false): Promise<SaslStep> {
  const mech = new PlainServer(await accounts(), { domain: DOMAIN, secret: SECRET });
  const data = typeof message === 'string' ? Buffer.from(message, 'utf8') : message;
  if (!viaStep) return mech.start(data);
  const c = await mech.start(undefined);
  assert.deepEqual(c, { kind: 'challenge', data: Buffer.alloc(0) });
  return mech.step(data);
}

function condition(s: SaslStep): string {
  return s.kind === 'failure' ? s.condition : s.kind;
}

test('correct password succeeds, as initial response or after an empty challenge', async () => {
  assert.deepEqual(await plain('\0romeo\0montague'), { kind: 'success', username: 'romeo' });
  assert.deepEqual(await plain('\0romeo\0montague', true), { kind: 'success', username: 'romeo' });
});

test('the username is prepared (case folded) and the password SASLprepped', async () => {
  assert.deepEqual(await plain('\0ROMEO\0montague'), { kind: 'success', username: 'romeo' });
  // the stored password had a no-break space; an ideographic space maps to the same U+0020
  assert.equal(condition(await plain('\0juliet\0balcony\u3000rose')), 'success');
  assert.equal(condition(await plain('\0juliet\0balcony rose')), 'success');
  // soft hyphen is mapped to nothing
  assert.equal(condition(await plain('\0romeo\0mon\u00adtague')), 'success');
});

test('authzid: empty, username or bare JID; others are invalid-authzid', async () => {
  assert.equal(condition(await plain('romeo\0romeo\0montague')), 'success');
  assert.equal(condition(await plain('romeo@example.com\0romeo\0montague')), 'success');
  assert.equal(condition(await plain('juliet@example.com\0romeo\0montague')), 'invalid-authzid');
  assert.equal(condition(await plain('romeo@example.org\0romeo\0montague')), 'invalid-authzid');
  assert.equal(condition(await plain('romeo@example.com/res\0romeo\0montague')), 'invalid-authzid');
});

test('wrong password and unknown user both give not-authorized', async () => {
  assert.equal(condition(await plain('\0romeo\0Montague')), 'not-authorized');
  assert.equal(condition(await plain('\0romeo\0montague ')), 'not-authorized');
  assert.equal(condition(await plain('\0tybalt\0montague')), 'not-authorized');
  assert.equal(condition(await plain('\0no body\0montague')), 'not-authorized');
  // a password SASLprep refuses cannot match anything
  assert.equal(condition(await plain('\0romeo\0mon\u0007tague')), 'not-authorized');
});

test('unknown users cost the same PBKDF2 time as known ones', async () => {
  await accounts();
  const time = async (msg: string): Promise<number> => {
    const t = process.hrtime.bigint();
    await plain(msg);
    return Number(process.hrtime.bigint() - t) / 1e6;
  };
  // Compare medians so scheduler noise on a shared machine does not decide.
  const median = (xs: number[]): number => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const known: number[] = [];
  const unknown: number[] = [];
  for (let i = 0; i < 5; i++) {
    known.push(await time('\0romeo\0wrong'));
    unknown.push(await time('\0tybalt\0wrong'));
  }
  // A short-circuit for unknown users would be >10x faster; demand at least a third.
  assert.ok(median(unknown) > median(known) / 3, `known ${median(known)}ms, unknown ${median(unknown)}ms`);
});

test('malformed messages give malformed-request', async () => {
  const cases: Array<string | Buffer> = [
    '',
    'romeo',
    '\0romeo',
    'romeo\0montague',
    '\0romeo\0montague\0extra',
    '\0\0montague',
    '\0romeo\0',
    Buffer.from([0, 0x72, 0, 0xc3, 0x28]), // invalid UTF-8
    `\0romeo\0${'x'.repeat(5000)}`,
  ];
  for (const c of cases) {
    assert.equal(condition(await plain(c)), 'malformed-request', JSON.stringify(c.toString()));
  }
});

test('falls back to the SHA-1 credential when no SHA-256 one is stored', async () => {
  const l = new MemoryLookup();
  const sha1 = await deriveScram('old-password', 'SHA-1', 4096);
  // an account migrated from a SHA-1-only server
  l.accounts.set('nurse', { username: 'nurse', createdAt: 0, scram: { 'SHA-1': sha1 } as AccountRecord['scram'] });
  const mech = createMechanism('PLAIN', l, { domain: DOMAIN, secret: SECRET });
  assert.ok(mech);
  assert.deepEqual(await mech.start(Buffer.from('\0nurse\0old-password')), { kind: 'success', username: 'nurse' });
  const again = createMechanism('PLAIN', l, { domain: DOMAIN, secret: SECRET });
  assert.equal(condition(await again!.start(Buffer.from('\0nurse\0new-password'))), 'not-authorized');
});

test('store errors become temporary-auth-failure; the mechanism is single-use', async () => {
  const broken: CredentialLookup = {
    getAccount: async () => {
      throw new Error('disk on fire');
    },
  };
  const mech = new PlainServer(broken, { domain: DOMAIN, secret: SECRET });
  assert.equal(condition(await mech.start(Buffer.from('\0romeo\0x'))), 'temporary-auth-failure');
  assert.equal(condition(await mech.step(Buffer.from('\0romeo\0x'))), 'malformed-request');
  const fresh = new PlainServer(await accounts(), { domain: DOMAIN, secret: SECRET });
  assert.equal(condition(await fresh.step(Buffer.from('\0romeo\0montague'))), 'malformed-request');
});
