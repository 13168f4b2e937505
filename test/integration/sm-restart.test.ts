/**
 * Stream management across a graceful restart of a single node (SQLite, the
 * default): resumable sessions are written down at SIGTERM and wait for
 * resumption again after the start, exactly like sessions whose connection
 * dropped (docs/stream-management.md, "Across restarts and nodes").
 *
 * Real server process restarted on the same data directory; the raw XEP-0198
 * client of sm-client.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { SmClient, tryResume, mamAll, type SmConnectOptions } from './sm-client.js';

const PW = 'secret';
const USERS: Array<[string, string]> = [['romeo', PW], ['juliet', PW], ['mercutio', PW]];
const QUIET = { requestEvery: 100000, requestAfter: 100000 };
const CONFIG = { log: { level: 'info' }, moduleOptions: { sm: { ...QUIET, resumeTimeout: 300 } } };

function opts(server: Verona, user: string, resource: string, extra: Partial<SmConnectOptions> = {}): SmConnectOptions {
  return { port: server.ports.c2s as number, user, password: PW, resource, ...extra };
}
const chat = (to: string, id: string, text: string) => `<message to='${to}' type='chat' id='${id}'><body>${text}</body></message>`;
const bodyOf = (el: Element) => el.getChildText('body');
const isChat = (el: Element) => el.name === 'message' && bodyOf(el) !== null;

async function metric(server: Verona, series: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${server.ports.http}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

test('a graceful restart keeps a resumable session: <resumed/>, every message once, presence kept, nothing archived twice', async () => {
  const s1 = await startVerona({ users: USERS, config: CONFIG });
  let s2: Verona | undefined;
  const clients: SmClient[] = [];
  try {
    // Juliet sees Romeo's presence (a subscription), so that she would notice an unavailable.
    const juliet = await SmClient.connect(opts(s1, 'juliet', 'desk', { sm: 'plain' }));
    clients.push(juliet);
    const romeo = await SmClient.connect(opts(s1, 'romeo', 'phone', { mr2: true }));
    clients.push(romeo);
    romeo.autoAck = false;
    romeo.sendStanza("<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>");
    await romeo.next((el) => el.name === 'iq' && el.attrs.id === 'roster1', 15000);
    romeo.sendStanza('<presence><priority>5</priority><status>at the balcony</status></presence>');
    juliet.send('<presence/>');
    juliet.send("<presence to='romeo@localhost' type='subscribe'/>");
    await romeo.next((el) => el.name === 'presence' && el.attrs.type === 'subscribe', 15000);
    romeo.sendStanza("<presence to='juliet@localhost' type='subscribed'/>");
    await juliet.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@localhost/phone' && el.attrs.type === undefined, 15000);

    // m1 received and acked; m2 received, not acked; then Romeo's connection dies.
    const received: string[] = [];
    juliet.send(chat('romeo@localhost', 'm1', 'm1'));
    received.push(bodyOf(await romeo.next(isChat, 15000)) as string);
    romeo.ack();
    juliet.send(chat('romeo@localhost', 'm2', 'm2'));
    received.push(bodyOf(await romeo.next(isChat, 15000)) as string);
    // Romeo's own messages: handled by the server, never acked to him.
    romeo.sendStanza(chat('juliet@localhost', 'o1', 'o1'), 'o1');
    romeo.sendStanza(chat('juliet@localhost', 'o2', 'o2'), 'o2');
    await juliet.collect(2, (el) => isChat(el) && ['o1', 'o2'].includes(bodyOf(el) as string), 15000);
    const previd = romeo.smId as string;
    const hBefore = romeo.h;
    romeo.kill();
    // m3 and m4 reach a session without connection: queued, unacked.
    juliet.send(chat('romeo@localhost', 'm3', 'm3'));
    juliet.send(chat('romeo@localhost', 'm4', 'm4'));
    // Mercutio stays connected through the stop: n1 received, not acked.
    const mercutio = await SmClient.connect(opts(s1, 'mercutio', 'pad', { presence: true }));
    clients.push(mercutio);
    mercutio.autoAck = false;
    juliet.send(chat('mercutio@localhost', 'n1', 'n1'));
    assert.equal(bodyOf(await mercutio.next(isChat, 15000)), 'n1');
    // Her ack means all three are archived and routed (into Romeo's queue).
    await juliet.requestAck(15000);
    juliet.kill();

    assert.equal(await s1.stop(), 0, 'a clean exit');
    await mercutio.waitClose(15000);
    assert.equal(mercutio.streamError, 'system-shutdown');
    s2 = await startVerona({ dataDir: s1.dataDir, config: CONFIG });
    assert.equal(await metric(s2, 'verona_sm_restored_total{outcome="waiting"}'), 2, 'both restored, waiting for resumption');

    // A contact logging in after the restart learns Romeo is still there (no unavailable was sent).
    const juliet2 = await SmClient.connect(opts(s2, 'juliet', 'desk2', { sm: 'plain' }));
    clients.push(juliet2);
    juliet2.send('<presence/>');
    const p = await juliet2.next((el) => el.name === 'presence' && el.attrs.from === 'romeo@localhost/phone', 15000);
    assert.equal(p.attrs.type, undefined, 'available presence of the restored session');
    assert.equal(p.getChildText('status'), 'at the balcony');
    // m5 and m6 arrive after the restart, before Romeo is back.
    juliet2.send(chat('romeo@localhost', 'm5', 'm5'));
    juliet2.send(chat('romeo@localhost', 'm6', 'm6'));
    await juliet2.requestAck(15000);

    const { client: back, result } = await tryResume(opts(s2, 'romeo', 'phone', { resume: { previd, h: hBefore } }));
    clients.push(back);
    assert.equal(result.name, 'resumed', result.toString());
    // <resumed h/> covers Romeo's two messages: nothing to send again.
    assert.deepEqual(back.settle(Number(result.attrs.h)).map((o) => o.tag), [], 'o1 and o2 were handled before the stop');
    for (const el of await back.collect(4, isChat, 15000)) received.push(bodyOf(el) as string);
    await back.nothing(isChat, 500);
    assert.deepEqual(received, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6'], 'every message once, in order');
    await juliet2.nothing((el) => el.name === 'presence' && el.attrs.type === 'unavailable', 300);
    assert.equal(await back.requestAck(), Number(result.attrs.h), 'the stream goes on with the same counters');

    // Both archives hold each message exactly once.
    const mine = (await mamAll(back)).map((r) => bodyOf(r.msg)).filter((b) => b !== null).sort();
    assert.deepEqual(mine, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'o1', 'o2']);
    const hers = (await mamAll(juliet2)).map((r) => bodyOf(r.msg)).filter((b) => b !== null).sort();
    assert.deepEqual(hers, ['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'n1', 'o1', 'o2']);

    // The session that was live at the stop resumes too; n1 is not sent again, n2 (after the restart) is.
    juliet2.send(chat('mercutio@localhost', 'n2', 'n2'));
    await juliet2.requestAck(15000);
    const m = await tryResume(opts(s2, 'mercutio', 'pad', { resume: { previd: mercutio.smId as string, h: mercutio.h } }));
    clients.push(m.client);
    assert.equal(m.result.name, 'resumed', m.result.toString());
    assert.equal(bodyOf(await m.client.next(isChat, 15000)), 'n2');
    await m.client.nothing(isChat, 500);
    assert.equal(await metric(s2, 'verona_sm_resumptions_total{outcome="resumed"}'), 2);
  } catch (err) {
    console.log(s1.output.slice(-40).join('\n'), '\n----\n', s2?.output.slice(-40).join('\n'));
    throw err;
  } finally {
    for (const c of clients) c.kill();
    await s1.stop();
    await s2?.stop();
    s1.cleanup();
  }
});
