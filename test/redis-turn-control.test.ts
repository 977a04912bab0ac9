import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import { sealStepFor } from '../src/app/seal-abandoned-turns.js';
import type { Logger } from '../src/observability/logger.js';
import type { ReapedTurn } from '../src/store/postgres-instances.js';
import { redisLogKeys } from '../src/streams/redis-log-format.js';
import type { RedisReplayLog } from '../src/streams/redis-replay-log.js';
import { RedisTailHub } from '../src/streams/redis-tail-hub.js';
import { RedisTurnControl } from '../src/streams/redis-turn-control.js';
import { hasRedis, testKeyPrefix, testRedisUrl } from './support/redis.js';
import { connectTestLog } from './support/redis-replay-logs.js';

// The control plane of a Redis log (scale-out.md §6.13–15) between two logs as two instances hold
// them: what a cancel and a seal leave in Redis, and what the producer then hears and may write.

const token = (text: string, index: number) => ({
  data: JSON.stringify({ token: text, token_index: index, type: 'token' }),
  tokenIndex: index,
});

describe.skipIf(!hasRedis())('cancels and seals across instances in Redis', () => {
  const opened: { close(): Promise<unknown> }[] = [];
  afterEach(async () => {
    await Promise.all(opened.splice(0).map((log) => log.close()));
  });

  async function twoInstances(pollMs = 60_000): Promise<[RedisReplayLog, RedisReplayLog, Redis, string]> {
    const keyPrefix = testKeyPrefix();
    const producer = await connectTestLog({ keyPrefix, writeWindowMs: 0 });
    const other = await connectTestLog({ keyPrefix, writeWindowMs: 0 });
    const redis = new Redis(testRedisUrl());
    opened.push(producer, other, { close: async () => redis.disconnect() });
    await producer.control({ sealedTtlMs: 60_000, pollMs }).subscribed();
    other.control({ sealedTtlMs: 60_000, pollMs });
    return [producer, other, redis, keyPrefix];
  }

  it('stops the producing instance by the durable flag alone when the message is lost', async () => {
    const [producer, , redis, prefix] = await twoInstances(100);
    const turnId = randomUUID();
    producer.open(turnId);
    producer.append(turnId, token('a', 0));
    await producer.settled(turnId);
    let stopped = 0;
    producer.control({ sealedTtlMs: 60_000 }).watch(turnId, () => stopped++);
    // Only the flag, as if the message had been published while the producer's subscriber was away.
    await redis.hset(redisLogKeys(prefix, turnId).meta, 'cancel', '1');
    await expect.poll(() => stopped, { timeout: 2000, interval: 20 }).toBe(1);
  });

  it('asks the producer by message, and leaves no key behind for a log that does not exist', async () => {
    const [producer, other, redis, prefix] = await twoInstances();
    const turnId = randomUUID();
    producer.open(turnId);
    await producer.settled(turnId);
    let stopped = 0;
    producer.control({ sealedTtlMs: 60_000 }).watch(turnId, () => stopped++);
    await other.control({ sealedTtlMs: 60_000 }).requestCancel(turnId);
    await expect.poll(() => stopped, { timeout: 2000, interval: 20 }).toBe(1);
    expect(await redis.hget(redisLogKeys(prefix, turnId).meta, 'cancel')).toBe('1');
    const unknown = randomUUID();
    await other.control({ sealedTtlMs: 60_000 }).requestCancel(unknown);
    expect(await redis.exists(redisLogKeys(prefix, unknown).meta)).toBe(0);
  });

  it('seals a log once with the answer its tokens make, fencing its producer and a second sealer', async () => {
    const [producer, other, redis, prefix] = await twoInstances();
    const turnId = randomUUID();
    producer.open(turnId);
    producer.append(turnId, token('half ', 0));
    producer.append(turnId, token('way', 1));
    await producer.settled(turnId);
    const sealer = other.control({ sealedTtlMs: 60_000 });
    const final = JSON.stringify({ type: 'error', error_code: 'SHUTTING_DOWN' });
    const [first, second] = await Promise.all([sealer.seal(turnId, () => final), sealer.seal(turnId, () => final)]);
    expect(first).toEqual({ answer: 'half way', tokenCount: 2 });
    expect(second).toEqual(first);
    // The producer wakes and writes on: refused, nothing lands after the one final entry.
    producer.append(turnId, token(' more', 2));
    await producer.settled(turnId);
    const entries = (await redis.xrange(redisLogKeys(prefix, turnId).log, '-', '+')) as [string, string[]][];
    expect(entries.map(([id]) => id)).toEqual(['0-1', '0-2', '0-3']);
    expect(entries.filter(([, fields]) => fields.includes('f'))).toEqual([['0-3', ['d', final, 'f', '1']]]);
    expect(await redis.hget(redisLogKeys(prefix, turnId).meta, 'sealed')).toBe('1');
    expect(await redis.pttl(redisLogKeys(prefix, turnId).log)).toBeGreaterThan(0);
    expect(await sealer.seal(randomUUID(), () => final)).toBeUndefined();
  });

  it('leaves a log whose seal failed half-way for the next reap, which ends it once; a log already ended tells how', async () => {
    const [producer, , redis, prefix] = await twoInstances();
    // The sealing instance's Redis fails once, right after the seal took the log over (its XRANGE).
    const flaky = new Redis(testRedisUrl());
    const hub = new RedisTailHub(() => new Redis(testRedisUrl()));
    const control = new RedisTurnControl({ redis: flaky, hub, prefix, keys: (id) => redisLogKeys(prefix, id), sealedTtlMs: 60_000 });
    opened.push(control, hub, { close: async () => flaky.disconnect() });
    const xrange = flaky.xrange.bind(flaky);
    let failures = 1;
    flaky.xrange = ((...args: Parameters<typeof xrange>) =>
      failures-- > 0 ? Promise.reject(new Error('Connection is closed.')) : xrange(...args)) as typeof flaky.xrange;
    const warned: string[] = [];
    const logger: Logger = { info: () => {}, error: () => {}, debug: () => {}, warn: (_fields, message) => warned.push(String(message)) };
    const step = sealStepFor(control, logger);
    const reaped = (turnId: string): ReapedTurn => ({
      turnId,
      contextId: 'c',
      model: 'm',
      createdAt: Date.now(),
      answer: '',
      tokenCount: 0,
    });
    const finals = async (turnId: string) =>
      ((await redis.xrange(redisLogKeys(prefix, turnId).log, '-', '+')) as [string, string[]][]).filter(([, fields]) =>
        fields.includes('f'),
      );

    const turnId = randomUUID();
    producer.open(turnId);
    producer.append(turnId, token('half ', 0));
    producer.append(turnId, token('way', 1));
    await producer.settled(turnId);
    const failed = await step([reaped(turnId)], 'interrupted');
    expect(failed).toEqual({ logged: new Map(), unsealed: new Set([turnId]) });
    expect(warned).toHaveLength(1);
    // Half-way: the producer is fenced out, and the log has no final entry yet.
    producer.append(turnId, token(' more', 2));
    await producer.settled(turnId);
    expect(await finals(turnId)).toEqual([]);
    expect(await redis.xlen(redisLogKeys(prefix, turnId).log)).toBe(2);

    // The next reap takes it over again and ends it, once.
    const retried = await step([reaped(turnId)], 'interrupted');
    expect(retried.unsealed).toEqual(new Set());
    expect(retried.logged.get(turnId)).toEqual({ answer: 'half way', tokenCount: 2, endedAs: undefined });
    const [[, fields]] = (await finals(turnId)) as [[string, string[]]];
    expect(JSON.parse(fields[1]!)).toMatchObject({ type: 'error', error_code: 'SHUTTING_DOWN' });
    // Sealed once more (its reap's update lost), it tells the store how it ended and writes nothing.
    expect((await step([reaped(turnId)], 'cancelled')).logged.get(turnId)).toMatchObject({ endedAs: 'interrupted' });
    expect(await finals(turnId)).toHaveLength(1);

    const cancelled = randomUUID();
    producer.open(cancelled);
    producer.append(cancelled, token('so far', 0));
    await producer.settled(cancelled);
    expect((await step([reaped(cancelled)], 'cancelled')).logged.get(cancelled)).toMatchObject({ answer: 'so far', endedAs: undefined });
    expect((await step([reaped(cancelled)], 'interrupted')).logged.get(cancelled)).toMatchObject({
      answer: 'so far',
      endedAs: 'cancelled',
    });
    expect(await finals(cancelled)).toHaveLength(1);
  });
});
