import { describe, expect, it, vi } from 'vitest';
import { ReplayLogEvicted, type LogBatch, type LogEntry } from './replay-log.js';
import { entryBytes, MemoryReplayLog } from './memory-replay-log.js';

async function collect(batches: AsyncIterable<LogBatch>): Promise<LogEntry[]> {
  const seen: LogEntry[] = [];
  for await (const batch of batches) batch.data.forEach((data, index) => seen.push({ position: batch.first + index, data }));
  return seen;
}

describe('MemoryReplayLog', () => {
  it('replays from any position, then follows live appends until the final entry', async () => {
    const log = new MemoryReplayLog();
    log.open('t');
    log.append('t', 'a');
    log.append('t', 'b');
    const reading = collect(log.read('t', 1));
    log.append('t', 'c');
    setTimeout(() => log.append('t', 'd', true), 5);
    expect(await reading).toEqual([
      { position: 1, data: 'b' },
      { position: 2, data: 'c' },
      { position: 3, data: 'd' },
    ]);
  });

  it('gives every reader the same entries', async () => {
    const log = new MemoryReplayLog();
    log.open('t');
    const readers = [collect(log.read('t', 0)), collect(log.read('t', 0)), collect(log.read('t', 0))];
    for (let index = 0; index < 50; index++) log.append('t', `e${index}`, index === 49);
    const results = await Promise.all(readers);
    for (const result of results) expect(result.map((entry) => entry.data)).toEqual(results[0]!.map((entry) => entry.data));
    expect(results[0]).toHaveLength(50);
  });

  it('stops a reader when its signal aborts', async () => {
    const log = new MemoryReplayLog();
    log.open('t');
    const controller = new AbortController();
    const reading = collect(log.read('t', 0, controller.signal));
    log.append('t', 'a');
    await new Promise((resolve) => setTimeout(resolve, 5));
    controller.abort();
    expect(await reading).toEqual([{ position: 0, data: 'a' }]);
  });

  it('hands a reader that fell behind what there is in a few batches', async () => {
    const log = new MemoryReplayLog();
    log.open('t');
    for (let index = 0; index < 600; index++) log.append('t', `e${index}`, index === 599);
    const batches: LogBatch[] = [];
    for await (const batch of log.read('t', 10)) batches.push(batch);
    expect(batches.map((batch) => [batch.first, batch.data.length])).toEqual([
      [10, 256],
      [266, 256],
      [522, 78],
    ]);
  });

  it('reads nothing from an unknown turn', async () => {
    expect(await collect(new MemoryReplayLog().read('missing', 0))).toEqual([]);
  });

  it('refuses appends after the final entry', () => {
    const log = new MemoryReplayLog();
    log.open('t');
    log.append('t', 'end', true);
    expect(() => log.append('t', 'late')).toThrow();
  });

  it('forgets a turn after its time to live', () => {
    vi.useFakeTimers();
    try {
      const log = new MemoryReplayLog();
      log.open('t');
      log.append('t', 'a', true);
      log.expire('t', 1000);
      vi.advanceTimersByTime(999);
      expect(log.has('t')).toBe(true);
      vi.advanceTimersByTime(1);
      expect(log.has('t')).toBe(false);
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
      for (let index = 0; index < entries; index++) log.append(turnId, entry, ended && index === entries - 1);
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

    it('drops the oldest ended turns first once over the budget, never a generating one', () => {
      const log = new MemoryReplayLog({ maxBytes: 30 * perEntry });
      fill(log, 'old', 10, true);
      fill(log, 'live', 10, false);
      fill(log, 'newer', 10, true);
      expect([log.has('old'), log.has('live'), log.has('newer')]).toEqual([true, true, true]);
      // One entry over: the turn that ended first goes, the one still generating stays.
      log.append('live', entry);
      expect([log.has('old'), log.has('live'), log.has('newer')]).toEqual([false, true, true]);
      expect(log.bytes).toBe(21 * perEntry);
      // Live turns alone past the budget: every ended turn goes, the live ones keep every entry.
      for (let index = 0; index < 30; index++) log.append('live', entry);
      expect([log.has('newer'), log.has('live')]).toEqual([false, true]);
      expect(log.bytes).toBe(41 * perEntry);
    });

    it('drops a turn that ends while live turns alone fill the budget, as soon as it ends', () => {
      const log = new MemoryReplayLog({ maxBytes: 10 * perEntry });
      fill(log, 'live', 12, false);
      fill(log, 'short', 3, true);
      expect(log.has('short')).toBe(false);
      expect(log.bytes).toBe(12 * perEntry);
    });

    it('tells a reader still replaying an evicted turn, rather than ending as if the turn were done', async () => {
      const log = new MemoryReplayLog({ maxBytes: 600 * perEntry });
      fill(log, 'slow', 600, true);
      const reader = log.read('slow', 0)[Symbol.asyncIterator]();
      const first = await reader.next();
      expect(first.value).toMatchObject({ first: 0 });
      // While the reader holds its first batch, another turn pushes this one out.
      fill(log, 'next', 10, true);
      expect(log.has('slow')).toBe(false);
      await expect(reader.next()).rejects.toBeInstanceOf(ReplayLogEvicted);
    });

    it('tells a reader waiting on a turn that expires before its end', async () => {
      const log = new MemoryReplayLog();
      log.open('t');
      log.append('t', 'a');
      const reading = collect(log.read('t', 0));
      log.expire('t', 5);
      await expect(reading).rejects.toBeInstanceOf(ReplayLogEvicted);
    });

    it('ends a reader that already has the final entry normally, even if the turn is evicted right after', async () => {
      const log = new MemoryReplayLog({ maxBytes: 20 * perEntry });
      fill(log, 't', 10, true);
      const seen: LogEntry[] = [];
      for await (const batch of log.read('t', 0)) {
        seen.push(...batch.data.map((data, index) => ({ position: batch.first + index, data })));
        fill(log, 'other', 15, true);
      }
      expect(seen).toHaveLength(10);
      expect(log.has('t')).toBe(false);
    });

    it('ends readers quietly when the whole log closes', async () => {
      const log = new MemoryReplayLog();
      log.open('t');
      const reading = collect(log.read('t', 0));
      log.close();
      expect(await reading).toEqual([]);
      expect(log.bytes).toBe(0);
    });
  });
});
