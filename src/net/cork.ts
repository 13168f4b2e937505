/**
 * The write path of a stream socket, shared by client (src/net/tcp.ts) and
 * server-to-server (src/s2s/conn.ts) connections: everything written in one
 * event-loop tick is corked and leaves together (one syscall, few TCP
 * segments), and a peer that stops reading is cut off before its unsent
 * bytes grow without bound.
 */
import type net from 'node:net';

/** Unsent bytes a peer may leave in our buffer before the connection is dropped. */
export const MAX_WRITE_BUFFER = 16 * 1024 * 1024;

export class TickCork {
  private corked = false;

  /** Write `s`; false when the peer has left more than MAX_WRITE_BUFFER unread (the caller drops it). */
  write(sock: net.Socket, s: string): boolean {
    if (!this.corked) {
      this.corked = true;
      sock.cork();
      process.nextTick(() => {
        this.corked = false;
        sock.uncork();
      });
    }
    sock.write(s);
    return sock.writableLength <= MAX_WRITE_BUFFER;
  }

  /** Send what this tick corked now: before STARTTLS takes the socket over, and before end(). */
  flush(sock: net.Socket): void {
    if (!this.corked) return;
    this.corked = false;
    sock.uncork();
  }
}
