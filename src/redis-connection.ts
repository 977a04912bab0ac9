import type { Redis } from 'ioredis';

/**
 * Connects a lazily created connection and resolves once Redis answers; rejects within `timeoutMs` with one
 * message naming REDIS_URL (its password masked) and why, for `what` uses it (" for the rate limits").
 */
export async function connectRedis(redis: Redis, url: string, timeoutMs: number, what = ''): Promise<void> {
  // ioredis rejects with "Connection is closed"; the socket's own error says why.
  let socketError: Error | undefined;
  redis.once('error', (error: Error) => (socketError = error));
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      redis.connect(),
      new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs))),
    ]);
  } catch (error) {
    const reason = (socketError ?? (error as Error)).message.replace(/\s+/g, ' ').replace(/\.$/, '');
    throw new Error(
      `Cannot reach Redis at REDIS_URL=${withoutPassword(url)}${what}: ${reason}. Check that Redis runs and the URL is right.`,
      {
        cause: error,
      },
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Closes a connection: politely if it is up, at once if it is not (QUIT would wait for a reconnect). */
export async function closeConnection(redis: Redis): Promise<void> {
  if (redis.status === 'ready') await redis.quit().catch(() => undefined);
  redis.disconnect();
}

/** A Redis URL with its password masked, fit for an error message. */
export function withoutPassword(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'redis://…';
  }
}
