import { useCallback, useEffect, useMemo, useReducer, useRef } from 'react';
import type { FollowTurnRequest } from '../../src/client/follow-turn';
import { api, ApiError } from './api';
import { chatReducer, emptyChat, isBusy } from './chat-reducer';
import type { ChatMessage } from './chat-types';
import { cancelWaitTurn, createEventBatcher, streamTurn, waitTurn, type RunningTurn, type TurnRunHooks } from './turn-runs';

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

/**
 * The state and the actions of one conversation. The state is chatReducer's (chat-reducer.ts); the
 * answers run in turn-runs.ts (streamed ones through the shared client, src/client/).
 */
export function useChat({ contextId, mode, onConversationCreated, onActivity, onUnauthorized, keyVersion }: UseChatOptions): Chat {
  const [state, dispatch] = useReducer(chatReducer, emptyChat);
  const batcher = useMemo(() => createEventBatcher(dispatch), []);
  const conversationId = useRef<string | undefined>(contextId);
  /** The conversation this hook just created itself: switching to it must not reload (and wipe) the running answer. */
  const created = useRef<string | undefined>(undefined);
  const running = useRef<RunningTurn | undefined>(undefined);

  /** Runs one answer into `messageId`, as the one running answer. */
  const run = useCallback(
    async (messageId: string, answer: (turn: RunningTurn, hooks: TurnRunHooks) => Promise<void>) => {
      const turn: RunningTurn = { messageId, abort: new AbortController(), stopRequested: false };
      running.current = turn;
      try {
        await answer(turn, { dispatch, batcher, onActivity, onUnauthorized });
      } finally {
        if (running.current === turn) running.current = undefined;
        onActivity();
      }
    },
    [batcher, onActivity, onUnauthorized],
  );

  const stream = useCallback(
    (messageId: string, request: FollowTurnRequest, lastEventId?: string) =>
      run(messageId, (turn, hooks) => streamTurn(turn, request, lastEventId, hooks)),
    [run],
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
      if (mode === 'wait') {
        const body = { message: prompt, context_id: id, client_message_id: clientMessageId };
        onActivity();
        void run(assistantId, (turn, hooks) => waitTurn(turn, body, hooks));
      } else void stream(assistantId, { message: prompt, contextId: id, clientMessageId });
    },
    [mode, onActivity, onConversationCreated, run, stream],
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
    batcher.clear();
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
        if (last?.status === 'streaming')
          void stream(`${last.turn_id}-assistant`, { message: last.user_message, contextId }, `${last.turn_id}/start`);
      })
      .catch((error: unknown) => {
        if (active)
          dispatch({
            type: 'load_failed',
            error: error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'Could not load the conversation.'),
          });
      });
    return () => {
      active = false;
    };
  }, [batcher, contextId, keyVersion, stream]);

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
        dispatch({
          type: 'older_failed',
          error: error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'Could not load the earlier messages.'),
        }),
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
