/**
 * A log sink for the fuzz servers that keeps what they log at error level
 * (and fatal): each such line is a bug the fuzzer found. Shared by the
 * stream targets (targets.ts) and the s2s target (s2s-target.ts).
 */
import { Writable } from 'node:stream';

export class ErrorLog extends Writable {
  readonly errors: string[] = [];
  override _write(chunk: Buffer, _enc: string, cb: () => void): void {
    const line = chunk.toString();
    if (/"level":(50|60)/.test(line)) this.errors.push(line);
    cb();
  }
}
