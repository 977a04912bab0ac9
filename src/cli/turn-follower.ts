import { ApiClient, ApiError, CliError, ConnectionError, EXIT_CODES, toApiError, toConnectionError } from './api-client.js';
import { readSse } from './sse-reader.js';

/** The `start` event (one per connection; handlers see the first only). */
export interface StartEvent {
  type: 'start';
  context_id: string;
  turn_id: string;
  resumed: boolean;
  model: string;
}

/** The `end` event. */
export interface EndEvent {
  type: 'end';
  context_id: string;
  turn_id: string;
  final_output: string;
  token_count: number;
  finish_reason: 'stop' | 'cancelled' | 'interrupted' | 'error';
  model: string;
}

/** A `tool_call` event: the model calls a tool. */
export interface ToolCallEvent {
  type: 'tool_call';
  call_id: string;
  name: string;
  arguments: unknown;
}

/** A `tool_result` event: what a tool returned. */
export interface ToolResultEvent {
  type: 'tool_result';
  call_id: string;
  output: unknown;
}

/** What a followed turn reports; every event arrives once, however often the connection dropped. */
export interface TurnHandlers {
  onStart?(event: StartEvent): void;
  /** A token not received before, in order: index 0, 1, 2, … */
  onToken?(token: string, index: number): void;
  onToolCall?(event: ToolCallEvent): void;
  onToolResult?(event: ToolResultEvent): void;
  /** The whole stored answer, sent instead of tokens once the turn has left the server's replay log. */
  onResync?(finalOutput: string): void;
  /** Each accepted event, exactly as the server serialized it (the repeated `start` of a resumed connection excluded). */
  onEvent?(data: string): void;
  /** The connection dropped; the next attempt comes after `delayMs`. */
  onReconnect?(info: { attempt: number; delayMs: number; reason: string }): void;
}

/** One message to send; the same `clientMessageId` makes a repeated send join the turn it started instead of asking again. */
export interface TurnRequest {
  message: string;
  contextId: string;
  clientMessageId: string;
}

/** Options of following a turn. */
export interface FollowOptions {
  signal?: AbortSignal;
  /** Attempts in a row without receiving an event before giving up. */
  maxAttempts?: number;
  /** A connection that receives nothing, not even a `: ping`, for this long counts as dropped. */
  idleTimeoutMs?: number;
}

const DEFAULT_MAX_ATTEMPTS = 10;
const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/**
 * Sends a message over the streaming route and follows its turn to the `end` event, resuming with
 * `Last-Event-ID: <turn_id>/<position>` (with backoff) whenever the connection drops. Returns the
 * `end` event; an `error` event throws ApiError.
 */
export async function followTurn(client: ApiClient, request: TurnRequest, handlers: TurnHandlers, options: FollowOptions = {}): Promise<EndEvent> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const body = { message: request.message, context_id: request.contextId, client_message_id: request.clientMessageId };
  let lastEventId: string | undefined;
  let lastPosition = -1;
  let nextTokenIndex = 0;
  let started = false;
  let reachedServer = false;
  let attempt = 0;
  for (;;) {
    const connection = new AbortController();
    const stopConnection = () => connection.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', stopConnection, { once: true });
    let idleTimer: NodeJS.Timeout | undefined;
    let idle = false;
    const armIdleTimer = () => {
      clearTimeout(idleTimer);
      idleTimer = setTimeout(() => {
        idle = true;
        connection.abort();
      }, options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS);
    };
    try {
      armIdleTimer();
      const response = await client.fetch('/api/v1/chat/streaming', {
        method: 'POST',
        body,
        headers: { accept: 'text/event-stream', ...(lastEventId ? { 'last-event-id': lastEventId } : {}) },
        signal: connection.signal,
      });
      reachedServer = true;
      if (!response.ok) throw toApiError(response, await response.text());
      if (!response.headers.get('content-type')?.startsWith('text/event-stream') || !response.body) {
        throw new ApiError(response.status, 'BAD_RESPONSE', `The server at ${client.connection.url} did not answer with an event stream. Is --url right?`);
      }
      for await (const item of readSse(response.body)) {
        armIdleTimer();
        if (item.kind !== 'event') continue;
        attempt = 0;
        const data = parseEvent(item.data);
        const position = positionOf(item.id);
        if (data.type === 'start') {
          if (item.id) lastEventId = item.id;
          if (!started) {
            started = true;
            handlers.onStart?.(data as unknown as StartEvent);
            handlers.onEvent?.(item.data);
          }
          continue;
        }
        // Anything at or before the position already held was delivered on an earlier connection.
        if (position !== undefined && position <= lastPosition) continue;
        if (data.type === 'token') {
          const index = data.token_index;
          if (typeof index !== 'number' || index < nextTokenIndex) continue;
          if (index > nextTokenIndex) {
            throw new CliError(`The stream skipped tokens (expected token_index ${nextTokenIndex}, got ${index}).`, EXIT_CODES.FAILED);
          }
          nextTokenIndex++;
          handlers.onEvent?.(item.data);
          handlers.onToken?.(String(data.token), index);
        } else {
          handlers.onEvent?.(item.data);
          if (data.type === 'tool_call') handlers.onToolCall?.(data as unknown as ToolCallEvent);
          else if (data.type === 'tool_result') handlers.onToolResult?.(data as unknown as ToolResultEvent);
          else if (data.type === 'resync') handlers.onResync?.(String(data.final_output ?? ''));
          else if (data.type === 'end') return data as unknown as EndEvent;
          else if (data.type === 'error') {
            throw new ApiError(0, String(data.error_code ?? 'ERROR'), String(data.message ?? 'The answer failed.'));
          }
        }
        if (position !== undefined) lastPosition = position;
        if (item.id) lastEventId = item.id;
      }
      throw new ConnectionError('The stream ended before the answer did.');
    } catch (caught) {
      if (options.signal?.aborted) throw caught;
      const error = idle
        ? new ConnectionError(`Nothing arrived from ${client.connection.url} for ${Math.round((options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS) / 1000)} s.`)
        : caught instanceof CliError
          ? caught
          : toConnectionError(caught, client.connection.url);
      if (!shouldRetry(error, reachedServer || attempt > 0) || attempt >= maxAttempts - 1) throw error;
      const delayMs = backoff(attempt++, error instanceof ApiError ? error.retryAfterSeconds : undefined);
      handlers.onReconnect?.({ attempt, delayMs, reason: error.message });
      await sleep(delayMs, options.signal);
      if (options.signal?.aborted) throw options.signal.reason;
    } finally {
      clearTimeout(idleTimer);
      options.signal?.removeEventListener('abort', stopConnection);
      connection.abort();
    }
  }
}

/** The answer of `POST /api/v1/chat/wait`. */
export interface WaitAnswer {
  message: string;
  finish_reason?: string;
  context_id: string;
  token_count: number;
  processing_time_ms: number;
  turn_id: string;
  model: string;
}

/**
 * Sends a message over the wait route. A dropped connection is retried with the same
 * `client_message_id`, which joins the turn already running (or returns its stored answer).
 */
export async function waitForAnswer(
  client: ApiClient,
  request: TurnRequest,
  options: FollowOptions & { onReconnect?: TurnHandlers['onReconnect'] } = {},
): Promise<{ answer: WaitAnswer; raw: string }> {
  const maxAttempts = options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS;
  const body = { message: request.message, context_id: request.contextId, client_message_id: request.clientMessageId };
  for (let attempt = 0; ; ) {
    try {
      const response = await client.fetch('/api/v1/chat/wait', { method: 'POST', body, signal: options.signal });
      let text: string;
      try {
        text = await response.text();
      } catch (error) {
        throw toConnectionError(error, client.connection.url);
      }
      if (!response.ok) throw toApiError(response, text);
      try {
        return { answer: JSON.parse(text) as WaitAnswer, raw: text };
      } catch {
        throw new ApiError(response.status, 'BAD_RESPONSE', `The server at ${client.connection.url} did not answer with JSON. Is --url right?`);
      }
    } catch (error) {
      if (options.signal?.aborted || !(error instanceof CliError)) throw error;
      if (!shouldRetry(error, attempt > 0) || attempt >= maxAttempts - 1) throw error;
      const delayMs = backoff(attempt++, error instanceof ApiError ? error.retryAfterSeconds : undefined);
      options.onReconnect?.({ attempt, delayMs, reason: error.message });
      await sleep(delayMs, options.signal);
      if (options.signal?.aborted) throw options.signal.reason;
    }
  }
}

/** A turn's position from an SSE id `<turn_id>/<position>`; undefined for `start` and `resync`. */
export function positionOf(id: string | undefined): number | undefined {
  const match = id === undefined ? null : /\/(\d+)$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

/**
 * Whether to try again: a rate limit or a busy server always; a broken connection unless the very
 * first request could not even connect (then the server is not there, and saying so at once is better).
 */
function shouldRetry(error: CliError, connectedBefore: boolean): boolean {
  if (error instanceof ApiError) return error.retryable;
  if (error instanceof ConnectionError) return connectedBefore || !error.refused;
  return false;
}

/** 250 ms, 500 ms, 1 s … up to 5 s, with jitter; a server's Retry-After wins. */
function backoff(attempt: number, retryAfterSeconds?: number): number {
  if (retryAfterSeconds !== undefined) return Math.min(retryAfterSeconds, 60) * 1000;
  const base = Math.min(5000, 250 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

function sleep(milliseconds: number, signal: AbortSignal | undefined): Promise<void> {
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

function parseEvent(data: string): Record<string, unknown> & { type?: unknown; token?: unknown; token_index?: unknown } {
  try {
    const parsed: unknown = JSON.parse(data);
    if (parsed !== null && typeof parsed === 'object') return parsed as Record<string, unknown>;
  } catch {
    // reported below
  }
  throw new ApiError(0, 'BAD_RESPONSE', 'The server sent an event that is not JSON.');
}
