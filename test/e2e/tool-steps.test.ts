import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { hasBrowser, launchBrowser, SCREENSHOTS, watchErrors } from './browser.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  if (!hasBrowser) return;
  // Slow enough that the step can be seen before the answer is done.
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '25' });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

const lastAnswer = (page: Page) => page.getByTestId('assistant-message').last();

describe.skipIf(!hasBrowser)('tool steps on the page', () => {
  it('shows a tool step live, expands it to its arguments, result and duration, and shows it again for the stored conversation', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    const errors = watchErrors(page);
    await page.goto(server.url);
    await page.getByRole('button', { name: 'What is 17 × 23? Show your steps' }).click();

    const step = lastAnswer(page).getByTestId('tool-step');
    await step.waitFor();
    // The step is there while the answer is still being written.
    expect(await lastAnswer(page).getAttribute('data-status')).toMatch(/^(waiting|streaming)$/);
    await expect.poll(() => step.getAttribute('data-state')).toBe('done');
    expect(await step.locator('.tool-name').textContent()).toBe('calculate');
    expect(await step.getByTestId('tool-output').isVisible()).toBe(false);
    await step.locator('summary').click();
    expect(await step.getByTestId('tool-arguments').textContent()).toBe('{\n  "expression": "17 × 23"\n}');
    expect(await step.getByTestId('tool-output').textContent()).toBe('17 × 23 = 391');
    expect(await step.locator('.tool-status').textContent()).toMatch(/^\d+(\.\d)? ms$/);

    await page.locator('[data-status="done"]').waitFor();
    expect(await lastAnswer(page).locator('.markdown').innerText()).toContain('17 × 23 = 391');
    await page.screenshot({ path: `${SCREENSHOTS}/tool-step.png` });

    await page.reload();
    const stored = lastAnswer(page).getByTestId('tool-step');
    await stored.waitFor();
    expect(await stored.getAttribute('data-state')).toBe('done');
    await stored.locator('summary').click();
    expect(await stored.getByTestId('tool-output').textContent()).toBe('17 × 23 = 391');
    expect(await stored.locator('.tool-status').textContent()).toMatch(/ms$/);
    expect(errors).toEqual([]);
    await page.close();
  });

  it('shows a failed step as failed, and steps in wait mode too', async () => {
    const page = await browser.newPage({ viewport: { width: 1100, height: 800 } });
    await page.goto(server.url);
    await page.getByLabel('Answer mode').selectOption('wait');
    await page.getByLabel('Message', { exact: true }).fill('convert 5 km to kilograms');
    await page.keyboard.press('Enter');
    await page.locator('[data-status="done"]').waitFor();
    const step = lastAnswer(page).getByTestId('tool-step');
    expect(await step.getAttribute('data-state')).toBe('error');
    expect(await step.locator('.tool-status').textContent()).toMatch(/^failed, /);
    await step.locator('summary').click();
    expect(await step.getByTestId('tool-output').textContent()).toBe(
      'Error: cannot convert kilometers (length) to kilograms (mass): they measure different things',
    );
    await page.close();
  });
});
