import type { StreamEvent } from '../protocol/events.js';
import { parseEventId } from '../protocol/event-id.js';
import { ApiError, readApiError, toNetworkError } from './api-error.js';
import { backoffDelay, shouldSendAgain, sleep as plainSleep } from './retry.js';
import { readSse } from './sse-parser.js';

/** What the follower reports about its connection, between the turn's events. */
export type ConnectionEvent =
  /** An attempt got its event stream (the first one, and each one after a drop). */
  | { type: 'connected' }
  /** The connection failed; the next attempt comes after `delayMs`. */
  | { type: 'reconnecting'; attempt: number; delayMs: number; error: ApiError };

/** What following a turn yields: the turn's events, each once and in order, and connection news. */
export type FollowEvent = StreamEvent | ConnectionEvent;

/** The message to send; the same `clientMessageId` makes a repeated send join the turn it started instead of asking again. */
export interface FollowTurnRequest {
  message: string;
  contextId: string;
  clientMessageId?: string | undefined;
}

/** Options of following a turn. */
export interface FollowTurnOptions {
  /** The streaming route's URL (absolute, or relative to the page). */
  url: string;
  /** Extra headers of every attempt (the API key). */
  headers?: Record<string, string> | (() => Record<string, string>);
  /** Resume after this event (`<turn_id>/<position>`; `<turn_id>/start` replays the whole turn) instead of starting. */
  lastEventId?: string | undefined;
  signal?: AbortSignal | undefined;
  /** Attempts in a row without receiving an event before giving up. */
  maxAttempts?: number;
  /** A connection that receives nothing, not even a `: ping`, for this long counts as dropped. */
  idleTimeoutMs?: number;
  /** Waits between attempts (the page's also wakes when the browser comes back online). */
  sleep?: (milliseconds: number, signal?: AbortSignal) => Promise<void>;
  /** Added to the description of an answer that is not ChatWait's (the CLI says "Is --url right?"). */
  hint?: string;
  /** Called with each accepted event's data exactly as the server serialized it, just before the event is yielded. */
  onEventData?: (data: string) => void;
}

const DEFAULT_MAX_ATTEMPTS = 10;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/**
 * Sends a message over the streaming route and yields its turn's events until `end` or `error`
 * (the last event yielded), surviving dropped connections: it reconnects with backoff, honouring
 * Retry-After and the server's `retryable`, resumes with `Last-Event-ID`, and never yields an event
 * twice (an event at or before the position already held is dropped; a `start` comes once). Throws
 * ApiError when it gives up, and the signal's reason when aborted.
 */
export async function* followTurn(request: FollowTurnRequest, options: FollowTurnOptions): AsyncGenerator<FollowEvent, void, undefined> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const idleTimeoutMs = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const wait = options.sleep ?? plainSleep;
  const { signal } = options;
  const body = JSON.stringify({ message: request.message, context_id: request.contextId, client_message_id: request.clientMessageId });
  let lastEventId = options.lastEventId;
  let lastPosition = -1;
  let nextTokenIndex = 0;
  let started = false;
  let answeredBefore = false;
  let attempt = 0;
  for (;;) {
    signal?.throwIfAborted();
    const connection = new AbortController();
    const stopConnection = () => connection.abort(signal?.reason);
    signal?.addEventListener('abort', stopConnection, { once: true });
    let idle = false;
    let idleTimer: ReturnType<typeof setTimeout> | undefined;
    const armIdleTimer = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idle = true;
        connection.abort();
      }, idleTimeoutMs);
    };
    let failure: ApiError;
    try {
      armIdleTimer();
      const extra = typeof options.headers === 'function' ? options.headers() : options.headers;
      const response = await fetch(options.url, {
        method: 'POST',
        headers: {
          ...extra,
          'content-type': 'application/json',
          accept: 'text/event-stream',
          ...(lastEventId ? { 'last-event-id': lastEventId } : {}),
        },
        body,
        signal: connection.signal,
      });
      answeredBefore = true;
      if (!response.ok) throw await readApiError(response, options.hint);
      if (!response.headers.get('content-type')?.startsWith('text/event-stream') || !response.body) {
        void response.body?.cancel().catch(() => undefined);
        throw new ApiError(
          response.status,
          'BAD_RESPONSE',
          `The server did not answer with an event stream.${options.hint ? ` ${options.hint}` : ''}`,
          {
            retryable: false,
          },
        );
      }
      yield { type: 'connected' };
      for await (const item of readSse(response.body)) {
        armIdleTimer();
        if (item.kind !== 'event') continue;
        attempt = 0;
        const event = toStreamEvent(item.data);
        if (event.type === 'start') {
          if (item.id) lastEventId = item.id;
          if (!started) {
            started = true;
            options.onEventData?.(item.data);
            yield event;
          }
          continue;
        }
        // Anything at or before the position already held was delivered on an earlier connection.
        const position = item.id === undefined ? undefined : parseEventId(item.id)?.position;
        if (typeof position === 'number' && position <= lastPosition) continue;
        if (event.type === 'token') {
          if (event.token_index < nextTokenIndex) continue;
          if (event.token_index > nextTokenIndex) {
            throw new ApiError(
              0,
              'STREAM_GAP',
              `The stream skipped tokens (expected token_index ${nextTokenIndex}, got ${event.token_index}).`,
              { retryable: false },
            );
          }
          nextTokenIndex++;
        }
        if (typeof position === 'number') lastPosition = position;
        if (item.id) lastEventId = item.id;
        options.onEventData?.(item.data);
        yield event;
        // `end` and `error` close the turn: nothing comes after them.
        if (event.type === 'end' || event.type === 'error') return;
      }
      throw new ApiError(0, 'NETWORK_ERROR', 'The stream ended before the answer did.');
    } catch (caught) {
      if (signal?.aborted) throw signal.reason;
      failure = idle
        ? new ApiError(0, 'IDLE_TIMEOUT', `Nothing arrived for ${Math.round(idleTimeoutMs / 1000)} s.`)
        : caught instanceof ApiError
          ? caught
          : toNetworkError(caught);
    } finally {
      clearTimeout(idleTimer);
      signal?.removeEventListener('abort', stopConnection);
      connection.abort();
    }
    if (!shouldSendAgain(failure, answeredBefore || attempt > 0) || attempt >= maxAttempts - 1) throw failure;
    const delayMs = backoffDelay(attempt++, failure.retryAfterSeconds);
    yield { type: 'reconnecting', attempt, delayMs, error: failure };
    await wait(delayMs, signal);
  }
}

/** The event in an SSE message's data; checked as far as following depends on it (the rest is the server's contract). */
function toStreamEvent(data: string): StreamEvent {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    throw new ApiError(0, 'BAD_RESPONSE', 'The server sent an event that is not JSON.', { retryable: false });
  }
  const fields = parsed as { type?: unknown; token?: unknown; token_index?: unknown } | null;
  if (fields === null || typeof fields !== 'object' || typeof fields.type !== 'string') {
    throw new ApiError(0, 'BAD_RESPONSE', 'The server sent an event without a type.', { retryable: false });
  }
  if (fields.type === 'token' && (typeof fields.token !== 'string' || typeof fields.token_index !== 'number')) {
    throw new ApiError(0, 'BAD_RESPONSE', 'The server sent a token event without its token or token_index.', { retryable: false });
  }
  return parsed as StreamEvent;
}
