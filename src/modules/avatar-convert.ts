/**
 * Avatar conversions of XEP-0398 (User Avatar to vCard-Based Avatars
 * Conversion, version 0.3) between XEP-0084 PEP avatars
 * (urn:xmpp:avatar:data / urn:xmpp:avatar:metadata) and the vcard-temp PHOTO
 * of XEP-0054/XEP-0153. Pure functions.
 */
import { createHash } from 'node:crypto';
import { x, type Element } from '../xml/element.js';

export const NS_AVATAR_DATA = 'urn:xmpp:avatar:data';
export const NS_AVATAR_METADATA = 'urn:xmpp:avatar:metadata';
export const NS_VCARD = 'vcard-temp';
export const NS_VCARD_UPDATE = 'vcard-temp:x:update';
export const NS_CONVERSION = 'urn:xmpp:pep-vcard-conversion:0';

export interface Photo {
  type: string;
  bytes: Buffer;
  /** XEP-0153 / XEP-0084 id: hex SHA-1 of the image bytes. */
  hash: string;
}

export function sha1hex(b: Buffer): string {
  return createHash('sha1').update(b).digest('hex');
}

/** The PHOTO of a vCard (inline BINVAL only; an EXTVAL link has no bytes to hash). */
export function photoOf(vcard: Element | undefined): Photo | undefined {
  const p = vcard?.getChild('PHOTO', NS_VCARD);
  const bin = p?.getChildText('BINVAL', NS_VCARD)?.replace(/\s+/g, '');
  if (!p || bin === undefined || bin === '') return undefined;
  const bytes = Buffer.from(bin, 'base64');
  if (bytes.length === 0) return undefined;
  return { type: p.getChildText('TYPE', NS_VCARD)?.trim() || 'image/png', bytes, hash: sha1hex(bytes) };
}

/** `vcard` (or a new one) with its PHOTO replaced by `photo`, or removed when undefined. */
export function withPhoto(vcard: Element | undefined, photo: Photo | undefined): Element {
  const out = vcard ? vcard.clone() : x('vCard', NS_VCARD);
  out.children = out.children.filter((c) => typeof c === 'string' || !(c.name === 'PHOTO' && c.xmlns === NS_VCARD));
  if (photo) {
    out.append(x('PHOTO', NS_VCARD, {}, [x('TYPE', NS_VCARD, {}, [photo.type]), x('BINVAL', NS_VCARD, {}, [photo.bytes.toString('base64')])]));
  }
  return out;
}

/** The info of a XEP-0084 metadata payload that has inline data (the one with a url is a link, not convertible). */
export function metadataInfo(metadata: Element): { id: string; type: string; bytes: number } | 'disabled' | undefined {
  const infos = metadata.getChildren('info', NS_AVATAR_METADATA);
  if (infos.length === 0) return 'disabled'; // XEP-0084 §4.2: an empty <metadata/> switches the avatar off
  const inline = infos.find((i) => i.attrs.url === undefined) ?? infos[0];
  if (!inline?.attrs.id) return undefined;
  return { id: inline.attrs.id, type: inline.attrs.type ?? 'image/png', bytes: Number(inline.attrs.bytes ?? '0') };
}

export function dataPayload(photo: Photo): Element {
  return x('data', NS_AVATAR_DATA, {}, [photo.bytes.toString('base64')]);
}

export function metadataPayload(photo: Photo | undefined): Element {
  const m = x('metadata', NS_AVATAR_METADATA);
  if (photo) m.append(x('info', NS_AVATAR_METADATA, { id: photo.hash, bytes: String(photo.bytes.length), type: photo.type }));
  return m;
}

/**
 * XEP-0153 §4.3 / XEP-0398 §4: the server puts the account's current hash in
 * its available presence, replacing what the client said (an empty <photo/>
 * when there is no avatar). Returns the stanza changed in place.
 */
export function stampPresence(presence: Element, hash: string): Element {
  presence.children = presence.children.filter((c) => typeof c === 'string' || c.xmlns !== NS_VCARD_UPDATE);
  presence.append(x('x', NS_VCARD_UPDATE, {}, [x('photo', NS_VCARD_UPDATE, {}, hash === '' ? [] : [hash])]));
  return presence;
}
