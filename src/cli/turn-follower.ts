import { ApiError as ClientApiError, toApiError, toNetworkError } from '../client/api-error.js';
import { followTurn as followTurnEvents } from '../client/follow-turn.js';
import { shouldSendWaitAgain, withRetries } from '../client/retry.js';
import type { EndEvent, StartEvent, ToolCallEvent, ToolResultEvent } from '../protocol/events.js';
import type { FinishReason } from '../protocol/turn.js';
import { ApiError, CliError, ConnectionError, EXIT_CODES, toConnectionError, type ApiClient } from './api-client.js';

// The terminal's side of following a turn: the shared client (src/client/) does the following; this
// turns its events into handler calls and its failures into the CLI's errors and exit codes.

export type { EndEvent };

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
/** Added to an error that does not come in ChatWait's format: the address probably points elsewhere. */
const URL_HINT = 'Is --url right?';

/**
 * Sends a message over the streaming route and follows its turn to the `end` event, resuming with
 * `Last-Event-ID` (with backoff) whenever the connection drops. Returns the `end` event; an `error`
 * event throws ApiError.
 */
export async function followTurn(
  client: ApiClient,
  request: TurnRequest,
  handlers: TurnHandlers,
  options: FollowOptions = {},
): Promise<EndEvent> {
  const events = followTurnEvents(request, {
    url: client.urlOf('/api/v1/chat/streaming'),
    headers: client.headers(),
    signal: options.signal,
    maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
    ...(options.idleTimeoutMs === undefined ? {} : { idleTimeoutMs: options.idleTimeoutMs }),
    onEventData: handlers.onEvent,
    hint: URL_HINT,
  });
  try {
    for await (const event of events) {
      switch (event.type) {
        case 'start':
          handlers.onStart?.(event);
          break;
        case 'token':
          handlers.onToken?.(event.token, event.token_index);
          break;
        case 'tool_call':
          handlers.onToolCall?.(event);
          break;
        case 'tool_result':
          handlers.onToolResult?.(event);
          break;
        case 'resync':
          handlers.onResync?.(event.final_output);
          break;
        case 'end':
          return event;
        case 'error':
          throw new ApiError(0, event.error_code, event.message, undefined, undefined, event.retryable);
        case 'reconnecting':
          handlers.onReconnect?.({
            attempt: event.attempt,
            delayMs: event.delayMs,
            reason: toCliError(event.error, client.connection.url).message,
          });
          break;
      }
    }
  } catch (error) {
    throw error instanceof ClientApiError ? toCliError(error, client.connection.url) : error;
  }
  // The follower returns only after `end` or `error`, both handled above.
  throw new ConnectionError('The stream ended before the answer did.');
}

/** The answer of `POST /api/v1/chat/wait`. */
export interface WaitAnswer {
  message: string;
  finish_reason?: FinishReason;
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
  const url = client.connection.url;
  const body = JSON.stringify({ message: request.message, context_id: request.contextId, client_message_id: request.clientMessageId });
  const send = async (): Promise<{ answer: WaitAnswer; raw: string }> => {
    let response: Response;
    let text: string;
    try {
      response = await fetch(client.urlOf('/api/v1/chat/wait'), {
        method: 'POST',
        headers: client.headers({ 'content-type': 'application/json' }),
        body,
        signal: options.signal,
      });
      text = await response.text();
    } catch (error) {
      throw options.signal?.aborted ? error : toNetworkError(error);
    }
    if (!response.ok) throw toApiError(response, text, URL_HINT);
    try {
      return { answer: JSON.parse(text) as WaitAnswer, raw: text };
    } catch {
      throw new ClientApiError(response.status, 'BAD_RESPONSE', `The server at ${url} did not answer with JSON. ${URL_HINT}`, {
        retryable: false,
      });
    }
  };
  try {
    return await withRetries(send, (error, attempt) => shouldSendWaitAgain(error, attempt > 0), {
      maxAttempts: options.maxAttempts ?? DEFAULT_MAX_ATTEMPTS,
      signal: options.signal,
      onRetry: ({ attempt, delayMs, error }) => options.onReconnect?.({ attempt, delayMs, reason: toCliError(error, url).message }),
    });
  } catch (error) {
    throw error instanceof ClientApiError ? toCliError(error, url) : error;
  }
}

/** The CLI's error (and so its exit code) for a failure of the shared client, in the terminal's words. */
function toCliError(error: ClientApiError, url: string): CliError {
  switch (error.code) {
    case 'NETWORK_ERROR':
      return error.cause === undefined ? new ConnectionError(error.message) : toConnectionError(error.cause, url);
    case 'IDLE_TIMEOUT':
      return new ConnectionError(error.message.replace('Nothing arrived', `Nothing arrived from ${url}`));
    case 'STREAM_GAP':
      return new CliError(error.message, EXIT_CODES.FAILED);
    default:
      return new ApiError(error.status, error.code, error.message, error.requestId, error.retryAfterSeconds, error.retryable);
  }
}
