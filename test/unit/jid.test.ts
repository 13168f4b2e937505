/**
 * JIDs per RFC 7622 (with RFC 8264/8265 PRECIS profiles).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { JID, JIDError, parseJID, prepareDomain, prepareLocal, prepareResource, tryParseJID } from '../../src/jid/jid.js';

function ok(input: string, expected: string): void {
  assert.equal(parseJID(input).toString(), expected, JSON.stringify(input));
}
function bad(input: string): void {
  assert.throws(() => parseJID(input), JIDError, JSON.stringify(input));
  assert.equal(tryParseJID(input), undefined);
}

describe('RFC 7622 §3.5 examples', () => {
  test('valid JIDs', () => {
    ok('juliet@example.com', 'juliet@example.com');
    ok('juliet@example.com/foo', 'juliet@example.com/foo');
    ok('juliet@example.com/foo bar', 'juliet@example.com/foo bar');
    ok('juliet@example.com/foo@bar', 'juliet@example.com/foo@bar');
    ok('foo\\20bar@example.com', 'foo\\20bar@example.com');
    ok('fussball@example.com', 'fussball@example.com');
    ok('fußball@example.com', 'fußball@example.com'); // ß is kept, not folded to ss
    ok('π@example.com', 'π@example.com');
    ok('Σ@example.com/foo', 'σ@example.com/foo');
    ok('σ@example.com/foo', 'σ@example.com/foo');
    ok('ς@example.com/foo', 'ς@example.com/foo'); // final sigma stays distinct
    ok('king@example.com/♚', 'king@example.com/♚');
    ok('example.com', 'example.com');
    ok('example.com/foobar', 'example.com/foobar');
    ok('a.example.com/b@example.net', 'a.example.com/b@example.net');
  });

  test('invalid JIDs', () => {
    bad('"juliet"@example.com');
    bad('foo bar@example.com');
    bad('@example.com/');
    bad('henry\u2163@example.com'); // ROMAN NUMERAL FOUR: compatibility character
    bad('♚@example.com'); // symbols are not allowed in localparts
    bad('juliet@');
    bad('/foobar');
  });
});

describe('parsing structure', () => {
  test('parts are split at the first / and then the first @', () => {
    const j = parseJID('juliet@example.com/a/b@c/d');
    assert.equal(j.local, 'juliet');
    assert.equal(j.domain, 'example.com');
    assert.equal(j.resource, 'a/b@c/d');
    const d = parseJID('example.com/user@host');
    assert.equal(d.local, '');
    assert.equal(d.resource, 'user@host');
  });

  test('empty parts are errors', () => {
    bad('');
    bad('@example.com');
    bad('juliet@');
    bad('example.com/');
    bad('juliet@example.com/');
    bad('juliet@/res');
    bad('/res');
    bad('@');
    bad('.');
  });

  test('a second @ lands in the domainpart and is refused', () => {
    bad('juliet@@example.com');
    bad('a@b@example.com');
  });

  test('bare, withResource, equals, toString', () => {
    const full = parseJID('Juliet@Example.com/Balcony');
    assert.equal(full.bare.toString(), 'juliet@example.com');
    assert.equal(full.bareString(), 'juliet@example.com');
    assert.equal(full.isBare(), false);
    assert.equal(full.bare.isBare(), true);
    assert.equal(full.bare.withResource('Garden').toString(), 'juliet@example.com/Garden');
    assert.ok(full.equals(parseJID('JULIET@EXAMPLE.COM/Balcony')));
    assert.ok(!full.equals(parseJID('juliet@example.com/balcony')));
    assert.ok(!full.equals(undefined));
    assert.throws(() => full.withResource(''), JIDError);
    assert.equal(new JID('', 'example.com').toString(), 'example.com');
  });

  test('errors carry the jid-malformed condition', () => {
    try {
      parseJID('@x');
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof JIDError);
      assert.equal(e.condition, 'jid-malformed');
    }
    assert.equal(tryParseJID(undefined), undefined);
  });
});

describe('localpart (UsernameCaseMapped)', () => {
  test('case folding and width mapping', () => {
    assert.equal(prepareLocal('JULIET'), 'juliet');
    assert.equal(prepareLocal('ＪＵＬＩＥＴ'), 'juliet'); // fullwidth
    assert.equal(prepareLocal('ÄÖÜ'), 'äöü');
    assert.equal(prepareLocal('ΣΑΣ'), 'σας'); // Unicode toLowerCase applies Final_Sigma
  });

  test('NFC normalisation', () => {
    assert.equal(prepareLocal('e\u0301'), '\u00e9');
    assert.equal(prepareLocal('E\u0301'), '\u00e9');
    assert.equal(parseJID('e\u0301@example.com').equals(parseJID('\u00e9@example.com')), true);
  });

  test('forbidden characters of RFC 7622 §3.3.1', () => {
    for (const c of ['"', '&', "'", '/', ':', '<', '>', '@', ' ']) {
      assert.throws(() => prepareLocal(`a${c}b`), JIDError, c);
    }
    // other ASCII punctuation is fine
    assert.equal(prepareLocal('a.b-c_d+e!#$%*=?^{|}~'), 'a.b-c_d+e!#$%*=?^{|}~');
  });

  test('IdentifierClass: controls, spaces, symbols, compatibility and ignorable code points', () => {
    for (const s of ['a\u0000b', 'a\u007fb', 'a\u0085b', 'a\u00a0b', 'a\u3000b', '\u2665', 'a\u00adb', 'a\u200bb', 'x\ufeff', '\ue000', 'a\ufdd0', 'ǅ', '\u2163', '\u00b5', 'a\u1100']) {
      assert.throws(() => prepareLocal(s), JIDError, JSON.stringify(s));
    }
  });

  test('context rules: middle dot, joiners, Arabic digits', () => {
    assert.equal(prepareLocal('l·l'), 'l·l'); // Catalan ela geminada
    assert.throws(() => prepareLocal('a·b'), JIDError);
    assert.equal(prepareLocal('\u0936\u0915\u094d\u200d\u0924\u093f'), '\u0936\u0915\u094d\u200d\u0924\u093f'); // ZWJ after virama
    assert.throws(() => prepareLocal('a\u200db'), JIDError);
    assert.throws(() => prepareLocal('\u06f0\u0660'), JIDError); // mixed Arabic-Indic digit sets
  });

  test('bidi rule for right-to-left localparts', () => {
    assert.equal(prepareLocal('שלום'), 'שלום');
    assert.equal(prepareLocal('שלום1'), 'שלום1');
    assert.throws(() => prepareLocal('שלוםa'), JIDError); // mixed directions
    assert.throws(() => prepareLocal('1שלום'), JIDError); // must start right-to-left
  });

  test('length limit is 1023 octets after preparation', () => {
    assert.equal(prepareLocal('a'.repeat(1023)).length, 1023);
    assert.throws(() => prepareLocal('a'.repeat(1024)), JIDError);
    assert.equal(prepareLocal('中'.repeat(341)), '中'.repeat(341)); // 1023 octets
    assert.throws(() => prepareLocal('中'.repeat(342)), JIDError);
    assert.throws(() => prepareLocal(''), JIDError);
  });
});

describe('domainpart', () => {
  test('case folding and a trailing dot', () => {
    ok('juliet@EXAMPLE.COM', 'juliet@example.com');
    ok('juliet@example.com.', 'juliet@example.com');
    ok('example.com./res', 'example.com/res');
    bad('juliet@example.com..');
    bad('juliet@.');
    bad('juliet@.example.com');
    bad('juliet@example..com');
  });

  test('LDH labels', () => {
    assert.equal(prepareDomain('a-b.example'), 'a-b.example');
    assert.equal(prepareDomain('localhost'), 'localhost');
    assert.equal(prepareDomain('123.example'), '123.example');
    for (const d of ['-a.example', 'a-.example', 'exa_mple.com', 'exa mple.com', 'exa!mple.com', 'ab--cd.com', 'a%41.com']) {
      assert.throws(() => prepareDomain(d), JIDError, d);
    }
    assert.equal(prepareDomain(`${'a'.repeat(63)}.com`), `${'a'.repeat(63)}.com`);
    assert.throws(() => prepareDomain(`${'a'.repeat(64)}.com`), JIDError);
  });

  test('internationalised names are kept as U-labels', () => {
    assert.equal(prepareDomain('bücher.de'), 'bücher.de');
    assert.equal(prepareDomain('BÜCHER.DE'), 'bücher.de');
    assert.equal(prepareDomain('xn--bcher-kva.de'), 'bücher.de'); // A-label converted
    assert.equal(prepareDomain('XN--BCHER-KVA.de'), 'bücher.de');
    assert.equal(prepareDomain('example\u3002com'), 'example.com'); // ideographic full stop
    assert.equal(prepareDomain('bu\u0308cher.de'), 'bücher.de'); // NFC
    assert.throws(() => prepareDomain('xn--zz.de'), JIDError); // invalid punycode
    assert.throws(() => prepareDomain('☃.com'), JIDError); // symbol: not IDNA2008
    assert.throws(() => prepareDomain('bü%41.de'), JIDError);
    assert.throws(() => prepareDomain('bü_cher.de'), JIDError);
  });

  test('IPv4 literals', () => {
    assert.equal(prepareDomain('127.0.0.1'), '127.0.0.1');
    ok('juliet@192.0.2.1/r', 'juliet@192.0.2.1/r');
    for (const d of ['1.2.3', '256.1.1.1', '1.2.3.4.5', '01.2.3.4', '123']) {
      assert.throws(() => prepareDomain(d), JIDError, d);
    }
  });

  test('IPv6 literals', () => {
    assert.equal(prepareDomain('[::1]'), '[::1]');
    assert.equal(prepareDomain('[2001:DB8::1]'), '[2001:db8::1]');
    assert.equal(prepareDomain('[::ffff:192.0.2.1]'), '[::ffff:192.0.2.1]');
    ok('juliet@[2001:db8::1]/r/s', 'juliet@[2001:db8::1]/r/s');
    for (const d of ['[]', '[::1', '[:::]', '[1::2::3]', '[fe80::1%eth0]', '[g::1]', '::1']) {
      assert.throws(() => prepareDomain(d), JIDError, d);
    }
  });

  test('length limit is 1023 octets', () => {
    const label = 'a'.repeat(63);
    const d1023 = Array.from({ length: 16 }, () => label).join('.'); // 16*63 + 15
    assert.equal(d1023.length, 1023);
    assert.equal(prepareDomain(d1023), d1023);
    assert.throws(() => prepareDomain(`a.${d1023}`), JIDError);
  });
});

describe('resourcepart (OpaqueString)', () => {
  test('case and spaces are kept, non-ASCII spaces become U+0020', () => {
    assert.equal(prepareResource('Balcony'), 'Balcony');
    assert.equal(prepareResource(' lead and trail '), ' lead and trail ');
    assert.equal(prepareResource('a\u00a0b\u2003c\u3000d'), 'a b c d');
    assert.equal(prepareResource('Gajim.ÄÖÜ'), 'Gajim.ÄÖÜ');
    ok('juliet@example.com/Balcony', 'juliet@example.com/Balcony');
    assert.ok(!parseJID('juliet@example.com/Balcony').equals(parseJID('juliet@example.com/balcony')));
  });

  test('NFC, symbols and compatibility characters', () => {
    assert.equal(prepareResource('e\u0301'), '\u00e9');
    assert.equal(prepareResource('♚ ☃ ⅳ ﬁ'), '♚ ☃ ⅳ ﬁ'); // FreeformClass allows these
    assert.equal(prepareResource('@/:<>&"\''), '@/:<>&"\'');
  });

  test('controls and ignorable code points are refused', () => {
    for (const s of ['a\u0000', 'a\u0007', 'a\u007f', 'a\u0085', 'a\u200b', 'a\u00ad', '\ufeffx', 'a\ue000', 'a\u2028', 'a\ufffe']) {
      assert.throws(() => prepareResource(s), JIDError, JSON.stringify(s));
    }
  });

  test('length limit is 1023 octets', () => {
    assert.equal(prepareResource('r'.repeat(1023)).length, 1023);
    assert.throws(() => prepareResource('r'.repeat(1024)), JIDError);
    assert.equal(prepareResource('€'.repeat(341)).length, 341);
    assert.throws(() => prepareResource('€'.repeat(342)), JIDError);
    assert.throws(() => prepareResource(''), JIDError);
    const max = `${'l'.repeat(1023)}@${'d'.repeat(63)}/${'r'.repeat(1023)}`;
    assert.equal(parseJID(max).toString(), max);
  });
});

test('preparation is idempotent', () => {
  for (const s of ['JULIET@EXAMPLE.COM/Balcony', 'ＪＵＬＩＥＴ@BÜCHER.de/a\u2003b', 'Σ@xn--bcher-kva.de/♚', 'e\u0301@[2001:DB8::1]/e\u0301']) {
    const once = parseJID(s).toString();
    assert.equal(parseJID(once).toString(), once, s);
  }
});
