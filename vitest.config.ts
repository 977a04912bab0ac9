import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // web/src: the page's pure logic (its reducer), which needs no DOM; the page itself is tested in a browser (test/e2e).
    include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'web/src/**/*.test.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    globalSetup: ['./test/support/global-setup.ts'],
  },
});
