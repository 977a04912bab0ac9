import { useCallback, useEffect, useRef, useState } from 'react';
import { api, ApiError, type StoredTurn } from './api';
import type { ChatMessage } from './chat-types';
import { stepsFromStored, withToolCall, withToolResult } from './tool-steps';
import { followTurn, type TurnStreamRequest } from './turn-stream';

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

const AUTO_RETRIES = 2;

/** The state and the actions of one conversation, with streams that survive dropped connections. */
export function useChat({ contextId, mode, onConversationCreated, onActivity, onUnauthorized, keyVersion }: UseChatOptions): Chat {
  const [messages, setMessages] = useState<ChatMessage[]>([]);
  const [loading, setLoading] = useState(false);
  const [loadError, setLoadError] = useState<ApiError>();
  /** Where the older turns of the open conversation start (the server's next_cursor), if it has any. */
  const [olderCursor, setOlderCursor] = useState<string>();
  const [loadingOlder, setLoadingOlder] = useState(false);
  const conversationId = useRef<string | undefined>(contextId);
  /** The conversation this hook just created itself: switching to it must not reload (and wipe) the running answer. */
  const created = useRef<string | undefined>(undefined);
  const running = useRef<{ abort: AbortController; messageId: string; turnId?: string; stopRequested: boolean } | undefined>(undefined);
  /** Text received but not yet rendered, per message: flushed once per animation frame, never per token. */
  const pending = useRef(new Map<string, string>());
  const frame = useRef<number | undefined>(undefined);

  const update = useCallback((messageId: string, change: Partial<ChatMessage> | ((message: ChatMessage) => Partial<ChatMessage>)) => {
    setMessages((current) =>
      current.map((message) => (message.id === messageId ? { ...message, ...(typeof change === 'function' ? change(message) : change) } : message)),
    );
  }, []);

  const flush = useCallback(() => {
    frame.current = undefined;
    const texts = new Map(pending.current);
    setMessages((current) => current.map((message) => (texts.has(message.id) ? { ...message, text: texts.get(message.id)!, status: 'streaming' } : message)));
  }, []);

  const appendText = useCallback(
    (messageId: string, base: string, token: string) => {
      pending.current.set(messageId, (pending.current.get(messageId) ?? base) + token);
      frame.current ??= requestAnimationFrame(flush);
    },
    [flush],
  );

  const finishPending = (messageId: string) => {
    pending.current.delete(messageId);
  };

  /** Follows a turn over SSE into the assistant message `messageId`. */
  const stream = useCallback(
    async (messageId: string, request: TurnStreamRequest, base: string) => {
      const abort = new AbortController();
      running.current = { abort, messageId, stopRequested: false };
      let text = base;
      try {
        await followTurn(
          request,
          {
            onStart: (event) => {
              if (running.current?.messageId === messageId) running.current.turnId = event.turn_id;
              update(messageId, { turnId: event.turn_id });
              onActivity();
              if (running.current?.stopRequested) void api.cancel(event.turn_id).catch(() => undefined);
            },
            onToken: (token) => {
              appendText(messageId, text, token);
              text += token;
            },
            onToolCall: (call) => update(messageId, (message) => ({ steps: withToolCall(message.steps, call) })),
            onToolResult: (result) => update(messageId, (message) => ({ steps: withToolResult(message.steps, result) })),
            onResync: (finalOutput) => {
              text = finalOutput;
              pending.current.set(messageId, finalOutput);
            },
            onEnd: (end) => {
              finishPending(messageId);
              const status = end.finish_reason === 'stop' ? 'done' : end.finish_reason === 'cancelled' ? 'cancelled' : 'interrupted';
              update(messageId, {
                text: end.final_output,
                status,
                // A resync of a turn that failed earlier: say so, and offer Retry, rather than a silent (maybe blank) bubble.
                ...(status === 'interrupted' ? { error: new ApiError(502, 'UPSTREAM_ERROR', 'This answer did not finish. Retry to ask again.') } : {}),
                reconnecting: false,
                details: { model: end.model, ttftMs: end.timings?.ttft_ms ?? null, totalMs: end.timings?.total_ms ?? null, tokenCount: end.token_count },
              });
            },
            onFailure: (error) => {
              finishPending(messageId);
              update(messageId, { text, status: text === '' ? 'error' : 'interrupted', error, reconnecting: false });
            },
            onConnection: (state) => update(messageId, { reconnecting: state === 'reconnecting' }),
          },
          abort.signal,
        );
      } catch (error) {
        finishPending(messageId);
        const apiError = error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
        if (apiError.status === 401) onUnauthorized();
        update(messageId, { text, status: text === '' ? 'error' : 'interrupted', error: apiError, reconnecting: false });
      } finally {
        if (running.current?.abort === abort) running.current = undefined;
        onActivity();
      }
    },
    [appendText, onActivity, onUnauthorized, update],
  );

  /** Runs a wait-mode turn into `messageId`, retrying network failures with the same idempotency key. */
  const wait = useCallback(
    async (messageId: string, prompt: string, contextIdToUse: string, clientMessageId: string) => {
      const abort = new AbortController();
      running.current = { abort, messageId, stopRequested: false };
      onActivity();
      for (let attempt = 0; ; attempt++) {
        try {
          const answer = await api.wait({ message: prompt, context_id: contextIdToUse, client_message_id: clientMessageId }, abort.signal);
          update(messageId, {
            text: answer.message,
            turnId: answer.turn_id,
            status: answer.finish_reason === 'cancelled' ? 'cancelled' : 'done',
            steps: stepsFromStored(answer.tool_steps),
            details: { model: answer.model, ttftMs: null, totalMs: answer.processing_time_ms, tokenCount: answer.token_count },
          });
          break;
        } catch (error) {
          if (abort.signal.aborted) break;
          const apiError = error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
          // Only a failure with no answer from the server is retried with the same key; a stored failure would come back as is.
          if (apiError.status === 0 && attempt < AUTO_RETRIES) {
            await new Promise((resolve) => setTimeout(resolve, 500 * 2 ** attempt));
            continue;
          }
          if (apiError.status === 401) onUnauthorized();
          update(messageId, { status: 'error', error: apiError });
          break;
        }
      }
      if (running.current?.abort === abort) running.current = undefined;
      onActivity();
    },
    [onActivity, onUnauthorized, update],
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
      if (mode === 'wait') void wait(assistantId, prompt, id, clientMessageId);
      else void stream(assistantId, { message: prompt, contextId: id, clientMessageId }, '');
    },
    [mode, onConversationCreated, stream, wait],
  );

  const send = useCallback(
    (text: string) => {
      if (running.current || loading || text.trim() === '') return;
      const assistantId = crypto.randomUUID();
      setMessages((current) => [
        ...current,
        { id: crypto.randomUUID(), role: 'user', text, status: 'done' },
        { id: assistantId, role: 'assistant', text: '', status: 'waiting', prompt: text },
      ]);
      start(text, assistantId);
    },
    [loading, start],
  );

  const retry = useCallback(
    (messageId: string) => {
      const message = messages.find((candidate) => candidate.id === messageId);
      if (!message?.prompt || running.current) return;
      update(messageId, { text: '', status: 'waiting', error: undefined, details: undefined, turnId: undefined, steps: undefined });
      start(message.prompt, messageId);
    },
    [messages, start, update],
  );

  const stop = useCallback(() => {
    const current = running.current;
    if (!current) return;
    current.stopRequested = true;
    if (current.turnId) void api.cancel(current.turnId).catch(() => undefined);
    else if (mode === 'wait' && conversationId.current) void cancelWaitTurn(conversationId.current, current.abort.signal);
  }, [mode]);

  const regenerate = useCallback(() => {
    const last = [...messages].reverse().find((message) => message.role === 'assistant');
    if (last?.prompt) send(last.prompt);
  }, [messages, send]);

  // Loads the conversation named by the URL, and picks a running answer back up.
  useEffect(() => {
    conversationId.current = contextId;
    if (contextId !== undefined && contextId === created.current) return;
    running.current?.abort.abort();
    running.current = undefined;
    pending.current.clear();
    created.current = undefined;
    setLoadError(undefined);
    setOlderCursor(undefined);
    if (!contextId) {
      setMessages([]);
      return;
    }
    let active = true;
    setLoading(true);
    setMessages([]);
    api
      .conversation(contextId)
      .then((conversation) => {
        if (!active) return;
        const loaded = conversation.turns.flatMap(toMessages);
        setMessages(loaded);
        setOlderCursor(conversation.next_cursor ?? undefined);
        const last = conversation.turns.at(-1);
        if (last?.status === 'streaming') {
          const messageId = loaded.at(-1)!.id;
          update(messageId, { text: '', status: 'waiting' });
          void stream(messageId, { message: last.user_message, contextId, lastEventId: `${last.turn_id}/start`, tokensHeld: 0 }, '');
        }
      })
      .catch((error: unknown) => {
        if (!active) return;
        // A conversation not stored yet (a new chat opened by URL) is simply empty.
        if (error instanceof ApiError && error.status === 404) setMessages([]);
        else setLoadError(error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'Could not load the conversation.'));
      })
      .finally(() => active && setLoading(false));
    return () => {
      active = false;
    };
  }, [contextId, keyVersion, stream, update]);

  useEffect(() => () => running.current?.abort.abort(), []);

  const loadOlder = useCallback(() => {
    const id = conversationId.current;
    if (!id || !olderCursor || loadingOlder) return;
    setLoadingOlder(true);
    api
      .conversation(id, { cursor: olderCursor })
      .then((page) => {
        // The reader may have switched conversations meanwhile.
        if (conversationId.current !== id) return;
        setMessages((current) => [...page.turns.flatMap(toMessages), ...current]);
        setOlderCursor(page.next_cursor ?? undefined);
      })
      .catch((error: unknown) => setLoadError(error instanceof ApiError ? error : new ApiError(0, 'NETWORK_ERROR', 'Could not load the earlier messages.')))
      .finally(() => setLoadingOlder(false));
  }, [olderCursor, loadingOlder]);

  const busy = messages.some((message) => message.status === 'waiting' || message.status === 'streaming');
  return { messages, loading, loadError, hasOlder: olderCursor !== undefined, loadingOlder, loadOlder, busy, send, stop, regenerate, retry };
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

function toMessages(turn: StoredTurn): ChatMessage[] {
  const status: ChatMessage['status'] =
    turn.status === 'complete' ? 'done' : turn.status === 'streaming' ? 'streaming' : turn.status === 'cancelled' ? 'cancelled' : turn.status === 'error' ? 'error' : 'interrupted';
  return [
    { id: `${turn.turn_id}-user`, role: 'user', text: turn.user_message, status: 'done' },
    {
      id: `${turn.turn_id}-assistant`,
      role: 'assistant',
      text: turn.answer,
      status,
      turnId: turn.turn_id,
      prompt: turn.user_message,
      steps: stepsFromStored(turn.tool_steps),
      ...(turn.status === 'error' || turn.status === 'interrupted'
        ? { error: new ApiError(502, turn.error_code ?? 'UPSTREAM_ERROR', 'This answer did not finish. Retry to ask again.') }
        : {}),
      details: { model: turn.model, ttftMs: turn.timings?.ttft_ms ?? null, totalMs: turn.timings?.total_ms ?? null, tokenCount: turn.token_count },
    },
  ];
}
