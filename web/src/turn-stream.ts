import { ApiError, apiHeaders, toApiError } from './api';

/** The `start` event. */
export interface StartEvent {
  turn_id: string;
  context_id: string;
  model: string;
  resumed: boolean;
}

/** The `end` event. */
export interface EndEvent {
  turn_id: string;
  final_output: string;
  token_count: number;
  finish_reason: 'stop' | 'cancelled' | 'interrupted' | 'error';
  model: string;
  usage: { input_tokens: number; output_tokens: number; total_tokens: number } | null;
  timings: { ttft_ms: number | null; total_ms: number } | null;
}

/** What a followed turn reports, in order. */
export interface TurnStreamHandlers {
  onStart(event: StartEvent): void;
  /** A token the page does not have yet (duplicates after a resume are filtered out here). */
  onToken(token: string, index: number): void;
  /** A tool call the model made (the same call_id may come again after a resume; keep the first). */
  onToolCall(step: { callId: string; name: string; arguments: string }): void;
  /** A tool call's outcome. */
  onToolResult(result: { callId: string; output: string; isError: boolean; durationMs: number }): void;
  /** The whole stored answer, when the turn had left the replay log. */
  onResync(finalOutput: string): void;
  onEnd(event: EndEvent): void;
  /** The turn failed after the stream began (an `error` event). */
  onFailure(error: ApiError): void;
  onConnection(state: 'connected' | 'reconnecting'): void;
}

/** What to follow: a new send (idempotent through client_message_id), or a turn to resume from an event id. */
export interface TurnStreamRequest {
  message: string;
  contextId: string;
  clientMessageId?: string;
  /** `<turn_id>/<position>`: resume after that event (`<turn_id>/start` replays the whole turn). */
  lastEventId?: string;
  /** Tokens the page already holds for this turn. */
  tokensHeld?: number;
}

const MAX_ATTEMPTS = 30;

/**
 * Follows one turn over SSE until it ends, surviving dropped connections: it reconnects with
 * backoff (and at once when the browser comes back online or the tab becomes visible), resuming
 * with `Last-Event-ID`, and never hands the same token twice.
 */
export async function followTurn(request: TurnStreamRequest, handlers: TurnStreamHandlers, signal: AbortSignal): Promise<void> {
  let lastEventId = request.lastEventId;
  let nextIndex = request.tokensHeld ?? 0;
  let attempt = 0;
  for (;;) {
    try {
      const response = await fetch('/api/v1/chat/streaming', {
        method: 'POST',
        headers: apiHeaders(lastEventId ? { 'last-event-id': lastEventId } : {}),
        body: JSON.stringify({ message: request.message, context_id: request.contextId, client_message_id: request.clientMessageId }),
        signal,
      });
      if (!response.ok) throw await toApiError(response);
      handlers.onConnection('connected');
      for await (const event of readEvents(response.body!)) {
        attempt = 0;
        if (event.id) lastEventId = event.id;
        const data = event.data as { type: string; token?: string; token_index?: number };
        switch (data.type) {
          case 'start':
            handlers.onStart(data as unknown as StartEvent);
            break;
          case 'token':
            if (data.token_index === nextIndex) {
              handlers.onToken(data.token!, nextIndex);
              nextIndex++;
            }
            break;
          case 'tool_call': {
            const call = data as unknown as { call_id: string; name: string; arguments: string };
            handlers.onToolCall({ callId: call.call_id, name: call.name, arguments: call.arguments });
            break;
          }
          case 'tool_result': {
            const result = data as unknown as { call_id: string; output: string; is_error: boolean; duration_ms: number };
            handlers.onToolResult({ callId: result.call_id, output: result.output, isError: result.is_error, durationMs: result.duration_ms });
            break;
          }
          case 'resync':
            handlers.onResync((data as unknown as { final_output: string }).final_output);
            break;
          case 'end':
            handlers.onEnd(data as unknown as EndEvent);
            return;
          case 'error': {
            const failure = data as unknown as { error_code: string; message: string; retryable: boolean };
            handlers.onFailure(new ApiError(failure.retryable ? 503 : 500, failure.error_code, failure.message));
            return;
          }
        }
      }
      throw new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
    } catch (error) {
      if (signal.aborted) return;
      const apiError = error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
      if (!apiError.retryable || attempt >= MAX_ATTEMPTS) throw apiError;
      handlers.onConnection('reconnecting');
      await pause(backoff(attempt++, apiError.retryAfterSeconds), signal);
      if (signal.aborted) return;
    }
  }
}

/** 0.5 s, 1 s, 2 s … up to 8 s, with jitter; a server's Retry-After wins. */
function backoff(attempt: number, retryAfterSeconds?: number): number {
  if (retryAfterSeconds !== undefined) return retryAfterSeconds * 1000;
  const base = Math.min(8000, 500 * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

/** Waits, but wakes up at once when the browser comes back online or the tab becomes visible. */
function pause(milliseconds: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      window.removeEventListener('online', done);
      document.removeEventListener('visibilitychange', onVisible);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const onVisible = () => {
      if (document.visibilityState === 'visible') done();
    };
    const timer = setTimeout(done, milliseconds);
    window.addEventListener('online', done);
    document.addEventListener('visibilitychange', onVisible);
    signal.addEventListener('abort', done);
  });
}

/** Parses an SSE body into events (id + JSON data); comments and retry fields are skipped. */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<{ id: string | undefined; data: unknown }> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  let id: string | undefined;
  let data = '';
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += decoder.decode(value, { stream: true });
      let newline: number;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline).replace(/\r$/, '');
        buffer = buffer.slice(newline + 1);
        if (line === '') {
          if (data !== '') yield { id, data: JSON.parse(data) };
          data = '';
          id = undefined;
        } else if (line.startsWith('data:')) {
          data += line.slice(line.startsWith('data: ') ? 6 : 5);
        } else if (line.startsWith('id:')) {
          id = line.slice(line.startsWith('id: ') ? 4 : 3);
        }
      }
    }
  } finally {
    // Closes the connection when the consumer stops early (after `end`, or on abort).
    reader.cancel().catch(() => undefined);
  }
}
