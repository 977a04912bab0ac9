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

interface Bucket {
  tokens: number;
  updated: number;
}

/** How often idle, full buckets are forgotten, so memory follows the number of active clients. */
const SWEEP_INTERVAL_MS = 60_000;

/** Token buckets in this process's memory (one instance: limits are per process). */
export class MemoryRateLimiter implements RateLimiter {
  readonly #options: BucketOptions;
  readonly #capacity: number;
  readonly #perMillisecond: number;
  readonly #buckets = new Map<string, Bucket>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: BucketOptions) {
    this.#options = options;
    this.#capacity = capacityOf(options);
    this.#perMillisecond = options.requestsPerMinute / 60_000;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  async consume(client: string): Promise<RateDecision> {
    return this.consumeAt(client, Date.now());
  }

  /** `consume` at a given time (for tests of the refill). */
  consumeAt(client: string, now: number): RateDecision {
    if (this.#options.requestsPerMinute === 0) return unlimited(0);
    const bucket = this.#refill(client, now);
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    return decisionOf(this.#options, bucket.tokens, allowed);
  }

  /** How many clients have a bucket (for tests of the sweep). */
  get trackedClients(): number {
    return this.#buckets.size;
  }

  close(): void {
    clearInterval(this.#sweeper);
  }

  #refill(client: string, now: number): Bucket {
    let bucket = this.#buckets.get(client);
    if (!bucket) {
      bucket = { tokens: this.#capacity, updated: now };
      this.#buckets.set(client, bucket);
      return bucket;
    }
    bucket.tokens = Math.min(this.#capacity, bucket.tokens + (now - bucket.updated) * this.#perMillisecond);
    bucket.updated = now;
    return bucket;
  }

  #sweep(now = Date.now()): void {
    for (const [client, bucket] of this.#buckets) {
      if (bucket.tokens + (now - bucket.updated) * this.#perMillisecond >= this.#capacity) this.#buckets.delete(client);
    }
  }
}

/** Slots counted in this process's memory; 0 means no cap. */
export class MemoryConcurrencyLimiter implements ConcurrencyLimiter {
  readonly #max: number;
  readonly #held = new Map<string, number>();

  constructor(max: number) {
    this.#max = max;
  }

  async acquire(client: string): Promise<Release | undefined> {
    return this.acquireNow(client);
  }

  /** `acquire`, decided before it returns: concurrent callers in this process cannot both pass the cap. */
  acquireNow(client: string): Release | undefined {
    const held = this.#held.get(client) ?? 0;
    if (this.#max > 0 && held >= this.#max) return undefined;
    this.#held.set(client, held + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#held.get(client) ?? 1) - 1;
      if (left > 0) this.#held.set(client, left);
      else this.#held.delete(client);
    };
  }

  /** How many clients hold a slot (for tests). */
  get trackedClients(): number {
    return this.#held.size;
  }
}

/** The limits of a single instance, in its memory. */
export function createMemoryLimiters(options: LimitsOptions): Limiters {
  const turns = new MemoryRateLimiter(options.turns);
  const api = new MemoryRateLimiter(options.api);
  return {
    turns,
    api,
    streams: new MemoryConcurrencyLimiter(options.maxStreams),
    generating: new MemoryConcurrencyLimiter(options.maxGenerating),
    backend: 'memory',
    async ping() {},
    async close() {
      turns.close();
      api.close();
    },
  };
}
