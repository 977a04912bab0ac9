import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser } from 'playwright-core';
import { hasBrowser, launchBrowser } from './browser.js';
import { startTestServer } from '../support/test-server.js';

let browser: Browser;
beforeAll(async () => {
  if (hasBrowser) browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
});

describe.skipIf(!hasBrowser)('comfort', () => {
  it('pauses auto-scroll when the reader scrolls up, and offers a jump to the latest text', async () => {
    const server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '150' });
    try {
      const page = await browser.newPage({ viewport: { width: 1000, height: 600 } });
      await page.goto(server.url);
      await page.getByLabel('Message', { exact: true }).fill('A long answer, 900 tokens');
      await page.keyboard.press('Enter');
      const messages = page.getByRole('log', { name: 'Conversation' });
      await expect
        .poll(() => messages.evaluate((element) => element.scrollHeight > element.clientHeight * 1.5), { timeout: 15_000 })
        .toBe(true);
      const atBottom = () => messages.evaluate((element) => element.scrollHeight - element.scrollTop - element.clientHeight < 60);
      expect(await atBottom()).toBe(true);
      await messages.evaluate((element) => element.scrollTo({ top: 0 }));
      await page.getByRole('button', { name: '↓ Jump to latest' }).waitFor();
      await page.waitForTimeout(400);
      expect(await messages.evaluate((element) => element.scrollTop)).toBeLessThan(50);
      await page.getByRole('button', { name: '↓ Jump to latest' }).click();
      await expect.poll(atBottom).toBe(true);
      await page.close();
    } finally {
      await server.close();
    }
  });

  it('asks for the API key when the server needs one, keeps it, and chats with it', async () => {
    const server = await startTestServer({ API_KEYS: 'page-test-key-123' });
    try {
      const page = await browser.newPage();
      await page.goto(server.url);
      await page.getByLabel('API key').fill('wrong-key-000000');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByText('That key is not accepted.').waitFor();
      await page.getByLabel('API key').fill('page-test-key-123');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByLabel('Message', { exact: true }).fill('Hello with a key');
      await page.keyboard.press('Enter');
      await page.locator('[data-status="done"]').waitFor();
      await page.reload();
      await page.getByLabel('Message', { exact: true }).waitFor();
      expect(await page.evaluate(() => localStorage.getItem('chatwait.apiKey'))).toBe('page-test-key-123');
      await page.close();
    } finally {
      await server.close();
    }
  });
});
