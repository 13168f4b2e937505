/**
 * The pure decisions of the apps modules, table by table: upload slots and
 * serving (XEP-0363), TURN REST credentials (XEP-0215, coturn's algorithm),
 * bookmark conversion (XEP-0402/0048), avatar conversion (XEP-0398), contact
 * addresses (XEP-0157) and the options parsers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { parseXml } from '../../src/xml/parser.js';
import { serialize } from '../../src/xml/element.js';
import { contentDisposition, parseRange, safeFilename, servingDecision, slotVerdict } from '../../src/modules/upload/policy.js';
import { parseUploadOptions } from '../../src/modules/upload/options.js';
import { parseExtdiscoOptions, serviceElement, turnRestCredentials } from '../../src/modules/extdisco.js';
import { fromLegacy, planNative, toLegacy, toNative } from '../../src/modules/bookmarks-convert.js';
import { metadataInfo, photoOf, stampPresence, withPhoto, sha1hex } from '../../src/modules/avatar-convert.js';
import { parseContactOptions } from '../../src/modules/contact-addresses.js';

const limits = { maxFileSize: 1000, quota: 5000, maxPendingSlots: 2 };
const slotRows: Array<[string, number, { bytes: number; pendingSlots: number }, string]> = [
  ['fits', 500, { bytes: 0, pendingSlots: 0 }, 'within-limits'],
  ['exactly the maximum', 1000, { bytes: 0, pendingSlots: 0 }, 'within-limits'],
  ['one byte over the maximum', 1001, { bytes: 0, pendingSlots: 0 }, 'file-too-large'],
  ['empty file', 0, { bytes: 0, pendingSlots: 0 }, 'empty-file'],
  ['negative', -1, { bytes: 0, pendingSlots: 0 }, 'bad-size'],
  ['fractional', 1.5, { bytes: 0, pendingSlots: 0 }, 'bad-size'],
  ['quota reached exactly', 1000, { bytes: 4000, pendingSlots: 0 }, 'within-limits'],
  ['quota exceeded', 1000, { bytes: 4001, pendingSlots: 0 }, 'quota-exceeded'],
  ['too many unused slots', 10, { bytes: 0, pendingSlots: 2 }, 'too-many-pending-slots'],
];
for (const [name, size, usage, reason] of slotRows) {
  test(`upload slot: ${name} -> ${reason}`, () => assert.equal(slotVerdict(size, usage, limits).reason, reason));
}
test('upload slot: quota 0 means none', () => assert.equal(slotVerdict(900, { bytes: 1e12, pendingSlots: 0 }, { ...limits, quota: 0 }).ok, true));

const serveRows: Array<[string | undefined, string, 'inline' | 'attachment']> = [
  ['image/png', 'image/png', 'inline'],
  ['IMAGE/JPEG; q=1', 'image/jpeg', 'inline'],
  ['video/mp4', 'video/mp4', 'inline'],
  ['audio/ogg', 'audio/ogg', 'inline'],
  ['text/plain', 'text/plain; charset=utf-8', 'inline'],
  ['text/html', 'application/octet-stream', 'attachment'],
  ['application/xhtml+xml', 'application/octet-stream', 'attachment'],
  ['image/svg+xml', 'application/octet-stream', 'attachment'],
  ['application/javascript', 'application/octet-stream', 'attachment'],
  ['text/css', 'application/octet-stream', 'attachment'],
  ['application/pdf', 'application/octet-stream', 'attachment'],
  ['application/zip', 'application/zip', 'attachment'],
  [undefined, 'application/octet-stream', 'attachment'],
  ['not a type', 'application/octet-stream', 'attachment'],
];
for (const [declared, type, disp] of serveRows) {
  test(`upload serving: ${declared ?? '(none)'} -> ${type}, ${disp}`, () => {
    const d = servingDecision(declared);
    assert.equal(d.contentType, type);
    assert.equal(d.disposition, disp);
  });
}

test('upload file names: no paths, no control characters, never empty, bounded', () => {
  assert.equal(safeFilename('../../etc/passwd'), 'passwd');
  assert.equal(safeFilename('C:\\Users\\x\\photo.jpg'), 'photo.jpg');
  assert.equal(safeFilename('a\nb"c%.txt'), 'a_b_c_.txt');
  assert.equal(safeFilename('..'), 'file');
  assert.equal(safeFilename(''), 'file');
  const long = safeFilename(`${'x'.repeat(300)}.jpeg`);
  assert.equal(long.length, 200);
  assert.ok(long.endsWith('.jpeg'));
  assert.equal(safeFilename('Fotó 1.png'), 'Fotó 1.png');
});

test('Content-Disposition carries an ASCII fallback and the UTF-8 name', () => {
  assert.equal(contentDisposition('inline', 'Fotó "1".png'), `inline; filename="Fot_ _1_.png"; filename*=UTF-8''Fot%C3%B3%20%221%22.png`);
});

test('byte ranges', () => {
  assert.deepEqual(parseRange('bytes=0-9', 100), { start: 0, end: 9 });
  assert.deepEqual(parseRange('bytes=90-', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=-10', 100), { start: 90, end: 99 });
  assert.deepEqual(parseRange('bytes=50-500', 100), { start: 50, end: 99 });
  assert.equal(parseRange('bytes=100-', 100), 'unsatisfiable');
  assert.equal(parseRange('bytes=0-1,5-6', 100), undefined);
  assert.equal(parseRange(undefined, 100), undefined);
});

test('upload options: defaults, unknown keys and bad values refused', () => {
  assert.equal(parseUploadOptions({}).maxFileSize, 100 * 1024 * 1024);
  assert.throws(() => parseUploadOptions({ maxFilesize: 1 }), /unknown option/);
  assert.throws(() => parseUploadOptions({ quota: -1 }), />= 0/);
  assert.throws(() => parseUploadOptions({ baseUrl: 'ftp://x' }), /http/);
  assert.equal(parseUploadOptions({ baseUrl: 'https://files.example/' }).baseUrl, 'https://files.example');
});

test('TURN REST credentials are coturn\'s: username expiry:user, password base64(HMAC-SHA1(secret, username))', () => {
  const c = turnRestCredentials('s3cret', 'romeo', 1_700_000_000, 86400);
  assert.equal(c.username, '1700086400:romeo');
  assert.equal(c.password, createHmac('sha1', 's3cret').update('1700086400:romeo').digest('base64'));
  // A fixed vector from an independent implementation: printf '1700086400:romeo' | openssl dgst -sha1 -hmac s3cret -binary | base64
  assert.equal(c.password, 'O2TBktsw31zWswLiDteqYCK4rmQ=');
});

test('extdisco options and elements', () => {
  const [stun, turn] = parseExtdiscoOptions({ services: [{ type: 'stun', host: 'stun.example' }, { type: 'turns', host: 'turn.example', secret: 'k', ttl: 600 }] });
  assert.equal(stun?.port, 3478);
  assert.equal(turn?.port, 5349);
  assert.equal(turn?.transport, 'tcp');
  const el = serviceElement(turn as NonNullable<typeof turn>, 'juliet', 1000);
  assert.equal(el.attrs.username, '1600:juliet');
  assert.equal(el.attrs.expires, '1970-01-01T00:26:40Z');
  assert.equal(el.attrs.restricted, '1');
  assert.equal(serviceElement(stun as NonNullable<typeof stun>, 'juliet', 1000).attrs.username, undefined);
  assert.throws(() => parseExtdiscoOptions({ services: [{ type: 'turn', host: 'x', secret: 'a', password: 'b' }] }), /either/);
  assert.throws(() => parseExtdiscoOptions({ services: [{ type: 'relay', host: 'x' }] }), /type/);
  assert.throws(() => parseExtdiscoOptions({ servers: [] }), /unknown/);
});

test('bookmarks: legacy -> native -> legacy round trip keeps rooms and <url/>s', () => {
  const legacy = parseXml(`<storage xmlns='storage:bookmarks'><conference jid='a@muc.example' name='A' autojoin='1'><nick>n</nick><password>p</password></conference><conference name='no jid'/><url name='W' url='https://w.example/'/></storage>`);
  const rooms = fromLegacy(legacy);
  assert.deepEqual(rooms.map((r) => [r.jid, r.name, r.autojoin, r.nick, r.password]), [['a@muc.example', 'A', true, 'n', 'p']]);
  assert.equal(serialize(toNative(rooms[0] as (typeof rooms)[0]), ''), `<conference xmlns="urn:xmpp:bookmarks:1" name="A" autojoin="true"><nick>n</nick><password>p</password></conference>`);
  const back = toLegacy(rooms, legacy);
  assert.equal(back.getChildren('conference').length, 1);
  assert.equal(back.getChild('url')?.attrs.url, 'https://w.example/');
});

test('bookmarks: planNative publishes only changes, retracts removals, keeps native extensions', () => {
  const native = new Map([
    ['same@muc', parseXml(`<conference xmlns='urn:xmpp:bookmarks:1' name='Same' autojoin='false'/>`)],
    ['renamed@muc', parseXml(`<conference xmlns='urn:xmpp:bookmarks:1' name='Old' autojoin='false'><extensions><pin xmlns='urn:example'/></extensions></conference>`)],
    ['gone@muc', parseXml(`<conference xmlns='urn:xmpp:bookmarks:1' autojoin='false'/>`)],
  ]);
  const plan = planNative([
    { jid: 'same@muc', name: 'Same', autojoin: false },
    { jid: 'renamed@muc', name: 'New', autojoin: false },
    { jid: 'new@muc', autojoin: true },
  ], native);
  assert.deepEqual(plan.publish.map((p) => p.id), ['renamed@muc', 'new@muc']);
  assert.deepEqual(plan.retract, ['gone@muc']);
  assert.ok(plan.publish[0]?.payload.getChild('extensions', 'urn:xmpp:bookmarks:1')?.getChild('pin', 'urn:example'));
});

test('avatar: vCard PHOTO <-> metadata, hash stamped in presence', () => {
  const img = Buffer.from('not really a png');
  const card = parseXml(`<vCard xmlns='vcard-temp'><FN>R</FN><PHOTO><TYPE>image/png</TYPE><BINVAL>${img.toString('base64')}</BINVAL></PHOTO></vCard>`);
  const p = photoOf(card);
  assert.equal(p?.hash, sha1hex(img));
  assert.equal(p?.type, 'image/png');
  const without = withPhoto(card, undefined);
  assert.equal(without.getChild('PHOTO'), undefined);
  assert.equal(without.getChildText('FN'), 'R');
  assert.equal(photoOf(withPhoto(without, p))?.hash, p?.hash);
  assert.equal(metadataInfo(parseXml(`<metadata xmlns='urn:xmpp:avatar:metadata'/>`)), 'disabled');
  assert.deepEqual(metadataInfo(parseXml(`<metadata xmlns='urn:xmpp:avatar:metadata'><info id='ab' bytes='3' type='image/webp'/></metadata>`)), { id: 'ab', bytes: 3, type: 'image/webp' });
  const pres = stampPresence(parseXml(`<presence xmlns='jabber:client'><x xmlns='vcard-temp:x:update'><photo>old</photo></x><show>away</show></presence>`), 'new');
  assert.equal(pres.getChildren('x', 'vcard-temp:x:update').length, 1);
  assert.equal(pres.getChild('x', 'vcard-temp:x:update')?.getChildText('photo'), 'new');
  assert.equal(pres.getChildText('show'), 'away');
});

test('contact addresses: lists of URIs per kind', () => {
  assert.deepEqual(parseContactOptions({ abuse: 'mailto:abuse@example.org', admin: ['xmpp:admin@example.org'] }), {
    'abuse-addresses': ['mailto:abuse@example.org'],
    'admin-addresses': ['xmpp:admin@example.org'],
  });
  assert.throws(() => parseContactOptions({ abuse: ['abuse@example.org'] }), /not a URI/);
  assert.throws(() => parseContactOptions({ complaints: [] }), /unknown/);
});
