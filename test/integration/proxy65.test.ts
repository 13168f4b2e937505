/**
 * XEP-0065 through Verona's SOCKS5 proxy, between two real client
 * connections: the initiator learns the streamhost from proxy.localhost,
 * offers it to the target, both connect with SOCKS5, the initiator activates,
 * and 256 KiB cross intact. Nothing is relayed before activation; a stranger
 * cannot activate; the proxy is off unless configured.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { startVerona, type Verona } from '../helpers/server.js';
import { connectClient, sendIq, stanzaErrorOf } from '../helpers/client.js';

const NS = 'http://jabber.org/protocol/bytestreams';
let v: Verona;

before(async () => {
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['juliet', 'jul1et'], ['tybalt', 'tyb4lt']],
    config: { moduleOptions: { proxy65: { enabled: true, host: '127.0.0.62', port: 0 } } },
  });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const connect = (user: string, password: string, resource: string) => connectClient({ port: v.ports.c2s as number, user, password, resource });

/** SOCKS5 CONNECT to the XEP-0065 hash; resolves with the socket once the proxy said yes. */
function socks5(host: string, port: number, hash: string): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host, port });
    let buf = Buffer.alloc(0);
    let stage = 0;
    s.on('error', reject);
    s.on('connect', () => s.write(Buffer.from([5, 1, 0])));
    const onData = (d: Buffer): void => {
      buf = Buffer.concat([buf, d]);
      if (stage === 0 && buf.length >= 2) {
        if (buf[1] !== 0) return reject(new Error('no acceptable auth'));
        buf = buf.subarray(2);
        stage = 1;
        s.write(Buffer.concat([Buffer.from([5, 1, 0, 3, 40]), Buffer.from(hash), Buffer.from([0, 0])]));
      }
      if (stage === 1 && buf.length >= 47) {
        if (buf[1] !== 0) return reject(new Error(`SOCKS5 refused: ${buf[1]}`));
        s.removeListener('data', onData);
        resolve(s);
      }
    };
    s.on('data', onData);
  });
}

function readN(s: net.Socket, n: number, timeoutMs = 20000): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let got = 0;
    const t = setTimeout(() => reject(new Error(`only ${got} of ${n} bytes`)), timeoutMs);
    s.on('data', (d: Buffer) => {
      chunks.push(d);
      got += d.length;
      if (got >= n) {
        clearTimeout(t);
        resolve(Buffer.concat(chunks));
      }
    });
  });
}

test('a file crosses the proxy between two clients, and only after activation', async () => {
  const romeo = await connect('romeo', 'r0meo', 'sender');
  const juliet = await connect('juliet', 'jul1et', 'receiver');
  const sockets: net.Socket[] = [];
  try {
    const items = await sendIq(romeo, "<query xmlns='http://jabber.org/protocol/disco#items'/>", "type='get' to='localhost'");
    assert.ok(items.getChild('query')?.getChildren('item').some((i) => i.attrs.jid === 'proxy.localhost'));
    const info = await sendIq(romeo, "<query xmlns='http://jabber.org/protocol/disco#info'/>", "type='get' to='proxy.localhost'");
    assert.equal(info.getChild('query')?.getChild('identity')?.attrs.type, 'bytestreams');
    const sh = (await sendIq(romeo, `<query xmlns='${NS}'/>`, "type='get' to='proxy.localhost'")).getChild('query', NS)?.getChild('streamhost');
    assert.equal(sh?.attrs.jid, 'proxy.localhost');
    assert.equal(sh?.attrs.host, '127.0.0.62');
    const host = String(sh?.attrs.host);
    const port = Number(sh?.attrs.port);

    // Romeo offers the streamhost to Juliet (XEP-0065 §5.3.1); she connects and says which one she used.
    const sid = `s-${randomBytes(4).toString('hex')}`;
    const offerId = 'offer1';
    romeo.send(`<iq type='set' id='${offerId}' to='${juliet.jid}'><query xmlns='${NS}' sid='${sid}'><streamhost jid='proxy.localhost' host='${host}' port='${port}'/></query></iq>`);
    const offer = await juliet.next((el) => el.name === 'iq' && el.attrs.id === offerId);
    const hash = createHash('sha1').update(`${sid}${romeo.jid}${juliet.jid}`).digest('hex');
    const jSock = await socks5(host, port, hash);
    sockets.push(jSock);
    juliet.send(`<iq type='result' id='${offerId}' to='${offer.attrs.from}'><query xmlns='${NS}' sid='${sid}'><streamhost-used jid='proxy.localhost'/></query></iq>`);
    const used = await romeo.next((el) => el.name === 'iq' && el.attrs.id === offerId);
    assert.equal(used.attrs.type, 'result');

    // Romeo connects; what he writes before activating is not relayed yet.
    const rSock = await socks5(host, port, hash);
    sockets.push(rSock);
    const early = Buffer.from('early bytes|');
    rSock.write(early);
    const jReader = readN(jSock, early.length + 256 * 1024);
    let relayedEarly = false;
    let activateSent = false;
    jSock.once('data', () => {
      relayedEarly = !activateSent;
    });
    // A stranger cannot activate someone else's stream (his JID is not in the hash).
    const tybalt = await connect('tybalt', 'tyb4lt', 'x');
    sockets.push(tybalt.socket);
    const bad = await sendIq(tybalt, `<query xmlns='${NS}' sid='${sid}'><activate>${juliet.jid}</activate></query>`, "type='set' to='proxy.localhost'");
    assert.equal(stanzaErrorOf(bad), 'item-not-found');
    await new Promise((r) => setTimeout(r, 200));

    activateSent = true;
    const act = await sendIq(romeo, `<query xmlns='${NS}' sid='${sid}'><activate>${juliet.jid}</activate></query>`, "type='set' to='proxy.localhost'");
    assert.equal(act.attrs.type, 'result', act.toString());
    const file = randomBytes(256 * 1024);
    rSock.write(file);
    const got = await jReader;
    assert.equal(relayedEarly, false, 'nothing crossed before activation');
    assert.deepEqual(got, Buffer.concat([early, file]));

    // And back the other way.
    const back = readN(rSock, 5);
    jSock.write('thanks');
    assert.equal((await back).toString().slice(0, 5), 'thank');
  } finally {
    for (const s of sockets) s.destroy();
    romeo.destroy();
    juliet.destroy();
  }
});

test('activating a stream whose parties are not both connected: item-not-found', async () => {
  const romeo = await connect('romeo', 'r0meo', 'lonely');
  try {
    const r = await sendIq(romeo, `<query xmlns='${NS}' sid='nobody'><activate>juliet@localhost/x</activate></query>`, "type='set' to='proxy.localhost'");
    assert.equal(stanzaErrorOf(r), 'item-not-found');
  } finally {
    romeo.destroy();
  }
});
