import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it, vi } from 'vitest';
import type { Logger } from '../observability/logger.js';
import type { TurnOutcome } from '../store/conversation-store.js';
import { SqliteConversationStore } from '../store/sqlite-store.js';
import { PendingOutcomes } from './pending-outcomes.js';

const outcome: TurnOutcome = {
  status: 'interrupted',
  answer: 'partial',
  tokenCount: 1,
  errorCode: 'STORE_UNAVAILABLE',
  usage: undefined,
  timings: undefined,
};
const quiet = { info: () => {}, warn: () => {}, error: () => {} } as unknown as Logger;

describe('pending turn outcomes at shutdown', () => {
  it('the last flush settles against a closed store, and arms no retry after close()', async () => {
    const store = new SqliteConversationStore(':memory:');
    const pending = new PendingOutcomes(store, quiet, 10);
    await store.close();
    pending.add('turn', outcome);
    pending.close();
    // A closed store refuses the write at once rather than leaving it waiting forever.
    await expect(store.finishTurn('turn', outcome)).rejects.toMatchObject({ code: 'STORE_UNAVAILABLE' });
    await expect(pending.flush()).resolves.toBe(false);
    const finishTurn = vi.spyOn(store, 'finishTurn');
    await sleep(60);
    expect(finishTurn).not.toHaveBeenCalled();
  });
});
