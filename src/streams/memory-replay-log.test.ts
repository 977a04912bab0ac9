import { describe, expect, it, vi } from 'vitest';
import type { LogBatch, LogEntry } from './replay-log.js';
import { MemoryReplayLog } from './memory-replay-log.js';

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
});
