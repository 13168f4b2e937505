/**
 * What the stanza limits (src/limits/stanza-limits.ts) cost per client
 * stanza: classifying it (chargesFor) and taking from its bucket, for the
 * stanza kinds of a saturated chat (messages: nothing to charge) and the
 * limited ones. One process, no server: the per-stanza price of the hook.
 *
 *   node dist/bench/stanza-limits-cost.js [--n 1000000]
 */
import { parseArgs } from 'node:util';
import { loadavg } from 'node:os';
import { parseXml } from '../src/xml/parser.js';
import { chargesFor, RefusingBucket } from '../src/limits/stanza-rules.js';

const { values } = parseArgs({ options: { n: { type: 'string', default: '1000000' } } });
const N = Number(values.n);
const PAGES = { defaultPage: 50, maxPage: 250 };
const CASES: Record<string, string> = {
  message: "<message xmlns='jabber:client' to='juliet@localhost' type='chat'><body>hello</body></message>",
  'iq (ping)': "<iq xmlns='jabber:client' type='get' id='1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>",
  'iq (MAM query)': "<iq xmlns='jabber:client' type='set' id='q'><query xmlns='urn:xmpp:mam:2'><set xmlns='http://jabber.org/protocol/rsm'><max>50</max></set></query></iq>",
  'presence broadcast': "<presence xmlns='jabber:client'><show>away</show></presence>",
  'directed presence': "<presence xmlns='jabber:client' to='room@muc.localhost/romeo'/>",
};

function run(xml: string, n: number): number {
  const el = parseXml(xml);
  // Never empty: the price of the check, not of a refusal.
  const bucket = new RefusingBucket(1e12, 1e12, Date.now());
  const t = process.hrtime.bigint();
  for (let i = 0; i < n; i++) for (const c of chargesFor(el, 'romeo@localhost', PAGES)) bucket.take(c.cost, Date.now());
  return Number(process.hrtime.bigint() - t) / n;
}

const rows = Object.entries(CASES).map(([kind, xml]) => {
  run(xml, Math.min(N, 100_000));
  return { kind, nsPerStanza: Math.round(run(xml, N)) };
});
process.stdout.write(`${JSON.stringify({ date: new Date().toISOString(), node: process.version, loadavg: loadavg().map((x) => Math.round(x * 10) / 10), rows })}\n`);
