import { describe, expect, it } from 'vitest';
import type { FollowEvent } from '../../src/client/follow-turn';
import { ApiError, type StoredTurn } from './api';
import { chatReducer, emptyChat, isBusy, type ChatAction, type ChatState } from './chat-reducer';

/** Runs actions from the empty chat; every state along the way is frozen, so a mutation throws. */
function run(...actions: ChatAction[]): ChatState {
  return actions.reduce((state, action) => deepFreeze(chatReducer(state, action)), deepFreeze(emptyChat));
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}

const sent: ChatAction = { type: 'sent', userId: 'u1', assistantId: 'a1', text: 'Hello?' };
const streamed = (...events: FollowEvent[]): ChatAction => ({ type: 'streamed', messageId: 'a1', events });
const start: FollowEvent = { type: 'start', event_type: 'start', context_id: 'c', turn_id: 't1', resumed: false, model: 'demo' };
const token = (text: string, index: number): FollowEvent => ({
  type: 'token',
  event_type: 'token',
  token: text,
  token_index: index,
  context_id: 'c',
});
const end = (finalOutput: string, finishReason: 'stop' | 'cancelled' | 'interrupted' | 'error' = 'stop'): FollowEvent => ({
  type: 'end',
  event_type: 'end',
  context_id: 'c',
  turn_id: 't1',
  final_output: finalOutput,
  token_count: 2,
  finish_reason: finishReason,
  usage: null,
  timings: { ttft_ms: 12, total_ms: 100 },
  model: 'demo',
});
const answer = (state: ChatState) => state.messages.find((message) => message.id === 'a1')!;

function storedTurn(id: string, fields: Partial<StoredTurn> = {}): StoredTurn {
  return {
    turn_id: id,
    user_message: `question ${id}`,
    answer: `answer ${id}`,
    status: 'complete',
    model: 'demo',
    token_count: 2,
    timings: null,
    error_code: null,
    ...fields,
  };
}

describe('the chat page state', () => {
  it('shows a sent message and an empty answer waiting, and is busy until the answer ends', () => {
    const state = run(sent);
    expect(state.messages).toEqual([
      { id: 'u1', role: 'user', text: 'Hello?', status: 'done' },
      { id: 'a1', role: 'assistant', text: '', status: 'waiting', prompt: 'Hello?' },
    ]);
    expect(isBusy(state)).toBe(true);
    expect(isBusy(run(sent, streamed(start, token('Hi', 0), end('Hi'))))).toBe(false);
  });

  it('writes tokens in order as they stream, then the end with its details', () => {
    const streaming = run(sent, streamed(start, token('Hel', 0)), streamed(token('lo', 1)));
    expect(answer(streaming)).toMatchObject({ text: 'Hello', status: 'streaming', turnId: 't1' });
    const done = run(sent, streamed(start, token('Hel', 0), token('lo', 1)), streamed(end('Hello')));
    expect(answer(done)).toMatchObject({
      text: 'Hello',
      status: 'done',
      details: { model: 'demo', ttftMs: 12, totalMs: 100, tokenCount: 2 },
    });
    expect(answer(done).error).toBeUndefined();
  });

  it('ends a stopped answer as cancelled, and one that did not finish as interrupted with a Retry error', () => {
    expect(answer(run(sent, streamed(start, token('Par', 0), end('Par', 'cancelled'))))).toMatchObject({
      status: 'cancelled',
      text: 'Par',
    });
    const failed = answer(run(sent, streamed(start, end('Half', 'interrupted'))));
    expect(failed).toMatchObject({ status: 'interrupted', text: 'Half' });
    expect(failed.error).toMatchObject({ code: 'UPSTREAM_ERROR', message: 'This answer did not finish. Retry to ask again.' });
  });

  it('keeps the text of an error event and marks it interrupted, or error when nothing came, with its retryable', () => {
    const failure: FollowEvent = {
      type: 'error',
      event_type: 'error',
      context_id: 'c',
      turn_id: 't1',
      error_code: 'UPSTREAM_ERROR',
      message: 'The model failed.',
      retryable: true,
    };
    const partly = answer(run(sent, streamed(start, token('Half', 0), token(' an', 1), failure)));
    expect(partly).toMatchObject({ status: 'interrupted', text: 'Half an', reconnecting: false });
    expect(partly.error).toBeInstanceOf(ApiError);
    expect(partly.error).toMatchObject({ code: 'UPSTREAM_ERROR', message: 'The model failed.', retryable: true });
    const nothing = answer(run(sent, streamed(start, { ...failure, retryable: false })));
    expect(nothing).toMatchObject({ status: 'error', text: '' });
    expect(nothing.error?.retryable).toBe(false);
  });

  it('shows the reconnecting banner from a lost connection until the next one opens', () => {
    const lost: FollowEvent = { type: 'reconnecting', attempt: 1, delayMs: 250, error: new ApiError(0, 'NETWORK_ERROR', 'dropped') };
    const reconnecting = run(sent, streamed({ type: 'connected' }, start, token('A', 0), lost));
    expect(answer(reconnecting)).toMatchObject({ reconnecting: true, text: 'A', status: 'streaming' });
    expect(answer(run(sent, streamed(start, lost, { type: 'connected' })))).toMatchObject({ reconnecting: false });
  });

  it('lists tool steps once each, even when a resumed stream sends a call again, and fills in their results', () => {
    const call: FollowEvent = {
      type: 'tool_call',
      event_type: 'tool_call',
      call_id: 'k1',
      name: 'calculator',
      arguments: '{"expression":"2+2"}',
    };
    const result: FollowEvent = {
      type: 'tool_result',
      event_type: 'tool_result',
      call_id: 'k1',
      output: '4',
      is_error: false,
      duration_ms: 3,
    };
    const state = run(sent, streamed(start, call), streamed(call, result, token('4', 0)));
    expect(answer(state).steps).toEqual([
      { callId: 'k1', name: 'calculator', arguments: '{"expression":"2+2"}', output: '4', isError: false, durationMs: 3 },
    ]);
  });

  it('replaces the text with a resync, then ends', () => {
    const resync: FollowEvent = { type: 'resync', event_type: 'resync', turn_id: 't1', final_output: 'The whole answer', token_count: 3 };
    expect(answer(run(sent, streamed(start, token('The', 0), resync)))).toMatchObject({ text: 'The whole answer', status: 'streaming' });
  });

  it('marks an answer whose stream could not be resumed, keeping its text', () => {
    const error = new ApiError(0, 'NETWORK_ERROR', 'The connection dropped.');
    expect(answer(run(sent, streamed(start, token('Some', 0)), { type: 'stream_failed', messageId: 'a1', error }))).toMatchObject({
      status: 'interrupted',
      text: 'Some',
      error,
    });
    expect(answer(run(sent, { type: 'stream_failed', messageId: 'a1', error }))).toMatchObject({ status: 'error', text: '' });
  });

  it('starts a retried answer empty, without its old error, steps or turn', () => {
    const failure = new ApiError(502, 'UPSTREAM_ERROR', 'failed');
    const retried = answer(
      run(
        sent,
        streamed(start, token('x', 0)),
        { type: 'stream_failed', messageId: 'a1', error: failure },
        { type: 'retried', messageId: 'a1' },
      ),
    );
    expect(retried).toEqual({
      id: 'a1',
      role: 'assistant',
      text: '',
      status: 'waiting',
      prompt: 'Hello?',
      error: undefined,
      details: undefined,
      turnId: undefined,
      steps: undefined,
      reconnecting: undefined,
    });
  });

  it('shows a wait answer whole, or its failure', () => {
    const waited = run(sent, {
      type: 'waited',
      messageId: 'a1',
      answer: {
        message: 'All at once',
        finish_reason: 'stop',
        context_id: 'c',
        token_count: 3,
        processing_time_ms: 40,
        turn_id: 't1',
        model: 'demo',
      },
    });
    expect(answer(waited)).toMatchObject({
      text: 'All at once',
      status: 'done',
      turnId: 't1',
      details: { ttftMs: null, totalMs: 40, tokenCount: 3 },
    });
    const error = new ApiError(429, 'RATE_LIMITED', 'Slow down.');
    expect(answer(run(sent, { type: 'wait_failed', messageId: 'a1', error }))).toMatchObject({ status: 'error', error });
  });

  it('loads stored turns, picking an answer still being written up empty, and older pages in front', () => {
    const loaded = run(
      { type: 'cleared', loading: true },
      { type: 'loaded', turns: [storedTurn('t1'), storedTurn('t2', { status: 'streaming', answer: 'par' })], nextCursor: 'older' },
    );
    expect(loaded.loading).toBe(false);
    expect(loaded.olderCursor).toBe('older');
    expect(loaded.messages.map((message) => [message.id, message.text, message.status])).toEqual([
      ['t1-user', 'question t1', 'done'],
      ['t1-assistant', 'answer t1', 'done'],
      ['t2-user', 'question t2', 'done'],
      ['t2-assistant', '', 'waiting'],
    ]);
    const older = chatReducer(chatReducer(loaded, { type: 'older_requested' }), {
      type: 'older_loaded',
      turns: [storedTurn('t0', { status: 'error', error_code: 'UPSTREAM_TIMEOUT' })],
      nextCursor: null,
    });
    expect(older.messages.map((message) => message.id).slice(0, 3)).toEqual(['t0-user', 't0-assistant', 't1-user']);
    expect(older.messages[1]).toMatchObject({ status: 'error', error: { code: 'UPSTREAM_TIMEOUT' } });
    expect(older.olderCursor).toBeUndefined();
    expect(older.loadingOlder).toBe(false);
  });

  it('shows a conversation that is not stored yet as empty, and other load failures as an error', () => {
    expect(run({ type: 'cleared', loading: true }, { type: 'load_failed', error: new ApiError(404, 'NOT_FOUND', 'no') })).toEqual(
      emptyChat,
    );
    const error = new ApiError(0, 'NETWORK_ERROR', 'Could not load the conversation.');
    expect(run({ type: 'cleared', loading: true }, { type: 'load_failed', error })).toMatchObject({ loading: false, loadError: error });
  });
});
