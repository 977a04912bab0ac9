import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Browser, Page } from 'playwright-core';
import { DOCS_CSP } from '../../src/server/routes/docs.js';
import { PAGE_CSP } from '../../src/server/routes/page.js';
import { hasBrowser, launchBrowser } from './browser.js';
import { startTestServer, type TestServer } from '../support/test-server.js';

let server: TestServer;
let browser: Browser;

beforeAll(async () => {
  if (!hasBrowser) return;
  server = await startTestServer({ DEMO_TOKENS_PER_SECOND: '0' });
  browser = await launchBrowser();
});
afterAll(async () => {
  await browser?.close();
  await server?.close();
});

/** Opens a page and collects the Content Security Policy violations the browser reports. */
async function openWatched(path: string): Promise<{ page: Page; violations: string[] }> {
  const page = await browser.newPage();
  const violations: string[] = [];
  page.on('console', (message) => message.text().includes('Content Security Policy') && violations.push(message.text()));
  const response = await page.goto(`${server.url}${path}`);
  expect(response!.status(), path).toBe(200);
  return { page, violations };
}

/** Injects an inline script as an XSS would; returns whether it ran. */
async function inlineScriptRuns(page: Page): Promise<boolean> {
  await page.evaluate(() => {
    const script = document.createElement('script');
    script.textContent = 'window.__inline = true';
    document.body.append(script);
  });
  return (await page.evaluate(() => (window as unknown as { __inline?: boolean }).__inline)) === true;
}

describe.skipIf(!hasBrowser)('Content Security Policy', () => {
  it.each(['/', '/index.html', '/c/csp-check'])('guards the chat page at %s: no inline script runs', async (path) => {
    const response = await fetch(`${server.url}${path}`);
    expect(response.headers.get('content-security-policy')).toBe(PAGE_CSP);
    const { page, violations } = await openWatched(path);
    await page.getByLabel('Message', { exact: true }).waitFor();
    expect(violations).toEqual([]);
    expect(await inlineScriptRuns(page)).toBe(false);
    expect(violations.length).toBeGreaterThan(0);
    await page.close();
  });

  it('lets Swagger UI at /docs work under its policy, and no inline script run', async () => {
    const response = await fetch(`${server.url}/docs/`);
    expect(response.headers.get('content-security-policy')).toBe(DOCS_CSP);
    for (const asset of ['/docs/static/swagger-ui-bundle.js', '/docs/static/swagger-initializer.js']) {
      expect((await fetch(`${server.url}${asset}`)).headers.get('content-security-policy'), asset).toBe(DOCS_CSP);
    }
    const { page, violations } = await openWatched('/docs/');
    // The operations are listed (the spec was fetched and rendered), and one opens.
    const operation = page.locator('.opblock-summary-path', { hasText: '/api/v1/chat/wait' }).first();
    await operation.waitFor();
    await operation.click();
    await page.locator('.opblock-body').first().waitFor();
    expect(violations).toEqual([]);
    expect(await inlineScriptRuns(page)).toBe(false);
    await page.close();
  });

  it('lets ReDoc at /redoc work under its policy, search included, and no inline script run', async () => {
    const response = await fetch(`${server.url}/redoc`);
    expect(response.headers.get('content-security-policy')).toBe(DOCS_CSP);
    const { page, violations } = await openWatched('/redoc');
    await page.locator('h2', { hasText: 'Send a message and get the whole answer at once' }).first().waitFor();
    // The search runs in a worker made from a blob: URL.
    await page.getByPlaceholder('Search...').fill('cancel');
    await page.locator('[data-role="search:results"] li', { hasText: 'Stop a generating turn' }).first().waitFor();
    // ReDoc's "powered by" logo is an image on cdn.redoc.ly: the policy keeps the page from loading anything from other sites.
    expect(violations.filter((text) => !text.includes("'https://cdn.redoc.ly/"))).toEqual([]);
    expect(await inlineScriptRuns(page)).toBe(false);
    await page.close();
  });
});
