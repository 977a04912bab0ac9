import { randomBytes } from 'node:crypto';
import { inject } from 'vitest';

/** Whether this run has a Redis; when it has none (a developer's machine without the package) its tests skip, saying so once. */
export function hasRedis(): boolean {
  const available = inject('redisUrl') !== '';
  if (!available && !warned) {
    warned = true;
    console.warn("SKIPPED: Redis tests (install Debian's redis-server package, or set CHATWAIT_TEST_REDIS_URL); CI runs them.");
  }
  return available;
}
let warned = false;

/** The URL of the run's Redis. */
export function testRedisUrl(): string {
  return inject('redisUrl');
}

/** A key prefix no other test uses, so tests share one Redis without seeing each other's keys. */
export function testKeyPrefix(): string {
  return `test:${randomBytes(6).toString('hex')}:`;
}
