/** What a rate limiter answered for one request. */
export interface RateDecision {
  allowed: boolean;
  /** The sustained limit, in requests per minute. */
  limit: number;
  remaining: number;
  /** Seconds until the bucket is full again. */
  resetSeconds: number;
  /** Seconds to wait before the next request can pass (0 when allowed). */
  retryAfterSeconds: number;
}

/**
 * Per-client limits: a token bucket of requests, and a count of open streams. The memory
 * implementation serves one process; a Redis one can replace it behind this interface.
 */
export interface RateLimiter {
  /** Takes one request from a client's bucket. */
  consume(client: string): Promise<RateDecision> | RateDecision;
  /** Counts one more open stream for a client; false when it already has the most allowed. */
  acquireStream(client: string): Promise<boolean> | boolean;
  releaseStream(client: string): void;
}

/** Options of the memory limiter. */
export interface RateLimitOptions {
  requestsPerMinute: number;
  burst: number;
  maxStreams: number;
}

interface Bucket {
  tokens: number;
  updated: number;
}

/** How often idle, full buckets are forgotten, so memory follows the number of active clients. */
const SWEEP_INTERVAL_MS = 60_000;

/** Token buckets and stream counts in this process's memory. */
export class MemoryRateLimiter implements RateLimiter {
  readonly #options: RateLimitOptions;
  readonly #capacity: number;
  readonly #perMillisecond: number;
  readonly #buckets = new Map<string, Bucket>();
  readonly #streams = new Map<string, number>();
  readonly #sweeper: NodeJS.Timeout;

  constructor(options: RateLimitOptions) {
    this.#options = options;
    this.#capacity = Math.max(1, options.burst);
    this.#perMillisecond = options.requestsPerMinute / 60_000;
    this.#sweeper = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
    this.#sweeper.unref();
  }

  consume(client: string, now = Date.now()): RateDecision {
    const limit = this.#options.requestsPerMinute;
    if (limit === 0) return { allowed: true, limit, remaining: 0, resetSeconds: 0, retryAfterSeconds: 0 };
    const bucket = this.#refill(client, now);
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    return {
      allowed,
      limit,
      remaining: Math.floor(bucket.tokens),
      resetSeconds: Math.ceil((this.#capacity - bucket.tokens) / this.#perMillisecond / 1000),
      retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil((1 - bucket.tokens) / this.#perMillisecond / 1000)),
    };
  }

  acquireStream(client: string): boolean {
    if (this.#options.maxStreams === 0) return true;
    const open = this.#streams.get(client) ?? 0;
    if (open >= this.#options.maxStreams) return false;
    this.#streams.set(client, open + 1);
    return true;
  }

  releaseStream(client: string): void {
    const open = this.#streams.get(client) ?? 0;
    if (open <= 1) this.#streams.delete(client);
    else this.#streams.set(client, open - 1);
  }

  /** How many clients have a bucket or an open stream (for tests of the sweep). */
  get trackedClients(): number {
    return new Set([...this.#buckets.keys(), ...this.#streams.keys()]).size;
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

/** The RateLimit-* headers (IETF draft) and, when refused, Retry-After. */
export function rateLimitHeaders(decision: RateDecision, burst: number): Record<string, string> {
  const headers: Record<string, string> = {
    'ratelimit-limit': String(decision.limit),
    'ratelimit-remaining': String(decision.remaining),
    'ratelimit-reset': String(decision.resetSeconds),
    'ratelimit-policy': `${decision.limit};w=60;burst=${burst}`,
  };
  if (!decision.allowed) headers['retry-after'] = String(decision.retryAfterSeconds);
  return headers;
}
