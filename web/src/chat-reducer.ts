import type { FollowEvent } from '../../src/client/follow-turn';
import { ApiError, type StoredTurn, type WaitAnswer } from './api';
import type { ChatMessage } from './chat-types';
import { stepsFromStored, withToolCall, withToolResult } from './tool-steps';

// The page's conversation state as a pure function of what happened: loads, sends, and the events of
// the turns it follows. useChat (use-chat.ts) runs the requests and dispatches; nothing here does I/O.

/** The state of one open conversation. */
export interface ChatState {
  messages: ChatMessage[];
  loading: boolean;
  loadError: ApiError | undefined;
  /** Where the older turns start (the server's next_cursor), when there are any. */
  olderCursor: string | undefined;
  loadingOlder: boolean;
}

/** Everything that changes the state. */
export type ChatAction =
  /** A new chat, or another conversation about to load: everything shown goes. */
  | { type: 'cleared'; loading: boolean }
  | { type: 'loaded'; turns: StoredTurn[]; nextCursor: string | null }
  | { type: 'load_failed'; error: ApiError }
  | { type: 'older_requested' }
  | { type: 'older_loaded'; turns: StoredTurn[]; nextCursor: string | null }
  | { type: 'older_failed'; error: ApiError }
  /** A message sent: its bubble, and an empty answer waiting for the reply. */
  | { type: 'sent'; userId: string; assistantId: string; text: string }
  /** An answer asked again (Retry): it starts empty. */
  | { type: 'retried'; messageId: string }
  /** Events of the turn an answer follows, in order (tokens come in batches, one per frame). */
  | { type: 'streamed'; messageId: string; events: FollowEvent[] }
  /** Following the turn failed for good (not an `error` event: the connection could not be resumed). */
  | { type: 'stream_failed'; messageId: string; error: ApiError }
  | { type: 'waited'; messageId: string; answer: WaitAnswer }
  | { type: 'wait_failed'; messageId: string; error: ApiError };

/** A conversation with nothing in it yet. */
export const emptyChat: ChatState = { messages: [], loading: false, loadError: undefined, olderCursor: undefined, loadingOlder: false };

/** What a turn that ended without finishing shows (a resync of a failed turn, or a stored one). */
const DID_NOT_FINISH = 'This answer did not finish. Retry to ask again.';

/** The next state. */
export function chatReducer(state: ChatState, action: ChatAction): ChatState {
  switch (action.type) {
    case 'cleared':
      return { ...emptyChat, loading: action.loading };
    case 'loaded': {
      const messages = action.turns.flatMap(toMessages);
      // An answer still being written is picked back up from its start: shown empty until it streams.
      const last = action.turns.at(-1);
      if (last?.status === 'streaming') messages[messages.length - 1] = { ...messages.at(-1)!, text: '', status: 'waiting' };
      return { ...state, messages, loading: false, olderCursor: action.nextCursor ?? undefined };
    }
    case 'load_failed':
      // A conversation not stored yet (a new chat opened by its URL) is simply empty.
      return action.error.status === 404
        ? { ...state, messages: [], loading: false }
        : { ...state, loading: false, loadError: action.error };
    case 'older_requested':
      return { ...state, loadingOlder: true };
    case 'older_loaded':
      return {
        ...state,
        messages: [...action.turns.flatMap(toMessages), ...state.messages],
        olderCursor: action.nextCursor ?? undefined,
        loadingOlder: false,
      };
    case 'older_failed':
      return { ...state, loadError: action.error, loadingOlder: false };
    case 'sent':
      return {
        ...state,
        messages: [
          ...state.messages,
          { id: action.userId, role: 'user', text: action.text, status: 'done' },
          { id: action.assistantId, role: 'assistant', text: '', status: 'waiting', prompt: action.text },
        ],
      };
    case 'retried':
      return updateMessage(state, action.messageId, () => ({
        text: '',
        status: 'waiting',
        error: undefined,
        details: undefined,
        turnId: undefined,
        steps: undefined,
        reconnecting: undefined,
      }));
    case 'streamed':
      return updateMessage(state, action.messageId, (message) => action.events.reduce(applyEvent, message));
    case 'stream_failed':
      return updateMessage(state, action.messageId, (message) => ({
        status: message.text === '' ? 'error' : 'interrupted',
        error: action.error,
        reconnecting: false,
      }));
    case 'waited': {
      const { answer } = action;
      return updateMessage(state, action.messageId, () => ({
        text: answer.message,
        turnId: answer.turn_id,
        status: answer.finish_reason === 'cancelled' ? 'cancelled' : 'done',
        steps: stepsFromStored(answer.tool_steps),
        details: { model: answer.model, ttftMs: null, totalMs: answer.processing_time_ms, tokenCount: answer.token_count },
      }));
    }
    case 'wait_failed':
      return updateMessage(state, action.messageId, () => ({ status: 'error', error: action.error }));
  }
}

/** Whether an answer is being written. */
export function isBusy(state: ChatState): boolean {
  return state.messages.some((message) => message.status === 'waiting' || message.status === 'streaming');
}

/** An answer after one more event of its turn. */
export function applyEvent(message: ChatMessage, event: FollowEvent): ChatMessage {
  switch (event.type) {
    case 'connected':
      return message.reconnecting ? { ...message, reconnecting: false } : message;
    case 'reconnecting':
      return { ...message, reconnecting: true };
    case 'start':
      return { ...message, turnId: event.turn_id };
    case 'token':
      return { ...message, text: message.text + event.token, status: 'streaming' };
    case 'tool_call':
      return { ...message, steps: withToolCall(message.steps, { callId: event.call_id, name: event.name, arguments: event.arguments }) };
    case 'tool_result':
      return {
        ...message,
        steps: withToolResult(message.steps, {
          callId: event.call_id,
          output: event.output,
          isError: event.is_error,
          durationMs: event.duration_ms,
        }),
      };
    case 'resync':
      return { ...message, text: event.final_output, status: 'streaming' };
    case 'end': {
      const status = event.finish_reason === 'stop' ? 'done' : event.finish_reason === 'cancelled' ? 'cancelled' : 'interrupted';
      return {
        ...message,
        text: event.final_output,
        status,
        // A resync of a turn that failed earlier: say so, and offer Retry, rather than a silent (maybe blank) bubble.
        ...(status === 'interrupted' ? { error: new ApiError(502, 'UPSTREAM_ERROR', DID_NOT_FINISH) } : {}),
        reconnecting: false,
        // A server older than the timings field, or a stand-in, may leave them out.
        details: {
          model: event.model,
          ttftMs: event.timings?.ttft_ms ?? null,
          totalMs: event.timings?.total_ms ?? null,
          tokenCount: event.token_count,
        },
      };
    }
    case 'error':
      return {
        ...message,
        status: message.text === '' ? 'error' : 'interrupted',
        error: new ApiError(0, event.error_code, event.message, { retryable: event.retryable }),
        reconnecting: false,
      };
  }
}

/** A stored turn as the page shows it: the user's message and the answer. */
export function toMessages(turn: StoredTurn): ChatMessage[] {
  const status: ChatMessage['status'] =
    turn.status === 'complete'
      ? 'done'
      : turn.status === 'streaming'
        ? 'streaming'
        : turn.status === 'cancelled'
          ? 'cancelled'
          : turn.status === 'error'
            ? 'error'
            : 'interrupted';
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
        ? { error: new ApiError(502, turn.error_code ?? 'UPSTREAM_ERROR', DID_NOT_FINISH) }
        : {}),
      details: {
        model: turn.model,
        ttftMs: turn.timings?.ttft_ms ?? null,
        totalMs: turn.timings?.total_ms ?? null,
        tokenCount: turn.token_count,
      },
    },
  ];
}

function updateMessage(state: ChatState, messageId: string, change: (message: ChatMessage) => Partial<ChatMessage>): ChatState {
  return { ...state, messages: state.messages.map((message) => (message.id === messageId ? { ...message, ...change(message) } : message)) };
}
