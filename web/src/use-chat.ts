import { useCallback, useEffect, useReducer, useRef } from 'react';
import { followTurn, type FollowEvent, type FollowTurnRequest } from '../../src/client/follow-turn';
import { shouldSendWaitAgain, withRetries } from '../../src/client/retry';
import { api, ApiError, apiHeaders } from './api';
import { chatReducer, emptyChat, isBusy } from './chat-reducer';
import type { ChatMessage } from './chat-types';
import { sleepUntilBack } from './sleep-until-back';

/** What the chat view needs: the messages, and the actions on them. */
export interface Chat {
  messages: ChatMessage[];
  loading: boolean;
  loadError: ApiError | undefined;
  /** True when the conversation has turns older than those shown. */
  hasOlder: boolean;
  loadingOlder: boolean;
  /** Shows the page of turns just before the oldest one shown. */
  loadOlder(): void;
  busy: boolean;
  send(text: string): void;
  stop(): void;
  regenerate(): void;
  retry(messageId: string): void;
}

/** Options of `useChat`. */
export interface UseChatOptions {
  contextId: string | undefined;
  mode: 'wait' | 'streaming';
  /** Called with the new conversation id when the first message of a new chat is sent. */
  onConversationCreated(contextId: string): void;
  /** Called when a turn starts or ends, so the conversation list can refresh. */
  onActivity(): void;
  /** Called when the server refuses the API key. */
  onUnauthorized(): void;
  /** Changes when the API key does: the conversation is loaded again. */
  keyVersion: number;
}

/** Attempts of a wait request in all: a lost answer is asked for again with the same client_message_id. */
const WAIT_ATTEMPTS = 3;
/** Reconnections in a row without an event before a streamed answer gives up. */
const STREAM_ATTEMPTS = 30;

/** The answer being written: how to stop it, and where it goes. */
interface Running {
  abort: AbortController;
  messageId: string;
  turnId?: string;
  stopRequested: boolean;
}

/**
 * The state and the actions of one conversation. The state is chatReducer's (chat-reducer.ts); this
 * runs the requests: the shared client follows streamed turns (reconnecting, resuming, deduplicating),
 * and their events are dispatched, tokens batched once per animation frame, never per token.
 */
export function useChat({ contextId, mode, onConversationCreated, onActivity, onUnauthorized, keyVersion }: UseChatOptions): Chat {
  const [state, dispatch] = useReducer(chatReducer, emptyChat);
  const conversationId = useRef<string | undefined>(contextId);
  /** The conversation this hook just created itself: switching to it must not reload (and wipe) the running answer. */
  const created = useRef<string | undefined>(undefined);
  const running = useRef<Running | undefined>(undefined);
  /** Tokens received but not yet dispatched, per message. */
  const pending = useRef(new Map<string, FollowEvent[]>());
  const frame = useRef<number | undefined>(undefined);

  const flush = useCallback(() => {
    if (frame.current !== undefined) cancelAnimationFrame(frame.current);
    frame.current = undefined;
    for (const [messageId, events] of pending.current) dispatch({ type: 'streamed', messageId, events });
    pending.current.clear();
  }, []);

  const deliver = useCallback(
    (messageId: string, event: FollowEvent) => {
      if (event.type === 'token') {
        pending.current.set(messageId, [...(pending.current.get(messageId) ?? []), event]);
        frame.current ??= requestAnimationFrame(flush);
        return;
      }
      // Anything else applies at once, after the tokens before it (a hidden tab has no frames, and its answer still ends).
      flush();
      dispatch({ type: 'streamed', messageId, events: [event] });
    },
    [flush],
  );

  /** Follows a turn over SSE into the assistant message `messageId`. */
  const stream = useCallback(
    async (messageId: string, request: FollowTurnRequest, lastEventId?: string) => {
      const abort = new AbortController();
      const current: Running = { abort, messageId, stopRequested: false };
      running.current = current;
      try {
        const events = followTurn(request, {
          url: '/api/v1/chat/streaming',
          headers: () => apiHeaders({}, false),
          lastEventId,
          signal: abort.signal,
          maxAttempts: STREAM_ATTEMPTS,
          sleep: sleepUntilBack,
        });
        for await (const event of events) {
          if (event.type === 'start') {
            current.turnId = event.turn_id;
            onActivity();
            if (current.stopRequested) void api.cancel(event.turn_id).catch(() => undefined);
          }
          deliver(messageId, event);
        }
      } catch (error) {
        if (!abort.signal.aborted) {
          flush();
          const apiError = error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
          if (apiError.status === 401) onUnauthorized();
          dispatch({ type: 'stream_failed', messageId, error: apiError });
        }
      } finally {
        if (running.current === current) running.current = undefined;
        onActivity();
      }
    },
    [deliver, flush, onActivity, onUnauthorized],
  );

  /** Runs a wait-mode turn into `messageId`; a lost answer is asked for again with the same idempotency key. */
  const wait = useCallback(
    async (messageId: string, body: { message: string; context_id: string; client_message_id: string }) => {
      const abort = new AbortController();
      const current: Running = { abort, messageId, stopRequested: false };
      running.current = current;
      onActivity();
      try {
        const answer = await withRetries(() => api.wait(body, abort.signal), (error, attempt) => shouldSendWaitAgain(error, attempt > 0), {
          maxAttempts: WAIT_ATTEMPTS,
          signal: abort.signal,
        });
        dispatch({ type: 'waited', messageId, answer });
      } catch (error) {
        if (!abort.signal.aborted) {
          const apiError = error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
          if (apiError.status === 401) onUnauthorized();
          dispatch({ type: 'wait_failed', messageId, error: apiError });
        }
      }
      if (running.current === current) running.current = undefined;
      onActivity();
    },
    [onActivity, onUnauthorized],
  );

  const start = useCallback(
    (prompt: string, assistantId: string) => {
      let id = conversationId.current;
      if (!id) {
        id = crypto.randomUUID();
        conversationId.current = id;
        created.current = id;
        onConversationCreated(id);
      }
      const clientMessageId = crypto.randomUUID();
      if (mode === 'wait') void wait(assistantId, { message: prompt, context_id: id, client_message_id: clientMessageId });
      else void stream(assistantId, { message: prompt, contextId: id, clientMessageId });
    },
    [mode, onConversationCreated, stream, wait],
  );

  const send = useCallback(
    (text: string) => {
      if (running.current || state.loading || text.trim() === '') return;
      const assistantId = crypto.randomUUID();
      dispatch({ type: 'sent', userId: crypto.randomUUID(), assistantId, text });
      start(text, assistantId);
    },
    [state.loading, start],
  );

  const retry = useCallback(
    (messageId: string) => {
      const message = state.messages.find((candidate) => candidate.id === messageId);
      if (!message?.prompt || running.current) return;
      dispatch({ type: 'retried', messageId });
      start(message.prompt, messageId);
    },
    [state.messages, start],
  );

  const stop = useCallback(() => {
    const current = running.current;
    if (!current) return;
    current.stopRequested = true;
    if (current.turnId) void api.cancel(current.turnId).catch(() => undefined);
    else if (mode === 'wait' && conversationId.current) void cancelWaitTurn(conversationId.current, current.abort.signal);
  }, [mode]);

  const regenerate = useCallback(() => {
    const last = state.messages.findLast((message) => message.role === 'assistant');
    if (last?.prompt) send(last.prompt);
  }, [state.messages, send]);

  // Loads the conversation named by the URL, and picks a running answer back up.
  useEffect(() => {
    conversationId.current = contextId;
    if (contextId !== undefined && contextId === created.current) return;
    running.current?.abort.abort();
    running.current = undefined;
    pending.current.clear();
    created.current = undefined;
    dispatch({ type: 'cleared', loading: contextId !== undefined });
    if (!contextId) return;
    let active = true;
    api
      .conversation(contextId)
      .then((conversation) => {
        if (!active) return;
        dispatch({ type: 'loaded', turns: conversation.turns, nextCursor: conversation.next_cursor });
        const last = conversation.turns.at(-1);
        // From its start: the stored text may be behind the stream, and the stream replays every event.
        if (last?.status === 'streaming') void stream(`${last.turn_id}-assistant`, { message: last.user_message, contextId }, `${last.turn_id}/start`);
      })
      .catch((error: unknown) => {
        if (active) dispatch({ type: 'load_failed', error: error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'Could not load the conversation.') });
      });
    return () => {
      active = false;
    };
  }, [contextId, keyVersion, stream]);

  useEffect(() => () => running.current?.abort.abort(), []);

  const { olderCursor, loadingOlder } = state;
  const loadOlder = useCallback(() => {
    const id = conversationId.current;
    if (!id || !olderCursor || loadingOlder) return;
    dispatch({ type: 'older_requested' });
    api
      .conversation(id, { cursor: olderCursor })
      .then((page) => {
        // The reader may have switched conversations meanwhile.
        if (conversationId.current === id) dispatch({ type: 'older_loaded', turns: page.turns, nextCursor: page.next_cursor });
      })
      .catch((error: unknown) =>
        dispatch({ type: 'older_failed', error: error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'Could not load the earlier messages.') }),
      );
  }, [olderCursor, loadingOlder]);

  return {
    messages: state.messages,
    loading: state.loading,
    loadError: state.loadError,
    hasOlder: olderCursor !== undefined,
    loadingOlder,
    loadOlder,
    busy: isBusy(state),
    send,
    stop,
    regenerate,
    retry,
  };
}

/**
 * A wait request has no turn id until it returns: find its turn through the conversation, looking a
 * few times, since the click may come before the server has stored the turn.
 */
async function cancelWaitTurn(contextId: string, finished: AbortSignal): Promise<void> {
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
