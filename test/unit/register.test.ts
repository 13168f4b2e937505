/**
 * XEP-0077 pieces without a server: the per-address rate limiter (sliding
 * window, exemptions, IPv4-mapped addresses, released slots) and option
 * validation.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { RegistrationLimiter, normalizeAddress, registerOptions } from '../../src/modules/register.js';

describe('RegistrationLimiter', () => {
  test('N per address per window, then refused until the window slides', () => {
    let now = 1_000_000;
    const l = new RegistrationLimiter(2, 60_000, new Set(), () => now);
    assert.equal(l.reserve('203.0.113.5'), true);
    now += 10_000;
    assert.equal(l.reserve('203.0.113.5'), true);
    assert.equal(l.reserve('203.0.113.5'), false, 'third within the window');
    assert.equal(l.reserve('203.0.113.6'), true, 'other addresses are counted apart');
    now += 50_001; // the first hit is now older than the window
    assert.equal(l.reserve('203.0.113.5'), true);
    assert.equal(l.reserve('203.0.113.5'), false);
  });

  test('a released slot (nothing created) can be used again', () => {
    const l = new RegistrationLimiter(1, 60_000, new Set(), () => 5);
    assert.equal(l.reserve('198.51.100.1'), true);
    l.release('198.51.100.1');
    assert.equal(l.reserve('198.51.100.1'), true);
    assert.equal(l.reserve('198.51.100.1'), false);
  });

  test('exempt addresses and 0 = unlimited', () => {
    const l = new RegistrationLimiter(1, 60_000, new Set(['127.0.0.1', '::1']), () => 5);
    for (let i = 0; i < 10; i++) assert.equal(l.reserve('127.0.0.1'), true);
    for (let i = 0; i < 10; i++) assert.equal(l.reserve('::ffff:127.0.0.1'), true, 'IPv4-mapped loopback is loopback');
    const unlimited = new RegistrationLimiter(0, 60_000, new Set(), () => 5);
    for (let i = 0; i < 10; i++) assert.equal(unlimited.reserve('192.0.2.1'), true);
  });

  test('IPv4-mapped addresses count as their IPv4 address', () => {
    assert.equal(normalizeAddress('::ffff:192.0.2.1'), '192.0.2.1');
    assert.equal(normalizeAddress('2001:DB8::1'), '2001:db8::1');
    const l = new RegistrationLimiter(1, 60_000, new Set(), () => 5);
    assert.equal(l.reserve('::ffff:192.0.2.1'), true);
    assert.equal(l.reserve('192.0.2.1'), false);
  });
});

describe('register options', () => {
  test('defaults: creation off, password change and removal on, 5 per hour, loopback exempt', () => {
    const o = registerOptions({});
    assert.equal(o.enabled, false);
    assert.equal(o.allowPasswordChange, true);
    assert.equal(o.allowRemove, true);
    assert.equal(o.maxPerAddress, 5);
    assert.equal(o.window, 3600);
    assert.deepEqual(o.exemptAddresses, ['127.0.0.1', '::1']);
  });
  test('bad values are refused with the key named', () => {
    assert.throws(() => registerOptions({ enabled: 'yes' }), /moduleOptions\.register\.enabled/);
    assert.throws(() => registerOptions({ maxPerAddress: -1 }), /maxPerAddress/);
    assert.throws(() => registerOptions({ window: 0 }), /window/);
    assert.throws(() => registerOptions({ exemptAddresses: ['localhost'] }), /exemptAddresses/);
    assert.throws(() => registerOptions({ enable: true }), /unknown option/);
    assert.deepEqual(registerOptions({ exemptAddresses: [] }).exemptAddresses, []);
    assert.equal(registerOptions({ maxPerAddress: 0 }).maxPerAddress, 0);
  });
});
