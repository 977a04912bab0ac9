import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendToRedisLog, defineLogScripts } from '../src/streams/redis-append-script.js';
import { redisLogKeys } from '../src/streams/redis-log-format.js';
import { ReplayLogEvicted, ReplayLogUnavailable, type LogEntry } from '../src/streams/replay-log.js';
import { startTcpProxy, type CuttingProxy } from './support/cutting-proxy.js';
import { hasRedis, testKeyPrefix, testRedisUrl } from './support/redis.js';
import { closedAfterEach, expectedEntries, fillLog } from './support/redis-replay-logs.js';
import { readAll } from './support/replay-log-contract.js';

// What the replay-log contract cannot see (test/replay-log-contract.test.ts runs it on Redis too):
// what lands in Redis, from a second instance, through failures.

describe.skipIf(!hasRedis())('the Redis replay log', () => {
  const { opened, connect, twoInstances } = closedAfterEach();
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(testRedisUrl());
    defineLogScripts(redis);
  });
  afterAll(() => redis.quit());

  it('writes each entry once when a flush is sent again, whole or overlapping', async () => {
    const keys = redisLogKeys(testKeyPrefix(), randomUUID());
    const entries = expectedEntries(0, 10);
    const options = { final: false, ttlMs: 60_000 };
    expect(await appendToRedisLog(redis, keys, 'me', 0, entries.slice(0, 6), options)).toMatchObject({ status: 'OK', next: 6 });
    // The reply of that flush was lost: the writer sends it again, then the next entries with a part of it.
    expect(await appendToRedisLog(redis, keys, 'me', 0, entries.slice(0, 6), options)).toMatchObject({ status: 'OK', next: 6 });
    expect(await appendToRedisLog(redis, keys, 'me', 3, entries.slice(3, 10), options)).toMatchObject({ status: 'OK', next: 10 });
    const ids = (await redis.xrange(keys.log, '-', '+')).map(([id]) => id);
    expect(ids).toEqual(Array.from({ length: 10 }, (_, position) => `0-${position + 1}`));
    // A writer that believes more is written than Redis holds (Redis lost writes) is told, not given a gap.
    expect(await appendToRedisLog(redis, keys, 'me', 12, entries.slice(0, 1), options)).toMatchObject({ status: 'GAP', next: 10 });
  });

  it('loses nothing and writes nothing twice while its connection keeps being cut', async () => {
    const proxy: CuttingProxy = await startTcpProxy(testRedisUrl().replace('redis:', 'http:'));
    opened.push(proxy);
    const log = await connect({ url: proxy.url.replace('http:', 'redis:'), writeWindowMs: 0 });
    const turnId = randomUUID();
    log.open(turnId);
    for (let position = 0; position < 200; position++) {
      fillLog(log, turnId, position, position + 1, 199);
      if (position % 20 === 10) proxy.cut();
      if (position % 5 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await log.settled(turnId);
    // Read back by another instance straight from Redis, not through the proxy.
    const direct = await connect({ keyPrefix: log.keyPrefix });
    expect(await readAll(direct, turnId)).toEqual(expectedEntries(0, 200));
  });

  it('does not hold up the end of a turn while Redis is away, and writes the rest once it is back', async () => {
    const proxy = await startTcpProxy(testRedisUrl().replace('redis:', 'http:'));
    opened.push(proxy);
    const log = await connect({ url: proxy.url.replace('http:', 'redis:'), writeWindowMs: 0, settleTimeoutMs: 200 });
    const direct = await connect({ keyPrefix: log.keyPrefix });
    const turnId = randomUUID();
    log.open(turnId);
    fillLog(log, turnId, 0, 3);
    await log.settled(turnId);
    proxy.blocked = true;
    proxy.cut();
    fillLog(log, turnId, 3, 6, 5);
    // Resolves although Redis has not acknowledged (the turn's end awaits it): nothing is acknowledged yet.
    await log.settled(turnId);
    expect((await direct.snapshot(turnId))!.entries).toHaveLength(3);
    proxy.blocked = false;
    await expect.poll(async () => (await direct.snapshot(turnId))?.ended, { timeout: 10_000 }).toBe(true);
    expect(await readAll(direct, turnId)).toEqual(expectedEntries(0, 6));
  });

  it('answers ping, has and snapshot with ReplayLogUnavailable while Redis refuses or hangs, and again once it answers', async () => {
    const proxy = await startTcpProxy(testRedisUrl().replace('redis:', 'http:'));
    opened.push(proxy);
    const log = await connect({ url: proxy.url.replace('http:', 'redis:') });
    const turnId = randomUUID();
    await log.ping();
    const refusals = () =>
      [log.ping(), log.has(turnId), log.snapshot(turnId)].map((promise) =>
        promise.then(
          () => 'answered',
          (error) => error,
        ),
      );
    proxy.hung = true;
    for (const refusal of await Promise.all(refusals())) expect(refusal).toBeInstanceOf(ReplayLogUnavailable);
    proxy.hung = false;
    proxy.blocked = true;
    proxy.cut();
    for (const refusal of await Promise.all(refusals())) expect(refusal).toBeInstanceOf(ReplayLogUnavailable);
    proxy.blocked = false;
    await expect
      .poll(
        () =>
          log.ping().then(
            () => true,
            () => false,
          ),
        { timeout: 10_000, interval: 100 },
      )
      .toBe(true);
    expect(await log.has(turnId)).toBe(false);
  });

  it('lets a reader on another instance ride out a short Redis outage', async () => {
    const proxy = await startTcpProxy(testRedisUrl().replace('redis:', 'http:'));
    opened.push(proxy);
    const producer = await connect({ writeWindowMs: 0 });
    const reader = await connect({ url: proxy.url.replace('http:', 'redis:'), keyPrefix: producer.keyPrefix });
    const turnId = randomUUID();
    producer.open(turnId);
    fillLog(producer, turnId, 0, 5);
    await producer.settled(turnId);
    const seen: LogEntry[] = [];
    const reading = (async () => {
      for await (const batch of reader.read(turnId, 0)) seen.push(...batch);
    })();
    await expect.poll(() => seen.length).toBe(5);
    proxy.blocked = true;
    proxy.cut();
    fillLog(producer, turnId, 5, 20);
    await new Promise((resolve) => setTimeout(resolve, 600));
    proxy.blocked = false;
    fillLog(producer, turnId, 20, 30, 29);
    await reading;
    expect(seen).toEqual(expectedEntries(0, 30));
  });

  it('hands a second instance every entry byte for byte, by range reads and by snapshot', async () => {
    const [producer, other] = await twoInstances({ writeWindowMs: 5 });
    const turnId = randomUUID();
    producer.open(turnId);
    fillLog(producer, turnId, 0, 300, 299);
    await producer.settled(turnId);
    expect(await other.has(turnId)).toBe(true);
    expect(await readAll(other, turnId)).toEqual(expectedEntries(0, 300));
    expect(await readAll(other, turnId, 123)).toEqual(expectedEntries(123, 300));
    expect(await other.snapshot(turnId)).toEqual({ entries: expectedEntries(0, 300), ended: true });
    // The same as the producer's own readers get.
    expect(await readAll(other, turnId)).toEqual(await readAll(producer, turnId));
  });

  it("keeps a generating turn's keys alive and gives an ended one its time to live", async () => {
    const [producer, other] = await twoInstances({ runningTtlMs: 120_000 });
    const turnId = randomUUID();
    const keys = redisLogKeys(producer.keyPrefix, turnId);
    producer.open(turnId);
    fillLog(producer, turnId, 0, 5);
    await producer.settled(turnId);
    for (const key of [keys.log, keys.meta]) expect(await redis.pttl(key)).toBeGreaterThan(100_000);
    // A reader leaving on another instance does not shorten a turn still generating.
    other.expire(turnId, 2000);
    await expect.poll(() => redis.pttl(keys.log)).toBeGreaterThan(100_000);
    fillLog(producer, turnId, 5, 6, 5);
    producer.expire(turnId, 30_000);
    await expect.poll(() => redis.pttl(keys.meta)).toBeLessThanOrEqual(30_000);
    for (const key of [keys.log, keys.meta]) expect(await redis.pttl(key)).toBeGreaterThan(20_000);
    // Once it has ended, a reader leaving sets it again from then.
    other.expire(turnId, 10_000);
    await expect.poll(() => redis.pttl(keys.log)).toBeLessThanOrEqual(10_000);
    expect(await redis.pttl(keys.meta)).toBeGreaterThan(5_000);
  });

  it("stops writing a turn another writer has taken over, and never brings back a turn's vanished log", async () => {
    const stopped: string[] = [];
    const [producer, other] = await twoInstances({ writeWindowMs: 0 });
    const taken = await connect({ keyPrefix: producer.keyPrefix, onWriteStopped: (_, reason) => stopped.push(reason) });
    const turnId = randomUUID();
    const keys = redisLogKeys(producer.keyPrefix, turnId);
    taken.open(turnId);
    fillLog(taken, turnId, 0, 3);
    await taken.settled(turnId);
    // A reaper on another instance sealed it as its own.
    await redis.hset(keys.meta, 'owner', 'reaper', 'sealed', '1');
    fillLog(taken, turnId, 3, 6, 5);
    await taken.settled(turnId);
    expect(stopped).toEqual(['FENCED']);
    expect(await redis.xlen(keys.log)).toBe(3);

    // Redis restarted empty while a turn generates: its readers elsewhere are told, the producer does not write it again.
    const gone = randomUUID();
    const goneKeys = redisLogKeys(producer.keyPrefix, gone);
    producer.open(gone);
    fillLog(producer, gone, 0, 3);
    await producer.settled(gone);
    const seen: LogEntry[] = [];
    const reading = (async () => {
      for await (const batch of other.read(gone, 0)) seen.push(...batch);
    })();
    await expect.poll(() => seen.length).toBe(3);
    await redis.del(goneKeys.log, goneKeys.meta);
    fillLog(producer, gone, 3, 6, 5);
    await producer.settled(gone);
    expect(await redis.exists(goneKeys.log, goneKeys.meta)).toBe(0);
    await expect(reading).rejects.toBeInstanceOf(ReplayLogEvicted);
    // The producer's own readers still get the whole turn.
    expect(await readAll(producer, gone)).toEqual(expectedEntries(0, 6));
  });

  it('sends a burst of entries in a few flushes, one script call each', async () => {
    const log = await connect({ writeWindowMs: 20 });
    const counter = new Redis(testRedisUrl());
    opened.push({ close: () => counter.quit() });
    const turnId = randomUUID();
    const keys = redisLogKeys(log.keyPrefix, turnId);
    log.open(turnId);
    await log.settled(turnId);
    // MONITOR sees every command of every connection: count the flushes of this turn only.
    const monitor = await counter.monitor();
    const flushes: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.includes(keys.meta)) flushes.push(args[0]!.toLowerCase());
    });
    fillLog(log, turnId, 0, 100, 99);
    await log.settled(turnId);
    expect(await redis.xlen(keys.log)).toBe(100);
    const scripts = () => flushes.filter((command) => command === 'evalsha' || command === 'eval').length;
    await expect.poll(scripts).toBeGreaterThanOrEqual(2);
    monitor.disconnect();
    // 100 entries at once: 64 a flush at most, so two flushes.
    expect(scripts()).toBe(2);
    expect(flushes.every((command) => ['evalsha', 'eval', 'hmget', 'xadd', 'hset', 'pexpire', 'publish'].includes(command))).toBe(true);
  });
});
