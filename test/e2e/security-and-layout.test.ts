import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { PAGE_CSP } from '../../src/server/routes/page.js';
import { hasBrowser, launchBrowser, SCREENSHOTS } from './browser.js';
import { startFakeOpenAI, type FakeOpenAIServer } from '../support/fake-openai-server.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let fake: FakeOpenAIServer;
let server: TestServer;
let demo: TestServer;
let browser: Browser;

beforeAll(async () => {
  if (!hasBrowser) return;
  fake = await startFakeOpenAI();
  server = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl });
  demo = await startTestServer({ DEMO_TOKENS_PER_SECOND: '0' });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
  await demo?.close();
  await fake?.close();
});

async function send(page: Page, text: string) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.keyboard.press('Enter');
}

const PAYLOADS = [
  '<script>window.__pwned = "script"</script>',
  '<img src=x onerror="window.__pwned = \'onerror\'">',
  '[click me](javascript:window.__pwned="link")',
  '<a href="javascript:window.__pwned=1">raw link</a>',
  '<iframe srcdoc="<script>parent.__pwned=1</script>"></iframe>',
  '![image](javascript:window.__pwned="img")',
  '<svg onload="window.__pwned=\'svg\'"></svg>',
];

describe.skipIf(!hasBrowser)('security', () => {
  it('shows script payloads in an answer (and in the user message) inert', async () => {
    const page = await browser.newPage();
    const dialogs: string[] = [];
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    fake.enqueue({ kind: 'stream', tokens: PAYLOADS.flatMap((payload) => [payload, '\n\n']) });
    await page.goto(server.url);
    await send(page, '<img src=x onerror="window.__pwned=\'user\'"> hello');
    await page.locator('[data-status="done"]').waitFor();
    await page.waitForTimeout(300);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: unknown }).__pwned)).toBeUndefined();
    expect(dialogs).toEqual([]);
    const answer = page.getByTestId('assistant-message').last();
    expect(await answer.locator('script, iframe, img[onerror], svg[onload], [onerror], [onload]').count()).toBe(0);
    const hrefs = await answer.locator('a').evaluateAll((links) => links.map((link) => link.getAttribute('href') ?? ''));
    for (const href of hrefs) expect(href.toLowerCase()).not.toContain('javascript:');
    expect(await answer.innerText()).toContain('<script>window.__pwned = "script"</script>');
    await page.close();
  });

  it('serves the page with a Content Security Policy that forbids inline script', async () => {
    const response = await fetch(`${demo.url}/`);
    expect(response.headers.get('content-security-policy')).toBe(PAGE_CSP);
    expect(PAGE_CSP).toContain("script-src 'self'");
    expect(PAGE_CSP).not.toContain("unsafe-inline'; script");
    const page = await browser.newPage();
    const violations: string[] = [];
    page.on('console', (message) => message.text().includes('Content Security Policy') && violations.push(message.text()));
    await page.goto(demo.url);
    await page.getByLabel('Message', { exact: true }).waitFor();
    expect(violations).toEqual([]);
    // An inline script injected into the page (as an XSS would) does not run.
    await page.evaluate(() => {
      const script = document.createElement('script');
      script.textContent = 'window.__inline = true';
      document.body.append(script);
    });
    expect(await page.evaluate(() => (window as unknown as { __inline?: boolean }).__inline)).toBeUndefined();
    expect(violations.length).toBeGreaterThan(0);
    await page.close();
  });
});

describe.skipIf(!hasBrowser)('layout and themes', () => {
  it('fits a 360 px phone without horizontal scroll, with the conversation list behind a menu', async () => {
    const page = await browser.newPage({ viewport: { width: 360, height: 740 }, isMobile: true, hasTouch: true });
    await page.goto(demo.url);
    await send(page, 'A phone-sized question with a_very_long_unbroken_word_that_could_push_the_layout_sideways_if_we_were_careless');
    await page.locator('[data-status="done"]').waitFor();
    const widths = await page.evaluate(() => ({
      scroll: document.documentElement.scrollWidth,
      client: document.documentElement.clientWidth,
    }));
    expect(widths.scroll).toBeLessThanOrEqual(widths.client);
    expect(await page.getByRole('navigation', { name: 'Conversations' }).isVisible()).toBe(true);
    const box = await page.getByRole('navigation', { name: 'Conversations' }).boundingBox();
    expect(box!.x + box!.width).toBeLessThanOrEqual(1);
    await page.screenshot({ path: `${SCREENSHOTS}/phone.png` });
    await page.getByRole('button', { name: 'Show conversations' }).click();
    await page.waitForTimeout(250);
    await page.screenshot({ path: `${SCREENSHOTS}/phone-menu.png` });
    await page.mouse.click(340, 400);
    await expect.poll(async () => (await page.getByRole('navigation', { name: 'Conversations' }).boundingBox())!.x < -100).toBe(true);
    await page.close();
  });

  it('follows a dark system theme', async () => {
    const page = await browser.newPage({ colorScheme: 'dark', viewport: { width: 1280, height: 800 } });
    await page.goto(demo.url);
    const background = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
    const [red, green, blue] = background.match(/\d+/g)!.map(Number);
    expect(red! + green! + blue!).toBeLessThan(150);
    await send(page, 'Show me some `code` and a list, 120 tokens');
    await page.locator('[data-status="done"]').waitFor();
    await page.screenshot({ path: `${SCREENSHOTS}/dark.png` });
    await page.close();
  });

  it('renders a 5,000-token answer in animation frames, not once per token', async () => {
    // One token per millisecond or so from the upstream: thousands of separate network reads, far more than frames.
    fake.enqueue({
      kind: 'stream',
      tokens: Array.from({ length: 5000 }, (_, index) => (index % 12 === 11 ? `word${index}\n\n` : ` word${index}`)),
      delayMs: 1,
    });
    const page = await browser.newPage();
    await page.goto(server.url);
    await page.getByLabel('Message', { exact: true }).waitFor();
    await page.evaluate(() => {
      const counter = { frames: 0, mutations: 0 };
      (window as unknown as { __counter: typeof counter }).__counter = counter;
      const tick = () => {
        counter.frames++;
        requestAnimationFrame(tick);
      };
      requestAnimationFrame(tick);
      new MutationObserver((records) => (counter.mutations += records.length > 0 ? 1 : 0)).observe(document.querySelector('.messages')!, {
        subtree: true,
        childList: true,
        characterData: true,
      });
    });
    await send(page, 'Please answer in 5000 tokens');
    await page.locator('[data-status="done"]').waitFor({ timeout: 60_000 });
    const counter = await page.evaluate(() => (window as unknown as { __counter: { frames: number; mutations: number } }).__counter);
    // Each observer callback batches one task's mutations; with frame-batched rendering there are far fewer than tokens.
    console.log(`5,000 tokens rendered in ${counter.mutations} DOM updates over ${counter.frames} frames`);
    expect(counter.mutations).toBeLessThan(1000);
    expect(counter.mutations).toBeLessThanOrEqual(counter.frames + 10);
    expect(await page.getByTestId('assistant-message').last().locator('.markdown p').count()).toBeGreaterThan(400);
    await page.close();
  });
});

describe.skipIf(!hasBrowser)('conversations in the sidebar', () => {
  it('creates, switches, renames and deletes conversations, with the URL naming the open one', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    await page.goto(demo.url);
    await send(page, 'First conversation');
    await page.locator('[data-status="done"]').waitFor();
    const firstUrl = page.url();
    await page.getByRole('button', { name: '+ New chat' }).click();
    expect(new URL(page.url()).pathname).toBe('/');
    await send(page, 'Second conversation');
    await page.locator('[data-status="done"]').waitFor();
    const navigation = page.getByRole('navigation', { name: 'Conversations' });
    await navigation.getByRole('link', { name: 'First conversation' }).click();
    expect(page.url()).toBe(firstUrl);
    await expect(page.getByTestId('user-message').first().textContent()).resolves.toBe('First conversation');

    await navigation.getByRole('button', { name: 'Rename First conversation' }).click();
    await navigation.getByLabel('Conversation title').fill('Renamed chat');
    await page.keyboard.press('Enter');
    await navigation.getByRole('link', { name: 'Renamed chat' }).waitFor();
    const contextId = decodeURIComponent(new URL(firstUrl).pathname.split('/').pop()!);
    expect(await demo.store.getConversation(contextId)).toMatchObject({ title: 'Renamed chat' });

    page.once('dialog', (dialog) => void dialog.accept());
    await navigation.getByRole('button', { name: 'Delete Renamed chat' }).click();
    await expect.poll(() => new URL(page.url()).pathname).toBe('/');
    await expect.poll(() => navigation.getByRole('link', { name: 'Renamed chat' }).count()).toBe(0);
    expect(await demo.store.getConversation(contextId)).toBeUndefined();
    await page.screenshot({ path: `${SCREENSHOTS}/desktop-sidebar.png` });
    await page.close();
  });
});
