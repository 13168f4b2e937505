/**
 * Bugs the fuzzers (test/fuzz/) found, each kept as a regression test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createStreamParser } from '../../src/xml/parser.js';
import { AuthThrottle } from '../../src/sasl/throttle.js';

const HEADER = "<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

function events(chunks: Buffer[]): string[] {
  const ev: string[] = [];
  const p = createStreamParser(
    {
      onStreamStart: (name) => ev.push(`start ${name}`),
      onElement: (el) => ev.push(`el ${el.name}`),
      onStreamEnd: () => ev.push('end'),
      onError: (c) => ev.push(`error ${c}`),
    },
    { maxStanzaSize: 10000, maxDepth: 16, maxAttributes: 16 },
  );
  for (const c of chunks) p.write(c);
  return ev;
}

test('xml-stream: invalid UTF-8 late in a chunk no longer hides the elements before it', () => {
  const bytes = Buffer.concat([Buffer.from(`${HEADER}<presence/>`), Buffer.from([0xdf, 0x63])]);
  const whole = events([bytes]);
  const split = events([bytes.subarray(0, 20), bytes.subarray(20)]);
  assert.deepEqual(whole, ['start stream', 'el presence', 'error not-well-formed']);
  assert.deepEqual(split, whole);
});

test('xml-stream: an error ahead of invalid UTF-8 in the same chunk is the one reported', () => {
  // Found as: "<?xml1.0'?>..." (a processing instruction, restricted) with bad bytes later in the chunk.
  const bytes = Buffer.concat([Buffer.from("<?xml1.0'?>"), Buffer.from(HEADER), Buffer.from([0xff])]);
  assert.deepEqual(events([bytes]), ['error restricted-xml']);
  assert.deepEqual(events([...bytes].map((b) => Buffer.from([b]))), ['error restricted-xml']);
});

test('auth throttle: 0 turns a limit off, as the configuration documents (it refused every login)', () => {
  const t = new AuthThrottle({ perAddress: 0, perAccount: 0, windowMs: 60_000 });
  assert.equal(t.allowed('192.0.2.1', 'romeo'), true);
  for (let i = 0; i < 100; i++) t.recordFailure('192.0.2.1', 'romeo');
  assert.equal(t.allowed('192.0.2.1', 'romeo'), true);
  const limited = new AuthThrottle({ perAddress: 2, perAccount: 0, windowMs: 60_000 });
  limited.recordFailure('192.0.2.1');
  limited.recordFailure('192.0.2.1');
  assert.equal(limited.allowed('192.0.2.1'), false);
});

test('xml-document: an element in the xml: namespace serialises to XML that parses back (it did not)', async () => {
  const { parseXml } = await import('../../src/xml/parser.js');
  const { serialize } = await import('../../src/xml/element.js');
  const el = parseXml("<x:y xmlns:x='urn:x' xml:lang='en'><xml:z xmlns=''/>text&#x10000;</x:y>");
  const once = serialize(el, '');
  assert.equal(serialize(parseXml(once), ''), once);
  const msg = parseXml("<message xmlns='jabber:client'><xml:z xmlns='urn:a'><b/></xml:z></message>");
  assert.equal(msg.toString(), '<message><xml:z><b xmlns="urn:a"/></xml:z></message>');
});

test('xml-document: an empty CDATA section adds no empty text child (serialised <b></b>, reparsed <b/>)', async () => {
  const { parseXml } = await import('../../src/xml/parser.js');
  const el = parseXml("<a xmlns='urn:a'><b><![CDATA[]]></b></a>");
  assert.equal(el.getChild('b')?.children.length, 0);
  assert.equal(el.toString(), '<a xmlns="urn:a"><b/></a>');
});

test('jid: an A-label whose U-label is no valid domain is refused (it parsed, and its string did not)', async () => {
  const { parseJID, JIDError } = await import('../../src/jid/jid.js');
  assert.throws(() => parseJID('x@xn--xn--bcher-kvc.examplebcher-kvc.e'), JIDError);
  // Ordinary IDNs still work and stay canonical.
  const j = parseJID('x@xn--bcher-kva.example');
  assert.equal(j.domain, 'bücher.example');
  assert.equal(parseJID(j.toString()).toString(), j.toString());
});
