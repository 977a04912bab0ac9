import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineLogScripts } from '../src/streams/redis-append-script.js';
import { redisLogKeys } from '../src/streams/redis-log-format.js';
import type { LogEntry } from '../src/streams/replay-log.js';
import { hasRedis, testKeyPrefix, testRedisUrl } from './support/redis.js';
import { closedAfterEach, expectedEntries, fillLog } from './support/redis-replay-logs.js';

// How a second instance reads a turn another one writes: the live tail, its gaps and the handoff from the
// backlog (scale-out.md §6.9), with only the handoff itself able to deliver (no periodic reads).

describe.skipIf(!hasRedis())('the Redis replay log read from another instance', () => {
  const { opened, connect, twoInstances } = closedAfterEach();
  let redis: Redis;
  beforeAll(() => {
    redis = new Redis(testRedisUrl());
    defineLogScripts(redis);
  });
  afterAll(() => redis.quit());

  it('lets a reader on a second instance follow the live tail to the end, also across a reconnect of its subscriber', async () => {
    // No periodic read of the stream: only the catch-up after the reconnect can fill what was missed.
    const [producer, other] = await twoInstances({ writeWindowMs: 3, pollMs: 60_000 });
    const turnId = randomUUID();
    producer.open(turnId);
    fillLog(producer, turnId, 0, 10);
    await producer.settled(turnId);
    const seen: LogEntry[] = [];
    const reading = (async () => {
      for await (const batch of other.read(turnId, 4)) seen.push(...batch);
    })();
    let position = 10;
    for (; position < 150; position += 10) {
      fillLog(producer, turnId, position, position + 10);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await expect.poll(() => seen.length).toBe(146);
    // Every subscriber connection dropped: what is published meanwhile is read from the stream after the reconnect.
    await redis.call('CLIENT', 'KILL', 'TYPE', 'pubsub');
    fillLog(producer, turnId, 150, 200, 199);
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(196);
    await reading;
    expect(seen).toEqual(expectedEntries(4, 200));
  });

  it('reads a gap in the live messages from the stream, never skipping nor trusting what is out of order', async () => {
    const [producer, other] = await twoInstances({ writeWindowMs: 0, pollMs: 60_000 });
    const turnId = randomUUID();
    const keys = redisLogKeys(producer.keyPrefix, turnId);
    producer.open(turnId);
    fillLog(producer, turnId, 0, 3);
    await producer.settled(turnId);
    const seen: LogEntry[] = [];
    const reading = (async () => {
      for await (const batch of other.read(turnId, 0)) seen.push(...batch);
    })();
    await expect.poll(() => seen.length).toBe(3);
    // A message ahead of the reader (as if the ones between were lost), with what the stream does not hold.
    await redis.publish(keys.live, JSON.stringify([6, [['{"forged":true}', null, 0]]]));
    // Written to the stream behind the channel's back: only a read of the stream can give them.
    for (const { position, data, tokenIndex } of expectedEntries(3, 8)) {
      const index = tokenIndex === undefined ? [] : ['i', String(tokenIndex)];
      await redis.xadd(keys.log, `0-${position + 1}`, 'd', data, ...index);
    }
    await redis.hset(keys.meta, 'next', 8);
    await redis.publish(keys.live, JSON.stringify([9, [['{"forged":true}', null, 1]]]));
    await expect.poll(() => seen.length).toBe(8);
    expect(seen).toEqual(expectedEntries(0, 8));
    await other.close();
    await reading;
  });

  /**
   * A reader on a second instance whose first range read of the stream is held at `step` (before it is
   * sent, or after its reply came) until `release()`; `held` resolves once it is. The producer writes each
   * entry at once, and neither polls: only the handoff itself can deliver what follows.
   */
  async function heldReader(step: 'before' | 'after') {
    const keyPrefix = testKeyPrefix();
    let release!: () => void;
    let reached!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const held = new Promise<void>((resolve) => (reached = resolve));
    let first = true;
    const rangeReadHook = async (at: 'before' | 'after') => {
      if (at !== step || !first) return;
      first = false;
      reached();
      await gate;
    };
    const producer = await connect({ keyPrefix, writeWindowMs: 0, pollMs: 60_000 });
    const other = await connect({ keyPrefix, pollMs: 60_000, rangeReadHook });
    return { producer, other, held, release };
  }

  /** The highest position published on a turn's live channel so far, seen by a subscriber of its own. */
  async function publishedUpTo(channel: string): Promise<() => number> {
    const subscriber = new Redis(testRedisUrl());
    opened.push({ close: () => subscriber.quit() });
    let highest = -1;
    subscriber.on('message', (_channel: string, message: string) => {
      const [first, entries] = JSON.parse(message) as [number, unknown[]];
      highest = Math.max(highest, first + entries.length - 1);
    });
    await subscriber.subscribe(channel);
    return () => highest;
  }

  it.each([
    // Subscribed, range read not sent yet: what follows lands in the stream AND arrives as live messages.
    ['appended between the subscription and the range read', 'before'],
    // The range read has its reply (entries 0-2): what follows arrives only as live messages, before the reply is used.
    ['arriving as live messages before the range reply is handled', 'after'],
  ] as const)('delivers entries %s once each, in order', async (_case, hold) => {
    const { producer, other, held, release } = await heldReader(hold);
    const turnId = randomUUID();
    producer.open(turnId);
    fillLog(producer, turnId, 0, 3);
    await producer.settled(turnId);
    const published = await publishedUpTo(redisLogKeys(producer.keyPrefix, turnId).live);
    const seen: LogEntry[] = [];
    const reading = (async () => {
      for await (const batch of other.read(turnId, 0)) seen.push(...batch);
    })();
    await held;
    fillLog(producer, turnId, 3, 10);
    await producer.settled(turnId);
    await expect.poll(published).toBe(9);
    release();
    await expect.poll(() => seen.length).toBe(10);
    fillLog(producer, turnId, 10, 20, 19);
    await reading;
    expect(seen).toEqual(expectedEntries(0, 20));
  });
});
