/**
 * A real coturn for the calls test: started as a child process with the TURN
 * REST shared secret on the apps loopback range, stopped by PID; plus a
 * minimal TURN client (RFC 5766 Allocate with the long-term credential
 * mechanism of RFC 5389 §10.2) so the test sees exactly what coturn answers.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import dgram from 'node:dgram';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export const TURNSERVER = '/usr/bin/turnserver';
export const TURN_HOST = '127.0.0.61';

export interface Coturn {
  host: string;
  port: number;
  realm: string;
  proc: ChildProcess;
  output: string[];
  stop(): Promise<void>;
}

/** Under CI a missing turnserver is a failure (the caller asserts); locally the reason to skip. */
export function coturnMissing(): string | false {
  if (existsSync(TURNSERVER)) return false;
  return `${TURNSERVER} not found (apt-get install -y coturn)`;
}

export async function startCoturn(secret: string, port = 34780 + Math.floor(Math.random() * 200)): Promise<Coturn> {
  const dir = mkdtempSync(path.join(tmpdir(), 'verona-coturn-'));
  const realm = 'verona.test';
  const args = [
    '-n', '--no-cli', '--no-tls', '--no-dtls', '--fingerprint', '--lt-cred-mech',
    '--use-auth-secret', `--static-auth-secret=${secret}`, `--realm=${realm}`,
    `--listening-ip=${TURN_HOST}`, `--relay-ip=${TURN_HOST}`, `--listening-port=${port}`,
    '--min-port=49160', '--max-port=49200', '--allow-loopback-peers',
    `--userdb=${path.join(dir, 'turndb')}`, `--pidfile=${path.join(dir, 'turn.pid')}`,
    '--log-file=stdout', '--simple-log', '--no-stdout-log',
  ];
  const proc = spawn(TURNSERVER, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  proc.stdout?.on('data', (d: Buffer) => output.push(d.toString()));
  proc.stderr?.on('data', (d: Buffer) => output.push(d.toString()));
  const exited = new Promise<void>((r) => proc.once('exit', () => r()));
  // Ready when a binding request is answered (coturn logs differ between versions).
  const deadline = Date.now() + 30000;
  for (;;) {
    if (proc.exitCode !== null) throw new Error(`turnserver exited: ${output.join('')}`);
    try {
      await stunRequest(TURN_HOST, port, buildMessage(0x0001, randomBytes(12), []), 500);
      break;
    } catch {
      if (Date.now() > deadline) throw new Error(`turnserver did not answer in 30 s: ${output.join('')}`);
    }
  }
  return {
    host: TURN_HOST,
    port,
    realm,
    proc,
    output,
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---- STUN/TURN messages (RFC 5389, RFC 5766) ----------------------------------

const MAGIC = 0x2112a442;
const ATTR = { USERNAME: 0x0006, MESSAGE_INTEGRITY: 0x0008, ERROR_CODE: 0x0009, REALM: 0x0014, NONCE: 0x0015, XOR_RELAYED_ADDRESS: 0x0016, REQUESTED_TRANSPORT: 0x0019 } as const;

interface Attr {
  type: number;
  value: Buffer;
}

function attrBytes(a: Attr): Buffer {
  const pad = (4 - (a.value.length % 4)) % 4;
  const h = Buffer.alloc(4);
  h.writeUInt16BE(a.type, 0);
  h.writeUInt16BE(a.value.length, 2);
  return Buffer.concat([h, a.value, Buffer.alloc(pad)]);
}

function buildMessage(type: number, txid: Buffer, attrs: Attr[], integrityKey?: Buffer): Buffer {
  const body = Buffer.concat(attrs.map(attrBytes));
  const header = Buffer.alloc(20);
  header.writeUInt16BE(type, 0);
  header.writeUInt32BE(MAGIC, 4);
  txid.copy(header, 8);
  if (!integrityKey) {
    header.writeUInt16BE(body.length, 2);
    return Buffer.concat([header, body]);
  }
  // RFC 5389 §15.4: the HMAC covers everything before the attribute, with the length counting it.
  header.writeUInt16BE(body.length + 24, 2);
  const mac = createHmac('sha1', integrityKey).update(Buffer.concat([header, body])).digest();
  return Buffer.concat([header, body, attrBytes({ type: ATTR.MESSAGE_INTEGRITY, value: mac })]);
}

interface Parsed {
  type: number;
  attrs: Map<number, Buffer>;
}

function parse(b: Buffer): Parsed {
  const type = b.readUInt16BE(0);
  const len = b.readUInt16BE(2);
  const attrs = new Map<number, Buffer>();
  let off = 20;
  while (off + 4 <= 20 + len) {
    const t = b.readUInt16BE(off);
    const l = b.readUInt16BE(off + 2);
    attrs.set(t, b.subarray(off + 4, off + 4 + l));
    off += 4 + l + ((4 - (l % 4)) % 4);
  }
  return { type, attrs };
}

/** One request/answer exchange on `sock` (a new socket when none is given). */
function stunRequest(host: string, port: number, msg: Buffer, timeoutMs = 5000, sock?: dgram.Socket): Promise<Parsed> {
  const own = sock === undefined;
  const s = sock ?? dgram.createSocket('udp4');
  return new Promise((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      s.removeListener('message', onMessage);
      s.removeListener('error', onError);
      if (own) s.close();
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error('no STUN answer'));
    }, timeoutMs);
    const onMessage = (m: Buffer): void => {
      done();
      resolve(parse(m));
    };
    const onError = (err: Error): void => {
      done();
      reject(err);
    };
    s.on('message', onMessage);
    s.on('error', onError);
    s.send(msg, port, host);
  });
}

export interface AllocateResult {
  ok: boolean;
  /** STUN error code when refused (401 = unauthorized). */
  error?: number;
  /** The relayed transport address coturn allocated. */
  relayed?: string;
}

/** TURN Allocate (UDP) with the long-term credentials `username`/`password`. */
export async function turnAllocate(host: string, port: number, username: string, password: string): Promise<AllocateResult> {
  const transport = { type: ATTR.REQUESTED_TRANSPORT, value: Buffer.from([17, 0, 0, 0]) };
  // First request without credentials: the 401 carries the realm and a nonce.
  // One socket for both requests: coturn binds the nonce to the client's transport address.
  const sock = dgram.createSocket('udp4');
  try {
    return await allocateOn(sock, host, port, username, password, transport);
  } finally {
    sock.close();
  }
}

async function allocateOn(sock: dgram.Socket, host: string, port: number, username: string, password: string, transport: Attr): Promise<AllocateResult> {
  const first = await stunRequest(host, port, buildMessage(0x0003, randomBytes(12), [transport]), 5000, sock);
  const realm = first.attrs.get(ATTR.REALM);
  const nonce = first.attrs.get(ATTR.NONCE);
  if (first.type !== 0x0113 || !realm || !nonce) throw new Error(`unexpected first Allocate answer ${first.type.toString(16)}`);
  const key = createHash('md5').update(`${username}:${realm.toString()}:${password}`).digest();
  const second = await stunRequest(host, port, buildMessage(0x0003, randomBytes(12), [
    transport,
    { type: ATTR.USERNAME, value: Buffer.from(username) },
    { type: ATTR.REALM, value: realm },
    { type: ATTR.NONCE, value: nonce },
  ], key), 5000, sock);
  if (second.type === 0x0103) {
    const x = second.attrs.get(ATTR.XOR_RELAYED_ADDRESS);
    let relayed: string | undefined;
    if (x && x[1] === 1) {
      const p = x.readUInt16BE(2) ^ (MAGIC >>> 16);
      const a = x.readUInt32BE(4) ^ MAGIC;
      relayed = `${a >>> 24}.${(a >>> 16) & 255}.${(a >>> 8) & 255}.${a & 255}:${p}`;
    }
    return { ok: true, relayed };
  }
  const e = second.attrs.get(ATTR.ERROR_CODE);
  return { ok: false, error: e ? (e[2] as number) * 100 + (e[3] as number) : undefined };
}
