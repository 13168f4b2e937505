/**
 * Scripted conversations (`test/scripts/*.scs`), in the spirit of Prosody's
 * scansion: named clients, who sends what, who receives what, values
 * captured from one stanza and reused later. Each script runs against its
 * own real server (test/helpers/server.ts) over real sockets
 * (test/helpers/client.ts). The format is documented in docs/testing.md.
 *
 *   # Romeo subscribes to Juliet               <- first comment: the test's name
 *
 *   [Server]                                   <- optional
 *   	config: {"moduleOptions": {"roster": {"maxItems": 2}}}
 *
 *   [Client] Romeo
 *   	jid: romeo@localhost/orchard
 *   	password: pass
 *
 *   -----
 *
 *   Romeo connects
 *   Romeo sends:
 *   	<presence to='juliet@localhost' type='subscribe'/>
 *   Romeo receives:
 *   	<iq type='set' id='{capture:push}'><query xmlns='jabber:iq:roster'>
 *   		<item jid='juliet@localhost' subscription='none' ask='subscribe'/></query></iq>
 *   Romeo sends:
 *   	<iq type='result' id='${push}'/>
 *
 * Matching (received against expected): same name and namespace; every
 * attribute written in the expectation is present with that value (extra
 * attributes are ignored, attribute order never matters); child elements
 * match one to one, in order (so an unexpected payload is a failure); text
 * is compared trimmed, whitespace-only text is ignored. An element whose
 * whole content is `{any}` matches any content. In attribute values and
 * text, `{any}` matches any value and `{capture:name}` matches any value and
 * binds it to `name`; `${name}` is replaced before parsing (in sends and
 * expectations alike). Per client, `${Name.jid}`, `${Name.bare}`,
 * `${Name.resource}` and `${Name.stream}` (the id of the server's stream
 * header after SASL, the prefix of an MR2 client's own archive ids) are bound
 * after it connects ("Romeo's phone" gives `${Romeo_phone.jid}`). A client
 * declared with `mr2: true` enables Message Routing 2.0 between SASL and
 * bind (docs/protocol.md §1) and its connect step fails unless the server
 * answers `<enabled/>`.
 *
 * The stanzas of one "receives:" block may arrive in any order; blocks are
 * taken one after the other, and a client must not receive anything a block
 * does not expect (use several blocks, or `receives nothing`, to say so).
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Parser, type Element as XElement } from '@xmpp/xml';
import { startVerona, type Verona } from './server.js';
import { connectClient, type RawConnection, type TestClient } from './client.js';

// ---- the script model ------------------------------------------------------------

export interface ClientDef {
  name: string;
  jid: string;
  password: string;
  /** Send `<enable xmlns='urn:xmpp:mr2:0'/>` between SASL and bind and require `<enabled/>`. */
  mr2: boolean;
  line: number;
}

export type Step =
  | { kind: 'connect'; client: string; line: number }
  | { kind: 'send'; client: string; xml: string; line: number }
  | { kind: 'receive'; client: string; xml: string; line: number }
  | { kind: 'nothing'; client: string; ms: number; line: number }
  | { kind: 'disconnect'; client: string; abrupt: boolean; line: number };

export interface Script {
  file: string;
  title: string;
  config: Record<string, unknown>;
  clients: ClientDef[];
  steps: Step[];
}

export class ScriptSyntaxError extends Error {}

// ---- parsing -------------------------------------------------------------------------

const isIndented = (l: string): boolean => /^[ \t]/.test(l);

/** Parse the text of a .scs file. */
export function parseScript(text: string, file = '<script>'): Script {
  const lines = text.replace(/\r\n?/g, '\n').split('\n');
  const fail = (i: number, msg: string): never => {
    throw new ScriptSyntaxError(`${file}:${i + 1}: ${msg}`);
  };
  let title: string | undefined;
  const clients: ClientDef[] = [];
  const steps: Step[] = [];
  let config: Record<string, unknown> = {};
  let i = 0;

  /** The indented lines after line `i` (blank lines inside are kept). */
  const block = (): { text: string; end: number } => {
    let j = i + 1;
    const out: string[] = [];
    while (j < lines.length) {
      const l = lines[j] as string;
      if (l.trim() === '' || isIndented(l)) {
        if (!/^\s*#/.test(l)) out.push(l);
        j++;
      } else break;
    }
    return { text: out.join('\n').trim(), end: j };
  };

  // Header: title comment, [Server], [Client] sections, up to '-----'.
  let inHeader = true;
  while (i < lines.length && inHeader) {
    const l = lines[i] as string;
    const t = l.trim();
    if (t === '') {
      i++;
      continue;
    }
    if (t.startsWith('#')) {
      if (title === undefined) title = t.replace(/^#+\s*/, '');
      i++;
      continue;
    }
    if (/^-{3,}$/.test(t)) {
      inHeader = false;
      i++;
      break;
    }
    const section = /^\[(Client|Server)\]\s*(.*)$/.exec(t);
    if (!section) fail(i, `expected [Client] NAME, [Server] or ----- (got ${JSON.stringify(t)})`);
    const fields: Record<string, string> = {};
    const start = i;
    i++;
    while (i < lines.length && (isIndented(lines[i] as string) || (lines[i] as string).trim() === '')) {
      const f = (lines[i] as string).trim();
      if (f !== '' && !f.startsWith('#')) {
        const m = /^([A-Za-z0-9-]+):\s*(.*)$/.exec(f);
        if (!m) fail(i, `expected "key: value" (got ${JSON.stringify(f)})`);
        fields[(m as RegExpExecArray)[1] as string] = (m as RegExpExecArray)[2] as string;
      }
      i++;
    }
    if ((section as RegExpExecArray)[1] === 'Server') {
      if (fields.config !== undefined) {
        try {
          config = JSON.parse(fields.config) as Record<string, unknown>;
        } catch (e) {
          fail(start, `[Server] config is not JSON: ${(e as Error).message}`);
        }
      }
      continue;
    }
    const name = ((section as RegExpExecArray)[2] as string).trim();
    if (!name) fail(start, '[Client] needs a name');
    if (!fields.jid || fields.password === undefined) fail(start, `[Client] ${name} needs jid: and password:`);
    if (clients.some((c) => c.name === name)) fail(start, `client ${name} defined twice`);
    const unknown = Object.keys(fields).filter((k) => !['jid', 'password', 'mr2'].includes(k));
    // A misspelt field would otherwise be silently ignored and the script would test something else.
    if (unknown.length) fail(start, `[Client] ${name}: unknown field(s) ${unknown.join(', ')} (jid, password, mr2)`);
    if (fields.mr2 !== undefined && fields.mr2 !== 'true' && fields.mr2 !== 'false') fail(start, `[Client] ${name}: mr2: must be true or false`);
    clients.push({ name, jid: fields.jid as string, password: fields.password as string, mr2: fields.mr2 === 'true', line: start + 1 });
  }
  if (inHeader) fail(lines.length - 1, 'missing ----- between the definitions and the conversation');
  if (clients.length === 0) fail(0, 'no [Client] defined');

  // Longest names first, so that "Romeo's phone" wins over "Romeo".
  const names = clients.map((c) => c.name).sort((a, b) => b.length - a.length);
  while (i < lines.length) {
    const l = lines[i] as string;
    const t = l.trim();
    if (t === '' || t.startsWith('#')) {
      i++;
      continue;
    }
    if (isIndented(l)) fail(i, 'indented line outside a sends:/receives: block');
    const name = names.find((n) => t.startsWith(n + ' ') || t.startsWith(n + "'s "));
    if (!name) fail(i, `line does not start with a client name (${names.join(', ')})`);
    const rest = t.slice((name as string).length).trim();
    const client = name as string;
    const line = i + 1;
    let m: RegExpExecArray | null;
    if (rest === 'connects') {
      steps.push({ kind: 'connect', client, line });
      i++;
    } else if (rest === 'sends:' || rest === 'receives:') {
      const b = block();
      if (!b.text) fail(i, `${rest} needs an indented XML block`);
      steps.push({ kind: rest === 'sends:' ? 'send' : 'receive', client, xml: b.text, line });
      i = b.end;
    } else if ((m = /^receives nothing(?: for (\d+) ?ms)?$/.exec(rest))) {
      steps.push({ kind: 'nothing', client, ms: m[1] ? Number(m[1]) : 300, line });
      i++;
    } else if (rest === 'disconnects' || rest === 'disconnects abruptly' || rest === "'s connection drops") {
      steps.push({ kind: 'disconnect', client, abrupt: rest !== 'disconnects', line });
      i++;
    } else {
      fail(i, `unknown action ${JSON.stringify(rest)} (connects, sends:, receives:, receives nothing, disconnects, disconnects abruptly)`);
    }
  }
  return { file, title: title ?? path.basename(file), config, clients, steps };
}

export function loadScript(file: string): Script {
  return parseScript(readFileSync(file, 'utf8'), file);
}

// ---- XML ---------------------------------------------------------------------------------

/** Parse a block of one or more top-level elements in the jabber:client namespace. */
export function parseBlock(xml: string): XElement[] {
  const p = new Parser();
  const out: XElement[] = [];
  let error: Error | undefined;
  p.on('element', (el) => out.push(el));
  p.on('error', (e) => {
    error = e;
  });
  p.write(`<block xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>${xml}</block>`);
  if (error) throw new Error(`bad XML in script: ${error.message}\n${xml}`);
  return out;
}

function escapeXml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** Replace ${name} with the (XML-escaped) value of a variable. */
export function substitute(xml: string, vars: ReadonlyMap<string, string>): string {
  return xml.replace(/\$\{([^}]+)\}/g, (_m, name: string) => {
    const v = vars.get(name);
    if (v === undefined) throw new Error(`unknown variable \${${name}} (known: ${[...vars.keys()].join(', ') || 'none'})`);
    return escapeXml(v);
  });
}

function elementChildren(el: XElement): XElement[] {
  return el.children.filter((c): c is XElement => typeof c !== 'string');
}

function textOf(el: XElement): string {
  return el.children.filter((c): c is string => typeof c === 'string').join('').trim();
}

function label(el: XElement): string {
  return `<${el.getName()} xmlns='${el.getNS() ?? ''}'>`;
}

/** Match one value against an expected value with {any} / {capture:x}; returns captures or a reason. */
function matchValue(expected: string, actual: string, caps: Map<string, string>): string | undefined {
  if (expected === '{any}') return undefined;
  const m = /^\{capture:([^}]+)\}$/.exec(expected);
  if (m) {
    caps.set(m[1] as string, actual);
    return undefined;
  }
  return expected === actual ? undefined : `expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
}

/**
 * Does `actual` match `expected`? Returns undefined (match, captures added to
 * `caps`) or the first difference with its path.
 */
export function matchElement(expected: XElement, actual: XElement, caps: Map<string, string>, at = ''): string | undefined {
  const here = `${at}/${expected.getName()}`;
  if (expected.getName() !== actual.getName() || expected.getNS() !== actual.getNS()) {
    return `${at || '/'}: expected ${label(expected)}, got ${label(actual)}`;
  }
  for (const [k, v] of Object.entries(expected.attrs)) {
    if (v === undefined || k === 'xmlns' || k.startsWith('xmlns:')) continue;
    const a = actual.attrs[k];
    if (a === undefined) return `${here}: attribute ${k} is missing (expected ${JSON.stringify(v)})`;
    const r = matchValue(v, a, caps);
    if (r) return `${here}: attribute ${k}: ${r}`;
  }
  const eText = textOf(expected);
  const eKids = elementChildren(expected);
  if (eText === '{any}' && eKids.length === 0) return undefined;
  const aKids = elementChildren(actual);
  const aText = textOf(actual);
  if (eText !== '' || aText !== '') {
    const r = matchValue(eText, aText, caps);
    if (r) return `${here}: text: ${r}`;
  }
  for (let i = 0; i < Math.max(eKids.length, aKids.length); i++) {
    const e = eKids[i];
    const a = aKids[i];
    if (!e) return `${here}: unexpected child ${(a as XElement).toString()}`;
    if (!a) return `${here}: missing child ${e.toString()}`;
    const r = matchElement(e, a, caps, here);
    if (r) return r;
  }
  return undefined;
}

// ---- running -----------------------------------------------------------------------------

export interface RunOptions {
  /** How long a "receives:" step waits for each stanza (ms). */
  timeoutMs?: number;
  /** Use an already running server instead of starting one (accounts must exist). */
  server?: Verona;
  log?: (line: string) => void;
}

/** "Romeo's phone" -> "Romeo_phone" (variables ${Romeo_phone.jid}). */
export function varName(client: string): string {
  return client.replace(/'s\b/g, '').replace(/'/g, '').trim().replace(/\s+/g, '_');
}

/** Run a script against a fresh server; throws an Error describing the first failing step. */
export async function runScript(script: Script, opts: RunOptions = {}): Promise<void> {
  const timeoutMs = opts.timeoutMs ?? 5000;
  const accounts = new Map<string, string>();
  for (const c of script.clients) {
    const local = c.jid.split('@')[0] as string;
    const prev = accounts.get(local);
    if (prev !== undefined && prev !== c.password) throw new ScriptSyntaxError(`${script.file}:${c.line}: two passwords for ${local}`);
    accounts.set(local, c.password);
  }
  const server = opts.server ?? (await startVerona({ users: [...accounts.entries()], config: script.config }));
  const conns = new Map<string, TestClient>();
  const vars = new Map<string, string>([['domain', server.domain]]);
  const transcript: string[] = [];
  const log = (s: string): void => {
    transcript.push(s);
    opts.log?.(s);
  };
  let current: Step | undefined;
  try {
    for (const step of script.steps) {
      current = step;
      const def = script.clients.find((c) => c.name === step.client) as ClientDef;
      const conn = conns.get(step.client);
      if (step.kind !== 'connect' && !conn) throw new Error(`${step.client} is not connected (add "${step.client} connects")`);
      switch (step.kind) {
        case 'connect': {
          if (conn) throw new Error(`${step.client} is already connected`);
          const [bare, resource] = [def.jid.split('/')[0] as string, def.jid.includes('/') ? def.jid.slice(def.jid.indexOf('/') + 1) : undefined];
          const c = await connectClient({
            port: server.ports.c2s as number,
            user: bare.split('@')[0] as string,
            password: def.password,
            resource,
            domain: server.domain,
            preBind: def.mr2 ? (rc) => enableMr2(rc, timeoutMs) : undefined,
          });
          conns.set(step.client, c);
          // connectClient returns with the post-SASL stream open, so this is the header whose id
          // an MR2 client prefixes to its own archive ids (docs/protocol.md §3).
          const streamId = c.header?.attrs.id;
          if (!streamId) throw new Error(`${step.client}: the server's stream header after SASL has no id`);
          const v = varName(step.client);
          vars.set(`${v}.jid`, c.jid);
          vars.set(`${v}.bare`, c.jid.split('/')[0] as string);
          vars.set(`${v}.resource`, c.jid.slice(c.jid.indexOf('/') + 1));
          vars.set(`${v}.stream`, streamId);
          log(`${step.client} connected as ${c.jid} (stream ${streamId}${def.mr2 ? ', MR2' : ''})`);
          break;
        }
        case 'send': {
          const xml = substitute(step.xml, vars);
          parseBlock(xml); // fail early on a typo in the script rather than on the server
          (conn as TestClient).send(xml);
          log(`${step.client} sent: ${xml}`);
          break;
        }
        case 'receive': {
          const expected = parseBlock(substitute(step.xml, vars));
          const got: XElement[] = [];
          for (let k = 0; k < expected.length; k++) {
            try {
              got.push(await (conn as TestClient).next(() => true, timeoutMs));
            } catch {
              throw new Error(
                `${step.client} received ${got.length} of ${expected.length} expected stanza(s) within ${timeoutMs} ms.\n` +
                  `Expected:\n${expected.map((e) => '  ' + e.toString()).join('\n')}\nReceived:\n${got.map((g) => '  ' + g.toString()).join('\n') || '  (nothing)'}`,
              );
            }
          }
          for (const g of got) log(`${step.client} received: ${g.toString()}`);
          const caps = matchBlock(expected, got);
          if (typeof caps === 'string') {
            throw new Error(
              `${step.client} did not receive what was expected: ${caps}\n` +
                `Expected (any order):\n${expected.map((e) => '  ' + e.toString()).join('\n')}\nReceived:\n${got.map((g) => '  ' + g.toString()).join('\n')}`,
            );
          }
          for (const [k, v] of caps) vars.set(k, v);
          break;
        }
        case 'nothing': {
          try {
            const el = await (conn as TestClient).next(() => true, step.ms);
            throw new Error(`${step.client} should have received nothing, but got:\n  ${el.toString()}`);
          } catch (e) {
            if (!(e instanceof Error && e.message.startsWith('timeout'))) throw e;
          }
          log(`${step.client} received nothing for ${step.ms} ms`);
          break;
        }
        case 'disconnect': {
          const c = conn as TestClient;
          if (step.abrupt) c.destroy();
          else {
            c.close();
            await c.waitClose(timeoutMs).catch(() => c.destroy());
          }
          conns.delete(step.client);
          log(`${step.client} disconnected${step.abrupt ? ' abruptly' : ''}`);
          break;
        }
      }
    }
  } catch (err) {
    const where = current ? `${script.file}:${current.line} (${current.client} ${current.kind})` : script.file;
    const msg = err instanceof Error ? err.message : String(err);
    const tail = transcript.slice(-15).map((l) => '  | ' + l).join('\n');
    throw new Error(`${where}: ${msg}\nTranscript (last steps):\n${tail}`, { cause: err });
  } finally {
    for (const c of conns.values()) c.destroy();
    if (!opts.server) {
      await server.stop();
      server.cleanup();
    }
  }
}

const MR2_NS = 'urn:xmpp:mr2:0';

/** MR2 enable between SASL and bind: the answer must be <enabled/>, anything else fails the connect step. */
async function enableMr2(c: RawConnection, timeoutMs: number): Promise<void> {
  c.send(`<enable xmlns='${MR2_NS}'/>`);
  let answer: XElement;
  try {
    answer = await c.next((el) => el.getNS() === MR2_NS && (el.getName() === 'enabled' || el.getName() === 'failed'), timeoutMs);
  } catch {
    throw new Error(`MR2: no <enabled/> or <failed/> within ${timeoutMs} ms of <enable xmlns='${MR2_NS}'/>`);
  }
  if (answer.getName() !== 'enabled') throw new Error(`MR2: <enable/> was refused: ${answer.toString()}`);
}

/**
 * Match the stanzas of one block in any order: each expected stanza takes a
 * distinct received one (backtracking, blocks are small). Returns the
 * captures, or the difference for the first expectation nothing matched.
 */
export function matchBlock(expected: XElement[], got: XElement[]): Map<string, string> | string {
  const used = new Array<boolean>(got.length).fill(false);
  let firstFailure: string | undefined;
  const solve = (i: number, caps: Map<string, string>): Map<string, string> | undefined => {
    if (i === expected.length) return caps;
    const e = expected[i] as XElement;
    const reasons: string[] = [];
    for (let j = 0; j < got.length; j++) {
      if (used[j]) continue;
      const c = new Map(caps);
      const r = matchElement(e, got[j] as XElement, c);
      if (r) {
        reasons.push(`  vs ${(got[j] as XElement).toString()}\n    ${r}`);
        continue;
      }
      used[j] = true;
      const done = solve(i + 1, c);
      if (done) return done;
      used[j] = false;
    }
    if (firstFailure === undefined) firstFailure = `nothing matched\n  ${e.toString()}\n${reasons.join('\n')}`;
    return undefined;
  };
  return solve(0, new Map()) ?? (firstFailure as string);
}
