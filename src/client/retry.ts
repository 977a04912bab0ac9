import { ApiError } from './api-error.js';

// When and how soon the clients try again: one backoff, one decision, for the stream and the wait.

/** The longest wait between two attempts, however often they failed. */
const MAX_BACKOFF_MS = 5000;
/** A server's Retry-After is honoured up to this many seconds. */
const MAX_RETRY_AFTER_SECONDS = 60;

/** How long to wait before attempt `attempt + 1`: 250 ms, 500 ms, 1 s … up to 5 s, with jitter; a server's Retry-After wins. */
export function backoffDelay(attempt: number, retryAfterSeconds?: number, random: () => number = Math.random): number {
  if (retryAfterSeconds !== undefined) return Math.min(retryAfterSeconds, MAX_RETRY_AFTER_SECONDS) * 1000;
  const base = Math.min(MAX_BACKOFF_MS, 250 * 2 ** attempt);
  // Half fixed, half random: clients cut off together do not all come back at the same moment.
  return base / 2 + random() * (base / 2);
}

/**
 * Whether to send the same request again after `error`: when it is retryable (the server's
 * `retryable`, else its status), except a connection refused before anything ever answered (then
 * nobody is listening, and saying so at once beats a minute of retries), a busy conversation and a 500.
 */
export function shouldSendAgain(error: ApiError, answeredBefore: boolean): boolean {
  if (!error.retryable) return false;
  // Worth a try later, but not by itself: a busy conversation (409) waits for the person, who may cancel
  // the answer under way; our own failure (500) is shown at once, with the page's Retry button.
  if (error.status === 409 || error.status === 500) return false;
  return !error.refused || answeredBefore;
}

/**
 * The same for a wait request, whose error answer may be the turn's own failure (500, 502, 504): sent
 * again with the same client_message_id, the server would only repeat that failure ("already failed"),
 * so only a missing answer and a refusal before the turn (429, 503) are worth sending again.
 */
export function shouldSendWaitAgain(error: ApiError, answeredBefore: boolean): boolean {
  if (error.status === 500 || error.status === 502 || error.status === 504) return false;
  return shouldSendAgain(error, answeredBefore);
}

/** Waits, waking early (without an error) when `signal` aborts. */
export function sleep(milliseconds: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, milliseconds);
    signal?.addEventListener('abort', done, { once: true });
  });
}

/** How a failed attempt is retried. */
export interface RetryOptions {
  /** Attempts in all, the first included. */
  maxAttempts: number;
  signal?: AbortSignal | undefined;
  /** Waits between attempts (the page also wakes when the browser comes back online). */
  sleep?: ((milliseconds: number, signal?: AbortSignal) => Promise<void>) | undefined;
  /** Told before each wait. */
  onRetry?: ((info: { attempt: number; delayMs: number; error: ApiError }) => void) | undefined;
}

/**
 * Runs `send` until it succeeds, sending again (with backoff) while `retry(error)` allows it and
 * attempts remain. `send` throws ApiError for failures that may be retried; anything else ends at once.
 */
export async function withRetries<T>(
  send: () => Promise<T>,
  retry: (error: ApiError, attempt: number) => boolean,
  options: RetryOptions,
): Promise<T> {
  const wait = options.sleep ?? sleep;
  for (let attempt = 0; ;) {
    try {
      return await send();
    } catch (error) {
      if (options.signal?.aborted || !(error instanceof ApiError)) throw error;
      if (attempt >= options.maxAttempts - 1 || !retry(error, attempt)) throw error;
      const delayMs = backoffDelay(attempt++, error.retryAfterSeconds);
      options.onRetry?.({ attempt, delayMs, error });
      await wait(delayMs, options.signal);
      if (options.signal?.aborted) throw options.signal.reason;
    }
  }
}
