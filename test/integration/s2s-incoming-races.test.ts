/**
 * Regressions of the incoming s2s stream (src/s2s/incoming.ts) that the s2s
 * fuzz target found (test/fuzz/s2s-target.ts, seeds 12 and 17 of
 * test/fuzz/corpus/s2s/), on its two in-process servers over real loopback
 * sockets: `localhost` and `peer.example`, the real authoritative server that
 * answers localhost's <db:verify/> over a real outgoing stream (STARTTLS,
 * SASL EXTERNAL with test-CA certificates).
 *
 * - A dialback verdict arriving after the stream closed authenticated the
 *   closed stream: the manager kept it as peer.example's stream for good, and
 *   it replaced (stream error <conflict/>) the live stream that had
 *   authenticated peer.example before.
 * - Plaintext pipelined after <starttls/> was still acted on: a <db:result/>
 *   in the same packet was verified, and its answer was written into the TLS
 *   layer before the stream header.
 * - A peer ending (or failing) before its header got a bare
 *   `</stream:stream>` (or a stream error without header) from us.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { fill, S2SClient, startS2SPair, stopS2SPair, PEER, type S2SPair } from '../fuzz/s2s-target.js';

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' from='${PEER}' to='localhost' version='1.0'>`;
const RESULT = `<db:result from='${PEER}' to='localhost'>DBKEY</db:result>`;

let p: S2SPair;
before(async () => {
  p = await startS2SPair();
});
after(stopS2SPair);

async function until(what: string, cond: () => boolean, ms = 20000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const text = (c: S2SClient): string => c.segments.map((s) => s.raw.join('')).join('');
const idle = (): boolean => p.m.holdings().verifying === 0;

/** A stream authenticated as peer.example by dialback (the key the real peer.example made for it). */
async function dialedBack(): Promise<S2SClient> {
  const c = await S2SClient.connect(p.port);
  c.write(Buffer.from(HEADER));
  await until('the header', () => c.streamId !== '');
  c.write(fill(Buffer.from(RESULT), c.streamId));
  await until('the dialback answer', () => /type="valid"/.test(text(c)));
  return c;
}

test('a dialback verdict for a stream that closed meanwhile authenticates nothing and leaves the live stream alone', async () => {
  const live = await dialedBack();
  assert.equal(p.m.holdings().incomingDomains, 1);
  const before = p.m.received.get({ kind: 'message' });

  // A second stream asks for the same domain with a valid key and ends before the answer comes.
  const gone = await S2SClient.connect(p.port);
  gone.write(Buffer.from(HEADER));
  await until('the header', () => gone.streamId !== '');
  gone.write(Buffer.concat([fill(Buffer.from(RESULT), gone.streamId), Buffer.from('</stream:stream>')]));
  await gone.end();
  // peer.example's verdict (valid) arrives after the close.
  await until('the verification', idle);
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));

  assert.equal(live.closed, false, `the live stream was closed:\n${text(live)}`);
  assert.doesNotMatch(text(live), /conflict/);
  assert.equal(p.m.holdings().incoming, 1);
  assert.equal(p.m.holdings().incomingDomains, 1, 'the closed stream is not kept as the domain stream');
  // The live stream still carries stanzas.
  live.write(Buffer.from(`<message from='juliet@${PEER}' to='user@localhost'><body>still here</body></message>`));
  await until('the message to be routed', () => p.m.received.get({ kind: 'message' }) === before + 1);
  await live.end();
  await until('nothing left', () => p.m.holdings().incomingDomains === 0 && p.m.holdings().incoming === 0);
});

test('plaintext pipelined after <starttls/> is never acted on; the TLS layer begins with the stream header', async () => {
  const c = await S2SClient.connect(p.port);
  c.write(Buffer.from(HEADER));
  await until('the header', () => c.streamId !== '');
  const auths = p.m.authIn.get({ method: 'dialback' });
  c.write(Buffer.concat([Buffer.from("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"), fill(Buffer.from(RESULT), c.streamId)]));
  await until('<proceed/>', () => c.proceedPending);
  assert.ok(await c.upgrade(p.peerCert), 'TLS handshake');
  c.write(Buffer.from(HEADER));
  await until('the header on TLS', () => c.segment.headers.length === 1);
  await until('the verification', idle);
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  assert.equal(p.m.authIn.get({ method: 'dialback' }), auths, 'the pipelined <db:result/> was not verified');
  assert.doesNotMatch(text(c), /<result /);
  assert.match(c.segment.raw.join(''), /^<\?xml version='1.0'\?><stream:stream /);
  assert.equal(c.segment.malformed, undefined);
  await c.end();
});

test('a peer that ends before its header gets no unbalanced closing tag; one that errs after STARTTLS gets a header first', async () => {
  const early = await S2SClient.connect(p.port);
  early.write(Buffer.from("<?xml version='1.0'?"));
  await early.end();
  assert.equal(text(early), '', 'nothing written for a stream never opened');

  const c = await S2SClient.connect(p.port);
  c.write(Buffer.from(HEADER));
  await until('the header', () => c.streamId !== '');
  c.write(Buffer.from("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>"));
  await until('<proceed/>', () => c.proceedPending);
  assert.ok(await c.upgrade(p.peerCert), 'TLS handshake');
  c.write(Buffer.from('not xml <<'));
  await until('the close', () => c.closed);
  const seg = c.segment;
  assert.equal(seg.malformed, undefined, seg.raw.join(''));
  assert.equal(seg.headers.length, 1, 'a header before the stream error');
  assert.ok(seg.elements.some((e) => e.name === 'error'), seg.raw.join(''));
  assert.ok(seg.ended);
  await until('nothing left', () => p.m.holdings().incoming === 0);
});
