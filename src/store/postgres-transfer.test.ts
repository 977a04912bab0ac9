import { describe, expect, it } from 'vitest';
import { readInOrder } from './postgres-transfer.js';

describe('readInOrder (how an export reads a page of conversations)', () => {
  it('keeps at most the given number of reads in flight and returns the results in order', async () => {
    const ids = Array.from({ length: 10 }, (_, index) => `conversation-${index}`);
    let inFlight = 0;
    const seen: number[] = [];
    const pending: (() => void)[] = [];
    const reading = readInOrder(
      ids,
      async (id) => {
        inFlight++;
        seen.push(inFlight);
        await new Promise<void>((resolveRead) => pending.push(resolveRead));
        inFlight--;
        return id.toUpperCase();
      },
      4,
    );
    // Finish the newest read first each time, so results arrive out of order.
    while (seen.length < ids.length || pending.length > 0) {
      await new Promise((resolveTurn) => setImmediate(resolveTurn));
      pending.pop()?.();
    }
    expect(await reading).toEqual(ids.map((id) => id.toUpperCase()));
    expect(Math.max(...seen)).toBe(4);
    expect(seen.slice(0, 4)).toEqual([1, 2, 3, 4]);
  });

  it('reads nothing for no ids', async () => {
    expect(await readInOrder([], async () => 1, 4)).toEqual([]);
  });
});
