/**
 * The served chat page reaches nothing but this server, and says Verona.
 *
 * Debian's Chromium (playwright-core) intercepts every request of the page
 * (context.route): one for another origin is recorded and aborted. The page
 * also carries a Content-Security-Policy; any violation it reports (a request
 * the browser blocked before interception could see it) fails the test too.
 * The page is used as a person would: the login panel, logging in, a chat
 * with an emoji and links to pictures and a video on other sites (which a
 * client rendering media would fetch).
 *
 * Without /usr/bin/chromium the test is skipped with a printed reason, except
 * under CI (env CI set), where a missing browser is a failure.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { startVerona, type Verona } from '../helpers/server.js';

const CHROMIUM = '/usr/bin/chromium';
const FLAGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];
const HOST = '127.0.0.72';
const missing = !existsSync(CHROMIUM);
const skip = missing && !process.env.CI ? `${CHROMIUM} not found (install it with: apt-get install -y chromium); set CI=1 to make this a failure` : false;
if (skip) console.log(`# SKIP web page test: ${skip}`);

let v: Verona | undefined;
let browser: Browser | undefined;

before(async () => {
  if (skip) return;
  v = await startVerona({
    users: [['romeo', 'r0meo'], ['juliet', 'jul1et']],
    config: { c2s: { host: HOST }, web: { host: HOST } },
  });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: FLAGS, headless: true });
});
after(async () => {
  await browser?.close();
  if (v) {
    await v.stop();
    v.cleanup();
  }
});

/** Open the chat with `jid` through the "Start a new chat" dialog, as a user would. */
async function openChat(page: Page, jid: string): Promise<void> {
  await page.locator('converse-dropdown', { has: page.locator('a.new-chat') }).locator('button.dropdown-toggle').click();
  await page.locator('a.new-chat').click();
  await page.locator('.modal.show input[name=jid]').fill(jid);
  await page.locator('.modal.show button[type=submit]').click();
  await page.locator(`converse-chat[jid="${jid}"] textarea.chat-textarea`).waitFor({ timeout: 15_000 });
}

test('the chat page makes no request that leaves the server, and is branded Verona', { skip, timeout: 180_000 }, async () => {
  const origin = `http://${HOST}:${(v as Verona).ports.http}`;
  const wsOrigin = origin.replace(/^http/, 'ws');
  const external: string[] = [];
  const violations: string[] = [];
  const ctx = await (browser as Browser).newContext();
  await ctx.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(`${origin}/`) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
    external.push(url);
    return route.abort();
  });
  const watch = (page: Page): void => {
    page.on('pageerror', (e) => console.log(`# page error: ${e.message}`));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') console.log(`# console: ${m.text()}`);
      if (/Content.Security.Policy/i.test(m.text())) violations.push(m.text());
    });
    // WebSockets are not routed; check where they go.
    page.on('websocket', (ws) => {
      if (!ws.url().startsWith(`${wsOrigin}/`)) external.push(ws.url());
    });
  };
  try {
    const romeo = await ctx.newPage();
    watch(romeo);
    await romeo.goto(`${origin}/`);
    await romeo.locator('#converse-login-jid').waitFor({ timeout: 30_000 });
    const body = await romeo.locator('body').innerText();
    assert.match(body, /Verona/);
    assert.doesNotMatch(body, /sponsor/i);
    assert.doesNotMatch(body, /messaging freedom/);
    assert.equal(await romeo.locator('.sponsors, img[src^="http"]').count(), 0);

    await romeo.locator('#converse-login-jid').fill('romeo');
    await romeo.locator('#converse-login-password').fill('r0meo');
    await romeo.locator('#converse-login [type=submit]').click();
    await romeo.locator('converse-controlbox a.change-status').waitFor({ timeout: 30_000 });

    const jctx = await (browser as Browser).newContext();
    await jctx.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith(`${origin}/`) || url.startsWith('data:') || url.startsWith('blob:')) return route.continue();
      external.push(url);
      return route.abort();
    });
    const juliet = await jctx.newPage();
    watch(juliet);
    await juliet.goto(`${origin}/`);
    await juliet.locator('#converse-login-jid').fill('juliet');
    await juliet.locator('#converse-login-password').fill('jul1et');
    await juliet.locator('#converse-login [type=submit]').click();
    await juliet.locator('converse-controlbox a.change-status').waitFor({ timeout: 30_000 });

    // Romeo writes media links and emojis; Juliet's page shows the message.
    await openChat(romeo, 'juliet@localhost');
    const area = romeo.locator('converse-chat[jid="juliet@localhost"] textarea.chat-textarea');
    await area.waitFor({ timeout: 15_000 });
    const text = 'look :smile: 😀 https://example.org/cat.png https://example.net/clip.mp4 https://www.youtube.com/watch?v=dQw4w9WgXcQ';
    await area.fill(text);
    await area.press('Enter');
    const box = juliet.locator('converse-chat[jid="romeo@localhost"]');
    if (!((await box.count()) > 0 && (await box.isVisible()))) await openChat(juliet, 'romeo@localhost');
    const received = juliet.locator('converse-chat[jid="romeo@localhost"] .chat-msg__text', { hasText: 'cat.png' });
    await received.first().waitFor({ timeout: 30_000 });
    await jctx.close();

    assert.deepEqual(external, [], 'requests that left the server');
    assert.deepEqual(violations, [], 'Content-Security-Policy violations');
  } catch (err) {
    console.log(`# external requests so far: ${JSON.stringify(external)}; CSP violations: ${JSON.stringify(violations)}`);
    throw err;
  } finally {
    await ctx.close();
  }
});
