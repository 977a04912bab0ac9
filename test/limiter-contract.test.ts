import { describe } from 'vitest';
import { createMemoryLimiters } from '../src/limits/memory-limiters.js';
import { RedisLimiters } from '../src/limits/redis-limiters.js';
import { limiterContract } from './support/limiter-contract.js';
import { hasRedis, testKeyPrefix, testRedisUrl } from './support/redis.js';

limiterContract('memory', (options) => createMemoryLimiters(options));

describe.skipIf(!hasRedis())('in Redis', () => {
  limiterContract('Redis', (options) => RedisLimiters.connect({ ...options, url: testRedisUrl(), keyPrefix: testKeyPrefix() }));
});
