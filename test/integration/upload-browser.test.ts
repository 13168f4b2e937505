/**
 * HTTP File Upload from the served converse.js page in Debian's Chromium
 * (playwright-core): Romeo picks an image in the chat with Juliet; converse
 * finds the upload service through disco, gets a slot, PUTs the file to
 * Verona's HTTPS listener (cross-origin from the http page, with the slot's
 * Authorization header: CORS preflight), sends the URL; Juliet's page shows
 * the image, loaded from Verona.
 *
 * Without /usr/bin/chromium the test is skipped with a printed reason, except
 * under CI, where a missing browser is a failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { startVerona, ROOT, type Verona } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const OUT = path.join(ROOT, 'test-output');
const missing = !existsSync(CHROMIUM);
const skip = missing && !process.env.CI ? `${CHROMIUM} not found (apt-get install -y chromium); set CI=1 to make this a failure` : false;
if (skip) console.log(`# SKIP upload browser test: ${skip}`);

let v: Verona | undefined;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  mkdirSync(OUT, { recursive: true });
  v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et']] });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
});
after(async () => {
  await browser?.close();
  if (v) {
    await v.stop();
    v.cleanup();
  }
});

/** A real 16x16 PNG (red), so the browser decodes it: CRC-32 per RFC 1952 for the chunks. */
function png(): Buffer {
  const table = Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  const crc = (b: Buffer): number => {
    let c = 0xffffffff;
    for (const byte of b) c = (table[(c ^ byte) & 0xff] as number) ^ (c >>> 8);
    return (c ^ 0xffffffff) >>> 0;
  };
  const chunk = (type: string, data: Buffer): Buffer => {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(data.length);
    const td = Buffer.concat([Buffer.from(type, 'ascii'), data]);
    const c = Buffer.alloc(4);
    c.writeUInt32BE(crc(td));
    return Buffer.concat([len, td, c]);
  };
  const w = 16;
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(w, 0);
  ihdr.writeUInt32BE(w, 4);
  ihdr[8] = 8; // bit depth
  ihdr[9] = 2; // truecolour
  const rows = Buffer.concat(Array.from({ length: w }, () => Buffer.concat([Buffer.from([0]), Buffer.concat(Array.from({ length: w }, () => Buffer.from([200, 30, 40])))])));
  return Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), chunk('IHDR', ihdr), chunk('IDAT', deflateSync(rows)), chunk('IEND', Buffer.alloc(0))]);
}

async function openPage(ctx: BrowserContext): Promise<Page> {
  const page = await ctx.newPage();
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
  await page.goto(`http://127.0.0.1:${(v as Verona).ports.http}/`);
  return page;
}

async function login(page: Page, user: string, password: string): Promise<void> {
  await page.locator('#converse-login-jid').fill(user);
  await page.locator('#converse-login-password').fill(password);
  await page.locator('#converse-login [type=submit]').click();
  await page.locator('converse-controlbox a.change-status').waitFor({ timeout: 30000 });
}

const chatBox = (page: Page, jid: string) => page.locator(`converse-chat[jid="${jid}"]`);

async function openChat(page: Page, jid: string): Promise<void> {
  await page.locator('converse-dropdown', { has: page.locator('a.new-chat') }).locator('button.dropdown-toggle').click();
  await page.locator('a.new-chat').click();
  const dialog = page.locator('.modal.show');
  await dialog.locator('input[name=jid]').fill(jid);
  await dialog.locator('button[type=submit]').click();
  await chatBox(page, jid).locator('textarea.chat-textarea').waitFor({ timeout: 15000 });
}

/** Wait for an <img> from the upload service that the browser has decoded; returns its src. */
async function uploadedImage(page: Page, jid: string, timeout = 30000): Promise<string> {
  const img = chatBox(page, jid).locator('img[src*="/upload/"]').first();
  await img.waitFor({ timeout });
  await page.waitForFunction((el) => {
    const i = el as unknown as { complete: boolean; naturalWidth: number } | null;
    return i !== null && i.complete && i.naturalWidth === 16;
  }, await img.elementHandle(), { timeout });
  return (await img.getAttribute('src')) ?? '';
}

test('converse.js in Chromium: Romeo sends an image through HTTP upload, Juliet sees it', { skip, timeout: 240_000 }, async () => {
  const b = browser as Browser;
  // The upload URLs are on the HTTPS listener with the test server's self-signed certificate.
  const romeoCtx = await b.newContext({ ignoreHTTPSErrors: true });
  const julietCtx = await b.newContext({ ignoreHTTPSErrors: true });
  try {
    const romeo = await openPage(romeoCtx);
    const juliet = await openPage(julietCtx);
    const puts: number[] = [];
    romeo.on('response', (r) => {
      if (r.request().method() === 'PUT' && r.url().includes('/upload/')) puts.push(r.status());
    });
    await login(romeo, 'romeo', 'r0meo');
    await login(juliet, 'juliet', 'jul1et');
    await openChat(romeo, 'juliet@localhost');
    // converse shows the paperclip button once disco found the service; its hidden file input sits next to it.
    await chatBox(romeo, 'juliet@localhost').locator('input.fileupload').waitFor({ state: 'attached', timeout: 30000 });
    await chatBox(romeo, 'juliet@localhost').locator('input.fileupload').setInputFiles({ name: 'balcony.png', mimeType: 'image/png', buffer: png() });

    const mine = await uploadedImage(romeo, 'juliet@localhost');
    assert.match(mine, /^https:\/\/localhost:\d+\/upload\/[^/]+\/balcony\.png$/);
    assert.deepEqual(puts, [201], 'one PUT, stored');
    await romeo.screenshot({ path: path.join(OUT, 'upload-01-romeo-sent-image.png') });

    await juliet.locator(`converse-chat[jid="romeo@localhost"]`).waitFor({ timeout: 30000 }).catch(async () => openChat(juliet, 'romeo@localhost'));
    const theirs = await uploadedImage(juliet, 'romeo@localhost');
    assert.equal(theirs, mine);
    await juliet.screenshot({ path: path.join(OUT, 'upload-02-juliet-sees-image.png') });
  } finally {
    await Promise.all([romeoCtx.close(), julietCtx.close()]);
  }
});
