import { randomUUID } from 'node:crypto';
import { connectRedis } from '../redis-connection.js';
import { Redis } from 'ioredis';
import { ChatWaitError } from '../errors.js';
import {
  capacityOf,
  decisionOf,
  unlimited,
  type BucketOptions,
  type ConcurrencyLimiter,
  type Limiters,
  type LimitsOptions,
  type RateDecision,
  type RateLimiter,
  type Release,
} from './limiter.js';
import { defineLimitScripts, type LimitCommands } from './redis-limit-scripts.js';

/** Options of the limits kept in Redis. */
export interface RedisLimitersOptions extends LimitsOptions {
  url: string;
  /** Prefix of every key (tests give each their own). */
  keyPrefix?: string;
  /** How long a lease (an open stream, a generating turn) lives unless its instance renews it; renewed every third of it. */
  leaseMs?: number;
  /** How long `connect` waits for a first answer. */
  connectTimeoutMs?: number;
  onConnectionError?: (error: Error) => void;
}

/** A killed instance's leases free their slots after this long (renewed every 10 s while it lives). */
export const DEFAULT_LEASE_MS = 30_000;

/**
 * The limits shared by every instance on one Redis: token buckets and leases, each decided by one
 * script with Redis's clock. While Redis cannot answer, limited requests fail within a second with 503
 * DEPENDENCY_UNAVAILABLE (the limiter fails closed: no instance can know what the others admitted), and
 * they pass again once it is back, without a restart.
 */
export class RedisLimiters implements Limiters {
  readonly backend = 'redis';
  readonly turns: RateLimiter;
  readonly api: RateLimiter;
  readonly streams: ConcurrencyLimiter;
  readonly generating: ConcurrencyLimiter;
  readonly #redis: Redis & LimitCommands;
  readonly #prefix: string;
  readonly #leaseMs: number;
  readonly #instance = randomUUID();
  /** The leases this instance holds: lease id → its key. */
  readonly #leases = new Map<string, string>();
  readonly #renewer: NodeJS.Timeout;
  #leaseCount = 0;

  /** Connects and resolves once Redis answers; rejects naming REDIS_URL (without its password) if it does not in time. */
  static async connect(options: RedisLimitersOptions): Promise<RedisLimiters> {
    const limiters = new RedisLimiters(options);
    try {
      await connectRedis(limiters.#redis, options.url, options.connectTimeoutMs ?? 5000, ' for the rate limits');
    } catch (error) {
      await limiters.close();
      throw error;
    }
    return limiters;
  }

  private constructor(options: RedisLimitersOptions) {
    this.#prefix = options.keyPrefix ?? 'cw:';
    this.#leaseMs = options.leaseMs ?? DEFAULT_LEASE_MS;
    // Fail fast while Redis is away: no offline queue, no retry, 1 s per command. ioredis reconnects by itself.
    this.#redis = defineLimitScripts(
      new Redis(options.url, {
        lazyConnect: true,
        enableAutoPipelining: true,
        enableOfflineQueue: false,
        maxRetriesPerRequest: 0,
        commandTimeout: 1000,
      }),
    );
    this.#redis.on('error', (error: Error) => options.onConnectionError?.(error));
    this.turns = this.#bucket('turns', options.turns);
    this.api = this.#bucket('api', options.api);
    this.streams = this.#slots('streams', options.maxStreams);
    this.generating = this.#slots('generating', options.maxGenerating);
    this.#renewer = setInterval(() => void this.#renew(), this.#leaseMs / 3);
    this.#renewer.unref();
  }

  /** How many leases this instance holds now (for tests). */
  get heldLeases(): number {
    return this.#leases.size;
  }

  async ping(): Promise<void> {
    await this.#call(() => this.#redis.ping());
  }

  async close(): Promise<void> {
    clearInterval(this.#renewer);
    // QUIT is answered after the releases already sent; leases still held expire by themselves.
    if (this.#redis.status === 'ready') {
      await Promise.race([this.#redis.quit().catch(() => undefined), new Promise((resolve) => setTimeout(resolve, 1000).unref())]);
    }
    this.#redis.disconnect();
  }

  #bucket(name: string, options: BucketOptions): RateLimiter {
    const capacity = capacityOf(options);
    const perMillisecond = options.requestsPerMinute / 60_000;
    return {
      consume: async (client): Promise<RateDecision> => {
        if (options.requestsPerMinute === 0) return unlimited(0);
        const [allowed, tokens] = await this.#call(() => this.#redis.takeToken(this.#key('rl', name, client), capacity, perMillisecond));
        return decisionOf(options, Number(tokens), allowed === 1);
      },
    };
  }

  #slots(name: string, max: number): ConcurrencyLimiter {
    return {
      acquire: async (client): Promise<Release | undefined> => {
        if (max === 0) return () => {};
        const key = this.#key('lease', name, client);
        const leaseId = `${this.#instance}:${++this.#leaseCount}`;
        const taken = await this.#call(() => this.#redis.acquireLease(key, max, leaseId, this.#leaseMs));
        if (taken !== 1) return undefined;
        this.#leases.set(leaseId, key);
        return () => {
          if (!this.#leases.delete(leaseId)) return;
          // If Redis cannot hear it now, the lease still expires by itself.
          this.#redis.zrem(key, leaseId).catch(() => undefined);
        };
      },
    };
  }

  /** Renews every lease this instance holds: one script per client key, all in one pipeline (one round trip). */
  async #renew(): Promise<void> {
    if (this.#leases.size === 0 || this.#redis.status !== 'ready') return;
    const byKey = new Map<string, string[]>();
    for (const [leaseId, key] of this.#leases) byKey.set(key, [...(byKey.get(key) ?? []), leaseId]);
    const pipeline = this.#redis.pipeline();
    for (const [key, leaseIds] of byKey) (pipeline as unknown as LimitCommands).refreshLeases(key, this.#leaseMs, ...leaseIds);
    // A failed renewal is tried again at the next interval; a lease missed for a whole TTL frees its slot, never more.
    await pipeline.exec().catch(() => undefined);
  }

  #key(kind: string, name: string, client: string): string {
    // The client in a hash tag: a Redis Cluster keeps each client's keys on one node.
    return `${this.#prefix}${kind}:${name}:{${client}}`;
  }

  async #call<T>(command: () => Promise<T>): Promise<T> {
    try {
      return await command();
    } catch (error) {
      throw new ChatWaitError(
        'DEPENDENCY_UNAVAILABLE',
        'The rate limits cannot be checked now (Redis does not answer). Try again in a moment.',
        {
          cause: error,
          retryable: true,
          headers: { 'retry-after': '2' },
        },
      );
    }
  }
}
