import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../src/errors.js';
import { PostgresConversationStore } from '../src/store/postgres-store.js';
import { hasPostgres } from './support/postgres.js';
import { findPostgresBin, startTestPostgres, type TestPostgres } from './support/postgres-server.js';

// This file stops and starts its own PostgreSQL: the run's shared one serves other files meanwhile.
describe.skipIf(!hasPostgres() || !findPostgresBin())('the PostgreSQL store through an outage', () => {
  let server: TestPostgres;
  beforeAll(async () => {
    server = await startTestPostgres(findPostgresBin()!);
  });
  afterAll(() => server?.stop());

  it('fails fast while the database is down, and works again once it is back, without reopening', async () => {
    const errors: unknown[] = [];
    const store = await PostgresConversationStore.open(server.adminUrl, {
      onIdleError: (error) => errors.push(error),
      onInstanceError: (error) => errors.push(error),
    });
    try {
      const { turnId } = await store.startTurn({
        turnId: 'before',
        contextId: 'c1',
        userMessage: 'hi',
        model: 'm',
        clientMessageId: undefined,
        owner: null,
      });
      server.halt();
      const started = performance.now();
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.getTurn(turnId)).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.saveProgress(turnId, 'half', 1)).rejects.toBeInstanceOf(StoreUnavailableError);
      // Each failed within its operation's limit (1.75 s), not hung.
      expect(performance.now() - started).toBeLessThan(3 * 2500);
      server.resume();
      await expect
        .poll(
          async () =>
            store.ping().then(
              () => 'ok',
              () => 'down',
            ),
          { timeout: 10_000, interval: 200 },
        )
        .toBe('ok');
      await store.finishTurn(turnId, {
        status: 'complete',
        answer: 'after',
        usage: undefined,
        timings: undefined,
        errorCode: undefined,
        tokenCount: 1,
      });
      expect(await store.getTurn(turnId)).toMatchObject({ status: 'complete', answer: 'after' });
    } finally {
      await store.close();
    }
    // Had a cut idle connection's error gone unheard, it would have crashed this worker, failing the run.
    expect(errors.every((error) => error instanceof Error)).toBe(true);
  });
});
