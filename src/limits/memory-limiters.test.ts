import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from './memory-limiters.js';

describe('MemoryRateLimiter', () => {
  it('allows a burst, then the sustained rate, and says when to retry', () => {
    const limiter = new MemoryRateLimiter({ requestsPerMinute: 60, burst: 3 });
    const start = 1_000_000;
    for (let index = 0; index < 3; index++) expect(limiter.consumeAt('a', start).allowed).toBe(true);
    const refused = limiter.consumeAt('a', start);
    expect(refused).toMatchObject({ allowed: false, limit: 60, remaining: 0, resetSeconds: 3, retryAfterSeconds: 1 });
    expect(limiter.consumeAt('b', start).allowed).toBe(true);
    expect(limiter.consumeAt('a', start + 1000).allowed).toBe(true);
    expect(limiter.consumeAt('a', start + 1000).allowed).toBe(false);
    limiter.close();
  });

  it('says a whole number of seconds to the full bucket, without float rounding up', () => {
    const limiter = new MemoryRateLimiter({ requestsPerMinute: 6, burst: 3 });
    for (let index = 0; index < 3; index++) limiter.consumeAt('a', 0);
    expect(limiter.consumeAt('a', 0)).toMatchObject({ allowed: false, resetSeconds: 30, retryAfterSeconds: 10 });
    limiter.close();
  });
});
