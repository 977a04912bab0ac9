import { describe, expect, it, vi } from 'vitest';
import { ReplayLogEvicted, type LogEntry } from './replay-log.js';
import { entryBytes, MemoryReplayLog } from './memory-replay-log.js';

// What every replay log must do is in test/support/replay-log-contract.ts (run in test/replay-log-contract.test.ts);
// here is what is particular to the memory log: its batches, its byte budget and what eviction does to readers.

async function collect(batches: AsyncIterable<readonly LogEntry[]>): Promise<LogEntry[]> {
  const seen: LogEntry[] = [];
  for await (const batch of batches) seen.push(...batch);
  return seen;
}

describe('MemoryReplayLog', () => {
  it('hands a reader that fell behind what there is in a few batches', async () => {
    const log = new MemoryReplayLog();
    log.open('t');
    for (let index = 0; index < 600; index++) log.append('t', { data: `e${index}`, final: index === 599 });
    const batches: (readonly LogEntry[])[] = [];
    for await (const batch of log.read('t', 10)) batches.push(batch);
    expect(batches.map((batch) => [batch[0]!.position, batch.length])).toEqual([
      [10, 256],
      [266, 256],
      [522, 78],
    ]);
  });

  it('hands out an ended log as the same array every time, and copies a growing one', async () => {
    const log = new MemoryReplayLog();
    log.open('t');
    log.append('t', { data: 'a', tokenIndex: 0 });
    const growing = await log.snapshot('t');
    expect(growing!.entries).not.toBe((await log.snapshot('t'))!.entries);
    log.append('t', { data: 'end', final: true });
    expect((await log.snapshot('t'))!.entries).toBe((await log.snapshot('t'))!.entries);
  });

  it('forgets a turn after its time to live', async () => {
    vi.useFakeTimers();
    try {
      const log = new MemoryReplayLog();
      log.open('t');
      log.append('t', { data: 'a', final: true });
      log.expire('t', 1000);
      vi.advanceTimersByTime(999);
      expect(await log.has('t')).toBe(true);
      vi.advanceTimersByTime(1);
      expect(await log.has('t')).toBe(false);
    } finally {
      vi.useRealTimers();
    }
  });

  describe('with a byte budget', () => {
    const entry = 'x'.repeat(100);
    const perEntry = entryBytes(entry);

    /** A log with `entries` entries of `entry`, ended or still generating. */
    function fill(log: MemoryReplayLog, turnId: string, entries: number, ended: boolean): void {
      log.open(turnId);
      for (let index = 0; index < entries; index++) log.append(turnId, { data: entry, final: ended && index === entries - 1 });
    }

    it('counts what it holds and gives it back when a turn expires', () => {
      vi.useFakeTimers();
      try {
        const log = new MemoryReplayLog({ maxBytes: 1_000_000 });
        fill(log, 'a', 10, true);
        fill(log, 'b', 5, false);
        expect(log.bytes).toBe(15 * perEntry);
        log.expire('a', 10);
        vi.advanceTimersByTime(10);
        expect(log.bytes).toBe(5 * perEntry);
      } finally {
        vi.useRealTimers();
      }
    });

    it('counts the entries an ended log hands out as objects once a snapshot has built them', async () => {
      const log = new MemoryReplayLog({ maxBytes: 1_000_000 });
      fill(log, 'a', 10, true);
      await log.snapshot('a');
      const counted = log.bytes;
      expect(counted).toBeGreaterThan(10 * perEntry);
      await log.snapshot('a');
      expect(log.bytes).toBe(counted);
    });

    it('drops the oldest ended turns first once over the budget, never a generating one', async () => {
      const log = new MemoryReplayLog({ maxBytes: 30 * perEntry });
      fill(log, 'old', 10, true);
      fill(log, 'live', 10, false);
      fill(log, 'newer', 10, true);
      const held = () => Promise.all(['old', 'live', 'newer'].map((turnId) => log.has(turnId)));
      expect(await held()).toEqual([true, true, true]);
      // One entry over: the turn that ended first goes, the one still generating stays.
      log.append('live', { data: entry });
      expect(await held()).toEqual([false, true, true]);
      expect(log.bytes).toBe(21 * perEntry);
      // Live turns alone past the budget: every ended turn goes, the live ones keep every entry.
      for (let index = 0; index < 30; index++) log.append('live', { data: entry });
      expect(await held()).toEqual([false, true, false]);
      expect(log.bytes).toBe(41 * perEntry);
    });

    it('drops a turn that ends while live turns alone fill the budget, as soon as it ends', async () => {
      const log = new MemoryReplayLog({ maxBytes: 10 * perEntry });
      fill(log, 'live', 12, false);
      fill(log, 'short', 3, true);
      expect(await log.has('short')).toBe(false);
      expect(log.bytes).toBe(12 * perEntry);
    });

    it('tells a reader still replaying an evicted turn, rather than ending as if the turn were done', async () => {
      const log = new MemoryReplayLog({ maxBytes: 600 * perEntry });
      fill(log, 'slow', 600, true);
      const reader = log.read('slow', 0)[Symbol.asyncIterator]();
      const first = await reader.next();
      expect(first.value![0]).toMatchObject({ position: 0 });
      // While the reader holds its first batch, another turn pushes this one out.
      fill(log, 'next', 10, true);
      expect(await log.has('slow')).toBe(false);
      await expect(reader.next()).rejects.toBeInstanceOf(ReplayLogEvicted);
    });

    it('tells a reader waiting on a turn that expires before its end', async () => {
      const log = new MemoryReplayLog();
      log.open('t');
      log.append('t', { data: 'a' });
      const reading = collect(log.read('t', 0));
      log.expire('t', 5);
      await expect(reading).rejects.toBeInstanceOf(ReplayLogEvicted);
    });

    it('ends a reader that already has the final entry normally, even if the turn is evicted right after', async () => {
      const log = new MemoryReplayLog({ maxBytes: 20 * perEntry });
      fill(log, 't', 10, true);
      const seen: LogEntry[] = [];
      for await (const batch of log.read('t', 0)) {
        seen.push(...batch);
        fill(log, 'other', 15, true);
      }
      expect(seen).toHaveLength(10);
      expect(await log.has('t')).toBe(false);
    });

    it('ends readers quietly when the whole log closes', async () => {
      const log = new MemoryReplayLog();
      log.open('t');
      const reading = collect(log.read('t', 0));
      await log.close();
      expect(await reading).toEqual([]);
      expect(log.bytes).toBe(0);
    });
  });
});
