import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { hasBrowser, launchBrowser, normalize, watchErrors } from './browser.js';
import { startFakeOpenAI, type FakeOpenAIServer } from '../support/fake-openai-server.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  if (!hasBrowser) return;
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '80' });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const lastAnswer = (page: Page) => page.getByTestId('assistant-message').last();
const contextIdOf = (page: Page) => decodeURIComponent(new URL(page.url()).pathname.split('/').pop()!);

async function send(page: Page, text: string) {
  await page.getByLabel('Message', { exact: true }).fill(text);
  await page.keyboard.press('Enter');
}

/** Waits for the answer to finish and checks it is exactly the stored one: nothing lost, nothing twice. */
async function expectStoredAnswerShown(page: Page) {
  await lastAnswer(page).and(page.locator('[data-status="done"]')).waitFor({ timeout: 20_000 });
  const turn = (await server.store.getConversation(contextIdOf(page)))!.turns.at(-1)!;
  expect(turn.status).toBe('complete');
  expect(normalize(await lastAnswer(page).locator('.markdown').innerText())).toBe(normalize(turn.answer));
}

describe.skipIf(!hasBrowser)('the chat page never loses an answer', () => {
  it('resumes the same turn when the server drops the connection mid-answer, without duplicating text', async () => {
    const page = await browser.newPage();
    const errors = watchErrors(page);
    await page.goto(server.url);
    await send(page, 'A long answer please, 300 tokens');
    await page.locator('[data-status="streaming"]').waitFor();
    await page.waitForTimeout(400);
    for (let cut = 0; cut < 3; cut++) {
      expect(server.dropStreams()).toBeGreaterThan(0);
      await page.waitForTimeout(700);
    }
    await expectStoredAnswerShown(page);
    const conversation = (await server.store.getConversation(contextIdOf(page)))!;
    expect(conversation.turns).toHaveLength(1);
    expect(errors.filter((error) => !error.includes('Failed to load resource') && !error.includes('net::'))).toEqual([]);
    await page.close();
  });

  it('resumes when the browser goes offline and comes back', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    await page.goto(server.url);
    await send(page, 'Keep going while I am offline, 300 tokens');
    await page.locator('[data-status="streaming"]').waitFor();
    await context.setOffline(true);
    server.dropStreams();
    await page.getByText('Connection lost, reconnecting…').waitFor();
    await page.waitForTimeout(500);
    await context.setOffline(false);
    await expectStoredAnswerShown(page);
    await context.close();
  });

  it('picks the running answer back up after a reload', async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await send(page, 'Reload me midway, 300 tokens');
    await page.locator('[data-status="streaming"]').waitFor();
    await page.waitForTimeout(500);
    await page.reload();
    await expect(page.getByTestId('user-message').first().textContent()).resolves.toBe('Reload me midway, 300 tokens');
    await expectStoredAnswerShown(page);
    await page.close();
  });

  it('reopens a conversation from its URL on another page', async () => {
    const page = await browser.newPage();
    await page.goto(server.url);
    await send(page, 'Bookmark me, 20 tokens');
    await expectStoredAnswerShown(page);
    const other = await browser.newPage();
    await other.goto(page.url());
    await expect(other.getByTestId('user-message').first().textContent()).resolves.toBe('Bookmark me, 20 tokens');
    expect(normalize(await lastAnswer(other).locator('.markdown').innerText())).toBe(
      normalize(await lastAnswer(page).locator('.markdown').innerText()),
    );
    await page.close();
    await other.close();
  });
});

describe.skipIf(!hasBrowser)('errors on the page', () => {
  let fake: FakeOpenAIServer;
  let upstream: TestServer;
  beforeAll(async () => {
    if (!hasBrowser) return;
    fake = await startFakeOpenAI();
    upstream = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl, UPSTREAM_MAX_RETRIES: '0' });
  });
  afterAll(async () => {
    await upstream?.close();
    await fake?.close();
  });

  it('shows a model failure inline under the message, and Retry asks again', async () => {
    fake.enqueue({ kind: 'status', status: 500 });
    const page = await browser.newPage();
    await page.goto(upstream.url);
    await send(page, 'This will fail once');
    const alert = lastAnswer(page).getByRole('alert');
    await alert.waitFor();
    expect(await alert.innerText()).toContain('The model provider had an error');
    await alert.getByRole('button', { name: 'Retry' }).click();
    await lastAnswer(page).and(page.locator('[data-status="done"]')).waitFor();
    expect(await lastAnswer(page).locator('.markdown').innerText()).toContain('Hello from the fake model.');
    await page.close();
  });

  it('never leaves a blank bubble when the stream breaks and cannot be resumed', async () => {
    fake.enqueue({ kind: 'broken', tokens: ['Half', ' an'] });
    const page = await browser.newPage();
    await page.goto(upstream.url);
    await send(page, 'Break mid-answer');
    await lastAnswer(page).getByRole('alert').waitFor();
    expect(await lastAnswer(page).getAttribute('data-status')).toBe('interrupted');
    expect(await lastAnswer(page).locator('.markdown').innerText()).toContain('Half an');
    await page.close();
  });
});
