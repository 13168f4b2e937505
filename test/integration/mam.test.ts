/**
 * MAM on the real server: a 10,000-message archive (filled through the
 * storage API on the server's own database file) paged forward with a real
 * client library (StanzaJS over WebSocket) and backward with flipped pages
 * on the raw client, each message exactly once and in order; the query
 * form, metadata, preferences, RSM count/index, and access control.
 */
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import * as XMPP from 'stanza';
import { startVerona, type Verona } from '../helpers/server.js';
import { nextId } from '../helpers/client.js';
import { SqliteStorage } from '../../src/storage/sqlite/index.js';
import { ArchiveClock, archiveIdFor } from '../../src/modules/mam/ids.js';
import { device, mamQuery, NS_MAM, type Dev } from './mr2-helpers.js';

const N = 10000;
let v: Verona;
const ids: string[] = [];
let julia: Dev;

before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['julia', 'ju1ia']] });
  // Fill Julia's archive through the storage API, on the server's database file, with times in the past
  // (one message a second, a day ago): the server's clock is always ahead, so nothing collides.
  const storage = SqliteStorage.open(path.join(v.dataDir, 'verona.sqlite'), { synchronous: 'NORMAL' });
  let t = Date.now() - 86_400_000;
  const clock = new ArchiveClock(0, () => t);
  const ps: Promise<void>[] = [];
  for (let i = 0; i < N; i++) {
    t += 1000;
    const seq = clock.next();
    const id = archiveIdFor(seq);
    ids.push(id);
    const fromRomeo = i % 2 === 0;
    ps.push(
      storage.archive.append({
        username: 'julia',
        seq,
        id,
        with: 'romeo@localhost',
        withResource: fromRomeo ? 'desk' : '',
        outgoing: !fromRomeo,
        stanza: fromRomeo
          ? `<message xmlns="jabber:client" from="romeo@localhost/desk" to="julia@localhost" type="chat"><body>${i}</body></message>`
          : `<message xmlns="jabber:client" from="julia@localhost/phone" to="romeo@localhost" type="chat"><body>${i}</body></message>`,
      }),
    );
  }
  await Promise.all(ps);
  await storage.close();
  julia = await device({ port: v.ports.c2s as number, user: 'julia', password: 'ju1ia', resource: 'raw', kind: 'mr2', presence: false });
});
after(async () => {
  julia?.close();
  await v.stop();
  v.cleanup();
});

describe('paging through 10,000 messages', () => {
  test('forward with StanzaJS (RSM after), each message exactly once and in order', async () => {
    const client = XMPP.createClient({
      jid: 'julia@localhost',
      password: 'ju1ia',
      resource: 'stanzajs',
      transports: { websocket: `ws://127.0.0.1:${v.ports.http}/xmpp-websocket`, bosh: false },
    });
    await new Promise<void>((resolve, reject) => {
      client.once('session:started', () => resolve());
      client.once('disconnected', () => reject(new Error('disconnected before session start')));
      client.connect();
    });
    try {
      const got: string[] = [];
      const bodies: string[] = [];
      let after: string | undefined;
      let pages = 0;
      for (;;) {
        const res = await client.searchHistory({ paging: { max: 250, after } });
        pages++;
        for (const r of res.results ?? []) {
          got.push(r.id);
          bodies.push(String(r.item.message?.body));
        }
        if (res.complete) break;
        after = res.paging?.last;
        assert.ok(after, 'a page that is not complete names its last id');
        assert.ok(pages < 100, 'terminates');
      }
      assert.equal(pages, N / 250);
      assert.equal(got.length, N);
      assert.deepEqual(got, ids);
      assert.deepEqual(bodies.slice(0, 3), ['0', '1', '2']);
    } finally {
      const ended = new Promise((r) => client.once('disconnected', r));
      client.disconnect();
      await ended;
    }
  });

  test('backward from the last page with flipped pages (raw client), each message exactly once', async () => {
    const pages: string[][] = [];
    let before = '';
    let first = true;
    for (;;) {
      const p = await mamQuery(julia, { rsm: `<max>250</max><before>${before}</before>`, flip: true });
      // Flipped: newest first within the page; the RSM first/last still name the page's oldest/newest.
      const page = p.items.map((i) => i.id);
      assert.deepEqual(page, [...page].sort().reverse(), 'flipped page is newest first');
      assert.equal(p.first, page[page.length - 1]);
      if (first) {
        assert.equal(p.last, ids[N - 1]);
        assert.equal(p.fin.getChild('set')?.getChild('first')?.attrs.index, String(N - 250), 'index of the last page');
        first = false;
      }
      pages.push(page.reverse());
      if (p.complete) break;
      before = p.first as string;
    }
    assert.equal(pages.length, N / 250);
    assert.deepEqual(pages.reverse().flat(), ids);
  });

  test('RSM: count (capped at 10,000), index, and a page in the middle by after-id/before-id', async () => {
    const p = await mamQuery(julia, { rsm: '<max>5</max><index>9990</index>' });
    assert.deepEqual(p.items.map((i) => i.id), ids.slice(9990, 9995));
    assert.equal(p.count, String(N));
    const mid = await mamQuery(julia, { fields: { 'after-id': ids[4999] as string, 'before-id': ids[5003] as string } });
    assert.deepEqual(mid.items.map((i) => i.body), ['5000', '5001', '5002']);
    assert.equal(mid.complete, true);
    // A with filter on a full JID matches that resource only.
    const desk = await mamQuery(julia, { fields: { with: 'romeo@localhost/desk' }, rsm: '<max>3</max>' });
    assert.deepEqual(desk.items.map((i) => i.body), ['0', '2', '4']);
    // Time filters: the items carry the archive time as the delay stamp.
    const stamp = p.items[0]?.stamp as string;
    const t = await mamQuery(julia, { fields: { start: stamp, end: stamp } });
    assert.deepEqual(t.items.map((i) => i.id), [ids[9990]]);
  });

  test('a page stays fast on a large archive (no scans): 200 pages in a few seconds', async () => {
    const t0 = performance.now();
    for (let i = 0; i < 200; i++) {
      const k = (i * 37) % (N - 60);
      const p = await mamQuery(julia, { fields: { with: 'romeo@localhost' }, rsm: `<max>50</max><after>${ids[k]}</after>` });
      assert.equal(p.items[0]?.id, ids[k + 1]);
    }
    const per = (performance.now() - t0) / 200;
    assert.ok(per < 100, `${per.toFixed(1)} ms per 50-message page`);
  });
});

describe('form, metadata, preferences, access', () => {
  test('MAM is advertised where clients look: disco#info of the domain (Profanity) and of the account', async () => {
    for (const to of ['localhost', 'julia@localhost']) {
      const id = nextId();
      julia.send(`<iq type='get' id='${id}' to='${to}'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
      const r = await julia.next((el) => el.attrs.id === id);
      assert.equal(r.attrs.type, 'result', to);
      const features = r.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
      assert.ok(features.includes(NS_MAM), `${to} lists ${NS_MAM}: ${features.join(' ')}`);
      assert.ok(features.includes(`${NS_MAM}#extended`), `${to} lists #extended`);
    }
  });

  test('form discovery lists the fields; an unknown field is feature-not-implemented', async () => {
    const id = nextId();
    julia.send(`<iq type='get' id='${id}'><query xmlns='${NS_MAM}'/></iq>`);
    const r = await julia.next((el) => el.attrs.id === id);
    const vars = r.getChild('query')!.getChild('x')!.getChildren('field').map((f) => f.attrs.var);
    for (const f of ['FORM_TYPE', 'with', 'start', 'end', 'before-id', 'after-id', 'ids']) assert.ok(vars.includes(f), f);
    await assert.rejects(mamQuery(julia, { fields: { 'urn:example:fulltext': 'x' } }), /feature-not-implemented/);
  });

  test('metadata names the first and last message', async () => {
    const id = nextId();
    julia.send(`<iq type='get' id='${id}'><metadata xmlns='${NS_MAM}'/></iq>`);
    const md = (await julia.next((el) => el.attrs.id === id)).getChild('metadata', NS_MAM)!;
    assert.equal(md.getChild('start')?.attrs.id, ids[0]);
    assert.equal(md.getChild('end')?.attrs.id, ids[N - 1]);
    assert.match(String(md.getChild('end')?.attrs.timestamp), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    // An empty archive has an empty metadata element.
    const romeo = await device({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'md', kind: 'plain', presence: false });
    const id2 = nextId();
    romeo.send(`<iq type='get' id='${id2}'><metadata xmlns='${NS_MAM}'/></iq>`);
    const md2 = (await romeo.next((el) => el.attrs.id === id2)).getChild('metadata', NS_MAM)!;
    assert.equal(md2.children.length, 0);
    romeo.close();
  });

  test('another account cannot read the archive', async () => {
    const romeo = await device({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'nosy', kind: 'plain', presence: false });
    const id = nextId();
    romeo.send(`<iq type='set' id='${id}' to='julia@localhost'><query xmlns='${NS_MAM}'/></iq>`);
    const r = await romeo.next((el) => el.attrs.id === id);
    assert.equal(r.attrs.type, 'error');
    assert.ok(r.getChild('error')?.getChild('forbidden'));
    await romeo.nothing((el) => el.name === 'message', 200);
    romeo.close();
  });

  test('preferences: never for a contact stops archiving both ways; always overrides default never', async () => {
    const pid = nextId();
    julia.send(`<iq type='set' id='${pid}'><prefs xmlns='${NS_MAM}' default='always'><always/><never><jid>romeo@localhost</jid></never></prefs></iq>`);
    const set = await julia.next((el) => el.attrs.id === pid);
    assert.equal(set.attrs.type, 'result');
    assert.equal(set.getChild('prefs')?.getChild('never')?.getChildText('jid'), 'romeo@localhost');
    const romeo = await device({ port: v.ports.c2s as number, user: 'romeo', password: 'r0meo', resource: 'prefs', kind: 'mr2', presence: false });
    romeo.send(`<message to='julia@localhost' type='chat' id='p1'><body>not in julia's archive</body></message>`);
    const live = await julia.next((el) => el.name === 'message' && el.getChildText('body') === "not in julia's archive");
    assert.equal(live.getChild('stanza-id'), undefined, 'no stanza-id: not archived for julia');
    const last = await mamQuery(julia, { rsm: '<max>1</max><before/>' });
    assert.equal(last.items[0]?.id, ids[N - 1]);
    // Romeo's own archive (default always) has it, under his computed id.
    const r = await mamQuery(romeo, { fields: { ids: `${romeo.streamId}-p1` } });
    assert.equal(r.items.length, 1);
    // Default never, with romeo on the always list.
    const pid2 = nextId();
    julia.send(`<iq type='set' id='${pid2}'><prefs xmlns='${NS_MAM}' default='never'><always><jid>romeo@localhost</jid></always><never/></prefs></iq>`);
    await julia.next((el) => el.attrs.id === pid2);
    romeo.send(`<message to='julia@localhost' type='chat' id='p2'><body>archived again</body></message>`);
    const live2 = await julia.next((el) => el.name === 'message' && el.getChildText('body') === 'archived again');
    assert.ok(live2.getChild('stanza-id'));
    const gid = nextId();
    julia.send(`<iq type='get' id='${gid}'><prefs xmlns='${NS_MAM}'/></iq>`);
    const got = await julia.next((el) => el.attrs.id === gid);
    assert.equal(got.getChild('prefs')?.attrs.default, 'never');
    romeo.close();
  });
});
