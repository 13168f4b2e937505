/**
 * Element (src/xml/element.ts): building, querying, escaping and namespace-aware
 * serialization, checked by parsing the output back with the real parser.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Element, NS_CLIENT, NS_STREAM, escapeAttr, escapeText, serialize, x } from '../../src/xml/element.js';
import { parseXml } from '../../src/xml/parser.js';

describe('escaping', () => {
  it('escapes & < > in text and & < > " \' in attributes', () => {
    assert.equal(escapeText(`a & b < c > d "e" 'f'`), `a &amp; b &lt; c &gt; d "e" 'f'`);
    assert.equal(escapeAttr(`a & b < c > d "e" 'f'`), 'a &amp; b &lt; c &gt; d &quot;e&quot; &apos;f&apos;');
    assert.equal(escapeText('plain'), 'plain');
    assert.equal(escapeAttr('plain'), 'plain');
  });

  it('escapes whitespace that a parser would normalise', () => {
    assert.equal(escapeAttr('a\tb\nc\rd'), 'a&#9;b&#10;c&#13;d');
    assert.equal(escapeText('a\tb\nc\rd'), 'a\tb\nc&#13;d');
  });

  it('gives the same result on repeated calls (no regex state carried between calls)', () => {
    for (let i = 0; i < 3; i++) {
      assert.equal(escapeText('x<y'), 'x&lt;y');
      assert.equal(escapeText('<'), '&lt;');
      assert.equal(escapeAttr("'"), '&apos;');
    }
  });

  it('survives a round trip through the parser for every special character', () => {
    const nasty = `& < > " ' ]]> \t \n \r\n &amp; &#65; 💬 Ü`;
    const el = x('message', NS_CLIENT, { id: nasty, to: 'a@b' }, [x('body', NS_CLIENT, {}, [nasty])]);
    const back = parseXml(serialize(el, ''));
    assert.equal(back.attr('id'), nasty);
    assert.equal(back.getChildText('body'), nasty);
    assert.deepEqual(back, el);
  });
});

describe('building and querying', () => {
  const msg = x('message', NS_CLIENT, { to: 'juliet@capulet.lit', type: 'chat', id: undefined }, [
    x('body', NS_CLIENT, {}, ['Hello ', 'there']),
    x('active', 'http://jabber.org/protocol/chatstates'),
    x('body', NS_CLIENT, { 'xml:lang': 'fr' }, ['Bonjour']),
    undefined,
  ]);

  it('drops undefined attributes and children in the builder', () => {
    assert.deepEqual(msg.attrs, { to: 'juliet@capulet.lit', type: 'chat' });
    assert.equal(msg.children.length, 3);
  });

  it('finds children by name and namespace', () => {
    assert.ok(msg.is('message'));
    assert.ok(msg.is('message', NS_CLIENT));
    assert.ok(!msg.is('message', 'urn:other'));
    assert.equal(msg.getChild('active')?.xmlns, 'http://jabber.org/protocol/chatstates');
    assert.equal(msg.getChild('active', NS_CLIENT), undefined);
    assert.equal(msg.getChildren('body').length, 2);
    assert.equal(msg.getChildren(undefined, NS_CLIENT).length, 2);
    assert.equal(msg.getChildByNs('http://jabber.org/protocol/chatstates')?.name, 'active');
    assert.equal(msg.getChildText('body'), 'Hello there');
    assert.equal(msg.elements().length, 3);
  });

  it('builds with c(), t(), append(), setAttr() and removeChildren()', () => {
    const iq = new Element('iq', NS_CLIENT, { type: 'result' });
    const q = iq.c('query', { node: 'n' }, 'http://jabber.org/protocol/disco#info');
    q.c('feature', { var: 'urn:xmpp:ping' });
    iq.c('x').t('text');
    iq.append(undefined, 'tail');
    iq.setAttr('id', 'i1').setAttr('type', undefined);
    assert.deepEqual(iq.attrs, { id: 'i1' });
    assert.equal(q.getChild('feature')?.xmlns, 'http://jabber.org/protocol/disco#info', 'c() inherits the parent namespace');
    assert.equal(iq.getChild('x')?.text(), 'text');
    iq.removeChildren((el) => el.name === 'x');
    assert.deepEqual(
      iq.children.map((c) => (typeof c === 'string' ? c : c.name)),
      ['query', 'tail'],
    );
  });

  it('clones deeply', () => {
    const copy = msg.clone();
    assert.deepEqual(copy, msg);
    copy.setAttr('to', 'romeo@montague.lit');
    (copy.getChild('body') as Element).children.push('!');
    assert.equal(msg.attr('to'), 'juliet@capulet.lit');
    assert.equal(msg.getChildText('body'), 'Hello there');
  });
});

describe('serialization', () => {
  it('declares a namespace only where it differs from the parent', () => {
    const msg = x('message', NS_CLIENT, { to: 'a@b' }, [x('body', NS_CLIENT, {}, ['hi']), x('active', 'urn:cs')]);
    assert.equal(msg.toString(), '<message to="a@b"><body>hi</body><active xmlns="urn:cs"/></message>');
    assert.equal(
      serialize(msg, ''),
      '<message xmlns="jabber:client" to="a@b"><body>hi</body><active xmlns="urn:cs"/></message>',
      'namespace-complete for WebSocket frames',
    );
    assert.equal(serialize(x('a', ''), 'urn:x'), '<a xmlns=""/>');
  });

  it('writes streams-namespace elements with the stream: prefix', () => {
    const features = x('features', NS_STREAM, {}, [x('bind', 'urn:ietf:params:xml:ns:xmpp-bind')]);
    assert.equal(
      serialize(features, NS_CLIENT),
      '<stream:features><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>',
    );
    const ws = serialize(features, '');
    assert.equal(ws, `<stream:features xmlns:stream="${NS_STREAM}"><bind xmlns="urn:ietf:params:xml:ns:xmpp-bind"/></stream:features>`);
    assert.ok(parseXml(ws).is('features', NS_STREAM));
  });

  it('writes a parsed xmlns:stream declaration once', () => {
    const parsed = parseXml(`<stream:error xmlns:stream='${NS_STREAM}'><conflict xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>`);
    const out = serialize(parsed, '');
    assert.equal(out.split('xmlns:stream=').length, 2, out);
    assert.deepEqual(parseXml(out), parsed);
  });

  it('never writes an xmlns attribute from attrs', () => {
    const el = new Element('a', 'urn:a', { xmlns: 'urn:wrong', b: '1' });
    assert.equal(serialize(el, ''), '<a xmlns="urn:a" b="1"/>');
  });

  it('round-trips a parsed stanza exactly', () => {
    const src =
      '<message xmlns="jabber:client" to="a@b" id="1"><body>x &amp; y</body>' +
      '<x:e xmlns="urn:x" xmlns:x="urn:x" x:k="v"><f>t</f></x:e></message>';
    const parsed = parseXml(src);
    const again = serialize(parsed, '');
    assert.equal(again, '<message xmlns="jabber:client" to="a@b" id="1"><body>x &amp; y</body><e xmlns="urn:x" xmlns:x="urn:x" x:k="v"><f>t</f></e></message>');
    assert.deepEqual(parseXml(again), parsed);
  });
});
