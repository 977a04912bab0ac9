import { describe, expect, it } from 'vitest';
import { MemoryRateLimiter } from './rate-limit.js';

describe('MemoryRateLimiter', () => {
  it('allows a burst, then the sustained rate, and says when to retry', () => {
    const limiter = new MemoryRateLimiter({ requestsPerMinute: 60, burst: 3, maxStreams: 2 });
    const start = 1_000_000;
    for (let index = 0; index < 3; index++) expect(limiter.consume('a', start).allowed).toBe(true);
    const refused = limiter.consume('a', start);
    expect(refused).toMatchObject({ allowed: false, limit: 60, remaining: 0, retryAfterSeconds: 1 });
    expect(limiter.consume('b', start).allowed).toBe(true);
    expect(limiter.consume('a', start + 1000).allowed).toBe(true);
    expect(limiter.consume('a', start + 1000).allowed).toBe(false);
    limiter.close();
  });

  it('caps open streams per client and frees them on release', () => {
    const limiter = new MemoryRateLimiter({ requestsPerMinute: 60, burst: 10, maxStreams: 2 });
    expect(limiter.acquireStream('a')).toBe(true);
    expect(limiter.acquireStream('a')).toBe(true);
    expect(limiter.acquireStream('a')).toBe(false);
    expect(limiter.acquireStream('b')).toBe(true);
    limiter.releaseStream('a');
    expect(limiter.acquireStream('a')).toBe(true);
    limiter.close();
  });

  it('is off when the rate is 0', () => {
    const limiter = new MemoryRateLimiter({ requestsPerMinute: 0, burst: 0, maxStreams: 0 });
    for (let index = 0; index < 1000; index++) expect(limiter.consume('a').allowed).toBe(true);
    for (let index = 0; index < 1000; index++) expect(limiter.acquireStream('a')).toBe(true);
    limiter.close();
  });
});
