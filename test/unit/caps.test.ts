/**
 * XEP-0115 verification strings and hashes, checked against the examples of
 * the XEP itself (§5.2 simple, §5.3 complex), the §5.4 validation rules, and
 * the cache's behaviour with a real SQLite store.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseXml } from '../../src/xml/parser.js';
import { CapsCache, capsVer, notifyNodes, octetCompare, parseCaps, parseDiscoInfo, verificationString, verifyCaps } from '../../src/modules/pep/caps.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import type { Element } from '../../src/xml/element.js';

const SIMPLE = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://code.google.com/p/exodus#QgayPKawpkPSDYmwT/WM94uAlu0='>
  <identity category='client' name='Exodus 0.9.1' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
</query>`;

const COMPLEX = `<query xmlns='http://jabber.org/protocol/disco#info' node='http://psi-im.org#q07IKJEyjvHSyhy//CH0CxmKi8w='>
  <identity xml:lang='en' category='client' name='Psi 0.11' type='pc'/>
  <identity xml:lang='el' category='client' name='Ψ 0.11' type='pc'/>
  <feature var='http://jabber.org/protocol/caps'/>
  <feature var='http://jabber.org/protocol/disco#info'/>
  <feature var='http://jabber.org/protocol/disco#items'/>
  <feature var='http://jabber.org/protocol/muc'/>
  <x xmlns='jabber:x:data' type='result'>
    <field var='FORM_TYPE' type='hidden'><value>urn:xmpp:dataforms:softwareinfo</value></field>
    <field var='ip_version'><value>ipv4</value><value>ipv6</value></field>
    <field var='os'><value>Mac</value></field>
    <field var='os_version'><value>10.5.1</value></field>
    <field var='software'><value>Psi</value></field>
    <field var='software_version'><value>0.11</value></field>
  </x>
</query>`;

function info(xml: string) {
  const r = parseDiscoInfo(parseXml(xml));
  assert.ok(r.ok, 'parses');
  return r.info;
}

describe('XEP-0115 §5.2 simple generation example', () => {
  test('verification string and sha-1 ver', () => {
    const i = info(SIMPLE);
    assert.equal(
      verificationString(i),
      'client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<' +
        'http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<',
    );
    assert.equal(capsVer(i, 'sha-1'), 'QgayPKawpkPSDYmwT/WM94uAlu0=');
  });

  test('the order of elements in the answer does not matter', () => {
    const shuffled = `<query xmlns='http://jabber.org/protocol/disco#info'>
      <feature var='http://jabber.org/protocol/muc'/>
      <feature var='http://jabber.org/protocol/disco#items'/>
      <identity category='client' name='Exodus 0.9.1' type='pc'/>
      <feature var='http://jabber.org/protocol/disco#info'/>
      <feature var='http://jabber.org/protocol/caps'/>
    </query>`;
    assert.equal(capsVer(info(shuffled)), 'QgayPKawpkPSDYmwT/WM94uAlu0=');
  });
});

describe('XEP-0115 §5.3 complex generation example', () => {
  test('identities sorted by xml:lang, extended form, sha-1 ver', () => {
    const i = info(COMPLEX);
    assert.equal(
      verificationString(i),
      'client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<' +
        'http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<' +
        'ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<',
    );
    assert.equal(capsVer(i, 'sha-1'), 'q07IKJEyjvHSyhy//CH0CxmKi8w=');
  });

  test('verifyCaps accepts the matching ver and rejects another', () => {
    const q = parseXml(COMPLEX);
    const ok = verifyCaps(q, { node: 'http://psi-im.org', ver: 'q07IKJEyjvHSyhy//CH0CxmKi8w=', hash: 'sha-1' });
    assert.ok(ok.ok);
    if (ok.ok) assert.deepEqual(ok.record.identities, ['client/pc', 'client/pc']);
    assert.deepEqual(verifyCaps(q, { node: 'http://psi-im.org', ver: 'QgayPKawpkPSDYmwT/WM94uAlu0=', hash: 'sha-1' }), { ok: false, reason: 'ver-mismatch' });
    assert.deepEqual(verifyCaps(q, { node: 'n', ver: 'x', hash: 'md5' }), { ok: false, reason: 'unsupported-hash' });
  });

  test('sha-256 uses the same string with another hash', () => {
    const i = info(COMPLEX);
    assert.notEqual(capsVer(i, 'sha-256'), capsVer(i, 'sha-1'));
    assert.equal(Buffer.from(capsVer(i, 'sha-256'), 'base64').length, 32);
  });
});

describe('XEP-0115 §5.4 validation', () => {
  test('duplicate identity, duplicate feature, duplicate FORM_TYPE make the answer unusable', () => {
    const dupId = `<query xmlns='http://jabber.org/protocol/disco#info'><identity category='client' type='pc'/><identity category='client' type='pc'/></query>`;
    assert.deepEqual(parseDiscoInfo(parseXml(dupId)), { ok: false, reason: 'duplicate-identity' });
    const dupF = `<query xmlns='http://jabber.org/protocol/disco#info'><feature var='a'/><feature var='a'/></query>`;
    assert.deepEqual(parseDiscoInfo(parseXml(dupF)), { ok: false, reason: 'duplicate-feature' });
    const form = `<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>urn:x</value></field></x>`;
    const dupT = `<query xmlns='http://jabber.org/protocol/disco#info'>${form}${form}</query>`;
    assert.deepEqual(parseDiscoInfo(parseXml(dupT)), { ok: false, reason: 'duplicate-form-type' });
    const twoValues = `<query xmlns='http://jabber.org/protocol/disco#info'><x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE' type='hidden'><value>a</value><value>b</value></field></x></query>`;
    assert.deepEqual(parseDiscoInfo(parseXml(twoValues)), { ok: false, reason: 'form-type-values-differ' });
  });

  test('a form whose FORM_TYPE is not hidden, or without FORM_TYPE, is left out of the string', () => {
    const base = `<identity category='client' name='Exodus 0.9.1' type='pc'/><feature var='http://jabber.org/protocol/caps'/><feature var='http://jabber.org/protocol/disco#info'/><feature var='http://jabber.org/protocol/disco#items'/><feature var='http://jabber.org/protocol/muc'/>`;
    const notHidden = `<query xmlns='http://jabber.org/protocol/disco#info'>${base}<x xmlns='jabber:x:data' type='result'><field var='FORM_TYPE'><value>urn:x</value></field><field var='a'><value>b</value></field></x><x xmlns='jabber:x:data' type='result'><field var='c'><value>d</value></field></x></query>`;
    assert.equal(capsVer(info(notHidden)), 'QgayPKawpkPSDYmwT/WM94uAlu0=');
  });

  test('sorting is by UTF-8 octets, not UTF-16 code units', () => {
    // U+FF61 (3 UTF-8 bytes EF BD A1) sorts before U+10000 (F0 90 80 80) in octets, after it in UTF-16 units.
    assert.ok(octetCompare('\uff61', '\u{10000}') < 0);
    assert.ok('\uff61' > '\u{10000}');
  });
});

test('parseCaps and notifyNodes', () => {
  const p = parseXml(`<presence xmlns='jabber:client'><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='abc='/></presence>`);
  assert.deepEqual(parseCaps(p), { node: 'https://conversations.im', ver: 'abc=', hash: 'sha-1' });
  assert.equal(parseCaps(parseXml(`<presence xmlns='jabber:client'/>`)), undefined);
  assert.deepEqual(
    [...notifyNodes(['urn:xmpp:avatar:metadata+notify', 'http://jabber.org/protocol/caps', 'eu.siacs.conversations.axolotl.devicelist+notify', '+notify'])],
    ['urn:xmpp:avatar:metadata', 'eu.siacs.conversations.axolotl.devicelist'],
  );
});

describe('CapsCache', () => {
  const ver = 'QgayPKawpkPSDYmwT/WM94uAlu0=';
  const caps = { node: 'http://code.google.com/p/exodus', ver, hash: 'sha-1' };
  const answer = (q: string): Element => parseXml(`<iq xmlns='jabber:client' type='result'>${q}</iq>`);

  test('asks once per ver (concurrent sessions share the query), persists, and a new cache finds it in the store', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'verona-caps-'));
    const db = SqliteStorage.open(path.join(dir, 'v.db'), { synchronous: 'NORMAL' });
    try {
      const asked: string[] = [];
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const cache = new CapsCache(
        async (to, node) => {
          asked.push(`${to} ${node}`);
          await gate;
          return answer(SIMPLE);
        },
        db.pubsub,
        { maxEntries: 10 },
        () => undefined,
      );
      const a = cache.resolve('a@localhost/1', caps);
      const b = cache.resolve('b@localhost/2', caps);
      release();
      const [ra, rb] = await Promise.all([a, b]);
      assert.deepEqual(asked, [`a@localhost/1 http://code.google.com/p/exodus#${ver}`]);
      assert.ok(ra?.features.includes('http://jabber.org/protocol/muc'));
      assert.deepEqual(ra, rb);

      const fresh = new CapsCache(async () => assert.fail('must not ask'), db.pubsub, { maxEntries: 10 }, () => undefined);
      assert.deepEqual(await fresh.resolve('c@localhost/3', caps), ra);
    } finally {
      await db.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test('a lying answer is not cached, and the next session is asked again', async () => {
    const asked: string[] = [];
    const cache = new CapsCache(
      async (to) => {
        asked.push(to);
        return answer(asked.length === 1 ? `<query xmlns='http://jabber.org/protocol/disco#info'><feature var='evil+notify'/></query>` : SIMPLE);
      },
      undefined,
      { maxEntries: 10 },
      () => undefined,
    );
    assert.equal(await cache.resolve('liar@localhost/x', caps), undefined);
    assert.ok(await cache.resolve('honest@localhost/y', caps));
    assert.deepEqual(asked, ['liar@localhost/x', 'honest@localhost/y']);
  });

  test('an error answer or a timeout gives nothing', async () => {
    const err = new CapsCache(async () => parseXml(`<iq xmlns='jabber:client' type='error'/>`), undefined, { maxEntries: 10 }, () => undefined);
    assert.equal(await err.resolve('a@localhost/1', caps), undefined);
    const timeout = new CapsCache(async () => Promise.reject(new Error('iq timeout')), undefined, { maxEntries: 10 }, () => undefined);
    assert.equal(await timeout.resolve('a@localhost/1', caps), undefined);
  });

  test('legacy caps (no hash) are used unverified and never cached', async () => {
    let n = 0;
    const cache = new CapsCache(async () => (n++, answer(SIMPLE)), undefined, { maxEntries: 10 }, () => undefined);
    const legacy = { node: 'http://example.com/client', ver: '1.0', hash: undefined };
    assert.ok(await cache.resolve('a@localhost/1', legacy));
    assert.ok(await cache.resolve('a@localhost/1', legacy));
    assert.equal(n, 2);
  });
});
