// The load driver's XML framing (bench/driver/xml.ts): stanza boundaries must be found whatever
// the chunking, including a multi-byte character split across chunks.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XmlFramer, child, escapeXml, findDeep, parseElement, unescapeXml, type FrameEvent } from '../../bench/driver/xml.js';

const HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' id='s1' from='x'>";
const STANZAS = [
  "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><mechanism>PLAIN</mechanism></mechanisms></stream:features>",
  "<message to='a@b' id='m1' type='chat'><body>a &lt;b&gt; &amp; \u00e9\u{1F600} x</body><stanza-id xmlns='urn:xmpp:sid:0' by='a@b' id='X'/></message>",
  "<r xmlns='urn:xmpp:sm:3'/>",
  "<iq type='result' id='q1' data=\"a>b\"><!-- c --><x><![CDATA[<raw>]]></x></iq>",
];
const STREAM = HEADER + '\n ' + STANZAS.join(' ') + '</stream:stream>';

function frame(chunks: Buffer[]): FrameEvent[] {
  const f = new XmlFramer();
  const out: FrameEvent[] = [];
  for (const c of chunks) f.push(c, (e) => out.push(e));
  return out;
}

function expectStream(evs: FrameEvent[]): void {
  assert.equal(evs.length, STANZAS.length + 2);
  const open = evs[0];
  assert.ok(open && open.kind === 'open');
  assert.equal(open.attrs['id'], 's1');
  assert.equal(open.scope[''], 'jabber:client');
  assert.equal(open.scope['stream'], 'http://etherx.jabber.org/streams');
  STANZAS.forEach((s, i) => assert.deepEqual(evs[i + 1], { kind: 'stanza', raw: s }));
  assert.deepEqual(evs[evs.length - 1], { kind: 'close' });
}

test('framer: one chunk', () => {
  expectStream(frame([Buffer.from(STREAM)]));
});

test('framer: every split point of the stream gives the same stanzas', () => {
  const buf = Buffer.from(STREAM);
  for (let i = 1; i < buf.length; i++) expectStream(frame([buf.subarray(0, i), buf.subarray(i)]));
});

test('framer: byte by byte (splits inside UTF-8 sequences and tags)', () => {
  const buf = Buffer.from(STREAM);
  expectStream(frame(Array.from(buf, (b) => Buffer.from([b]))));
});

test('framer: restart() expects a new stream header (after SASL success)', () => {
  const f = new XmlFramer();
  const out: FrameEvent[] = [];
  f.push(HEADER + "<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>", (e) => out.push(e));
  f.restart();
  f.push(HEADER.replace("id='s1'", "id='s2'") + '<a/>', (e) => out.push(e));
  assert.deepEqual(out.map((e) => e.kind), ['open', 'stanza', 'open', 'stanza']);
  const second = out[2];
  assert.ok(second && second.kind === 'open' && second.attrs['id'] === 's2');
});

test('framer: a DOCTYPE is refused', () => {
  assert.throws(() => frame([Buffer.from(HEADER + '<!DOCTYPE x [<!ENTITY a "b">]>')]));
});

test('parseElement resolves namespaces, attributes, text and children', () => {
  const scope = { '': 'jabber:client', stream: 'http://etherx.jabber.org/streams' };
  const feats = parseElement(STANZAS[0] as string, scope);
  assert.equal(feats.local, 'features');
  assert.equal(feats.ns, 'http://etherx.jabber.org/streams');
  const mechs = child(feats, 'mechanisms', 'urn:ietf:params:xml:ns:xmpp-sasl');
  assert.equal(mechs?.children[0]?.text, 'PLAIN');
  assert.equal(mechs?.children[0]?.ns, 'urn:ietf:params:xml:ns:xmpp-sasl');

  const msg = parseElement(STANZAS[1] as string, scope);
  assert.equal(msg.ns, 'jabber:client');
  assert.deepEqual(msg.attrs, { to: 'a@b', id: 'm1', type: 'chat' });
  assert.equal(child(msg, 'body')?.text, 'a <b> & \u00e9\u{1F600} x');
  assert.equal(child(msg, 'stanza-id', 'urn:xmpp:sid:0')?.attrs['id'], 'X');
  assert.equal(child(msg, 'stanza-id', 'jabber:client'), undefined);

  const iq = parseElement(STANZAS[3] as string, scope);
  assert.equal(iq.attrs['data'], 'a>b');
  assert.equal(findDeep(iq, 'x')?.text, '<raw>');

  const p = parseElement("<p:a xmlns:p='urn:p'><p:b/><c/></p:a>", scope);
  assert.equal(p.ns, 'urn:p');
  assert.equal(p.children[0]?.ns, 'urn:p');
  assert.equal(p.children[1]?.ns, 'jabber:client');
});

test('escape and unescape round trip', () => {
  const s = `<a href="x">'&'</a> &#233; &#x1F600;`;
  assert.equal(unescapeXml(escapeXml(s)), s);
  assert.equal(unescapeXml('&#233;&#x1F600;'), '\u00e9\u{1F600}');
});
