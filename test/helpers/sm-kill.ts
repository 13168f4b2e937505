/**
 * Stream management across a killed server process (kill -9): two accounts chat with each other
 * under SM load (both resumable), the node that holds them is killed, and both resume (on the
 * restarted node or on another cluster node). Then: every message is in both archives exactly once,
 * and each client received every message of its archive exactly once across its two streams,
 * counted by <stanza-id/> (docs/stream-management.md, "After a crash").
 *
 * Raw XEP-0198 clients (test/integration/sm-client.ts); the server under test is a real process.
 */
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { SmClient, mamAll, tryResume, SM, type SmConnectOptions } from '../integration/sm-client.js';

export interface Talker {
  user: string;
  password: string;
  resource: string;
  /** Sent message ids, in order; ids start with `prefix`. */
  prefix: string;
  peer: string;
  mr2: boolean;
  /** The client (the first stream, then the resumed one). */
  c: SmClient;
  /** Every stream it had, oldest first (their buffers hold what it received). */
  streams: SmClient[];
  sent: number;
}

const isChat = (el: Element): boolean => el.name === 'message' && el.getChildText('body') !== null;

export async function connectTalker(o: SmConnectOptions, prefix: string, peer: string): Promise<Talker> {
  const c = await SmClient.connect({ ...o, sm: 'resume', presence: false });
  // Counted by SM like every stanza: sent through the client's unacked queue.
  if (!o.mr2) {
    c.sendStanza('<presence/>', 'presence');
    // Available before the other party's load starts (else its first messages go to offline storage).
    await c.requestAck(30000);
  }
  return { user: o.user, password: o.password, resource: o.resource ?? '', prefix, peer, mr2: o.mr2 === true, c, streams: [c], sent: 0 };
}

/**
 * Until each talker has received a probe from the other (in a cluster the session registry is
 * eventually consistent: a message sent too early can find the peer's session not yet known there
 * and go to offline storage); the probes are then dropped from the clients' buffers.
 */
export async function warmUp(talkers: readonly Talker[]): Promise<void> {
  for (const [from, to] of [[talkers[0], talkers[1]], [talkers[1], talkers[0]]] as Array<[Talker, Talker]>) {
    const end = Date.now() + 30000;
    for (let i = 0; ; i++) {
      from.c.sendStanza(`<message to='${from.peer}' type='chat' id='probe${i}'><body>probe${i}</body></message>`, `probe${i}`);
      try {
        await to.c.next((el) => el.name === 'message' && el.getChildText('body') === `probe${i}`, 700);
        break;
      } catch (err) {
        if (Date.now() > end) throw err;
      }
    }
  }
  // Late probes still on their way are not part of the conversation.
  await new Promise((r) => setTimeout(r, 500));
  for (const t of talkers) t.c.drain((el) => el.name === 'message' && (el.getChildText('body') ?? '').startsWith('probe'));
}

/** Both talkers send to each other until stopped (or their connection dies), asking for acks as they go. */
export function chatLoad(talkers: Talker[], gapMs = 4): { stop(): Promise<void> } {
  let stopped = false;
  const loops = talkers.map(async (t) => {
    while (!stopped && !t.c.closed) {
      const id = `${t.prefix}${++t.sent}`;
      t.c.sendStanza(`<message to='${t.peer}' type='chat' id='${id}'><body>${id}</body></message>`, id);
      if (t.sent % 10 === 0) t.c.send(`<r xmlns='${SM}'/>`);
      await new Promise((r) => setTimeout(r, gapMs));
    }
  });
  return {
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Wait until `pred` holds, polling (the machine may be slow: generous deadline). */
export async function until(pred: () => boolean, what: string, ms = 60000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Resume `t` on `port`/`host` after its server died: <resumed/> expected; the stanzas it sent
 * that the server never handled (beyond the resumed h) are sent again on the new stream.
 */
export async function resumeTalker(t: Talker, o: { port: number; host?: string }): Promise<Element> {
  const old = t.c;
  const previd = old.smId as string;
  const { client, result } = await tryResume({ port: o.port, host: o.host, user: t.user, password: t.password, resume: { previd, h: old.h } });
  t.streams.push(client);
  assert.equal(result.name, 'resumed', `${t.user} resumes: ${result.toString()}`);
  t.c = client;
  const again = old.settle(Number(result.attrs.h));
  for (const u of again) client.sendStanza(u.xml, u.tag);
  return result;
}

/** Archive ids (stanza-id by the account) of the chat messages a talker received on all its streams, with how often. */
export function receivedIds(t: Talker, account: string, ours: RegExp): Map<string, number> {
  const out = new Map<string, number>();
  for (const s of t.streams) {
    for (const el of s.drain(isChat)) {
      if (!ours.test(el.getChildText('body') ?? '')) continue; // probes, other tests
      const sid = el.getChildren('stanza-id').find((c) => c.attrs.by === account);
      assert.ok(sid, `a message without our stanza-id: ${el.toString()}`);
      out.set(sid.attrs.id as string, (out.get(sid.attrs.id as string) ?? 0) + 1);
    }
  }
  return out;
}

export interface ArchiveView {
  /** Body -> count, messages the account sent. */
  sent: Map<string, number>;
  /** Archive id -> body, messages the account received. */
  incoming: Map<string, string>;
  incomingBodies: Map<string, number>;
}

/** This conversation's part of an archive (messages of other tests in the same archive are left out). */
export async function archiveOf(c: SmClient, me: string, prefixes: readonly string[]): Promise<ArchiveView> {
  const v: ArchiveView = { sent: new Map(), incoming: new Map(), incomingBodies: new Map() };
  const ours = new RegExp(`^(${prefixes.join('|')})\\d+$`);
  for (const r of await mamAll(c)) {
    const body = r.msg.getChildText('body');
    if (body === null || !ours.test(body)) continue;
    const from = (r.msg.attrs.from as string).split('/')[0];
    if (from === me) v.sent.set(body, (v.sent.get(body) ?? 0) + 1);
    else {
      v.incoming.set(r.id, body);
      v.incomingBodies.set(body, (v.incomingBodies.get(body) ?? 0) + 1);
    }
  }
  return v;
}

/**
 * After both resumed and everything settled: each talker's messages (all of them: the unhandled
 * ones were sent again) are in both archives exactly once, and each talker received every
 * message of its archive exactly once across its streams. A talker in `atMostOnce` (a client of a
 * node that did not die) may miss live copies of messages the dead node archived but had not yet
 * passed on to its node (docs/stream-management.md): it received nothing twice and nothing that is
 * not in its archive, and gets the rest from MAM.
 */
export async function checkExactlyOnce(a: Talker, b: Talker, accountA: string, accountB: string, atMostOnce: readonly Talker[] = []): Promise<void> {
  // Everything sent is handled (acked) now.
  for (const t of [a, b]) {
    for (let i = 0; i < 20 && t.c.unacked.length > 0; i++) {
      t.c.drain((el) => el.name === 'a');
      await t.c.requestAck(30000);
    }
    assert.equal(t.c.unacked.length, 0, `${t.user}: every message it sent is acked`);
  }
  const views = new Map<Talker, ArchiveView>();
  views.set(a, await archiveOf(a.c, accountA, [a.prefix, b.prefix]));
  views.set(b, await archiveOf(b.c, accountB, [a.prefix, b.prefix]));
  for (const [t, other] of [[a, b], [b, a]] as const) {
    const mine = views.get(t) as ArchiveView;
    const theirs = views.get(other) as ArchiveView;
    const missing: string[] = [];
    for (let i = 1; i <= t.sent; i++) if (mine.sent.get(`${t.prefix}${i}`) !== 1 || theirs.incomingBodies.get(`${t.prefix}${i}`) !== 1) missing.push(`${t.prefix}${i}:${mine.sent.get(`${t.prefix}${i}`) ?? 0}/${theirs.incomingBodies.get(`${t.prefix}${i}`) ?? 0}`);
    if (missing.length > 0) console.log(`${t.user} sent ${t.sent}; not exactly once in both archives (own/peer): ${missing.join(' ')}`);
    for (let i = 1; i <= t.sent; i++) {
      const id = `${t.prefix}${i}`;
      assert.equal(mine.sent.get(id), 1, `${t.user}'s archive has its message ${id} exactly once`);
      assert.equal(theirs.incomingBodies.get(id), 1, `${other.user}'s archive has ${t.user}'s message ${id} exactly once`);
    }
    assert.equal(mine.sent.size, t.sent, `${t.user}'s archive: no other sent message`);
  }
  // Each received every message of its archive exactly once, across both streams.
  for (const [t, account] of [[a, accountA], [b, accountB]] as const) {
    const view = views.get(t) as ArchiveView;
    // Live copies still on their way after the last ack: wait until the count matches.
    const got = new Map<string, number>();
    const end = Date.now() + (atMostOnce.includes(t) ? 3000 : 30000);
    for (;;) {
      for (const [id, n] of receivedIds(t, account, new RegExp(`^(${a.prefix}|${b.prefix})\\d+$`))) got.set(id, (got.get(id) ?? 0) + n);
      if ([...view.incoming.keys()].every((id) => got.has(id)) || Date.now() > end) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const [id, body] of view.incoming) {
      if (atMostOnce.includes(t) && !got.has(id)) continue;
      assert.equal(got.get(id), 1, `${t.user} received ${body} (${id}) exactly once (got ${got.get(id) ?? 0})`);
    }
    for (const [id, n] of got) assert.ok(view.incoming.has(id) && n === 1, `${t.user} received ${id} ${n} times; in its archive: ${view.incoming.has(id)}`);
  }
}
