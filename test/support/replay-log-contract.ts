import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { ReplayLogEvicted, type LogEntry, type ReplayLog } from '../../src/streams/replay-log.js';

/** How a backend is run through the contract. */
export interface ReplayLogContractOptions {
  /**
   * A log of this backend with room for only a few kilobytes of ended turns (a small byte budget, a
   * Redis with a small maxmemory), to check what readers see when ended logs are pushed out.
   */
  createTight?: () => ReplayLog | Promise<ReplayLog>;
}

/** Every entry a reader gets, in the order it gets them. */
export async function readAll(log: ReplayLog, turnId: string, from = 0, signal?: AbortSignal): Promise<LogEntry[]> {
  const seen: LogEntry[] = [];
  for await (const batch of log.read(turnId, from, signal)) seen.push(...batch);
  return seen;
}

/** The entry a log of `count` test entries holds at `position`: tokens, with a tool event every tenth, the last one final. */
function entryAt(position: number): { data: string; tokenIndex: number | undefined } {
  const tool = position % 10 === 9;
  const tokenIndex = position - Math.floor((position + 1) / 10);
  return tool
    ? { data: `{"type":"tool_call","n":${position}}`, tokenIndex: undefined }
    : { data: `{"token":"t${position}","token_index":${tokenIndex}}`, tokenIndex };
}

function expected(from: number, to: number): LogEntry[] {
  return Array.from({ length: Math.max(0, to - from) }, (_, offset) => ({ position: from + offset, ...entryAt(from + offset) }));
}

/** Appends test entries `from` to `to - 1`; the one at `final` (if any) ends the log. */
function fill(log: ReplayLog, turnId: string, from: number, to: number, final?: number): void {
  for (let position = from; position < to; position++) {
    expect(log.append(turnId, { ...entryAt(position), final: position === final })).toBe(position);
  }
}

const tick = () => new Promise((resolve) => setImmediate(resolve));

/**
 * The behaviour every replay log must have, whatever holds it (memory, Redis): run it with a factory
 * of fresh logs. Timings are short real times, so a remote backend can run it too.
 */
export function replayLogContract(
  name: string,
  create: () => ReplayLog | Promise<ReplayLog>,
  options: ReplayLogContractOptions = {},
): void {
  describe(`the ${name} replay log`, () => {
    const logs: ReplayLog[] = [];
    const fresh = async (factory = create) => {
      const log = await factory();
      logs.push(log);
      return log;
    };
    afterEach(async () => {
      await Promise.all(logs.splice(0).map((log) => log.close()));
    });

    it('gives appends dense positions from 0 and reads them back in order, with their token indexes', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 40, 39);
      expect(await readAll(log, turnId)).toEqual(expected(0, 40));
    });

    it('reads an ended log from every position, and nothing past its end', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 600, 599);
      for (let from = 0; from <= 600; from += from < 20 || from > 580 ? 1 : 37)
        expect(await readAll(log, turnId, from)).toEqual(expected(from, 600));
      expect(await readAll(log, turnId, 5_000)).toEqual([]);
    });

    it('follows live appends until the final entry', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      const reading = readAll(log, turnId, 0);
      for (let position = 0; position < 30; position++) {
        fill(log, turnId, position, position + 1, 29);
        if (position % 7 === 0) await tick();
      }
      expect(await reading).toEqual(expected(0, 30));
    });

    it('hands a reader from its backlog to the live entries with no gap and nothing twice', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 700);
      const seen: LogEntry[] = [];
      let next = 700;
      // Appends land while the reader is between batches of its backlog, and again once it waits.
      for await (const batch of log.read(turnId, 3)) {
        seen.push(...batch);
        if (next < 1000) {
          fill(log, turnId, next, next + 50, 999);
          next += 50;
          if (next % 100 === 0) await tick();
        }
      }
      expect(seen).toEqual(expected(3, 1000));
    });

    it('gives each of many concurrent readers exactly the entries from its position on', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 100);
      const starts = Array.from({ length: 60 }, (_, index) => (index * 37) % 400);
      const readers = starts.map((from) => readAll(log, turnId, from));
      for (let position = 100; position < 400; position += 20) {
        fill(log, turnId, position, position + 20, 399);
        await tick();
      }
      const results = await Promise.all(readers);
      results.forEach((result, index) => expect(result).toEqual(expected(starts[index]!, 400)));
    });

    it('snapshots what it holds: entries so far while generating, the whole log once ended; nothing for a turn it does not hold', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      expect(await log.snapshot(turnId)).toBeUndefined();
      log.open(turnId);
      expect(await log.snapshot(turnId)).toEqual({ entries: [], ended: false });
      fill(log, turnId, 0, 5);
      const growing = await log.snapshot(turnId);
      fill(log, turnId, 5, 8, 7);
      // A snapshot taken while generating does not change under its holder.
      expect(growing).toEqual({ entries: expected(0, 5), ended: false });
      expect(await log.snapshot(turnId)).toEqual({ entries: expected(0, 8), ended: true });
    });

    it('refuses appends after the final entry and keeps the entries of a log opened again', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 2);
      log.open(turnId);
      fill(log, turnId, 2, 3, 2);
      expect(() => log.append(turnId, { data: '{"late":true}' })).toThrow();
      expect(await readAll(log, turnId)).toEqual(expected(0, 3));
    });

    it('reads nothing from a turn it does not hold, and says it does not hold it', async () => {
      const log = await fresh();
      expect(await readAll(log, randomUUID())).toEqual([]);
      expect(await log.has(randomUUID())).toBe(false);
    });

    it('settles once the last entries are durable: a reader that comes after gets them all', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 50, 49);
      await log.settled(turnId);
      expect(await log.has(turnId)).toBe(true);
      expect(await readAll(log, turnId, 0)).toEqual(expected(0, 50));
      expect(await log.snapshot(turnId)).toEqual({ entries: expected(0, 50), ended: true });
    });

    it('stops a waiting reader when its signal aborts', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      const controller = new AbortController();
      const reading = readAll(log, turnId, 0, controller.signal);
      fill(log, turnId, 0, 1);
      await expect.poll(async () => (await log.snapshot(turnId))?.entries.length).toBe(1);
      await new Promise((resolve) => setTimeout(resolve, 20));
      controller.abort();
      expect(await reading).toEqual(expected(0, 1));
    });

    it('forgets a turn after its time to live, counted again from the last call', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 3, 2);
      log.expire(turnId, 60);
      await new Promise((resolve) => setTimeout(resolve, 40));
      log.expire(turnId, 80);
      await new Promise((resolve) => setTimeout(resolve, 40));
      expect(await log.has(turnId)).toBe(true);
      await expect.poll(() => log.has(turnId), { timeout: 2000, interval: 10 }).toBe(false);
      expect(await log.snapshot(turnId)).toBeUndefined();
      expect(await readAll(log, turnId)).toEqual([]);
    });

    it('tells a reader waiting on a log that expires before its end, rather than ending as if the turn were done', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 2);
      const reading = readAll(log, turnId, 0);
      log.expire(turnId, 10);
      await expect(reading).rejects.toBeInstanceOf(ReplayLogEvicted);
    });

    it('ends a reader that already has the final entry normally, even if the log expires right after', async () => {
      const log = await fresh();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 10, 9);
      const seen: LogEntry[] = [];
      for await (const batch of log.read(turnId, 0)) {
        seen.push(...batch);
        log.expire(turnId, 1);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      expect(seen).toEqual(expected(0, 10));
    });

    it('ends its readers quietly when it closes', async () => {
      const log = await create();
      const turnId = randomUUID();
      log.open(turnId);
      fill(log, turnId, 0, 1);
      const reading = readAll(log, turnId, 0);
      await tick();
      await log.close();
      expect(await reading).toEqual(expected(0, 1));
    });

    if (options.createTight) {
      const createTight = options.createTight;
      it('short of room, keeps every entry of a generating turn, and a reader of an ended one that leaves gets all of it or ReplayLogEvicted', async () => {
        const log = await fresh(createTight);
        const live = randomUUID();
        log.open(live);
        fill(log, live, 0, 100);
        const liveSeen: LogEntry[] = [];
        const liveReader = (async () => {
          for await (const batch of log.read(live, 0)) liveSeen.push(...batch);
        })();
        const outcomes: Promise<'whole' | 'evicted'>[] = [];
        for (let turn = 0; turn < 20; turn++) {
          const turnId = randomUUID();
          log.open(turnId);
          fill(log, turnId, 0, 100);
          // A slow reader, there before the end: one batch, then a pause while the next turns push this one out.
          outcomes.push(
            (async () => {
              try {
                const seen: LogEntry[] = [];
                for await (const batch of log.read(turnId, 0)) {
                  seen.push(...batch);
                  await tick();
                }
                expect(seen).toEqual(expected(0, 200));
                return 'whole';
              } catch (error) {
                expect(error).toBeInstanceOf(ReplayLogEvicted);
                return 'evicted';
              }
            })(),
          );
          fill(log, turnId, 100, 200, 199);
          await tick();
        }
        await Promise.all(outcomes);
        // The generating turn kept every entry, and its reader followed it through the squeeze.
        expect(await log.has(live)).toBe(true);
        fill(log, live, 100, 150);
        await expect.poll(() => liveSeen.length).toBe(150);
        expect(liveSeen).toEqual(expected(0, 150));
        expect((await log.snapshot(live))!.entries).toEqual(expected(0, 150));
        fill(log, live, 150, 151, 150);
        // Ended, it may be pushed out at once: its reader then ends with ReplayLogEvicted or after its final entry.
        await liveReader.catch((error: unknown) => expect(error).toBeInstanceOf(ReplayLogEvicted));
      });
    }
  });
}
