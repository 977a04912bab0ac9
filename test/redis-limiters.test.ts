import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { LimitsOptions } from '../src/limits/limiter.js';
import { RedisLimiters } from '../src/limits/redis-limiters.js';
import { startLocalRedis } from '../scripts/local-redis.mjs';
import { startTcpProxy, type CuttingProxy } from './support/cutting-proxy.js';
import { hasRedis, testKeyPrefix, testRedisUrl } from './support/redis.js';

const LIMITS: LimitsOptions = {
  turns: { requestsPerMinute: 60, burst: 3 },
  api: { requestsPerMinute: 600, burst: 30 },
  maxStreams: 2,
  maxGenerating: 1,
};

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe.skipIf(!hasRedis())('limits in Redis', { timeout: 30_000 }, () => {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function connect(options: Partial<LimitsOptions> & { url?: string; keyPrefix?: string; leaseMs?: number } = {}) {
    const limiters = await RedisLimiters.connect({ ...LIMITS, url: testRedisUrl(), ...options });
    cleanups.push(() => limiters.close());
    return limiters;
  }

  function inspect(): Redis {
    const redis = new Redis(testRedisUrl());
    cleanups.push(() => redis.disconnect());
    return redis;
  }

  it('shares one bucket between instances: burst + 1 requests alternating over two let exactly the burst through', async () => {
    const keyPrefix = testKeyPrefix();
    const instances = [await connect({ keyPrefix }), await connect({ keyPrefix })];
    const decisions = [];
    for (let index = 0; index < 4; index++) decisions.push(await instances[index % 2]!.turns.consume('client-a'));
    expect(decisions.map((decision) => decision.allowed)).toEqual([true, true, true, false]);
    expect(decisions.map((decision) => decision.remaining)).toEqual([2, 1, 0, 0]);
    const parallel = await Promise.all(Array.from({ length: 12 }, (_, index) => instances[index % 2]!.turns.consume('client-b')));
    expect(parallel.filter((decision) => decision.allowed)).toHaveLength(3);
  });

  it('lets its keys expire once the bucket is full again, and the lease set once its leases are gone', async () => {
    const keyPrefix = testKeyPrefix();
    const limiters = await connect({ keyPrefix, leaseMs: 3000 });
    const redis = inspect();
    await limiters.turns.consume('client-a');
    await limiters.turns.consume('client-a');
    // Two tokens taken at one a second: full again in about 2 s.
    const bucketTtl = await redis.pttl(`${keyPrefix}rl:turns:{client-a}`);
    expect(bucketTtl).toBeGreaterThan(1000);
    expect(bucketTtl).toBeLessThanOrEqual(2000);
    await limiters.streams.acquire('client-a');
    const leaseTtl = await redis.pttl(`${keyPrefix}lease:streams:{client-a}`);
    expect(leaseTtl).toBeGreaterThan(0);
    expect(leaseTtl).toBeLessThanOrEqual(3000);
  });

  it("frees a closed instance's leases after their time, while a living instance keeps its own by renewing them", async () => {
    const keyPrefix = testKeyPrefix();
    const [living, dying, other] = [
      await connect({ keyPrefix, leaseMs: 900 }),
      await connect({ keyPrefix, leaseMs: 900 }),
      await connect({ keyPrefix, leaseMs: 900 }),
    ];
    expect(await living.streams.acquire('client-a')).toBeTypeOf('function');
    expect(await dying.streams.acquire('client-a')).toBeTypeOf('function');
    expect(await other.streams.acquire('client-a')).toBeUndefined();
    // The dying instance goes without releasing (as kill -9 would): its lease stays until it expires.
    await dying.close();
    expect(await other.streams.acquire('client-a')).toBeUndefined();
    await sleep(1500);
    // Past the lease time: the dead lease is gone, the living one was renewed (twice) and still counts.
    expect(await other.streams.acquire('client-a')).toBeTypeOf('function');
    expect(await other.streams.acquire('client-a')).toBeUndefined();
    expect(living.heldLeases).toBe(1);
  });

  it('answers 503 DEPENDENCY_UNAVAILABLE within about a second while Redis hangs or is gone, and works again when it is back', async () => {
    const redis = await startLocalRedis();
    cleanups.push(() => redis.stop());
    const proxy: CuttingProxy = await startTcpProxy(`http://127.0.0.1:${redis.port}`);
    cleanups.push(() => proxy.close());
    const limiters = await connect({ url: `redis://127.0.0.1:${new URL(proxy.url).port}`, keyPrefix: testKeyPrefix() });
    expect((await limiters.turns.consume('client-a')).allowed).toBe(true);

    // Hung: the server stops answering; each command gives up after its 1 s timeout.
    process.kill(redis.pid!, 'SIGSTOP');
    try {
      const started = Date.now();
      await expect(limiters.turns.consume('client-a')).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', status: 503 });
      await expect(limiters.streams.acquire('client-a')).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
      expect(Date.now() - started).toBeLessThan(3000);
    } finally {
      process.kill(redis.pid!, 'SIGCONT');
    }
    await expect
      .poll(async () => (await limiters.turns.consume('client-a').catch(() => undefined))?.allowed, { timeout: 10_000 })
      .toBe(true);

    // Gone: connections refused; commands fail at once instead of queueing.
    proxy.blocked = true;
    proxy.cut();
    await expect(limiters.generating.acquire('client-a')).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    await expect(limiters.turns.consume('client-a')).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    proxy.blocked = false;
    await expect
      .poll(async () => typeof (await limiters.generating.acquire('client-b').catch(() => undefined)), { timeout: 10_000 })
      .toBe('function');
  });
});
