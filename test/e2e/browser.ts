import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';

/** Debian's Chromium, or CHROMIUM_PATH. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
/** Whether browser tests can run here; CI sets CHATWAIT_REQUIRE_BROWSER=1 so a missing browser fails instead of skipping. */
export const hasBrowser = existsSync(CHROMIUM_PATH);
if (!hasBrowser) {
  const message = `Browser tests need Chromium at ${CHROMIUM_PATH} (apt-get install chromium, or set CHROMIUM_PATH)`;
  if (process.env.CHATWAIT_REQUIRE_BROWSER === '1') throw new Error(message);
  console.warn(`\n*** SKIPPING browser tests: ${message} ***\n`);
}

/** Where each run saves its screenshots (ignored by git). */
export const SCREENSHOTS = resolve(import.meta.dirname, 'screenshots');

/** Launches headless Chromium with the flags this machine needs (no sandbox as root, no background network). */
export async function launchBrowser(): Promise<Browser> {
  mkdirSync(SCREENSHOTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      '--disable-quic',
      '--disable-dev-shm-usage',
    ],
  });
}

/** Collects page errors and console errors, so a test can assert there were none. */
export function watchErrors(page: Page): string[] {
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(`pageerror: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') errors.push(`console: ${message.text()}`);
  });
  return errors;
}

/** Markdown and whitespace removed, to compare an answer's raw text with what the page shows. */
export function normalize(text: string): string {
  // List markers are drawn by CSS, so the page's text has none: drop them from the raw answer too.
  return text
    .replace(/[*`#]/g, '')
    .replace(/^\s*([-•]|\d+\.)\s+/gm, '')
    .replace(/\s+/g, ' ')
    .trim();
}
