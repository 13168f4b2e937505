/**
 * The .scs script format (test/helpers/script.ts, docs/testing.md): parsing,
 * matching rules and placeholders. The runner itself is exercised by
 * test/integration/scripts.test.ts against a real server.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { matchBlock, matchElement, parseBlock, parseScript, ScriptSyntaxError, substitute, varName } from '../helpers/script.js';

const one = (xml: string) => parseBlock(xml)[0] as NonNullable<ReturnType<typeof parseBlock>[0]>;

describe('parseScript', () => {
  const text = [
    '# Romeo woos Juliet',
    '# (a second comment line)',
    '',
    '[Server]',
    '\tconfig: {"moduleOptions": {"roster": {"maxItems": 2}}}',
    '',
    '[Client] Romeo',
    '\tjid: romeo@localhost/orchard',
    '\tpassword: pass',
    '',
    "[Client] Romeo's phone",
    '\tjid: romeo@localhost',
    '\tpassword: pass',
    '',
    '-----',
    '',
    "Romeo's phone connects",
    'Romeo connects',
    'Romeo sends:',
    "\t<presence/>",
    '',
    "\t<message to='juliet@localhost'><body>hi</body></message>",
    '# a comment between steps',
    "Romeo's phone receives:",
    "\t<presence from='${Romeo.jid}'/>",
    'Romeo receives nothing',
    'Romeo receives nothing for 50 ms',
    "Romeo's phone disconnects abruptly",
    'Romeo disconnects',
  ].join('\n');

  test('header, clients, steps with line numbers', () => {
    const s = parseScript(text, 'x.scs');
    assert.equal(s.title, 'Romeo woos Juliet');
    assert.deepEqual(s.config, { moduleOptions: { roster: { maxItems: 2 } } });
    assert.deepEqual(
      s.clients.map((c) => [c.name, c.jid, c.password]),
      [
        ['Romeo', 'romeo@localhost/orchard', 'pass'],
        ["Romeo's phone", 'romeo@localhost', 'pass'],
      ],
    );
    assert.deepEqual(
      s.steps.map((st) => [st.kind, st.client, st.line]),
      [
        ['connect', "Romeo's phone", 17],
        ['connect', 'Romeo', 18],
        ['send', 'Romeo', 19],
        ['receive', "Romeo's phone", 24],
        ['nothing', 'Romeo', 26],
        ['nothing', 'Romeo', 27],
        ['disconnect', "Romeo's phone", 28],
        ['disconnect', 'Romeo', 29],
      ],
    );
    const send = s.steps[2];
    assert.ok(send?.kind === 'send' && send.xml.includes('<body>hi</body>'), 'a block may contain blank lines');
    const n = s.steps[5];
    assert.ok(n?.kind === 'nothing' && n.ms === 50);
    const d = s.steps[6];
    assert.ok(d?.kind === 'disconnect' && d.abrupt);
  });

  test('errors name the line', () => {
    const bad = (t: string, re: RegExp) => assert.throws(() => parseScript(t, 'bad.scs'), (e: unknown) => e instanceof ScriptSyntaxError && re.test(e.message));
    bad('[Client] A\n\tjid: a@localhost\n\tpassword: p\n-----\nB connects', /bad\.scs:5: .*client name/);
    bad('[Client] A\n\tjid: a@localhost\n\tpassword: p\n-----\nA dances', /bad\.scs:5: unknown action/);
    bad('[Client] A\n\tjid: a@localhost\n\tpassword: p\n-----\nA sends:\nA connects', /bad\.scs:5: sends: needs an indented XML block/);
    bad('[Client] A\n\tjid: a@localhost\n\tpassword: p\nA connects', /expected \[Client\]/);
    bad('[Client] A\n\tpassword: p\n-----\n', /needs jid: and password:/);
  });

  test('mr2: true asks for MR2 on that client only; unknown or malformed client fields are errors', () => {
    const s = parseScript(
      ['[Client] A', '\tjid: a@localhost/x', '\tpassword: p', '\tmr2: true', '[Client] B', '\tjid: b@localhost', '\tpassword: p', '[Client] C', '\tjid: c@localhost', '\tpassword: p', '\tmr2: false', '-----', 'A connects'].join('\n'),
      'm.scs',
    );
    assert.deepEqual(
      s.clients.map((c) => [c.name, c.mr2]),
      [
        ['A', true],
        ['B', false],
        ['C', false],
      ],
    );
    const bad = (t: string, re: RegExp) => assert.throws(() => parseScript(t, 'bad.scs'), (e: unknown) => e instanceof ScriptSyntaxError && re.test(e.message));
    bad('[Client] A\n\tjid: a@localhost\n\tpassword: p\n\tmr2: yes\n-----\n', /bad\.scs:1: .*mr2: must be true or false/);
    bad('[Client] A\n\tjid: a@localhost\n\tpassword: p\n\tmr: true\n-----\n', /bad\.scs:1: .*unknown field\(s\) mr/);
  });

  test('variable names of clients', () => {
    assert.equal(varName("Romeo's phone"), 'Romeo_phone');
    assert.equal(varName('Juliet'), 'Juliet');
    assert.equal(varName('Romeo again'), 'Romeo_again');
  });
});

describe('matching', () => {
  test('extra attributes are ignored, attribute order does not matter, namespaces do', () => {
    const caps = new Map<string, string>();
    assert.equal(matchElement(one("<presence type='subscribe' from='a@b'/>"), one("<presence to='x' from='a@b' type='subscribe' id='1'/>"), caps), undefined);
    assert.match(matchElement(one("<presence type='subscribed'/>"), one("<presence type='subscribe'/>"), caps) ?? '', /attribute type: expected "subscribed", got "subscribe"/);
    assert.match(matchElement(one("<presence to='x'/>"), one('<presence/>'), caps) ?? '', /attribute to is missing/);
    assert.match(matchElement(one("<query xmlns='a'/>"), one("<query xmlns='b'/>"), caps) ?? '', /expected <query xmlns='a'>/);
    assert.equal(matchElement(one("<x:query xmlns:x='a'/>"), one("<query xmlns='a'/>"), caps), undefined, 'prefixes do not matter');
  });

  test('children match one to one, in order; {any} content matches anything', () => {
    const caps = new Map<string, string>();
    assert.match(matchElement(one("<iq type='result'/>"), one("<iq type='result'><query xmlns='q'/></iq>"), caps) ?? '', /unexpected child/);
    assert.match(matchElement(one("<iq><a/><b/></iq>"), one('<iq><a/></iq>'), caps) ?? '', /missing child <b/);
    assert.match(matchElement(one('<iq><a/><b/></iq>'), one('<iq><b/><a/></iq>'), caps) ?? '', /expected <a/);
    assert.equal(matchElement(one("<iq><query xmlns='q'>{any}</query></iq>"), one("<iq><query xmlns='q'><item/><item/>text</query></iq>"), caps), undefined);
    assert.equal(matchElement(one('<m>\n\t<body>hi</body>\n</m>'), one('<m><body> hi </body></m>'), caps), undefined, 'indentation and trimming');
    assert.match(matchElement(one('<m><body>hi</body></m>'), one('<m><body>ho</body></m>'), caps) ?? '', /\/m\/body: text: expected "hi", got "ho"/);
  });

  test('captures and substitution', () => {
    const caps = new Map<string, string>();
    assert.equal(matchElement(one("<iq id='{capture:push}'><q>{capture:t}</q></iq>"), one("<iq id='p1' to='z'><q>hello</q></iq>"), caps), undefined);
    assert.deepEqual([...caps], [['push', 'p1'], ['t', 'hello']]);
    assert.equal(substitute("<iq id='${push}' to=\"${who}\"/>", new Map([['push', 'p1'], ['who', `a'b"<`]])), `<iq id='p1' to="a&apos;b&quot;&lt;"/>`);
    assert.throws(() => substitute('${nope}', new Map()), /unknown variable \$\{nope\}/);
  });

  test('a block matches in any order, backtracking when a loose expectation takes the wrong stanza', () => {
    const expected = parseBlock("<presence from='{any}'/><presence from='b' type='unavailable'/>");
    const got = parseBlock("<presence from='b' type='unavailable'/><presence from='a'/>");
    const r = matchBlock(expected, got);
    assert.ok(r instanceof Map, String(r));
    const bad = matchBlock(parseBlock("<presence from='c'/>"), parseBlock("<presence from='a'/>"));
    assert.equal(typeof bad, 'string');
    assert.match(bad as string, /nothing matched[\s\S]*attribute from: expected "c", got "a"/);
  });
});
