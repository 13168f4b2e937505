/**
 * End to end in a real browser: Debian's Chromium (driven by playwright-core)
 * opens the converse.js chat page that Verona serves. Two users log in and
 * exchange messages; a second browser (context) of the same user shows what
 * the first one sent (carbons); a user who closed the page comes back and
 * finds the message she missed, fetched from the archive (MAM).
 * Screenshots go to test-output/ (kept by CI as artifacts).
 *
 * Without /usr/bin/chromium the test is skipped with a printed reason, except
 * under CI (env CI set), where a missing browser is a failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser, type BrowserContext, type Page, type WebSocket as PwWebSocket } from 'playwright-core';
import { startVerona, ROOT, type Verona } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const OUT = path.join(ROOT, 'test-output');

const missing = !existsSync(CHROMIUM);
const skip = missing && !process.env.CI ? `${CHROMIUM} not found (install it with: apt-get install -y chromium); set CI=1 to make this a failure` : false;
if (skip) console.log(`# SKIP browser test: ${skip}`);

let v: Verona | undefined;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  mkdirSync(OUT, { recursive: true });
  v = await startVerona({ users: [['romeo', 'r0meo'], ['juliet', 'jul1et']] });
  // Under CI a missing browser fails here, loudly.
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
});
after(async () => {
  await browser?.close();
  if (v) {
    await v.stop();
    v.cleanup();
  }
});

/** Everything one page received over its WebSocket, as text. */
function recordFrames(page: Page): string[] {
  const frames: string[] = [];
  page.on('websocket', (ws: PwWebSocket) => ws.on('framereceived', (f) => frames.push(String(f.payload))));
  return frames;
}

async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: path.join(OUT, `browser-${name}.png`) });
}

async function openPage(ctx: BrowserContext): Promise<{ page: Page; frames: string[] }> {
  const page = await ctx.newPage();
  const frames = recordFrames(page);
  page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
  await page.goto(`http://127.0.0.1:${(v as Verona).ports.http}/`);
  return { page, frames };
}

async function login(page: Page, user: string, password: string): Promise<void> {
  await page.locator('#converse-login-jid').fill(user);
  await page.locator('#converse-login-password').fill(password);
  await page.locator('#converse-login [type=submit]').click();
  // The status line of the control box appears once the session is up.
  await page.locator('converse-controlbox a.change-status').waitFor({ timeout: 20000 });
}

/** Open (or focus) the chat with `jid` through the "Start a new chat" dialog, as a user would. */
async function openChat(page: Page, jid: string): Promise<void> {
  await page.locator('converse-dropdown', { has: page.locator('a.new-chat') }).locator('button.dropdown-toggle').click();
  await page.locator('a.new-chat').click();
  const dialog = page.locator('.modal.show');
  await dialog.locator('input[name=jid]').fill(jid);
  await dialog.locator('button[type=submit]').click();
  await chatBox(page, jid).locator('textarea.chat-textarea').waitFor({ timeout: 10000 });
}

function chatBox(page: Page, jid: string) {
  return page.locator(`converse-chat[jid="${jid}"]`);
}

async function say(page: Page, jid: string, text: string): Promise<void> {
  const area = chatBox(page, jid).locator('textarea.chat-textarea');
  await area.fill(text);
  await area.press('Enter');
}

/** Wait until a message with this text shows in the chat with `jid` on `page`. */
async function sees(page: Page, jid: string, text: string, timeout = 15000): Promise<void> {
  await chatBox(page, jid).locator('.chat-msg__text', { hasText: text }).first().waitFor({ timeout });
}

/** Show the chat with `jid` if converse has it (incoming chats open by themselves, maybe in the background). */
async function showChat(page: Page, jid: string): Promise<void> {
  const box = chatBox(page, jid);
  if ((await box.count()) > 0 && (await box.isVisible())) return;
  await openChat(page, jid);
}

test('converse.js in Chromium: chat, a second device, and history from MAM', { skip, timeout: 180_000 }, async () => {
  const b = browser as Browser;
  const romeoCtx = await b.newContext();
  const romeo2Ctx = await b.newContext();
  let julietCtx = await b.newContext();
  try {
    const romeo = await openPage(romeoCtx);
    await shot(romeo.page, '01-login-page');
    const romeo2 = await openPage(romeo2Ctx);
    const juliet = await openPage(julietCtx);
    await login(romeo.page, 'romeo', 'r0meo');
    await login(romeo2.page, 'romeo', 'r0meo');
    await login(juliet.page, 'juliet', 'jul1et');
    await shot(romeo.page, '02-logged-in');

    // Romeo writes to Juliet from his first device; his second device has the chat open too.
    await openChat(romeo.page, 'juliet@localhost');
    await openChat(romeo2.page, 'juliet@localhost');
    await say(romeo.page, 'juliet@localhost', 'But soft, what light through yonder window breaks?');
    await sees(romeo.page, 'juliet@localhost', 'yonder window');

    // Juliet gets it.
    await showChat(juliet.page, 'romeo@localhost');
    await sees(juliet.page, 'romeo@localhost', 'yonder window');
    await shot(juliet.page, '03-juliet-received');

    // Romeo's second device shows the message he sent from the first, live (a carbon copy).
    await sees(romeo2.page, 'juliet@localhost', 'yonder window');
    await shot(romeo2.page, '04-romeo-second-device');
    assert.ok(
      romeo2.frames.some((f) => f.includes('<sent xmlns="urn:xmpp:carbons:2"') && f.includes('yonder window')),
      'the second device got a carbon of the sent message',
    );

    // And Juliet's answer reaches both of Romeo's devices.
    await say(juliet.page, 'romeo@localhost', 'Wherefore art thou Romeo?');
    await sees(romeo.page, 'juliet@localhost', 'Wherefore art thou');
    await sees(romeo2.page, 'juliet@localhost', 'Wherefore art thou');
    await shot(romeo.page, '05-romeo-conversation');

    // Juliet closes the page (the browser forgets the session); Romeo writes meanwhile.
    await juliet.page.close();
    await julietCtx.close();
    await say(romeo.page, 'juliet@localhost', 'Parting is such sweet sorrow');
    await sees(romeo.page, 'juliet@localhost', 'sweet sorrow');

    // She comes back on a fresh browser profile, logs in, opens the chat: the missed message is there.
    julietCtx = await b.newContext();
    const back = await openPage(julietCtx);
    await login(back.page, 'juliet', 'jul1et');
    await showChat(back.page, 'romeo@localhost');
    await sees(back.page, 'romeo@localhost', 'sweet sorrow', 20000);
    await shot(back.page, '06-juliet-back-history');
    // It came from the archive: a MAM <result/> carried it.
    const fromArchive = back.frames.some((f) => f.includes('urn:xmpp:mam:2') && f.includes('<result') && f.includes('sweet sorrow'));
    assert.ok(fromArchive, 'the missed message was delivered as a MAM result');
  } finally {
    await Promise.all([romeoCtx.close(), romeo2Ctx.close(), julietCtx.close().catch(() => undefined)]);
  }
});
