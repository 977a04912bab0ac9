import { describe, expect, it } from 'vitest';
import type { TurnRecord } from '../store/conversation-store.js';
import { StoredEnds } from './stored-ends.js';

/** A store double: the turn is `streaming` until `end()`, and every read of it is counted. */
function storeDouble() {
  let status: TurnRecord['status'] = 'streaming';
  const store = {
    reads: 0,
    end: () => (status = 'complete'),
    getTurn: (turnId: string) => {
      store.reads++;
      return Promise.resolve({ turnId, status, answer: status === 'complete' ? 'done' : '' } as TurnRecord);
    },
  };
  return store;
}

/** StoredEnds on the store double, a turn pending while it is `streaming`, with these times. */
function endsOf(store: ReturnType<typeof storeDouble>, times: { waitMs: number; firstPollMs?: number; maxPollMs?: number }): StoredEnds {
  return new StoredEnds({ getTurn: store.getTurn, pending: (_, record) => record?.status === 'streaming', ...times });
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('waiting for the stored end of a turn generating elsewhere', () => {
  it('polls the store once for all the readers of a turn, backing off, and hands each the end', async () => {
    const store = storeDouble();
    const ends = endsOf(store, { waitMs: 60_000, firstPollMs: 10, maxPollMs: 40 });
    const readers = Array.from({ length: 50 }, () => ends.wait('t1'));
    expect(ends.size).toBe(1);
    // 10 + 20 + 40 + 40 ms of polling: five reads at most, for fifty readers (one each every 10 ms would be 500 or more).
    await sleep(115);
    const reads = store.reads;
    expect(reads).toBeGreaterThanOrEqual(2);
    expect(reads).toBeLessThanOrEqual(5);
    store.end();
    const records = await Promise.all(readers);
    expect(records.every((record) => record?.status === 'complete' && record.answer === 'done')).toBe(true);
    expect(ends.size).toBe(0);
    expect(store.reads).toBeLessThanOrEqual(reads + 1);
  });

  it('a reader that leaves gets the latest record at once; the poll stops once no reader is left', async () => {
    const store = storeDouble();
    const ends = endsOf(store, { waitMs: 60_000, firstPollMs: 10, maxPollMs: 10 });
    const left = new AbortController();
    const leaving = ends.wait('t2', left.signal);
    await sleep(30);
    left.abort();
    expect(await leaving).toMatchObject({ status: 'streaming' });
    await expect.poll(() => ends.size).toBe(0);
    const reads = store.reads;
    await sleep(50);
    expect(store.reads).toBe(reads);
  });

  it('stops waiting at its deadline with the record still generating', async () => {
    const store = storeDouble();
    const ends = endsOf(store, { waitMs: 30, firstPollMs: 10 });
    expect(await ends.wait('t3')).toMatchObject({ status: 'streaming' });
  });
});
