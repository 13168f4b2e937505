/**
 * Federation benchmark (not a test): messages per second across one s2s link,
 * Verona -> Verona and Prosody -> Prosody, with the same driver in the same
 * run, and the time from the first stanza to a new domain until it is
 * delivered (stream set-up: TCP, STARTTLS, authentication, both directions
 * for dialback), and then the time for the receiver's first reply back
 * (XEP-0288: with bidi it takes the existing connection; without, the
 * receiving server sets up a stream of its own first).
 *
 *   npx tsc -p tsconfig.json && node dist/bench/s2s.js [messages=5000] [senders=4]
 *
 * Servers run on the bidi loopback range (127.0.20.100-105), with certificates
 * from a throwaway CA (SASL EXTERNAL both ways) or self-signed ones (dialback).
 * The driver counts `</message>` on the receiver's socket, so it costs almost
 * nothing per message.
 */
import net from 'node:net';
import { loadavg } from 'node:os';
import { makeCA, startFedServer, type TestCA } from '../test/helpers/s2s-servers.js';
import { startProsody, type Prosody } from '../test/helpers/s2s-prosody.js';

const PW = 'bench-pw';
const MESSAGES = Number(process.argv[2] ?? 5000);
const SENDERS = Number(process.argv[3] ?? 4);

interface Conn {
  sock: net.Socket;
  /** Resolves when `n` more `</message>` have arrived. */
  waitMessages(n: number, timeoutMs: number): Promise<void>;
  write(s: string): void;
}

async function login(host: string, port: number, domain: string, user: string, resource: string): Promise<Conn> {
  const sock = net.connect({ host, port });
  await new Promise<void>((r, j) => {
    sock.once('connect', () => r());
    sock.once('error', j);
  });
  sock.setNoDelay(true);
  let buf = '';
  let count = 0;
  let waiter: { target: number; resolve: () => void } | undefined;
  let textWaiter: { needle: string; resolve: () => void } | undefined;
  sock.on('data', (d: Buffer) => {
    const s = buf + d.toString('latin1');
    let i = 0;
    for (;;) {
      const k = s.indexOf('</message>', i);
      if (k < 0) break;
      count++;
      i = k + 10;
    }
    if (textWaiter && s.includes(textWaiter.needle)) {
      const w = textWaiter;
      textWaiter = undefined;
      w.resolve();
    }
    buf = s.slice(Math.max(i, s.length - 200));
    if (waiter && count >= waiter.target) {
      const w = waiter;
      waiter = undefined;
      w.resolve();
    }
  });
  const until = (needle: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`login: no ${needle}`)), 30000);
      textWaiter = { needle, resolve: () => { clearTimeout(t); resolve(); } };
    });
  const open = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${domain}' version='1.0'>`;
  let w = until('</stream:features>');
  sock.write(open);
  await w;
  w = until('success');
  sock.write(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0${user}\0${PW}`).toString('base64')}</auth>`);
  await w;
  w = until('</stream:features>');
  sock.write(open);
  await w;
  w = until('</bind>');
  sock.write(`<iq type='set' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  await w;
  sock.write('<presence/>');
  return {
    sock,
    write: (s) => void sock.write(s),
    waitMessages(n, timeoutMs) {
      const target = count + n;
      if (count >= target) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error(`received ${count - (target - n)} of ${n}`)), timeoutMs);
        waiter = { target, resolve: () => { clearTimeout(t); resolve(); } };
      });
    },
  };
}

interface Pair {
  name: string;
  from: { host: string; port: number; domain: string };
  to: { host: string; port: number; domain: string };
  stop(): Promise<void>;
}

async function veronaPair(ca: TestCA | undefined, a1: string, a2: string, bidi: boolean): Promise<Pair> {
  const users: Array<[string, string]> = [['rcv', PW], ...Array.from({ length: SENDERS }, (_, i): [string, string] => [`s${i}`, PW])];
  const [A, B] = await Promise.all([
    startFedServer({ domain: 'va.test', address: a1, peers: { 'vb.test': `${a2}:5269` }, ca, users, s2s: { bidi }, config: { log: { level: 'error' } } }),
    startFedServer({ domain: 'vb.test', address: a2, peers: { 'va.test': `${a1}:5269` }, ca, users, s2s: { bidi }, config: { log: { level: 'error' } } }),
  ]);
  return {
    name: `Verona -> Verona (${ca ? 'SASL EXTERNAL' : 'dialback'}, bidi ${bidi ? 'on' : 'off'})`,
    from: { host: '127.0.0.1', port: A.ports.c2s as number, domain: 'va.test' },
    to: { host: '127.0.0.1', port: B.ports.c2s as number, domain: 'vb.test' },
    stop: async () => {
      await Promise.all([A.stop(), B.stop()]);
      A.cleanup();
      B.cleanup();
    },
  };
}

async function prosodyPair(ca: TestCA | undefined, a1: string, a2: string, bidi: boolean): Promise<Pair> {
  const start = (domain: string, addr: string, peer: string, peerAddr: string): Promise<Prosody> =>
    startProsody({ domain, address: addr, hosts: { [peer]: peerAddr }, cert: ca?.leaf(domain), cafile: ca?.ca, bidi, extra: 'log = { { levels = { min = "error" }, to = "console" } }' });
  const [A, B] = await Promise.all([start('pa.test', a1, 'pb.test', a2), start('pb.test', a2, 'pa.test', a1)]);
  for (const p of [A, B]) {
    p.register('rcv', PW);
    for (let i = 0; i < SENDERS; i++) p.register(`s${i}`, PW);
  }
  return {
    name: `Prosody -> Prosody (${ca ? 'SASL EXTERNAL' : 'dialback'}, bidi ${bidi ? 'on' : 'off'})`,
    from: { host: a1, port: 5222, domain: 'pa.test' },
    to: { host: a2, port: 5222, domain: 'pb.test' },
    stop: async () => void (await Promise.all([A.stop(), B.stop()])),
  };
}

async function run(p: Pair): Promise<{ firstMs: number; replyMs: number; rate: number }> {
  const rcv = await login(p.to.host, p.to.port, p.to.domain, 'rcv', 'r');
  const senders = await Promise.all(Array.from({ length: SENDERS }, (_, i) => login(p.from.host, p.from.port, p.from.domain, `s${i}`, 'b')));
  const to = `rcv@${p.to.domain}`;
  // First stanza to a domain we have no stream to: set-up plus delivery.
  const t0 = performance.now();
  const first = rcv.waitMessages(1, 60000);
  (senders[0] as Conn).write(`<message to='${to}' type='chat' id='first'><body>first</body></message>`);
  await first;
  const firstMs = performance.now() - t0;
  // The first reply back to the sending domain: a new stream without bidi, the same one with it.
  const t2 = performance.now();
  const reply = (senders[0] as Conn).waitMessages(1, 60000);
  rcv.write(`<message to='s0@${p.from.domain}/b' type='chat' id='reply'><body>reply</body></message>`);
  await reply;
  const replyMs = performance.now() - t2;
  // Throughput over the established link.
  const per = Math.floor(MESSAGES / SENDERS);
  const total = per * SENDERS;
  const done = rcv.waitMessages(total, 600000);
  const t1 = performance.now();
  for (const [i, s] of senders.entries()) {
    let batch = '';
    for (let k = 0; k < per; k++) {
      batch += `<message to='${to}' type='chat' id='m${i}-${k}'><body>benchmark message ${k} from sender ${i}</body></message>`;
      if (batch.length > 64 * 1024) {
        s.write(batch);
        batch = '';
      }
    }
    if (batch) s.write(batch);
  }
  await done;
  const rate = total / ((performance.now() - t1) / 1000);
  for (const c of [rcv, ...senders]) c.sock.destroy();
  return { firstMs, replyMs, rate };
}

async function main(): Promise<void> {
  const ca = makeCA();
  const rows: string[] = [];
  const cases: Array<() => Promise<Pair>> = [
    () => veronaPair(ca, '127.0.20.100', '127.0.20.101', true),
    () => veronaPair(ca, '127.0.20.102', '127.0.20.103', false),
    () => prosodyPair(ca, '127.0.20.104', '127.0.20.105', false),
    () => prosodyPair(ca, '127.0.20.100', '127.0.20.101', true),
    () => veronaPair(undefined, '127.0.20.102', '127.0.20.103', true),
    () => veronaPair(undefined, '127.0.20.104', '127.0.20.105', false),
    () => prosodyPair(undefined, '127.0.20.100', '127.0.20.101', false),
  ];
  for (const mk of cases) {
    const p = await mk();
    try {
      const r = await run(p);
      const row = `| ${p.name} | ${MESSAGES} | ${Math.round(r.rate)} | ${Math.round(r.firstMs)} | ${Math.round(r.replyMs)} |`;
      console.log(row);
      rows.push(row);
    } finally {
      await p.stop();
    }
  }
  ca.cleanup();
  console.log(`\nload average ${loadavg().map((l) => l.toFixed(2)).join(' ')}\n| link | messages | msgs/s | first stanza to a new domain, delivered (ms) | first reply back (ms) |\n| --- | --- | --- | --- | --- |\n` + rows.join('\n'));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
