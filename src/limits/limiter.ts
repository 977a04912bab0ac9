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

/** A token bucket per client: `burst` requests at once, refilled at `requestsPerMinute`. */
export interface RateLimiter {
  /** Takes one request from a client's bucket. */
  consume(client: string): Promise<RateDecision>;
}

/** Gives a slot back; calling it again does nothing. */
export type Release = () => void;

/** At most `max` things at once per client (open streams, generating turns), each held as a lease. */
export interface ConcurrencyLimiter {
  /** Takes one of the client's slots; undefined when it holds them all. */
  acquire(client: string): Promise<Release | undefined>;
}

/** The limits of one instance, wherever they are kept. */
export interface Limiters {
  /** Where the limits are kept, as `/health` names it: this process's memory, or Redis (shared by every instance). */
  readonly backend: 'memory' | 'redis';
  /** Resolves once what the limits are kept in answers; rejects with 503 DEPENDENCY_UNAVAILABLE (within about a second) while it does not. */
  ping(): Promise<void>;
  /** New turns (messages to the model). */
  turns: RateLimiter;
  /** Other API calls. */
  api: RateLimiter;
  /** Open streams per client. */
  streams: ConcurrencyLimiter;
  /** Turns generating per client. */
  generating: ConcurrencyLimiter;
  /** Stops timers and closes connections. */
  close(): Promise<void>;
}

/** Other API calls (lists, renames) are cheap: they get this many times the model request rate, and burst. */
export const API_RATE_FACTOR = 10;

/** A bucket's shape. */
export interface BucketOptions {
  requestsPerMinute: number;
  burst: number;
}

/** What the limits are built from. */
export interface LimitsOptions {
  turns: BucketOptions;
  api: BucketOptions;
  maxStreams: number;
  maxGenerating: number;
}

/** The limits the variables ask for (RATE_LIMIT_*, MAX_STREAMS_PER_CLIENT, MAX_GENERATING_TURNS_PER_CLIENT). */
export function limitsOptionsOf(config: {
  RATE_LIMIT_REQUESTS_PER_MINUTE: number;
  RATE_LIMIT_BURST: number;
  MAX_STREAMS_PER_CLIENT: number;
  MAX_GENERATING_TURNS_PER_CLIENT: number;
}): LimitsOptions {
  const rpm = config.RATE_LIMIT_REQUESTS_PER_MINUTE;
  const burst = config.RATE_LIMIT_BURST;
  return {
    turns: { requestsPerMinute: rpm, burst },
    api: { requestsPerMinute: rpm * API_RATE_FACTOR, burst: burst * API_RATE_FACTOR },
    maxStreams: config.MAX_STREAMS_PER_CLIENT,
    maxGenerating: config.MAX_GENERATING_TURNS_PER_CLIENT,
  };
}

/** How many tokens a bucket holds when full (at least one, so a burst of 0 still lets the rate through). */
export function capacityOf(options: BucketOptions): number {
  return Math.max(1, options.burst);
}

/** The decision for a bucket left with `tokens` after a request was `allowed` or not: one formula for every backend. */
export function decisionOf(options: BucketOptions, tokens: number, allowed: boolean): RateDecision {
  const limit = options.requestsPerMinute;
  // Tokens × 60 ÷ per minute: whole numbers stay whole (a float per-millisecond rate would round 30 s up to 31).
  return {
    allowed,
    limit,
    remaining: Math.floor(tokens),
    resetSeconds: Math.ceil(((capacityOf(options) - tokens) * 60) / limit),
    retryAfterSeconds: allowed ? 0 : Math.max(1, Math.ceil(((1 - tokens) * 60) / limit)),
  };
}

/** The decision of a limit that is off (a rate of 0). */
export function unlimited(limit: number): RateDecision {
  return { allowed: true, limit, remaining: 0, resetSeconds: 0, retryAfterSeconds: 0 };
}
