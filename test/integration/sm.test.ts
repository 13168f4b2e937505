/**
 * Stream management (issue 5) against the real server over real sockets:
 * enable, acks that mean "handled" (archived and routed), the server's ack
 * requests, resumption in all its outcomes, what happens to unacked stanzas
 * when a session ends for good, and h kept across a clean restart.
 *
 * One client here is the raw XEP-0198 client of sm-client.ts; another check
 * uses @xmpp/client's own stream-management implementation.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { SmClient, SM, tryResume, mamAll, type SmConnectOptions } from './sm-client.js';

process.env.NODE_TLS_REJECT_UNAUTHORIZED = '0'; // @xmpp/client upgrades to TLS; the test certificate is self-signed

const PW = 'secret';
const USERS: Array<[string, string]> = ['romeo', 'juliet', 'benvolio', 'mercutio', 'tybalt', 'paris', 'nurse', 'friar'].map((u) => [u, PW]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** No unsolicited <r/> in these tests unless a test asks for it; short timeouts where a test needs them. */
const QUIET = { requestEvery: 100000, requestAfter: 100000 };

let v: Verona;
before(async () => {
  v = await startVerona({ users: USERS, config: { moduleOptions: { sm: { ...QUIET, resumeTimeout: 2 } } } });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

function opts(user: string, resource: string, extra: Partial<SmConnectOptions> = {}, server = v): SmConnectOptions {
  return { port: server.ports.c2s as number, user, password: PW, resource, ...extra };
}

const isMsg = (el: Element) => el.name === 'message';
const body = (el: Element) => el.getChildText('body');
const chat = (to: string, id: string, text: string) => `<message to='${to}' type='chat' id='${id}'><body>${text}</body></message>`;

describe('enabling', () => {
  test('sm and csi are offered after authentication; enable with resume gives an id and the default max', async () => {
    const c = await SmClient.connect(opts('romeo', 'en1', { sm: false }));
    try {
      assert.ok(c.features?.getChild('sm', SM), 'sm feature');
      assert.ok(c.features?.getChild('csi', 'urn:xmpp:csi:0'), 'csi feature');
      const en = await c.enable(true);
      assert.equal(en.name, 'enabled');
      assert.equal(en.attrs.resume, 'true');
      assert.ok(en.attrs.id && en.attrs.id.length >= 16, 'an unguessable id');
      assert.equal(en.attrs.max, '2', 'the configured resumption timeout');
      // Enabling twice is refused, and the stream goes on.
      const again = await c.enable(true);
      assert.equal(again.name, 'failed');
      assert.ok(again.getChild('unexpected-request', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
      assert.equal(await c.requestAck(), 0);
    } finally {
      c.kill();
    }
  });

  test('a client may ask for a shorter max; enable without resume has no id', async () => {
    const v2 = v;
    const a = await SmClient.connect(opts('romeo', 'en2', { sm: false }, v2));
    const b = await SmClient.connect(opts('romeo', 'en3', { sm: false }, v2));
    try {
      const en = await a.enable(true, 1);
      assert.equal(en.attrs.max, '1');
      const plain = await b.enable(false);
      assert.equal(plain.name, 'enabled');
      assert.equal(plain.attrs.id, undefined);
      assert.equal(plain.attrs.resume, undefined);
    } finally {
      a.kill();
      b.kill();
    }
  });

  test('enable before resource binding fails with unexpected-request and the client can still bind', async () => {
    const c = new SmClient();
    await assert.rejects(c.start({ ...opts('romeo', 'en4'), sm: false, resume: { previd: 'x', h: 0 } }));
    // That stream is authenticated but unbound: enable there is refused.
    const en = await c.enable(true);
    assert.equal(en.name, 'failed');
    assert.ok(en.getChild('unexpected-request'));
    assert.match(await c.bind('en4'), /^romeo@localhost\/en4$/);
    c.kill();
  });
});

describe('acks', () => {
  test('h counts handled stanzas in order, archivable and non-archivable interleaved; <r/> is answered with all of them', async () => {
    const r = await SmClient.connect(opts('romeo', 'ack1'));
    const j = await SmClient.connect(opts('juliet', 'ack1', { sm: false }));
    try {
      // archivable, ping (not archivable), chat state (not archived), presence, archivable again.
      r.sendStanza(chat(j.jid, 'a1', 'one'), 'a1');
      r.sendStanza(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`, 'p1');
      r.sendStanza(`<message to='${j.jid}' type='chat' id='a2'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`, 'a2');
      r.sendStanza(`<presence to='${j.jid}'/>`, 'pr');
      r.sendStanza(chat(j.jid, 'a3', 'two'), 'a3');
      // Asked at once: the answer waits for the commits and covers all five (never a smaller h).
      assert.equal(await r.requestAck(), 5);
      assert.deepEqual(r.acked.map((o) => o.tag), ['a1', 'p1', 'a2', 'pr', 'a3']);
      // What the acks covered was really handled: Juliet has every message, in order.
      const got = await j.collect(4, () => true);
      assert.deepEqual(got.map((e) => (e.name === 'presence' ? 'presence' : e.attrs.id)), ['a1', 'a2', 'presence', 'a3']);
      // And the archive has both archivable ones (ack = archived).
      const arch = await mamAll(r);
      assert.deepEqual(arch.map((a) => body(a.msg)).filter(Boolean).slice(-2), ['one', 'two']);
      // The ping's result counted on the way back.
      await r.next((e) => e.name === 'iq' && e.attrs.id === 'p1');
      assert.ok(r.h >= 1);
    } finally {
      r.kill();
      j.kill();
    }
  });

  test('many stanzas in a burst: one <r/> at the end gets h for all of them', async () => {
    const r = await SmClient.connect(opts('romeo', 'ack2'));
    const j = await SmClient.connect(opts('juliet', 'ack2', { sm: false }));
    try {
      for (let i = 0; i < 200; i++) r.sendStanza(chat(j.jid, `b${i}`, `burst ${i}`), `b${i}`);
      assert.equal(await r.requestAck(), 200);
      const got = await j.collect(200, isMsg);
      assert.deepEqual(got.map((e) => e.attrs.id), Array.from({ length: 200 }, (_, i) => `b${i}`));
    } finally {
      r.kill();
      j.kill();
    }
  });

  test('an ack for more stanzas than were sent is a stream error undefined-condition with the numbers', async () => {
    const r = await SmClient.connect(opts('romeo', 'bad1'));
    const j = await SmClient.connect(opts('juliet', 'bad1', { sm: false }));
    try {
      j.send(chat(r.jid, 'x1', 'hello'));
      await r.next(isMsg);
      r.send(`<a xmlns='${SM}' h='3'/>`);
      const err = await r.next('stream:error');
      assert.ok(err.getChild('undefined-condition', 'urn:ietf:params:xml:ns:xmpp-streams'));
      assert.equal(err.getChildText('text'), 'You acknowledged 3 stanzas, but I only sent you 1 so far.');
      await r.waitClose();
      // Such a session is not kept for resumption.
      const { result } = await tryResume(opts('romeo', 'bad1', { resume: { previd: r.smId as string, h: 1 } }));
      assert.equal(result.name, 'failed');
    } finally {
      r.kill();
      j.kill();
    }
  });
});

describe('the server asks for acks', () => {
  let s: Verona;
  before(async () => {
    s = await startVerona({ users: USERS, config: { moduleOptions: { sm: { requestEvery: 3, requestAfter: 1, maxQueue: 5 } } } });
  });
  after(async () => {
    await s.stop();
    s.cleanup();
  });

  test('by count: after requestEvery unacked stanzas', async () => {
    const r = await SmClient.connect(opts('romeo', 'rq1', {}, s));
    const j = await SmClient.connect(opts('juliet', 'rq1', { sm: false }, s));
    try {
      r.autoAck = false;
      j.send(chat(r.jid, 'c1', '1'));
      j.send(chat(r.jid, 'c2', '2'));
      await r.collect(2, isMsg);
      await sleep(200);
      assert.equal(r.requests, 0, 'two unacked: no request yet');
      j.send(chat(r.jid, 'c3', '3'));
      await r.next(isMsg);
      await sleep(200);
      assert.equal(r.requests, 1, 'the third one triggers <r/>');
      // Until answered, it does not ask again for every stanza.
      j.send(chat(r.jid, 'c4', '4'));
      await r.next(isMsg);
      await sleep(200);
      assert.equal(r.requests, 1);
      r.ack();
    } finally {
      r.kill();
      j.kill();
    }
  });

  test('a full unacked queue ends the session with resource-constraint; resuming it says so too', async () => {
    const p = await SmClient.connect(opts('paris', 'q1', {}, s));
    const j = await SmClient.connect(opts('juliet', 'q1', { sm: false }, s));
    try {
      p.autoAck = false;
      for (let i = 1; i <= 6; i++) j.send(chat(p.jid, `o${i}`, `${i}`));
      const err = await p.next('stream:error');
      assert.ok(err.getChild('resource-constraint', 'urn:ietf:params:xml:ns:xmpp-streams'), err.toString());
      await p.waitClose();
      const { client, result } = await tryResume(opts('paris', 'q1', { resume: { previd: p.smId as string, h: 0 } }, s));
      client.kill();
      assert.equal(result.name, 'failed');
      assert.ok(result.getChild('resource-constraint', 'urn:ietf:params:xml:ns:xmpp-stanzas'), result.toString());
      assert.equal(result.attrs.h, '0');
    } finally {
      p.kill();
      j.kill();
    }
  });

  test('by time: one unacked stanza older than requestAfter', async () => {
    const r = await SmClient.connect(opts('romeo', 'rq2', {}, s));
    const j = await SmClient.connect(opts('juliet', 'rq2', { sm: false }, s));
    try {
      r.autoAck = false;
      j.send(chat(r.jid, 't1', '1'));
      await r.next(isMsg);
      const t0 = Date.now();
      await r.next(() => false, 100).catch(() => undefined);
      while (r.requests === 0 && Date.now() - t0 < 4000) await sleep(50);
      assert.equal(r.requests, 1, 'asked within a few seconds');
      assert.ok(Date.now() - t0 >= 500, 'not before the interval');
    } finally {
      r.kill();
      j.kill();
    }
  });
});

describe('resumption', () => {
  test('abrupt close, then resume: exactly the unacked stanzas and those that arrived meanwhile, in order', async () => {
    const r = await SmClient.connect(opts('romeo', 'res1'));
    const j = await SmClient.connect(opts('juliet', 'res1', { sm: false }));
    try {
      r.autoAck = false;
      // Romeo sends one message and it is acked (inbound h = 1 on the server).
      r.sendStanza(chat(j.jid, 'r1', 'from romeo'), 'r1');
      assert.equal(await r.requestAck(), 1);
      for (let i = 1; i <= 3; i++) j.send(chat(r.jid, `m${i}`, `${i}`));
      await r.collect(3, isMsg);
      // Romeo acks the first only, then his connection dies.
      r.send(`<a xmlns='${SM}' h='1'/>`);
      await sleep(100);
      r.kill();
      await sleep(200);
      // Juliet goes on writing while Romeo is away.
      j.send(chat(r.jid, 'm4', '4'));
      j.send(chat(r.jid, 'm5', '5'));
      await sleep(200);
      const { client: r2, result } = await tryResume(opts('romeo', 'res1', { resume: { previd: r.smId as string, h: 1 } }));
      try {
        assert.equal(result.name, 'resumed', result.toString());
        assert.equal(result.attrs.previd, r.smId);
        assert.equal(result.attrs.h, '1', 'the server handled Romeo\'s one message');
        const again = await r2.collect(4, isMsg);
        assert.deepEqual(again.map((e) => e.attrs.id), ['m2', 'm3', 'm4', 'm5']);
        await r2.nothing(isMsg, 300);
        // The session is the same: it still receives, under the same full JID, and counts on.
        j.send(chat(r.jid, 'm6', '6'));
        assert.equal((await r2.next(isMsg)).attrs.id, 'm6');
        // Its outbound counter went on from the old stream (1 acked + 5 resent/new).
        r2.send(`<a xmlns='${SM}' h='6'/>`);
        r2.sendStanza(chat(j.jid, 'r2', 'back'), 'r2');
        assert.equal(await r2.requestAck(), 2);
        assert.equal((await j.next((e) => e.attrs.id === 'r2')).attrs.from, r.jid);
        assert.equal(r2.streamError, undefined);
      } finally {
        r2.kill();
      }
    } finally {
      j.kill();
    }
  });

  test('resume while the old stream is still open: the old one is closed with <conflict/>', async () => {
    const r = await SmClient.connect(opts('romeo', 'res2'));
    const j = await SmClient.connect(opts('juliet', 'res2', { sm: false }));
    try {
      r.autoAck = false;
      j.send(chat(r.jid, 'o1', '1'));
      await r.next(isMsg);
      const { client: r2, result } = await tryResume(opts('romeo', 'res2', { resume: { previd: r.smId as string, h: 0 } }));
      try {
        assert.equal(result.name, 'resumed');
        const err = await r.next('stream:error');
        assert.ok(err.getChild('conflict', 'urn:ietf:params:xml:ns:xmpp-streams'));
        await r.waitClose();
        assert.equal((await r2.next(isMsg)).attrs.id, 'o1', 'the unacked message again');
        j.send(chat(r.jid, 'o2', '2'));
        assert.equal((await r2.next(isMsg)).attrs.id, 'o2');
      } finally {
        r2.kill();
      }
    } finally {
      r.kill();
      j.kill();
    }
  });

  test('an unknown id gives <failed><item-not-found/></failed> without h, and the client can bind on that stream', async () => {
    const { client, result } = await tryResume(opts('romeo', 'res3', { resume: { previd: 'no-such-session', h: 0 } }));
    try {
      assert.equal(result.name, 'failed');
      assert.ok(result.getChild('item-not-found', 'urn:ietf:params:xml:ns:xmpp-stanzas'));
      assert.equal(result.attrs.h, undefined);
      assert.equal(await client.bind('res3'), 'romeo@localhost/res3');
      const en = await client.enable(true);
      assert.equal(en.name, 'enabled');
    } finally {
      client.kill();
    }
  });

  test('another account cannot resume a session (item-not-found, no h leaked)', async () => {
    const r = await SmClient.connect(opts('romeo', 'res4'));
    try {
      r.kill();
      await sleep(100);
      const { client, result } = await tryResume(opts('juliet', 'res4', { resume: { previd: r.smId as string, h: 0 } }));
      client.kill();
      assert.equal(result.name, 'failed');
      assert.ok(result.getChild('item-not-found'));
      assert.equal(result.attrs.h, undefined);
    } finally {
      r.kill();
    }
  });

  test('an h above what was sent: <failed> undefined-condition with the server h', async () => {
    const r = await SmClient.connect(opts('romeo', 'res5'));
    r.sendStanza(`<presence/>`, 'p');
    assert.equal(await r.requestAck(), 1);
    r.kill();
    await sleep(100);
    const { client, result } = await tryResume(opts('romeo', 'res5', { resume: { previd: r.smId as string, h: 100000 } }));
    client.kill();
    assert.equal(result.name, 'failed');
    assert.ok(result.getChild('undefined-condition', 'urn:ietf:params:xml:ns:xmpp-stanzas'), result.toString());
    assert.equal(result.attrs.h, '1');
    assert.match(result.getChildText('text') ?? '', /^You acknowledged 100000 stanzas, but I only sent you \d+ so far\.$/);
  });

  test('a clean </stream:stream> ends the session: resuming it fails with the final h', async () => {
    const r = await SmClient.connect(opts('romeo', 'res6'));
    r.sendStanza('<presence/>');
    r.sendStanza(`<iq type='get' id='pp' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    assert.equal(await r.requestAck(), 2);
    await r.close();
    const { client, result } = await tryResume(opts('romeo', 'res6', { resume: { previd: r.smId as string, h: 0 } }));
    client.kill();
    assert.equal(result.name, 'failed');
    assert.ok(result.getChild('item-not-found'));
    assert.equal(result.attrs.h, '2');
  });

  test('an expired session gives <failed h/>; the stream goes on', async () => {
    const r = await SmClient.connect(opts('romeo', 'res7'));
    r.sendStanza('<presence/>');
    r.sendStanza(`<iq type='get' id='pp' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    r.sendStanza(`<iq type='get' id='pq' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    assert.equal(await r.requestAck(), 3);
    r.kill();
    await sleep(2600); // resumeTimeout is 2 s on this server
    const { client, result } = await tryResume(opts('romeo', 'res7', { resume: { previd: r.smId as string, h: 0 } }));
    try {
      assert.equal(result.name, 'failed');
      assert.ok(result.getChild('item-not-found'));
      assert.equal(result.attrs.h, '3');
      assert.equal(await client.bind('res7'), 'romeo@localhost/res7');
    } finally {
      client.kill();
    }
  });

  test('several clients resuming at once, and one session resumed twice at once', async () => {
    const users = ['romeo', 'juliet', 'benvolio'];
    const cs = await Promise.all(users.map((u) => SmClient.connect(opts(u, 'many'))));
    const j = await SmClient.connect(opts('juliet', 'sender', { sm: false }));
    try {
      for (const c of cs) c.autoAck = false;
      for (const c of cs) j.send(chat(c.jid, `x-${c.jid}`, 'hi'));
      await Promise.all(cs.map((c) => c.next(isMsg)));
      for (const c of cs) c.kill();
      await sleep(150);
      const res = await Promise.all(cs.map((c, i) => tryResume(opts(users[i] as string, 'many', { resume: { previd: c.smId as string, h: 0 } }))));
      for (const [i, r] of res.entries()) {
        assert.equal(r.result.name, 'resumed');
        assert.equal((await r.client.next(isMsg)).attrs.id, `x-${cs[i]?.jid}`);
        r.client.kill();
      }
      await sleep(150);
      // Twice at once: both are answered, the later wins, the earlier is closed with <conflict/>; nothing is doubled.
      const r0 = cs[0] as SmClient;
      const [a, b] = await Promise.all([
        tryResume(opts('romeo', 'many', { resume: { previd: r0.smId as string, h: 0 } })),
        tryResume(opts('romeo', 'many', { resume: { previd: r0.smId as string, h: 0 } })),
      ]);
      assert.equal(a.result.name, 'resumed');
      assert.equal(b.result.name, 'resumed');
      await Promise.race([a.client.waitClose(3000), b.client.waitClose(3000)]);
      const [loser, winner] = a.client.closed ? [a.client, b.client] : [b.client, a.client];
      assert.equal(loser.streamError, 'conflict');
      assert.equal(winner.closed, false);
      j.send(chat(r0.jid, 'after', 'once'));
      assert.equal((await winner.next((e) => e.attrs.id === 'after')).attrs.id, 'after');
      await winner.nothing(isMsg, 300).catch(() => undefined);
      const seen = [...winner.drain(isMsg), ...loser.drain(isMsg)].map((e) => e.attrs.id);
      // The unacked message went to one or both of them (each got it at most once); 'after' only to the winner.
      assert.ok(seen.filter((id) => id === 'after').length === 0, 'after arrived exactly once');
      assert.ok(seen.filter((id) => id === `x-${r0.jid}`).length <= 2);
      winner.kill();
      loser.kill();
    } finally {
      j.kill();
      for (const c of cs) c.kill();
    }
  });

  test('@xmpp/client (an independent XEP-0198 implementation) enables, gets acks and resumes', async () => {
    const { xml } = await import('@xmpp/client');
    const { client } = await import('../helpers/xmppjs.js');
    // A server of its own with a resumption window that outlasts xmpp.js's reconnect (a 1 s delay,
    // then TLS and SCRAM again): with the suite's 2 s window a loaded machine let the session expire.
    const own = await startVerona({ users: [['benvolio', PW], ['juliet', PW]], config: { moduleOptions: { sm: { ...QUIET, resumeTimeout: 60 } } } });
    const c = client({ service: `xmpp://127.0.0.1:${own.ports.c2s}`, domain: 'localhost', username: 'benvolio', password: PW, resource: 'xmppjs' });
    c.on('error', () => undefined);
    const acked: string[] = [];
    // xmpp.js's stream-management object (its published types leave out the event emitter side).
    const sm = c.streamManagement as unknown as {
      enabled: boolean;
      id: string;
      requestAckDebounce: number;
      on(ev: 'ack', fn: (st: Element) => void): void;
      once(ev: 'resumed', fn: () => void): void;
    };
    sm.on('ack', (st) => acked.push(st.attrs.id as string));
    sm.requestAckDebounce = 10;
    try {
      await c.start();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(sm.enabled, true, 'sm enabled');
      const id1 = sm.id;
      await c.send(xml('message', { to: 'juliet@localhost', type: 'chat', id: 'xj1' }, xml('body', {}, 'hi')));
      const t0 = Date.now();
      while (acked.length === 0 && Date.now() - t0 < 15000) await sleep(20);
      assert.deepEqual(acked, ['xj1']);
      // Drop the connection under it (after STARTTLS the TLS socket sits inside xmpp.js's wrapper); it reconnects and resumes.
      const resumed = new Promise<void>((r) => sm.once('resumed', () => r()));
      const sock = (c as unknown as { socket: { socket?: { destroy(): void }; destroy?(): void } }).socket;
      (sock.socket ?? (sock as { destroy(): void })).destroy();
      await Promise.race([resumed, sleep(20000).then(() => assert.fail('not resumed'))]);
      assert.equal(sm.id, id1);
    } finally {
      await c.stop().catch(() => undefined);
      await own.stop();
      own.cleanup();
    }
  });
});

describe('state across resumption, and sessions that end for good', () => {
  const mr2 = { mr2: true };

  test('after resumption forks still arrive and CSI still holds (and flushes in order)', async () => {
    const phone = await SmClient.connect(opts('mercutio', 'phone', { ...mr2, presence: true }));
    const desk = await SmClient.connect(opts('mercutio', 'desk', { ...mr2, sm: false, presence: true }));
    const j = await SmClient.connect(opts('juliet', 'st1', { sm: false }));
    try {
      await sleep(200);
      phone.drain();
      desk.drain();
      phone.send("<inactive xmlns='urn:xmpp:csi:0'/>");
      await sleep(100);
      phone.kill();
      await sleep(200);
      const { client: p2, result } = await tryResume(opts('mercutio', 'phone', { resume: { previd: phone.smId as string, h: phone.h } }));
      try {
        assert.equal(result.name, 'resumed');
        // The desktop writes to Juliet: the phone's 'sent' fork is held (CSI state survived) ...
        desk.send(chat(j.jid, 'd1', 'from the desk'));
        await j.next((e) => e.attrs.id === 'd1');
        await p2.nothing(isMsg, 300);
        // ... until an urgent message from Juliet flushes it first, then comes itself.
        j.send(chat('mercutio@localhost', 'j1', 'to the bare JID'));
        const [first, second] = await p2.collect(2, isMsg);
        const fwd = first?.getChild('sent', 'urn:xmpp:carbons:2')?.getChild('forwarded', 'urn:xmpp:forward:0')?.getChild('message');
        assert.equal(fwd?.attrs.id, 'd1', 'the held sent fork first');
        assert.ok(fwd?.getChild('stanza-id', 'urn:xmpp:sid:0'), 'the fork carries the archive id');
        assert.equal(second?.attrs.id, 'j1');
        // A chat state is held again; <active/> flushes it.
        j.send(`<message to='mercutio@localhost/desk' type='chat' id='cs1'><composing xmlns='http://jabber.org/protocol/chatstates'/></message>`);
        await desk.next((e) => e.attrs.id === 'cs1');
        await p2.nothing(isMsg, 300);
        p2.send("<active xmlns='urn:xmpp:csi:0'/>");
        const flushed = await p2.next(isMsg);
        assert.equal(flushed.getChild('received', 'urn:xmpp:carbons:2')?.getChild('forwarded')?.getChild('message')?.attrs.id, 'cs1');
        // Presence state survived too: the session is still available, so a bare-JID headline reaches it.
        j.send(`<message to='mercutio@localhost' type='headline' id='h1'><body>news</body></message>`);
        assert.equal((await p2.next((e) => e.attrs.id === 'h1')).attrs.type, 'headline');
      } finally {
        p2.kill();
      }
    } finally {
      phone.kill();
      desk.kill();
      j.kill();
    }
  });

  test('an MR2 session that expires loses nothing: MAM after the last known id gives exactly the rest', async () => {
    const ph = await SmClient.connect(opts('nurse', 'phone', { ...mr2 }));
    const j = await SmClient.connect(opts('juliet', 'st2', { sm: false }));
    try {
      ph.autoAck = false;
      for (let i = 1; i <= 3; i++) j.send(chat('nurse@localhost', `n${i}`, `${i}`));
      const got = await ph.collect(3, isMsg);
      const known = got[0]?.getChild('stanza-id', 'urn:xmpp:sid:0')?.attrs.id as string;
      assert.ok(known, 'copies carry their archive id');
      // The phone saw (and acks) only the first one, then its connection dies.
      ph.send(`<a xmlns='${SM}' h='1'/>`);
      await sleep(100);
      ph.kill();
      j.send(chat('nurse@localhost', 'n4', '4'));
      j.send(chat('nurse@localhost', 'n5', '5'));
      await sleep(2700); // past the 2 s resumption timeout
      const { client: c, result } = await tryResume(opts('nurse', 'phone', { resume: { previd: ph.smId as string, h: 1 } }));
      try {
        assert.equal(result.name, 'failed');
        assert.equal(result.attrs.h, '0', 'the phone itself sent nothing');
        await c.bind('phone');
        const rest = await mamAll(c, known);
        assert.deepEqual(rest.map((r) => r.msg.attrs.id), ['n2', 'n3', 'n4', 'n5']);
        assert.equal(new Set(rest.map((r) => r.id)).size, 4);
        // Nothing of it was bounced to Juliet.
        await j.nothing((e) => e.attrs.type === 'error', 200);
      } finally {
        c.kill();
      }
    } finally {
      ph.kill();
      j.kill();
    }
  });

  test('a legacy client that expires: its unacked messages wait in offline storage, once', async () => {
    const t = await SmClient.connect(opts('tybalt', 'legacy', { presence: true }));
    const j = await SmClient.connect(opts('juliet', 'st3', { sm: false }));
    try {
      t.autoAck = false;
      await sleep(100);
      t.drain();
      j.send(chat('tybalt@localhost/legacy', 'L1', 'one'));
      j.send(chat('tybalt@localhost/legacy', 'L2', 'two'));
      j.send(`<iq type='get' id='iq1' to='tybalt@localhost/legacy'><ping xmlns='urn:xmpp:ping'/></iq>`);
      await t.collect(3, (e) => e.name !== 'presence');
      t.kill();
      await sleep(2700);
      // The unanswered, unacked IQ got an error when the session ended.
      const err = await j.next((e) => e.attrs.id === 'iq1');
      assert.equal(err.attrs.type, 'error');
      assert.ok(err.getChild('error')?.getChild('service-unavailable'));
      const back = await SmClient.connect(opts('tybalt', 'again', { sm: false, presence: true }));
      try {
        const msgs = await back.collect(2, isMsg);
        assert.deepEqual(msgs.map((m) => m.attrs.id), ['L1', 'L2']);
        assert.ok(msgs.every((m) => m.getChild('delay', 'urn:xmpp:delay')), 'from offline storage');
        await back.nothing(isMsg, 300);
      } finally {
        back.kill();
      }
    } finally {
      t.kill();
      j.kill();
    }
  });

  test('not stored offline when another resource already got the message', async () => {
    const a = await SmClient.connect(opts('friar', 'a', { presence: true }));
    const b = await SmClient.connect(opts('friar', 'b', { sm: false, presence: true }));
    const j = await SmClient.connect(opts('juliet', 'st4', { sm: false }));
    try {
      a.autoAck = false;
      await sleep(150);
      j.send(chat('friar@localhost', 'F1', 'to both'));
      await a.next(isMsg);
      await b.next(isMsg);
      a.kill();
      await sleep(2700);
      await b.close();
      const c = await SmClient.connect(opts('friar', 'c', { sm: false, presence: true }));
      try {
        await c.nothing(isMsg, 500);
      } finally {
        c.kill();
      }
      await j.nothing((e) => e.attrs.type === 'error', 100);
    } finally {
      a.kill();
      b.kill();
      j.kill();
    }
  });
});

describe('restart', () => {
  test('sessions whose resumption timeout passed while the server was down get <failed h/> after the restart', async () => {
    // A restart keeps resumable sessions (sm-restart.test.ts); here their 1 s is over before it is back.
    const s1 = await startVerona({ users: USERS, config: { moduleOptions: { sm: { ...QUIET, resumeTimeout: 1 } } } });
    let s2: Verona | undefined;
    try {
      const live = await SmClient.connect(opts('romeo', 'live', {}, s1));
      const gone = await SmClient.connect(opts('juliet', 'gone', {}, s1));
      live.sendStanza('<presence/>');
      assert.equal(await live.requestAck(), 1);
      for (let i = 0; i < 3; i++) gone.sendStanza(`<iq type='get' id='g${i}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
      assert.equal(await gone.requestAck(), 3);
      gone.kill(); // waiting for resumption when the server stops
      await sleep(150);
      await s1.stop();
      live.kill();
      await sleep(1200);
      s2 = await startVerona({ dataDir: s1.dataDir, config: { moduleOptions: { sm: { ...QUIET, resumeTimeout: 1 } } } });
      const r1 = await tryResume(opts('romeo', 'live', { resume: { previd: live.smId as string, h: 0 } }, s2));
      const r2 = await tryResume(opts('juliet', 'gone', { resume: { previd: gone.smId as string, h: 0 } }, s2));
      r1.client.kill();
      r2.client.kill();
      assert.equal(r1.result.name, 'failed');
      assert.ok(r1.result.getChild('item-not-found'));
      assert.equal(r1.result.attrs.h, '1');
      assert.equal(r2.result.attrs.h, '3');
    } finally {
      await s1.stop();
      await s2?.stop();
      s1.cleanup();
    }
  });
});

describe('metrics', () => {
  test('/metrics shows what happened to every stanza in the tests above', async () => {
    const port = v.ports.http;
    assert.ok(port, `an HTTP listener (ports: ${JSON.stringify(v.ports)})`);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (series: string): number => {
      const line = text.split('\n').find((l) => l.startsWith(series + ' '));
      return line ? Number(line.slice(series.length + 1)) : 0;
    };
    assert.ok(value('verona_sm_resumptions_total{outcome="resumed"}') >= 5, 'resumed');
    assert.ok(value('verona_sm_resumptions_total{outcome="unknown"}') >= 1, 'unknown');
    assert.ok(value('verona_sm_resumptions_total{outcome="expired"}') >= 2, 'expired');
    assert.ok(value('verona_sm_resumptions_total{outcome="bad-h"}') >= 1, 'bad-h');
    assert.ok(value('verona_sm_unacked_offline_total{reason="legacy-client",source="sm"}') >= 2, 'to offline');
    assert.ok(value('verona_sm_unacked_dropped_total{reason="archived",source="sm"}') >= 2, 'archived, dropped');
    assert.ok(value('verona_sm_unacked_dropped_total{reason="delivered-elsewhere",source="sm"}') >= 1, 'delivered elsewhere');
    assert.ok(value('verona_sm_unacked_bounced_total{reason="iq-request",source="sm"}') >= 1, 'iq bounced');
    assert.ok(value('verona_csi_held_total{reason="own-sent-copy"}') >= 1, 'csi held own copy');
    assert.ok(value('verona_csi_flushes_total{reason="active"}') >= 1, 'csi flush on active');
    assert.match(text, /^verona_sm_hibernating \d+$/m);
  });
});
