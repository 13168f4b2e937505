/**
 * Reading a password: hidden prompt on a terminal, one line from a pipe.
 */
import { CliError } from './errors.js';

/** Prompt on stderr (stdout stays clean for scripts) and read without echo. */
export function promptHidden(question: string, input: NodeJS.ReadStream = process.stdin): Promise<string> {
  return new Promise((resolve, reject) => {
    const out = process.stderr;
    // Echo off before the prompt appears, so that nothing typed (or pasted)
    // right after it is shown.
    input.setRawMode(true);
    input.setEncoding('utf8');
    input.resume();
    out.write(question);
    let buf = '';
    let escape = false; // inside an ANSI escape sequence (arrow keys etc.), which we drop
    const finish = (): void => {
      input.removeListener('data', onData);
      input.setRawMode(false);
      input.pause();
      out.write('\n');
    };
    const onData = (chunk: string): void => {
      for (const ch of chunk) {
        if (escape) {
          if (/[@-~]/.test(ch) && ch !== '[') escape = false;
          continue;
        }
        switch (ch) {
          case '\r':
          case '\n':
            finish();
            resolve(buf);
            return;
          case '\u0003': // Ctrl-C
            finish();
            reject(new CliError('interrupted', 130));
            return;
          case '\u0004': // Ctrl-D
            if (buf === '') {
              finish();
              reject(new CliError('no password given', 2));
              return;
            }
            break;
          case '\u007f':
          case '\b':
            buf = Array.from(buf).slice(0, -1).join('');
            break;
          case '\u0015': // Ctrl-U
            buf = '';
            break;
          case '\u001b':
            escape = true;
            break;
          default:
            if (ch >= ' ') buf += ch;
        }
      }
    };
    input.on('data', onData);
  });
}

/** The first line of a non-interactive stdin (without its line ending); undefined on empty input. */
export function readLine(input: NodeJS.ReadableStream = process.stdin): Promise<string | undefined> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    const finish = (line: string | undefined): void => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      input.removeListener('error', onError);
      input.pause();
      resolve(line);
    };
    const onData = (chunk: Buffer | string): void => {
      const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      const nl = b.indexOf(0x0a);
      if (nl === -1) {
        chunks.push(b);
        return;
      }
      chunks.push(b.subarray(0, nl));
      finish(Buffer.concat(chunks).toString('utf8').replace(/\r$/, ''));
    };
    const onEnd = (): void => {
      const all = Buffer.concat(chunks);
      finish(all.length === 0 ? undefined : all.toString('utf8').replace(/\r$/, ''));
    };
    const onError = (err: Error): void => {
      input.removeListener('data', onData);
      input.removeListener('end', onEnd);
      reject(err);
    };
    input.on('data', onData);
    input.once('end', onEnd);
    input.once('error', onError);
    input.resume();
  });
}

/**
 * The new password of an account: `--password`, else asked twice on a
 * terminal, else the first line of stdin.
 */
export async function obtainPassword(given: string | undefined, jid: string): Promise<string> {
  let pw: string | undefined = given;
  if (pw === undefined) {
    if (process.stdin.isTTY === true) {
      pw = await promptHidden(`Password for ${jid}: `);
      if (pw !== '') {
        const again = await promptHidden('Repeat password: ');
        if (again !== pw) throw new CliError('the passwords do not match', 2);
      }
    } else {
      pw = await readLine();
      if (pw === undefined) throw new CliError('no password on stdin (give --password, or pipe one line)', 2);
    }
  }
  if (pw === '') throw new CliError('the password must not be empty', 2);
  return pw;
}
