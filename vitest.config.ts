import { defineConfig } from 'vitest/config';

/**
 * The API's suites (and the error, SSE-client, slow-reader, store-failure, restart and shutdown ones) that run a second time with the conversations in PostgreSQL (a new database per
 * server: test/support/test-server.ts), so every feature is checked on it, not only the store contract.
 */
const ON_POSTGRES = [
  'test/conversations-api.test.ts',
  'test/conversation-pages.test.ts',
  'test/chat-streaming.test.ts',
  'test/resumption.test.ts',
  'test/tool-calls.test.ts',
  'test/tool-resumption.test.ts',
  'test/turn-control.test.ts',
  'test/stored-text.test.ts',
  'test/bad-input.test.ts',
  'test/limits.test.ts',
  'test/access.test.ts',
  'test/demo-tools.test.ts',
  'test/error-retryable.test.ts',
  'test/sse-clients.test.ts',
  'test/slow-readers.test.ts',
  'test/store-failures.test.ts',
  'test/openai-resume.test.ts',
  // Processes of their own, on a database of their own (test/support/process-store.ts).
  'test/restart.test.ts',
  'test/shutdown.test.ts',
];

/**
 * Suites that run a third time with the replay log in Redis (REDIS_URL set for every test server that
 * does not bring its own log): the generating process reads its own copy, so what they check is that
 * the Redis log changes nothing there (its writes, `settled`, expiry and close on every path).
 */
const ON_REDIS = [
  'test/chat-streaming.test.ts',
  'test/turn-control.test.ts',
  'test/tool-calls.test.ts',
  'test/error-retryable.test.ts',
  'test/sse-clients.test.ts',
  'test/chaos.test.ts',
  'test/client-follow-turn.test.ts',
  'test/openai-resume.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 30_000,
    hookTimeout: 60_000,
    reporters: ['default', './test/support/summary-reporter.ts'],
    globalSetup: ['./test/support/global-setup.ts'],
    projects: [
      {
        extends: true,
        test: {
          name: 'main',
          // web/src: the page's pure logic (its reducer), which needs no DOM; the page itself is tested in a browser (test/e2e).
          include: ['src/**/*.test.ts', 'test/**/*.test.ts', 'web/src/**/*.test.ts'],
        },
      },
      { extends: true, test: { name: 'postgres', include: ON_POSTGRES, env: { CHATWAIT_TEST_STORE: 'postgres' } } },
      { extends: true, test: { name: 'redis', include: ON_REDIS, env: { CHATWAIT_TEST_REPLAY_LOG: 'redis' } } },
    ],
  },
});
