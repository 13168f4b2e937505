/**
 * The XML stream parser (src/xml/parser.ts) against the requirements of the
 * stream layer: incremental at any split, namespaces, limits, restricted XML,
 * malformed input, reset/end, and parseXml for standalone documents.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Element, NS_CLIENT, NS_STREAM, serialize } from '../../src/xml/element.js';
import { NS_XML, STREAM_HEADER_MAX, XmlError, createStreamParser, parseXml } from '../../src/xml/parser.js';
import type { ParserLimits, StreamParser } from '../../src/xml/stream-parser.contract.js';

const LIMITS: ParserLimits = { maxStanzaSize: 64 * 1024, maxDepth: 16, maxAttributes: 32 };
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';

const HEADER =
  "<?xml version='1.0'?><stream:stream to='capulet.lit' xmlns='jabber:client' " +
  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0' xml:lang='en'>";

/** A parser that records every event as a line of text, and the elements themselves. */
function recorder(limits: ParserLimits = LIMITS): { p: StreamParser; log: string[]; els: Element[] } {
  const log: string[] = [];
  const els: Element[] = [];
  const p = createStreamParser(
    {
      onStreamStart(name, ns, attrs) {
        log.push(`start ${name} ${ns} ${JSON.stringify(attrs)}`);
      },
      onElement(el) {
        els.push(el);
        log.push(`element ${el.xmlns} ${serialize(el, '')}`);
      },
      onStreamEnd() {
        log.push('end');
      },
      onError(condition, text) {
        log.push(`error ${condition}`);
        assert.equal(typeof text, 'string');
      },
    },
    limits,
  );
  return { p, log, els };
}

/** Parses `input` (one stream) fed in one write and returns the event log. */
function run(input: string | Buffer, limits?: ParserLimits): string[] {
  const r = recorder(limits);
  r.p.write(typeof input === 'string' ? Buffer.from(input) : input);
  return r.log;
}

function lastError(log: string[]): string | undefined {
  const e = log.filter((l) => l.startsWith('error '));
  assert.ok(e.length <= 1, 'at most one error is reported');
  return e[0]?.slice(6);
}

/** The condition raised by this input after the stream header, or undefined. */
function errorOf(body: string | Buffer, limits?: ParserLimits): string | undefined {
  const input = typeof body === 'string' ? HEADER + body : Buffer.concat([Buffer.from(HEADER), body]);
  return lastError(run(input, limits));
}

// A recorded client session (no STARTTLS): SASL PLAIN, stream restart, bind,
// presence, messages with multi-byte text and escaped attributes, keepalives, close.
const SESSION_AUTH =
  HEADER +
  "\n<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>AGp1bGlldAByMG0zMG15cjBtMzA=</auth>";
const SESSION_BOUND =
  "<?xml version='1.0'?>\r\n" +
  "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='capulet.lit' version='1.0'>" +
  "<iq type='set' id='bind_1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>balcony</resource></bind></iq>" +
  "<iq type='get' id='roster_1'><query xmlns='jabber:iq:roster'/></iq>" +
  "<presence><show>chat</show><status>Ünïcødé status 💬 — ready</status><c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://example.org' ver='k07nuHawZqYDBn1KsDB+3Z+hMwY='/></presence>" +
  ' \n ' +
  "<message to='romeo@montague.lit' type='chat' id='m&amp;1' xml:lang='en'><body>Ünïcødé 💬 &lt;3 &amp; &#x1F339; &#233;</body>" +
  "<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>" +
  '\t' +
  `<message to="romeo@montague.lit" id='q"uote'><body>He said "it's &apos;fine&apos;" &gt; 2 — 日本語テキスト</body><x:thread xmlns:x='urn:example:x' x:parent='p1'>t1</x:thread></message>` +
  '    ' +
  "<message to='nurse@capulet.lit' id='m3'><body><![CDATA[<b>bold</b> & raw]]> and more</body></message>" +
  '\n</stream:stream>';

/** Feeds both streams of the session through one parser, each split by `split`. */
function runSession(split: (b: Buffer) => Buffer[]): string[] {
  const r = recorder();
  for (const c of split(Buffer.from(SESSION_AUTH))) r.p.write(c);
  r.log.push('--- reset');
  r.p.reset();
  for (const c of split(Buffer.from(SESSION_BOUND))) r.p.write(c);
  return r.log;
}

describe('a recorded client session', () => {
  const reference = runSession((b) => [b]);

  it('parses into the expected events', () => {
    assert.deepEqual(reference, [
      `start stream ${NS_STREAM} {"to":"capulet.lit","xmlns":"jabber:client","xmlns:stream":"${NS_STREAM}","version":"1.0","xml:lang":"en"}`,
      `element ${NS_SASL} <auth xmlns="${NS_SASL}" mechanism="PLAIN">AGp1bGlldAByMG0zMG15cjBtMzA=</auth>`,
      '--- reset',
      `start stream ${NS_STREAM} {"xmlns":"jabber:client","xmlns:stream":"${NS_STREAM}","to":"capulet.lit","version":"1.0"}`,
      `element jabber:client <iq xmlns="jabber:client" type="set" id="bind_1"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"><resource>balcony</resource></bind></iq>`,
      `element jabber:client <iq xmlns="jabber:client" type="get" id="roster_1"><query xmlns="jabber:iq:roster"/></iq>`,
      `element jabber:client <presence xmlns="jabber:client"><show>chat</show><status>Ünïcødé status 💬 — ready</status><c xmlns="http://jabber.org/protocol/caps" hash="sha-1" node="https://example.org" ver="k07nuHawZqYDBn1KsDB+3Z+hMwY="/></presence>`,
      `element jabber:client <message xmlns="jabber:client" to="romeo@montague.lit" type="chat" id="m&amp;1" xml:lang="en"><body>Ünïcødé 💬 &lt;3 &amp; 🌹 é</body><active xmlns="http://jabber.org/protocol/chatstates"/><request xmlns="urn:xmpp:receipts"/></message>`,
      `element jabber:client <message xmlns="jabber:client" to="romeo@montague.lit" id="q&quot;uote"><body>He said "it's 'fine'" &gt; 2 — 日本語テキスト</body><thread xmlns="urn:example:x" xmlns:x="urn:example:x" x:parent="p1">t1</thread></message>`,
      `element jabber:client <message xmlns="jabber:client" to="nurse@capulet.lit" id="m3"><body>&lt;b&gt;bold&lt;/b&gt; &amp; raw and more</body></message>`,
      'end',
    ]);
  });

  it('gives identical events when split in two at every byte offset', () => {
    const total = Buffer.byteLength(SESSION_AUTH) + Buffer.byteLength(SESSION_BOUND);
    for (let k = 0; k <= total; k++) {
      let offset = 0; // split point relative to the stream being fed
      const got = runSession((b) => {
        const at = k - offset;
        offset += b.length;
        return at > 0 && at < b.length ? [b.subarray(0, at), b.subarray(at)] : [b];
      });
      assert.deepEqual(got, reference, `split at byte ${k}`);
    }
  });

  it('gives identical events when fed byte by byte', () => {
    const got = runSession((b) => Array.from({ length: b.length }, (_, i) => b.subarray(i, i + 1)));
    assert.deepEqual(got, reference);
  });

  it('gives identical events for random chunkings', () => {
    let seed = 12345;
    const rand = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let round = 0; round < 200; round++) {
      const got = runSession((b) => {
        const out: Buffer[] = [];
        for (let i = 0; i < b.length; ) {
          const n = 1 + rand(40);
          out.push(b.subarray(i, i + n));
          i += n;
        }
        return out;
      });
      assert.deepEqual(got, reference, `round ${round}`);
    }
  });

  it('resolves namespaces and keeps attributes as written on the parsed elements', () => {
    const r = recorder();
    r.p.write(Buffer.from(SESSION_BOUND));
    const [bind, , , msg, msg2] = r.els as [Element, Element, Element, Element, Element];
    assert.ok(bind.is('iq', NS_CLIENT));
    assert.ok(bind.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind'));
    assert.equal(bind.getChild('bind')?.getChildText('resource'), 'balcony');
    assert.deepEqual(msg.attrs, { to: 'romeo@montague.lit', type: 'chat', id: 'm&1', 'xml:lang': 'en' });
    assert.equal(msg.getChildText('body'), 'Ünïcødé 💬 <3 & 🌹 é');
    const thread = msg2.getChild('thread', 'urn:example:x');
    assert.ok(thread);
    assert.deepEqual(thread.attrs, { 'xmlns:x': 'urn:example:x', 'x:parent': 'p1' });
    assert.equal(msg2.getChildText('body'), `He said "it's 'fine'" > 2 — 日本語テキスト`);
  });
});

describe('namespaces', () => {
  it('puts stream-prefixed elements in the streams namespace and stanzas in jabber:client', () => {
    const r = recorder();
    r.p.write(Buffer.from(HEADER + "<stream:features><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></stream:features><message/>"));
    const [features, message] = r.els as [Element, Element];
    assert.ok(features.is('features', NS_STREAM));
    // Children of a stream-prefixed element inherit the default namespace, not the prefix's.
    assert.equal(features.getChild('bind')?.xmlns, 'urn:ietf:params:xml:ns:xmpp-bind');
    assert.ok(message.is('message', NS_CLIENT));
  });

  it('parses <stream:error> with its condition namespace', () => {
    const r = recorder();
    r.p.write(
      Buffer.from(HEADER + "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"),
    );
    const err = r.els[0] as Element;
    assert.ok(err.is('error', NS_STREAM));
    assert.ok(err.getChild('host-unknown', 'urn:ietf:params:xml:ns:xmpp-streams'));
  });

  it('handles default namespace overrides, inheritance and undeclaring', () => {
    const el = parseXml("<a xmlns='urn:a'><b xmlns='urn:b'><c/><d xmlns=''><e/></d></b><f/></a>");
    assert.equal(el.xmlns, 'urn:a');
    const b = el.getChild('b') as Element;
    assert.equal(b.xmlns, 'urn:b');
    assert.equal(b.getChild('c')?.xmlns, 'urn:b');
    assert.equal(b.getChild('d')?.xmlns, '');
    assert.equal(b.getChild('d')?.getChild('e')?.xmlns, '');
    assert.equal(el.getChild('f')?.xmlns, 'urn:a');
    assert.deepEqual(b.attrs, {}, 'the own default namespace declaration is not an attribute');
  });

  it('resolves prefixes, shadowing and the xml prefix', () => {
    const el = parseXml(
      "<p:a xmlns:p='urn:p1' xmlns='urn:d'><p:b><p:c xmlns:p='urn:p2' p:x='1' xml:lang='fr'/><d/></p:b></p:a>",
    );
    assert.ok(el.is('a', 'urn:p1'));
    const b = el.getChild('b', 'urn:p1') as Element;
    const c = b.getChild('c', 'urn:p2') as Element;
    assert.deepEqual(c.attrs, { 'xmlns:p': 'urn:p2', 'p:x': '1', 'xml:lang': 'fr' });
    assert.equal(b.getChild('d')?.xmlns, 'urn:d');
    assert.equal(parseXml('<xml:a/>').xmlns, NS_XML);
  });

  it('rejects namespace errors as not-well-formed', () => {
    for (const bad of [
      '<p:a/>', // unbound element prefix
      "<a p:x='1'/>", // unbound attribute prefix
      "<a xmlns:p=''/>", // undeclaring a prefix (Namespaces 1.0)
      "<a xmlns:xmlns='urn:x'/>",
      "<a xmlns:xml='urn:x'/>",
      "<a xmlns:p='http://www.w3.org/XML/1998/namespace'/>",
      "<a xmlns:p='urn:x' xmlns:q='urn:x' p:z='1' q:z='2'/>", // same expanded attribute name
      '<a:b:c/>',
    ]) {
      assert.throws(() => parseXml(bad), (e: unknown) => e instanceof XmlError && e.condition === 'not-well-formed', bad);
    }
  });
});

describe('limits', () => {
  const small: ParserLimits = { maxStanzaSize: 1000, maxDepth: 4, maxAttributes: 5 };

  it('rejects a complete stanza over the size limit', () => {
    assert.equal(errorOf(`<message><body>${'x'.repeat(1000)}</body></message>`, small), 'policy-violation');
    assert.equal(errorOf(`<message><body>${'x'.repeat(900)}</body></message>`, small), undefined);
  });

  it('counts the stanza size in characters, not bytes', () => {
    // 900 three-byte characters: 2700 bytes but well under 1000 characters.
    assert.equal(errorOf(`<message><body>${'語'.repeat(900)}</body></message>`, small), undefined);
  });

  it('catches a stanza that never closes as soon as it passes the limit', () => {
    const r = recorder(small);
    r.p.write(Buffer.from(HEADER + '<message><body>'));
    let fed = 0;
    while (r.log.at(-1) !== 'error policy-violation') {
      r.p.write(Buffer.from('y'.repeat(100)));
      fed += 100;
      assert.ok(fed <= 1100, 'the error must come within one chunk of the limit');
    }
  });

  it('also bounds a start tag or an end tag that never ends', () => {
    assert.equal(errorOf(`<message to='${'x'.repeat(2000)}`, small), 'policy-violation');
    assert.equal(errorOf(`<message a='1' ${'b'.repeat(2000)}`, small), 'policy-violation');
    assert.equal(errorOf(`</stream:stream${' '.repeat(2000)}`, small), 'policy-violation');
    // complete in one chunk, and self-closing: caught at the tag itself
    assert.equal(errorOf(`<message to='${'x'.repeat(1200)}'/>`, small), 'policy-violation');
  });

  it('does not count whitespace keepalives between stanzas', () => {
    const r = recorder(small);
    r.p.write(Buffer.from(HEADER));
    for (let i = 0; i < 50; i++) r.p.write(Buffer.from(' '.repeat(100)));
    r.p.write(Buffer.from('<message/>'));
    assert.equal(r.log.at(-1), 'element jabber:client <message xmlns="jabber:client"/>');
  });

  it('applies new limits from setLimits', () => {
    const r = recorder(small);
    r.p.write(Buffer.from(HEADER));
    r.p.setLimits({ ...small, maxStanzaSize: 5000 });
    r.p.write(Buffer.from(`<message><body>${'x'.repeat(3000)}</body></message>`));
    assert.equal(r.els.length, 1);
    r.p.setLimits(small);
    r.p.write(Buffer.from(`<message><body>${'x'.repeat(3000)}</body></message>`));
    assert.equal(lastError(r.log), 'policy-violation');
  });

  it('limits nesting depth (the stanza is depth 1)', () => {
    assert.equal(errorOf('<a><b><c><d/></c></b></a>', small), undefined);
    assert.equal(errorOf('<a><b><c><d><e/></d></c></b></a>', small), 'policy-violation');
  });

  it('limits the attribute count', () => {
    assert.equal(errorOf("<a a='1' b='2' c='3' d='4' e='5'/>", small), undefined);
    assert.equal(errorOf("<a a='1' b='2' c='3' d='4' e='5' f='6'/>", small), 'policy-violation');
    assert.equal(errorOf("<a><b a='1' b='2' c='3' d='4' e='5' xmlns='urn:x'/></a>", small), 'policy-violation');
  });

  it('bounds the stream header', () => {
    const huge = `<stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAM}' to='${'x'.repeat(STREAM_HEADER_MAX)}'>`;
    assert.equal(lastError(run(huge)), 'policy-violation');
    const r = recorder();
    r.p.write(Buffer.from("<stream:stream xmlns='jabber:client' "));
    for (let i = 0; i < STREAM_HEADER_MAX / 100 + 1; i++) r.p.write(Buffer.from('a'.repeat(100)));
    assert.equal(lastError(r.log), 'policy-violation');
    assert.equal(lastError(run(' '.repeat(STREAM_HEADER_MAX + 1))), 'policy-violation');
    assert.equal(lastError(run(`<stream:stream xmlns:stream='${NS_STREAM}' a='1' b='2' c='3'>`, small)), undefined);
    assert.equal(lastError(run(`<stream:stream xmlns:stream='${NS_STREAM}' a='1' b='2' c='3' d='4' e='5'>`, small)), 'policy-violation');
  });

  it('takes linear time on a huge stanza fed in tiny chunks', () => {
    const big: ParserLimits = { maxStanzaSize: 1 << 20, maxDepth: 8, maxAttributes: 8 };
    const r = recorder(big);
    r.p.write(Buffer.from(HEADER));
    const t0 = Date.now();
    const parts = ["<message id='", 'v'.repeat(150_000), "'><body>", 'w'.repeat(150_000), '</body></message>'];
    for (const part of parts) {
      const b = Buffer.from(part);
      for (let i = 0; i < b.length; i += 2) r.p.write(b.subarray(i, i + 2));
    }
    assert.equal(r.els.length, 1);
    assert.equal(r.els[0]?.attr('id')?.length, 150_000);
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });
});

describe('restricted XML', () => {
  it('rejects DOCTYPE, entity and other declarations, comments and processing instructions', () => {
    const cases: [string, string][] = [
      ["<?xml version='1.0'?><!DOCTYPE stream:stream>" + HEADER.slice(21), 'doctype'],
      ["<!DOCTYPE s [<!ENTITY a 'b'>]>" + HEADER.slice(21), 'doctype with entity'],
      [HEADER + "<!ENTITY a 'b'>", 'entity declaration'],
      [HEADER + '<!ELEMENT a ANY>', 'element declaration'],
      [HEADER + '<!ATTLIST a b CDATA #IMPLIED>', 'attlist'],
      [HEADER + '<!-- hello -->', 'comment at top level'],
      [HEADER + '<message><!-- hi --></message>', 'comment in a stanza'],
      [HEADER + "<message><?php echo 'x' ?></message>", 'processing instruction'],
      [HEADER + "<?xml version='1.0'?>", 'XML declaration not at the start'],
      ["<!-- before -->" + HEADER, 'comment before the header'],
      ["<?xml-stylesheet href='a'?>" + HEADER.slice(21), 'PI before the header'],
    ];
    for (const [input, what] of cases) {
      assert.equal(lastError(run(input)), 'restricted-xml', what);
      // and the same when the markup arrives one byte at a time
      const r = recorder();
      for (const byte of Buffer.from(input)) r.p.write(Buffer.from([byte]));
      assert.equal(lastError(r.log), 'restricted-xml', `${what}, byte by byte`);
    }
  });

  it('accepts the XML declaration at the very start, also after a BOM', () => {
    assert.equal(lastError(run(HEADER)), undefined);
    assert.equal(lastError(run('\uFEFF' + HEADER)), undefined);
    assert.equal(lastError(run(HEADER.slice(21))), undefined, 'the declaration is optional');
    assert.equal(lastError(run(`<?xml version="1.0" encoding="UTF-8" standalone="yes"?>` + HEADER.slice(21))), undefined);
    assert.equal(lastError(run(`<?xml version='1.0' encoding='ISO-8859-1'?>` + HEADER.slice(21))), 'not-well-formed');
    assert.equal(lastError(run(`<?xml encoding='UTF-8'?>` + HEADER.slice(21))), 'not-well-formed');
    assert.equal(lastError(run(' ' + HEADER)), 'restricted-xml', 'a PI, once anything precedes it');
  });
});

describe('malformed input', () => {
  const cases: [string, string | Buffer][] = [
    ['mismatched end tag', '<message><body></message>'],
    ['end tag with a different prefix', "<p:a xmlns:p='urn:p'></a>"],
    ['unquoted attribute value', '<message to=romeo/>'],
    ['attribute without value', '<message to/>'],
    ['attribute without whitespace before it', "<message to='a'id='b'/>"],
    ['duplicate attribute', "<message id='a' id='b'/>"],
    ["'<' in an attribute value", "<message id='a<b'/>"],
    ['mismatched quotes', `<message id='a"/><x/>`],
    ['space before the element name', '< message/>'],
    ['invalid element name', '<1message/>'],
    ['undefined entity', '<message><body>&nbsp;</body></message>'],
    ['undefined entity in an attribute', "<message id='&foo;'/>"],
    ['ampersand without a reference', '<message><body>fish & chips</body></message>'],
    ['reference without a semicolon', '<message><body>&amp</body></message>'],
    ['reference to a forbidden character', '<message><body>&#0;</body></message>'],
    ['reference to a surrogate', '<message><body>&#xD800;</body></message>'],
    ['reference out of range', '<message><body>&#x110000;</body></message>'],
    ['text at top level', 'hello<message/>'],
    ['CDATA at top level', '<![CDATA[x]]>'],
    ["']]>' in text", '<message><body>a]]>b</body></message>'],
    ['control character', '<message><body>\u0001</body></message>'],
    ['control character in an attribute', "<message id='\u0007'/>"],
    ['U+FFFE', '<message><body>\uFFFE</body></message>'],
    ['unknown markup declaration', '<!FOO>'],
    ['invalid UTF-8 byte', Buffer.from([0x3c, 0x61, 0x3e, 0xff, 0x3c, 0x2f, 0x61, 0x3e])],
    ['overlong UTF-8', Buffer.from([0x3c, 0x61, 0x3e, 0xc0, 0xbc, 0x3c, 0x2f, 0x61, 0x3e])],
    ['lone continuation byte', Buffer.from([0x3c, 0x61, 0x3e, 0x80, 0x3c, 0x2f, 0x61, 0x3e])],
    ['UTF-8 encoded surrogate', Buffer.from([0x3c, 0x61, 0x3e, 0xed, 0xa0, 0x80, 0x3c, 0x2f, 0x61, 0x3e])],
    ['truncated sequence before ASCII', Buffer.from([0x3c, 0x61, 0x3e, 0xe2, 0x82, 0x3c, 0x2f, 0x61, 0x3e])],
  ];
  for (const [what, body] of cases) {
    it(`rejects ${what} as not-well-formed`, () => {
      assert.equal(errorOf(body), 'not-well-formed');
      const input = typeof body === 'string' ? Buffer.from(HEADER + body) : Buffer.concat([Buffer.from(HEADER), body]);
      const r = recorder();
      for (const byte of input) r.p.write(Buffer.from([byte]));
      assert.equal(lastError(r.log), 'not-well-formed', 'byte by byte');
    });
  }

  it('rejects a stream that does not start with an element', () => {
    assert.equal(lastError(run('hello')), 'not-well-formed');
    assert.equal(lastError(run('</stream:stream>')), 'not-well-formed');
  });

  it('reports no further events after an error, even from the same chunk', () => {
    const r = recorder();
    r.p.write(Buffer.from(HEADER + '<message/><a></b><message/><presence/>'));
    r.p.write(Buffer.from('<message/></stream:stream>'));
    assert.deepEqual(r.log.slice(1), ['element jabber:client <message xmlns="jabber:client"/>', 'error not-well-formed']);
  });
});

describe('text and attribute values', () => {
  it('unescapes the predefined entities and character references', () => {
    const el = parseXml(`<a b='&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x1F600;'>&lt;&gt;&amp;&quot;&apos;&#65;&#x42;&#x1f600;</a>`);
    assert.equal(el.attr('b'), `<>&"'AB😀`);
    assert.equal(el.text(), `<>&"'AB😀`);
  });

  it('normalises line ends and attribute whitespace as XML requires', () => {
    const el = parseXml("<a b='x\ty\r\nz\n&#10;&#9;'>one\r\ntwo\rthree&#13;</a>");
    assert.equal(el.attr('b'), 'x y z \n\t');
    assert.equal(el.text(), 'one\ntwo\nthree\r');
  });

  it('keeps CDATA content literally and merges it with adjacent text', () => {
    const el = parseXml('<a>x<![CDATA[<&>]]]]>y</a>');
    assert.deepEqual(el.children, ['x<&>]]y']);
  });

  it('accepts all quoting and spacing forms of attributes', () => {
    const el = parseXml(`<a  b = "1"\n\tc='2' d="'" e='"' />`);
    assert.deepEqual(el.attrs, { b: '1', c: '2', d: "'", e: '"' });
  });

  it('keeps an attribute named __proto__ as an ordinary attribute', () => {
    const el = parseXml("<a __proto__='x' constructor='y'/>");
    assert.equal(Object.getOwnPropertyDescriptor(el.attrs, '__proto__')?.value, 'x');
    assert.equal(el.attr('constructor'), 'y');
    assert.throws(() => parseXml("<a toString='1' toString='2'/>"), XmlError);
  });

  it('accepts non-ASCII names', () => {
    const el = parseXml("<é:ünï xmlns:é='urn:e' ñ='1'><日本/></é:ünï>");
    assert.ok(el.is('ünï', 'urn:e'));
    assert.equal(el.attr('ñ'), '1');
    assert.equal(el.getChild('日本')?.xmlns, '');
  });
});

describe('stream lifecycle', () => {
  it('ignores whitespace keepalives between stanzas', () => {
    const r = recorder();
    r.p.write(Buffer.from(HEADER));
    for (const ka of [' ', '\n', '\r\n', '\t  \n']) r.p.write(Buffer.from(ka));
    r.p.write(Buffer.from('<message/>  \n<presence/>\n'));
    assert.deepEqual(r.log.slice(1), [
      'element jabber:client <message xmlns="jabber:client"/>',
      'element jabber:client <presence xmlns="jabber:client"/>',
    ]);
  });

  it('reports the stream end once and ignores what follows', () => {
    const r = recorder();
    r.p.write(Buffer.from(HEADER + '<message/></stream:stream><message/>junk'));
    r.p.write(Buffer.from('<presence/>'));
    assert.deepEqual(r.log.slice(1), ['element jabber:client <message xmlns="jabber:client"/>', 'end']);
  });

  it('rejects closing the stream inside a stanza', () => {
    assert.equal(errorOf('<message></stream:stream>'), 'not-well-formed');
  });

  it('reports a self-closing stream header as start then end', () => {
    const log = run(`<stream:stream xmlns='jabber:client' xmlns:stream='${NS_STREAM}'/>`);
    assert.equal(log.length, 2);
    assert.equal(log[1], 'end');
  });

  it('reset() expects a new stream header, with or without an XML declaration', () => {
    const r = recorder();
    r.p.write(Buffer.from(HEADER + '<message><body>half'));
    r.p.reset();
    r.p.write(Buffer.from(HEADER + '<presence/>'));
    r.p.reset();
    r.p.write(Buffer.from(HEADER.slice(21) + '<iq/>'));
    assert.deepEqual(
      r.log.filter((l) => !l.startsWith('start')),
      ['element jabber:client <presence xmlns="jabber:client"/>', 'element jabber:client <iq xmlns="jabber:client"/>'],
    );
    assert.equal(r.log.filter((l) => l.startsWith('start')).length, 3);
  });

  it('reset() after an error starts afresh', () => {
    const r = recorder();
    r.p.write(Buffer.from(HEADER + '<a></b>'));
    r.p.reset();
    r.p.write(Buffer.from(HEADER + '<message/>'));
    assert.equal(r.log.at(-1), 'element jabber:client <message xmlns="jabber:client"/>');
  });

  it('reset() from a callback discards the rest of the chunk (no plaintext after <starttls/>)', () => {
    const seen: string[] = [];
    const p: StreamParser = createStreamParser(
      {
        onStreamStart: () => seen.push('start'),
        onElement(el) {
          seen.push(el.name);
          if (el.name === 'starttls') p.reset();
        },
        onStreamEnd: () => seen.push('end'),
        onError: (c) => seen.push(c),
      },
      LIMITS,
    );
    p.write(Buffer.from(HEADER + "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/><message><body>injected</body></message>"));
    p.write(Buffer.from(HEADER + '<message/>'));
    assert.deepEqual(seen, ['start', 'starttls', 'start', 'message']);
  });

  it('end() stops all events, also from a callback', () => {
    const r = recorder();
    r.p.write(Buffer.from(HEADER));
    r.p.end();
    r.p.write(Buffer.from('<message/></stream:stream>'));
    assert.equal(r.log.length, 1);

    const seen: string[] = [];
    const p: StreamParser = createStreamParser(
      {
        onStreamStart: () => {},
        onElement(el) {
          seen.push(el.name);
          p.end();
        },
        onStreamEnd: () => seen.push('end'),
        onError: (c) => seen.push(c),
      },
      LIMITS,
    );
    p.write(Buffer.from(HEADER + '<a/><b/></stream:stream>'));
    assert.deepEqual(seen, ['a']);
  });
});

describe('parseXml', () => {
  it('parses a WebSocket open frame', () => {
    const el = parseXml(`<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" to="capulet.lit" version="1.0"/>`);
    assert.ok(el.is('open', 'urn:ietf:params:xml:ns:xmpp-framing'));
    assert.deepEqual(el.attrs, { to: 'capulet.lit', version: '1.0' });
  });

  it('accepts surrounding whitespace and a leading XML declaration', () => {
    assert.equal(parseXml(`<?xml version='1.0'?>\n <a/> \n`).name, 'a');
  });

  it('round-trips parse -> serialize -> parse', () => {
    const src =
      "<message xmlns='jabber:client' to='a@b/c' id='x&amp;y&quot;z' xml:lang='en'>" +
      "<body>Ünïcødé 💬 &lt;tag&gt; &amp; \"quotes\" 'apos' tab\there\r\nCR&#13;</body>" +
      "<x:y xmlns:x='urn:x' x:a='a\tb&#10;c'><z xmlns='urn:z'>t</z></x:y><empty/></message>";
    const a = parseXml(src);
    const text = serialize(a, '');
    const b = parseXml(text);
    assert.deepEqual(b, a);
    assert.equal(serialize(b, ''), text);
    assert.equal(a.getChildText('body'), "Ünïcødé 💬 <tag> & \"quotes\" 'apos' tab\there\nCR\r");
  });

  it('round-trips stream-namespace elements without a duplicate declaration', () => {
    const el = parseXml(`<stream:features xmlns:stream='${NS_STREAM}'><mechanisms xmlns='${NS_SASL}'/></stream:features>`);
    assert.ok(el.is('features', NS_STREAM));
    const again = parseXml(serialize(el, ''));
    assert.ok(again.is('features', NS_STREAM));
    assert.ok(again.getChild('mechanisms', NS_SASL));
  });

  it('throws XmlError with the stream error condition', () => {
    const cond = (s: string): string => {
      try {
        parseXml(s);
        return 'accepted';
      } catch (e) {
        assert.ok(e instanceof XmlError);
        return e.condition;
      }
    };
    assert.equal(cond('<a><!--x--></a>'), 'restricted-xml');
    assert.equal(cond('<!DOCTYPE a><a/>'), 'restricted-xml');
    assert.equal(cond('<a>'), 'not-well-formed');
    assert.equal(cond('<a/><b/>'), 'not-well-formed');
    assert.equal(cond('<a/>x'), 'not-well-formed');
    assert.equal(cond(''), 'not-well-formed');
    assert.equal(cond('<a/><'), 'not-well-formed');
    assert.equal(cond('<a>\uD800</a>'), 'not-well-formed');
    assert.equal(cond('<a><b><c/></b></a>'), 'accepted');
  });

  it('applies limits when given', () => {
    const limits: ParserLimits = { maxStanzaSize: 20, maxDepth: 2, maxAttributes: 1 };
    assert.ok(parseXml("<a x='1'><b/></a>", limits) instanceof Element);
    for (const s of ['<a><b><c/></b></a>', "<a x='1' y='2'/>", `<a>${'x'.repeat(20)}</a>`]) {
      assert.throws(() => parseXml(s, limits), (e: unknown) => e instanceof XmlError && e.condition === 'policy-violation', s);
    }
  });
});
