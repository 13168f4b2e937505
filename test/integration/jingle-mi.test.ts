/**
 * XEP-0353 Jingle Message Initiation through the real server: a call proposed
 * to a bare JID rings on every device of the callee (an MR2 stream and a
 * legacy Carbons client), the caller's other device sees it too; the callee's
 * answer (proceed, to the caller's full JID) reaches the caller and, as a
 * 'sent' copy, the callee's other device, which stops ringing; a retract
 * reaches every device; all of it lands in both archives with stanza-ids.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/xml';
import { startVerona, type Verona } from '../helpers/server.js';
import { device, innerMessage, mamQuery, shapeOf, stanzaId } from './mr2-helpers.js';

const JMI = 'urn:xmpp:jingle-message:0';
let v: Verona;

before(async () => {
  v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et']] });
});
after(async () => {
  await v.stop();
  v.cleanup();
});

const dev = (user: string, password: string, resource: string, kind: 'mr2' | 'carbons') => device({ port: v.ports.c2s as number, user, password, resource, kind });
const jmi = (name: string, id: string) => (el: Element) => el.name === 'message' && innerMessage(el).getChild(name, JMI)?.attrs.id === id;

test('a proposed call rings on all devices, the answer stops the others, and everything is archived', async () => {
  const phone = await dev('romeo', 'r0meo', 'phone', 'mr2');
  const laptop = await dev('romeo', 'r0meo', 'laptop', 'carbons');
  const jPhone = await dev('juliet', 'jul1et', 'phone', 'mr2');
  const jDesk = await dev('juliet', 'jul1et', 'desk', 'carbons');
  try {
    phone.send(`<message to='juliet@localhost' type='chat' id='p1'><propose xmlns='${JMI}' id='call-1'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose><store xmlns='urn:xmpp:hints'/></message>`);
    const [a, b, c] = await Promise.all([jPhone.next(jmi('propose', 'call-1'), 10000), jDesk.next(jmi('propose', 'call-1'), 10000), laptop.next(jmi('propose', 'call-1'), 10000)]);
    assert.equal(shapeOf(a), 'plain', 'the MR2 phone rings');
    assert.equal(shapeOf(b), 'plain', 'the legacy desk client rings (bare JID, equal priority)');
    assert.equal(shapeOf(c), 'sent', "the caller's other device sees the outgoing call");
    for (const el of [a, b]) assert.equal(stanzaId(el)?.by, 'juliet@localhost');
    assert.equal(stanzaId(c)?.by, 'romeo@localhost');

    // Juliet answers on her phone, to the caller's full JID.
    jPhone.send(`<message to='${phone.jid}' type='chat' id='p2'><proceed xmlns='${JMI}' id='call-1'/><store xmlns='urn:xmpp:hints'/></message>`);
    const [toCaller, toDesk, toLaptop] = await Promise.all([phone.next(jmi('proceed', 'call-1'), 10000), jDesk.next(jmi('proceed', 'call-1'), 10000), laptop.next(jmi('proceed', 'call-1'), 10000)]);
    assert.equal(shapeOf(toCaller), 'plain');
    assert.equal(shapeOf(toDesk), 'sent', "Juliet's desk learns the call was taken elsewhere and stops ringing");
    assert.equal(shapeOf(toLaptop), 'received', "Romeo's laptop learns it too");

    // A second call, withdrawn before anyone answers: the retract reaches every device.
    phone.send(`<message to='juliet@localhost' type='chat' id='p3'><propose xmlns='${JMI}' id='call-2'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='video'/></propose></message>`);
    await Promise.all([jPhone.next(jmi('propose', 'call-2'), 10000), jDesk.next(jmi('propose', 'call-2'), 10000)]);
    phone.send(`<message to='juliet@localhost' type='chat' id='p4'><retract xmlns='${JMI}' id='call-2'/></message>`);
    await Promise.all([jPhone.next(jmi('retract', 'call-2'), 10000), jDesk.next(jmi('retract', 'call-2'), 10000), laptop.next(jmi('retract', 'call-2'), 10000)]);

    // Both archives hold the call history: propose, proceed, propose, retract.
    for (const who of [jPhone, phone]) {
      const page = await mamQuery(who);
      const signals = page.items
        .map((i) => i.message.getChildElements().find((ch) => ch.attrs.xmlns === JMI))
        .filter((e): e is Element => e !== undefined)
        .map((e) => `${e.name}:${e.attrs.id}`);
      assert.deepEqual(signals, ['propose:call-1', 'proceed:call-1', 'propose:call-2', 'retract:call-2'], `${who.jid}'s archive`);
    }
  } finally {
    for (const d of [phone, laptop, jPhone, jDesk]) d.destroy();
  }
});

test('a call to an offline callee waits in offline storage and rings when she comes online', async () => {
  const phone = await dev('romeo', 'r0meo', 'phone2', 'mr2');
  try {
    phone.send(`<message to='juliet@localhost' type='chat' id='p5'><propose xmlns='${JMI}' id='call-3'><description xmlns='urn:xmpp:jingle:apps:rtp:1' media='audio'/></propose><store xmlns='urn:xmpp:hints'/></message>`);
    // The archive has it as soon as the server took it.
    let found = false;
    for (let i = 0; i < 50 && !found; i++) {
      const page = await mamQuery(phone);
      found = page.items.some((it) => it.message.getChild('propose', JMI)?.attrs.id === 'call-3');
      if (!found) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(found, "the caller's archive has the proposal");
    const late = await device({ port: v.ports.c2s as number, user: 'juliet', password: 'jul1et', resource: 'late', kind: 'carbons', presence: false });
    try {
      late.send('<presence/>');
      const got = await late.next(jmi('propose', 'call-3'), 10000);
      assert.ok(got);
    } finally {
      late.destroy();
    }
  } finally {
    phone.destroy();
  }
});
