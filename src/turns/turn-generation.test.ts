import { describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../errors.js';
import type { ChatModel, ModelStreamEvent } from '../model/chat-model.js';
import type { Logger } from '../observability/logger.js';
import { TurnFencedError, type ConversationStore, type TurnOutcome } from '../store/conversation-store.js';
import { MemoryConversationStore } from '../store/memory-store.js';
import { MemoryReplayLog } from '../streams/memory-replay-log.js';
import { PendingOutcomes } from './pending-outcomes.js';
import { runGeneration, TurnCancelled } from './turn-generation.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} } as unknown as Logger;

/** A model that plays `script`, given the call's signal. */
function scriptedModel(script: (signal: AbortSignal) => AsyncIterable<ModelStreamEvent>): ChatModel {
  return {
    provider: 'demo',
    name: 'test-model',
    demo: true,
    streamReply: ({ signal }) => script(signal),
    checkHealth: async () => ({ status: 'ok', misconfigured: false }),
  };
}

/** One token, then nothing until the call is aborted; then it fails with the abort's reason, as the model layer does. */
async function* oneTokenThenWait(signal: AbortSignal): AsyncIterable<ModelStreamEvent> {
  yield { type: 'text_delta', delta: 'Hello' };
  await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }));
  throw signal.reason;
}

/** A whole answer with a tool call, and its usage. */
async function* answerWithTool(): AsyncIterable<ModelStreamEvent> {
  yield { type: 'tool_call', callId: 'call-1', name: 'clock', arguments: '{}' };
  yield { type: 'tool_result', callId: 'call-1', output: '12:00', isError: false, durationMs: 3 };
  yield { type: 'text_delta', delta: 'It is ' };
  yield { type: 'text_delta', delta: 'noon.' };
  yield { type: 'done', usage: { input_tokens: 5, output_tokens: 2, total_tokens: 7 }, finalOutput: 'It is noon.' };
}

/** The memory store with its progress and final writes replaced (a store double); everything else is the real store. */
function withWrites(store: ConversationStore, writes: Partial<Pick<ConversationStore, 'saveProgress' | 'finishTurn'>>): ConversationStore {
  return new Proxy(store, {
    get(target, property) {
      if (property in writes) return writes[property as keyof typeof writes];
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

let turns = 0;

/** Starts a turn in `store` and runs its generation with `model`; returns what the readers got and how it settled. */
async function generate(
  store: ConversationStore,
  model: ChatModel,
  options: { pending?: PendingOutcomes; cancel?: boolean; log?: MemoryReplayLog; streamTtlMs?: number } = {},
) {
  const { turnId } = await store.startTurn({
    turnId: `turn-${++turns}`,
    contextId: 'c1',
    userMessage: 'hi',
    model: 'test-model',
    clientMessageId: undefined,
    owner: null,
  });
  const log = options.log ?? new MemoryReplayLog();
  log.open(turnId);
  const controller = new AbortController();
  let modelSignal: AbortSignal | undefined;
  const done = runGeneration({
    turnId,
    contextId: 'c1',
    messages: [{ role: 'user', content: 'hi' }],
    signal: controller.signal,
    abort: (reason) => controller.abort(reason),
    model: {
      ...model,
      streamReply: (request) => {
        modelSignal = request.signal;
        return model.streamReply(request);
      },
    },
    store,
    log,
    logger: quiet,
    responseTimeoutMs: 60_000,
    pendingOutcomes: options.pending,
    streamTtlMs: options.streamTtlMs,
  });
  if (options.cancel) setTimeout(() => controller.abort(new TurnCancelled('cancelled by the user')), 20);
  const settled = await done.then(
    (result) => ({ result, error: undefined }),
    (error: unknown) => ({ result: undefined, error }),
  );
  const events = ((await log.snapshot(turnId))?.entries ?? []).map((entry) => JSON.parse(entry.data) as Record<string, unknown>);
  return { turnId, events, ...settled, modelSignal: modelSignal! };
}

describe('a producer whose turn another instance took over (fenced)', () => {
  it('stops the model call at its first refused progress write, writes nothing more, and ends its stream with one retryable DEPENDENCY_UNAVAILABLE error', async () => {
    const real = new MemoryConversationStore();
    let finishes = 0;
    const store = withWrites(real, {
      saveProgress: (turnId) => Promise.reject(new TurnFencedError(turnId)),
      finishTurn: () => (finishes++, Promise.resolve()),
    });
    const pending = new PendingOutcomes(store, quiet, 60_000);
    const { events, error, modelSignal } = await generate(store, scriptedModel(oneTokenThenWait), { pending });
    expect(modelSignal.aborted).toBe(true);
    expect(events.map((event) => event.type)).toEqual(['token', 'error']);
    expect(events.at(-1)).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
    expect(String(events.at(-1)!.message)).toMatch(
      /can no longer be saved.*another server took over this conversation.*or the conversation was deleted.*Send the message again/,
    );
    expect(error).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    expect(finishes).toBe(0);
    expect(pending.size).toBe(0);
    pending.close();
  });

  it('takes a refused final write as decided: no retry, nothing pending, one retryable DEPENDENCY_UNAVAILABLE error and no end', async () => {
    const real = new MemoryConversationStore();
    let finishes = 0;
    const store = withWrites(real, { finishTurn: (turnId) => (finishes++, Promise.reject(new TurnFencedError(turnId))) });
    const pending = new PendingOutcomes(store, quiet, 60_000);
    const { events, error } = await generate(store, scriptedModel(answerWithTool), { pending });
    expect(events.map((event) => event.type)).toEqual(['tool_call', 'tool_result', 'token', 'token', 'error']);
    expect(events.at(-1)).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
    expect(error).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    expect(finishes).toBe(1);
    expect(pending.size).toBe(0);
    pending.close();
  });
});

describe('an answer whose outcome the store refuses past the retries', () => {
  const refusing = () => {
    const real = new MemoryConversationStore();
    const state = { down: true, store: real as ConversationStore };
    state.store = withWrites(real, {
      finishTurn: (turnId, outcome) =>
        state.down
          ? Promise.reject(new StoreUnavailableError('the database is down', undefined, 'DEPENDENCY_UNAVAILABLE'))
          : real.finishTurn(turnId, outcome),
    });
    return { real, state };
  };

  it('keeps the outcome as it really ended (complete, with its answer, usage, timings and tool steps) and stores that once the store is back', async () => {
    const { real, state } = refusing();
    const pending = new PendingOutcomes(state.store, quiet, 60_000);
    const { turnId, events, error } = await generate(state.store, scriptedModel(answerWithTool), { pending });
    // Not durable yet: the readers get the store's retryable error, not `end`.
    expect(events.map((event) => event.type)).toEqual(['tool_call', 'tool_result', 'token', 'token', 'error']);
    expect(events.at(-1)).toMatchObject({ error_code: 'DEPENDENCY_UNAVAILABLE', retryable: true });
    expect(error).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    expect(pending.has(turnId)).toBe(true);
    expect(pending.refusal()).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE', status: 503, retryable: true });
    expect((await real.getTurn(turnId))!.status).toBe('streaming');

    state.down = false;
    await expect(pending.flush()).resolves.toBe(true);
    const stored = await real.getTurn(turnId);
    expect(stored).toMatchObject({
      status: 'complete',
      answer: 'It is noon.',
      tokenCount: 2,
      errorCode: undefined,
      usage: { input_tokens: 5, output_tokens: 2, total_tokens: 7 },
      toolSteps: [{ callId: 'call-1', name: 'clock', output: '12:00', isError: false, durationMs: 3, tokenOffset: 0 }],
    });
    expect(stored!.timings!.total_ms).toBeGreaterThan(0);
    pending.close();
  });

  it('keeps a cancelled answer as cancelled, with what it had', async () => {
    const { real, state } = refusing();
    const pending = new PendingOutcomes(state.store, quiet, 60_000);
    const { turnId, events } = await generate(state.store, scriptedModel(oneTokenThenWait), { pending, cancel: true });
    expect(events.map((event) => event.type)).toEqual(['token', 'error']);
    state.down = false;
    await expect(pending.flush()).resolves.toBe(true);
    expect(await real.getTurn(turnId)).toMatchObject({ status: 'cancelled', answer: 'Hello', tokenCount: 1 });
    pending.close();
  });
});

describe('a final write whose first attempt timed out but was stored', () => {
  /**
   * A store whose first final write commits (`committed` of the outcome) but reports a timeout, as a COMMIT
   * whose answer was lost; the retry then finds the turn no longer streaming. Later writes go through.
   */
  const lostCommit = (committed: (outcome: TurnOutcome) => TurnOutcome) => {
    const real = new MemoryConversationStore();
    const writes = { attempts: 0 };
    const store = withWrites(real, {
      finishTurn: async (turnId, outcome) => {
        writes.attempts++;
        if (writes.attempts === 1) {
          await real.finishTurn(turnId, committed(outcome));
          throw new StoreUnavailableError('the database did not answer in time', undefined, 'DEPENDENCY_UNAVAILABLE');
        }
        return real.finishTurn(turnId, outcome);
      },
    });
    return { real, store, writes };
  };

  it('takes the fenced retry as stored when the store holds the same outcome: the stream ends with end', async () => {
    const { real, store, writes } = lostCommit((outcome) => outcome);
    const pending = new PendingOutcomes(store, quiet, 60_000);
    const { turnId, events, error } = await generate(store, scriptedModel(answerWithTool), { pending });
    expect(error).toBeUndefined();
    expect(events.at(-1)).toMatchObject({ type: 'end' });
    expect(writes.attempts).toBe(2);
    expect(await real.getTurn(turnId)).toMatchObject({ status: 'complete', answer: 'It is noon.' });
    expect(pending.size).toBe(0);
    pending.close();
  });

  it('still ends fenced when the store holds another outcome (another instance reaped the turn)', async () => {
    const { store, writes } = lostCommit((outcome) => ({ ...outcome, status: 'interrupted', answer: '' }));
    const { events, error } = await generate(store, scriptedModel(answerWithTool));
    expect(error).toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    expect(events.at(-1)).toMatchObject({ type: 'error' });
    expect(writes.attempts).toBe(2);
  });
});

describe('an outcome the store refuses for a reason other than being out of reach', () => {
  it('is not kept pending: one bare error outcome is stored instead, and the stream ends with an error', async () => {
    const real = new MemoryConversationStore();
    const written: string[] = [];
    const store = withWrites(real, {
      finishTurn: (turnId, outcome) => {
        written.push(outcome.status);
        // The full answer is refused for good (a value the store rejects); a bare error is taken.
        return outcome.answer === '' ? real.finishTurn(turnId, outcome) : Promise.reject(new Error('value too long for type'));
      },
    });
    const pending = new PendingOutcomes(store, quiet, 60_000);
    const { turnId, events, error } = await generate(store, scriptedModel(answerWithTool), { pending });
    expect(pending.size).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'error', error_code: 'INTERNAL_ERROR' });
    expect(error).toMatchObject({ code: 'INTERNAL_ERROR' });
    expect(written).toEqual(['complete', 'complete', 'complete', 'complete', 'error']);
    expect(await real.getTurn(turnId)).toMatchObject({ status: 'error', answer: '', errorCode: 'INTERNAL_ERROR' });
    pending.close();
  });

  it('is dropped when even the bare error is refused, leaving nothing pending to hold up the others', async () => {
    const real = new MemoryConversationStore();
    const store = withWrites(real, { finishTurn: () => Promise.reject(new Error('permission denied for table turns')) });
    const pending = new PendingOutcomes(store, quiet, 60_000);
    const { events, error } = await generate(store, scriptedModel(answerWithTool), { pending });
    expect(pending.size).toBe(0);
    expect(events.at(-1)).toMatchObject({ type: 'error' });
    expect(error).toMatchObject({ code: 'INTERNAL_ERROR' });
    pending.close();
  });
});

describe('the log of a turn whose pending outcome is stored before its generation settles', () => {
  it('goes at once: the normal stream TTL does not overwrite the expiry the stored outcome set', async () => {
    const real = new MemoryConversationStore();
    const state = { down: true };
    const store = withWrites(real, {
      finishTurn: (turnId, outcome) =>
        state.down
          ? Promise.reject(new StoreUnavailableError('the database is down', undefined, 'DEPENDENCY_UNAVAILABLE'))
          : real.finishTurn(turnId, outcome),
    });
    const pending = new PendingOutcomes(store, quiet, 60_000);
    // A health check flushes the pending outcome while the generation still waits for its error to settle.
    const log = new (class extends MemoryReplayLog {
      override async settled(turnId: string): Promise<void> {
        if (pending.size > 0) {
          state.down = false;
          await pending.flush();
        }
        return super.settled(turnId);
      }
    })();
    const { turnId } = await generate(store, scriptedModel(answerWithTool), { pending, log, streamTtlMs: 60_000 });
    expect((await real.getTurn(turnId))!.status).toBe('complete');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await log.snapshot(turnId)).toBeUndefined();
    pending.close();
  });
});
