/**
 * @xmpp/client with its stream-open race closed, for tests.
 *
 * @xmpp/connection 0.14.0 `open()` writes the stream header, awaits the write
 * callback, and only then starts listening for the server's 'open' event. On
 * loopback a fast server's reply can be parsed before that callback resumes the
 * function: the event is missed and `start()` fails with a TimeoutError after 2 s
 * although the server answered (reproduced: 12 failures in 200 direct-TLS logins;
 * 0 with the listener attached before the write). Here the listener is attached
 * first; the library's own late wait is left to time out harmlessly.
 */
import { client as xmppjsClient, type ClientOptions, type XmppClient } from '@xmpp/client';
import type { Element } from '@xmpp/xml';

export function client(options: ClientOptions): XmppClient {
  const c = xmppjsClient(options);
  // Data that arrives after stop() detached the parser (a server answering frames it had held
  // under its read rate) makes xmpp.js throw from its socket listener: drop it instead. Set
  // before the socket is attached, which binds this method.
  const raw = c as unknown as { _onData(data: Buffer): void; parser: unknown };
  const onData = raw._onData.bind(c);
  raw._onData = (data: Buffer): void => {
    if (raw.parser) onData(data);
  };
  // xmpp.js 0.14's stop() leaves its reconnect module running. If a second disconnect() overlaps
  // the one in stop() (a stream error while closing makes xmpp.js call it itself), the status ends
  // at 'disconnect' after 'offline', and the reconnect timer then retries every second for ever:
  // a stopped client logged in again, and the test process never exited. Stopped means stopped.
  const stop = c.stop.bind(c);
  c.stop = async () => {
    (c as unknown as { reconnect: { stop(): void } }).reconnect.stop();
    return stop();
  };
  const open = c.open.bind(c);
  c.open = (opts) =>
    new Promise<Element>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error('stream open timed out')), Math.max(c.timeout, 10_000));
      const onOpen = (el: Element): void => done(undefined, el);
      const onError = (err: Error): void => done(err);
      function done(err: Error | undefined, el?: Element): void {
        clearTimeout(timer);
        c.removeListener('open', onOpen);
        c.removeListener('error', onError);
        if (err) reject(err);
        else resolve(el as Element);
      }
      c.on('open', onOpen as (...args: unknown[]) => void);
      c.on('error', onError as (arg: unknown) => void);
      open(opts).catch(() => undefined);
    });
  return c;
}
