import { describe, expect, it } from 'vitest';
import { ConnectionPermits } from './postgres-permits.js';

describe('ConnectionPermits', () => {
  it('makes operations beyond the pool wait their turn while the database answers, first come first served', async () => {
    const permits = new ConnectionPermits(1);
    await permits.acquire(performance.now() + 10);
    const order: number[] = [];
    // Their own deadlines have passed long before the permit comes back: a busy pool is waited for, not refused.
    const second = permits.acquire(performance.now() + 1).then(() => order.push(2));
    const third = permits.acquire(performance.now() + 1).then(() => order.push(3));
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(order).toEqual([]);
    permits.release();
    await second;
    permits.release();
    await third;
    expect(order).toEqual([2, 3]);
  });

  it('refuses every waiter at once when an operation finds the database out of reach, and later ones within their deadline', async () => {
    const permits = new ConnectionPermits(1);
    await permits.acquire(performance.now() + 10);
    const waiting = permits.acquire(performance.now() + 60_000);
    permits.markUnavailable();
    await expect(waiting).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
    const started = performance.now();
    await expect(permits.acquire(performance.now() + 30)).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    // Refused at its own deadline (30 ms), not after the busy wait of 10 s.
    expect(performance.now() - started).toBeLessThan(5000);
    // Once an operation succeeds, waiting is patient again and a returned permit goes to the waiter.
    permits.markAvailable();
    const patient = permits.acquire(performance.now() + 1);
    permits.release();
    await expect(patient).resolves.toBeUndefined();
  });

  it('hands out free permits at once and takes back what is released', async () => {
    const permits = new ConnectionPermits(2);
    await permits.acquire(0);
    await permits.acquire(0);
    permits.release();
    await expect(permits.acquire(0)).resolves.toBeUndefined();
  });
});
