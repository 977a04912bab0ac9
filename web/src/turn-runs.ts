import { followTurn, type FollowEvent, type FollowTurnRequest } from '../../src/client/follow-turn';
import { shouldSendWaitAgain, withRetries } from '../../src/client/retry';
import { api, ApiError, apiHeaders } from './api';
import type { ChatAction } from './chat-reducer';
import { sleepUntilBack } from './sleep-until-back';

// Running one answer for the page: a streamed turn through the shared client, or a wait request;
// what happens is dispatched to chatReducer (chat-reducer.ts).

/** Attempts of a wait request in all: a lost answer is asked for again with the same client_message_id. */
const WAIT_ATTEMPTS = 3;
/** Reconnections in a row without an event before a streamed answer gives up. */
const STREAM_ATTEMPTS = 30;

/** The answer being written: where it goes, and how to stop it. */
export interface RunningTurn {
  messageId: string;
  abort: AbortController;
  turnId?: string;
  stopRequested: boolean;
}

/** Dispatches a turn's events: tokens once per animation frame (never per token), anything else at once. */
export interface EventBatcher {
  deliver(messageId: string, event: FollowEvent): void;
  /** Dispatches the tokens held back. */
  flush(): void;
  /** Drops the tokens held back (the conversation is being left). */
  clear(): void;
}

/** An event batcher dispatching to `dispatch`. */
export function createEventBatcher(dispatch: (action: ChatAction) => void): EventBatcher {
  const pending = new Map<string, FollowEvent[]>();
  let frame: number | undefined;
  const flush = () => {
    if (frame !== undefined) cancelAnimationFrame(frame);
    frame = undefined;
    for (const [messageId, events] of pending) dispatch({ type: 'streamed', messageId, events });
    pending.clear();
  };
  return {
    deliver(messageId, event) {
      if (event.type === 'token') {
        const queued = pending.get(messageId);
        // Pushed, not copied: a hidden tab gets no frames, and a long answer would otherwise cost O(n²).
        if (queued) queued.push(event);
        else pending.set(messageId, [event]);
        frame ??= requestAnimationFrame(flush);
        return;
      }
      // After the tokens before it, and without waiting for a frame: a hidden tab has none, and its answer still ends.
      flush();
      dispatch({ type: 'streamed', messageId, events: [event] });
    },
    flush,
    clear: () => pending.clear(),
  };
}

/** What running an answer tells the page. */
export interface TurnRunHooks {
  dispatch(action: ChatAction): void;
  batcher: EventBatcher;
  /** A turn started or ended: the conversation list may have changed. */
  onActivity(): void;
  onUnauthorized(): void;
}

/** Follows a turn over SSE into the answer `run.messageId`, from its start or after `lastEventId`. */
export async function streamTurn(
  run: RunningTurn,
  request: FollowTurnRequest,
  lastEventId: string | undefined,
  hooks: TurnRunHooks,
): Promise<void> {
  const { signal } = run.abort;
  try {
    const events = followTurn(request, {
      url: '/api/v1/chat/streaming',
      headers: () => apiHeaders({}, false),
      lastEventId,
      signal,
      maxAttempts: STREAM_ATTEMPTS,
      sleep: sleepUntilBack,
    });
    for await (const event of events) {
      if (event.type === 'start') {
        run.turnId = event.turn_id;
        hooks.onActivity();
        if (run.stopRequested) void api.cancel(event.turn_id).catch(() => undefined);
      }
      hooks.batcher.deliver(run.messageId, event);
    }
  } catch (error) {
    if (signal.aborted) return;
    hooks.batcher.flush();
    hooks.dispatch({ type: 'stream_failed', messageId: run.messageId, error: failureOf(error, hooks) });
  }
}

/** Runs a wait-mode turn into the answer `run.messageId`; a lost answer is asked for again with the same idempotency key. */
export async function waitTurn(
  run: RunningTurn,
  body: { message: string; context_id: string; client_message_id: string },
  hooks: TurnRunHooks,
): Promise<void> {
  const { signal } = run.abort;
  try {
    const answer = await withRetries(
      () => api.wait(body, signal),
      (error, attempt) => shouldSendWaitAgain(error, attempt > 0),
      { maxAttempts: WAIT_ATTEMPTS, signal },
    );
    hooks.dispatch({ type: 'waited', messageId: run.messageId, answer });
  } catch (error) {
    if (!signal.aborted) hooks.dispatch({ type: 'wait_failed', messageId: run.messageId, error: failureOf(error, hooks) });
  }
}

/**
 * A wait request has no turn id until it returns: find its turn through the conversation, looking a
 * few times, since the click may come before the server has stored the turn.
 */
export async function cancelWaitTurn(contextId: string, finished: AbortSignal): Promise<void> {
  for (let attempt = 0; attempt < 10 && !finished.aborted; attempt++) {
    try {
      const turn = (await api.conversation(contextId, { limit: 1 })).turns.at(-1);
      if (turn?.status === 'streaming') {
        await api.cancel(turn.turn_id);
        return;
      }
    } catch {
      // not stored yet: look again
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
  }
}

/** The ApiError a run ended with; a refused API key also asks for a new one. */
function failureOf(error: unknown, hooks: TurnRunHooks): ApiError {
  const apiError = error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
  if (apiError.status === 401) hooks.onUnauthorized();
  return apiError;
}
