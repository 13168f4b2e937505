/**
 * Structured logging (pino). Connection and auth events at info; stanza
 * content only at debug/trace, so production logs never hold message bodies.
 */
import { pino } from 'pino';

export type Logger = pino.Logger;

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  return pino(
    { level, base: { svc: 'verona' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
