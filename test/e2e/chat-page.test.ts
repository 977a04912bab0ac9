import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { hasBrowser, launchBrowser, normalize, SCREENSHOTS, watchErrors } from './browser.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  if (!hasBrowser) return;
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '60' });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

async function openPage(path = '/'): Promise<{ page: Page; errors: string[] }> {
  const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
  const errors = watchErrors(page);
  await page.goto(`${server.url}${path}`);
  await page.getByLabel('Message', { exact: true }).waitFor();
  return { page, errors };
}

const lastAnswer = (page: Page) => page.getByTestId('assistant-message').last();

/** The stored answer of a conversation's last turn. */
async function storedAnswer(page: Page) {
  const contextId = decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);
  const conversation = await server.store.getConversation(contextId);
  return conversation!.turns.at(-1)!;
}

describe.skipIf(!hasBrowser)('the chat page', () => {
  it('streams an answer in progressively, then shows it whole, equal to the stored answer', async () => {
    const { page, errors } = await openPage();
    await expect(page.getByRole('note').innerText()).resolves.toContain('Demo model');
    await page.getByLabel('Message', { exact: true }).fill('Tell me about streaming');
    await page.getByRole('button', { name: 'Send message' }).click();
    await expect(page.getByTestId('user-message').last().textContent()).resolves.toBe('Tell me about streaming');
    await page.locator('[data-status="streaming"]').waitFor();
    const lengths: number[] = [];
    for (let sample = 0; sample < 5; sample++) {
      lengths.push(((await lastAnswer(page).textContent()) ?? '').length);
      await page.waitForTimeout(120);
    }
    expect(new Set(lengths).size).toBeGreaterThan(2);
    await page.locator('[data-status="done"]').waitFor();
    expect(page.url()).toMatch(/\/c\/[0-9a-f-]{36}$/);
    const stored = await storedAnswer(page);
    expect(stored.status).toBe('complete');
    expect(normalize((await lastAnswer(page).locator('.markdown').innerText()) ?? '')).toBe(normalize(stored.answer));
    await page.screenshot({ path: `${SCREENSHOTS}/desktop-answer.png` });
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows the whole answer at once in wait mode, with a typing indicator before it', async () => {
    const { page } = await openPage();
    await page.getByLabel('Answer mode').selectOption('wait');
    await page.getByLabel('Message', { exact: true }).fill('Wait for it');
    await page.keyboard.press('Enter');
    await page.getByRole('status', { name: 'The assistant is typing' }).waitFor();
    const seen = new Set<string>();
    while ((await lastAnswer(page).getAttribute('data-status')) !== 'done') {
      seen.add((await lastAnswer(page).getAttribute('data-status'))!);
      await page.waitForTimeout(50);
    }
    expect(seen.has('streaming')).toBe(false);
    expect(normalize(await lastAnswer(page).locator('.markdown').innerText())).toBe(normalize((await storedAnswer(page)).answer));
    await page.close();
  });

  it('stops an answer on the server with Stop, keeping the partial answer', async () => {
    const { page } = await openPage();
    await page.getByLabel('Message', { exact: true }).fill('A long one please, 600 tokens');
    await page.keyboard.press('Enter');
    await page.locator('[data-status="streaming"]').waitFor();
    await page.waitForTimeout(300);
    await page.getByRole('button', { name: 'Stop the answer' }).click();
    await page.locator('[data-status="cancelled"]').waitFor();
    await expect.poll(async () => (await storedAnswer(page)).status).toBe('cancelled');
    const stored = await storedAnswer(page);
    expect(stored.tokenCount).toBeLessThan(600);
    expect(normalize(await lastAnswer(page).locator('.markdown').innerText())).toBe(normalize(stored.answer));
    await expect(page.getByText('Stopped.').isVisible()).resolves.toBe(true);
    await page.close();
  });

  it('sends with the keyboard alone, Shift+Enter making a new line', async () => {
    const { page } = await openPage();
    await page.keyboard.type('first line');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.type('second line');
    await expect(page.getByLabel('Message', { exact: true }).inputValue()).resolves.toBe('first line\nsecond line');
    await page.keyboard.press('Tab');
    await expect(page.evaluate(() => document.activeElement?.getAttribute('aria-label'))).resolves.toBe('Send message');
    await page.keyboard.press('Enter');
    await expect(page.getByTestId('user-message').last().textContent()).resolves.toBe('first line\nsecond line');
    await page.locator('[data-status="done"]').waitFor();
    await page.close();
  });

  it('regenerates the last answer, copies it, and shows its details', async () => {
    const { page } = await openPage();
    await page.context().grantPermissions(['clipboard-read', 'clipboard-write']);
    await page.getByRole('button', { name: 'Write a haiku about streaming data' }).click();
    await page.locator('[data-status="done"]').waitFor();
    await page.getByRole('button', { name: 'Answer details' }).click();
    const details = await page.getByTestId('answer-details').innerText();
    expect(details).toContain('chatwait-demo');
    expect(details).toMatch(/Tokens\s+\d+/);
    await page.getByRole('button', { name: 'Copy answer' }).click();
    const copied = await page.evaluate(() => navigator.clipboard.readText());
    expect(copied).toBe((await storedAnswer(page)).answer);
    await page.getByRole('button', { name: 'Regenerate answer' }).click();
    await expect.poll(() => page.getByTestId('assistant-message').count()).toBe(2);
    await page.locator('[data-status="done"]').nth(1).waitFor();
    await page.close();
  });

  it('opens a long conversation at its latest turns and loads the earlier ones on request', async () => {
    for (let index = 1; index <= 25; index++) {
      const { turnId } = await server.store.startTurn({
        turnId: `long-${index}`,
        contextId: 'long-chat',
        userMessage: `question ${index}`,
        model: 'chatwait-demo',
        clientMessageId: undefined,
        owner: null,
      });
      await server.store.finishTurn(turnId, {
        status: 'complete',
        answer: `answer ${index}`,
        usage: undefined,
        timings: undefined,
        errorCode: undefined,
        tokenCount: 2,
      });
    }
    const { page, errors } = await openPage('/c/long-chat');
    const questions = () => page.getByTestId('user-message').allTextContents();
    await expect.poll(questions).toEqual(Array.from({ length: 20 }, (_unused, index) => `question ${index + 6}`));
    await expect(lastAnswer(page).locator('.markdown').innerText()).resolves.toBe('answer 25');
    await page.getByRole('button', { name: /Load earlier messages/ }).click();
    await expect.poll(questions).toEqual(Array.from({ length: 25 }, (_unused, index) => `question ${index + 1}`));
    await expect(page.getByRole('button', { name: /Load earlier messages/ }).count()).resolves.toBe(0);
    expect(errors).toEqual([]);
    await page.close();
  });
});
