/**
 * limits.readRate / readBurst for the web transports (WebSocket frames, BOSH
 * bodies), the same bucket and metric as a TCP stream (src/net/tcp.ts): a
 * client gets no more bandwidth by choosing another transport.
 */
import type { Config } from '../config/types.js';
import type { Metrics } from '../metrics/metrics.js';

export interface ReadRate {
  rate: number;
  burst: number;
  onThrottle?: () => void;
}

export function webReadRate(config: Config, metrics: Metrics): ReadRate | undefined {
  const l = config.limits;
  if (l.readRate <= 0) return undefined;
  const throttled = metrics.counter('verona_read_throttled_total', 'Times a client stream was paused for reading faster than limits.readRate');
  return { rate: l.readRate, burst: Math.max(l.readBurst, config.c2s.maxStanzaSize), onThrottle: () => throttled.inc() };
}
