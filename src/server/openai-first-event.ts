import { ChatWaitError, ERROR_STATUS, type ErrorCode } from '../errors.js';
import type { ReplayBatch } from '../turns/turn-types.js';

// OpenAI answers a request that fails before its answer begins with an error status, not with a 200 and
// an error event, and OpenAI's SDKs give that status to the caller. A new turn's replay log starts with its
// first token (the role chunk is the route's own, not an event of the log), so a failure before any content
// (the provider refusing the key or the model, unreachable after its retries, rate limiting it) is the log's
// first entry. The route holds its headers until that entry, for FIRST_EVENT_HOLD_MS at most: the role chunk
// then leaves with the first token, so the first content comes no later; past the hold the stream begins,
// and a later failure (the response timeout) is an error event, as it is mid-answer.

/**
 * How long a new streamed turn's headers wait for its first event: past the default retry schedule
 * (2 retries from 500 ms, at most 1.5 s of backoff), so the usual failures before a token get a status.
 */
export const FIRST_EVENT_HOLD_MS = 2_000;

/** A turn's events once the first entry was waited for: the same batches, the first one included. */
export interface HeldEvents {
  events: AsyncIterable<ReplayBatch>;
  /** The turn's failure, when it failed before its first token: answer it as an error response. */
  failure: ChatWaitError | undefined;
}

/**
 * Waits for a new turn's first batch, for `holdMs` at most (or until `signal` aborts), and tells
 * whether it starts with the turn's failure. The batches are read once: `events` goes on from there.
 */
export async function holdFirstEvent(batches: AsyncIterable<ReplayBatch>, holdMs: number, signal: AbortSignal): Promise<HeldEvents> {
  const iterator = batches[Symbol.asyncIterator]();
  const first = iterator.next();
  let timer: NodeJS.Timeout | undefined;
  let onAbort: (() => void) | undefined;
  const waited = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), holdMs);
    onAbort = () => resolve(undefined);
    signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    const settled = await Promise.race([first, waited]);
    const failure = settled && !settled.done ? failureOf(settled.value) : undefined;
    if (failure) await iterator.return?.();
    return { events: continued(first, iterator), failure };
  } finally {
    clearTimeout(timer);
    signal.removeEventListener('abort', onAbort!);
  }
}

/** The first batch (awaited when the hold ended first), then the rest; leaving early closes the reader. */
async function* continued(first: Promise<IteratorResult<ReplayBatch>>, iterator: AsyncIterator<ReplayBatch>): AsyncGenerator<ReplayBatch> {
  try {
    for (let result = await first; !result.done; result = await iterator.next()) yield result.value;
  } finally {
    await iterator.return?.();
  }
}

/** The turn's failure when a batch's first unread entry is its `error` event. */
function failureOf(batch: ReplayBatch): ChatWaitError | undefined {
  const entry = batch.entries[batch.start];
  if (!entry) return undefined;
  const event = JSON.parse(entry.data) as { type: string; error_code?: string; message?: string; retryable?: boolean };
  if (event.type !== 'error') return undefined;
  const code: ErrorCode =
    event.error_code !== undefined && event.error_code in ERROR_STATUS ? (event.error_code as ErrorCode) : 'INTERNAL_ERROR';
  return new ChatWaitError(code, event.message ?? 'The answer failed.', { retryable: event.retryable });
}
