import { describe, expect, it } from 'vitest';
import { StoreUnavailableError } from '../errors.js';
import type { ChatModel } from '../model/chat-model.js';
import type { Logger } from '../observability/logger.js';
import type { ConversationStore, NewTurn } from '../store/conversation-store.js';
import { MemoryConversationStore } from '../store/memory-store.js';
import { MemoryReplayLog } from '../streams/memory-replay-log.js';
import { PendingOutcomes } from './pending-outcomes.js';
import { RunningTurns } from './running-turns.js';

const quiet = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} } as unknown as Logger;

/** The memory store whose startTurn fails after (`commits`) or before storing the turn, as a lost COMMIT reply does. */
function failingStart(
  real: MemoryConversationStore,
  commits: boolean,
  refusal: Error = new StoreUnavailableError('the database did not answer', undefined, 'DEPENDENCY_UNAVAILABLE'),
): ConversationStore {
  return new Proxy(real, {
    get(target, property) {
      if (property === 'startTurn') {
        return async (turn: NewTurn) => {
          if (commits) await target.startTurn(turn);
          throw refusal;
        };
      }
      const value = Reflect.get(target, property, target) as unknown;
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** Never called: the turn fails before its generation starts. */
const model: ChatModel = {
  provider: 'demo',
  name: 'test-model',
  demo: true,
  streamReply: () => {
    throw new Error('no generation expected');
  },
  checkHealth: async () => ({ status: 'ok', misconfigured: false }),
};

/** RunningTurns on `store` and a log in memory, answered by `answering`. */
function runningTurnsOn(store: ConversationStore, answering: ChatModel, pendingOutcomes?: PendingOutcomes): RunningTurns {
  return new RunningTurns({
    model: answering,
    store,
    log: new MemoryReplayLog(),
    logger: quiet,
    history: { maxMessages: 10, maxChars: 10_000 },
    responseTimeoutMs: 60_000,
    streamTtlMs: 60_000,
    pendingOutcomes,
  });
}

async function send(store: ConversationStore, pending: PendingOutcomes) {
  const turns = runningTurnsOn(store, model, pending);
  const input = { message: 'hi', contextId: 'c1' };
  const resolution = await turns.resolve(input, 'c1', undefined);
  if (resolution.kind !== 'new') throw new Error(`expected a new turn, got ${resolution.kind}`);
  return turns.begin(input, resolution.reservation);
}

describe('a turn whose start the store failed to confirm', () => {
  it('is marked error once the store answers when the store had committed it, so its conversation is not busy forever', async () => {
    const real = new MemoryConversationStore();
    const pending = new PendingOutcomes(real, quiet, 60_000);
    await expect(send(failingStart(real, true), pending)).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    const [turn] = (await real.getConversation('c1'))!.turns;
    expect(turn!.status).toBe('streaming');
    expect(pending.has(turn!.turnId)).toBe(true);
    await expect(pending.flush()).resolves.toBe(true);
    expect(await real.getTurn(turn!.turnId)).toMatchObject({ status: 'error', errorCode: 'DEPENDENCY_UNAVAILABLE' });
    pending.close();
  });

  it('leaves nothing pending once the store answers when the turn was never stored', async () => {
    const real = new MemoryConversationStore();
    const pending = new PendingOutcomes(real, quiet, 60_000);
    await expect(send(failingStart(real, false), pending)).rejects.toMatchObject({ code: 'DEPENDENCY_UNAVAILABLE' });
    expect(pending.size).toBe(1);
    await expect(pending.flush()).resolves.toBe(true);
    expect(await real.getConversation('c1')).toBeUndefined();
    pending.close();
  });

  it('keeps nothing pending when the store refused the turn itself (it answered, so it stored nothing)', async () => {
    const real = new MemoryConversationStore();
    const pending = new PendingOutcomes(real, quiet, 60_000);
    await expect(send(failingStart(real, false, new Error('a bad value')), pending)).rejects.toThrow('a bad value');
    expect(pending.size).toBe(0);
    pending.close();
  });
});

/** A memory log whose `settled` waits until `release` is called, as a remote log's does while its writes are on the way. */
class SlowToSettleLog extends MemoryReplayLog {
  release!: () => void;
  readonly #acknowledged = new Promise<void>((resolve) => (this.release = resolve));
  override settled(): Promise<void> {
    return this.#acknowledged;
  }
}

describe('a turn whose log is still settling after its end', () => {
  it('lets its conversation take the next message once its readers can have the end, not only once the log settled', async () => {
    const log = new SlowToSettleLog();
    const answering: ChatModel = {
      ...model,
      streamReply: async function* () {
        yield { type: 'text_delta', delta: 'Hello' };
        yield { type: 'done', usage: undefined, finalOutput: 'Hello' };
      },
    };
    const turns = new RunningTurns({
      model: answering,
      store: new MemoryConversationStore(),
      log,
      logger: quiet,
      history: { maxMessages: 10, maxChars: 10_000 },
      responseTimeoutMs: 60_000,
      streamTtlMs: 60_000,
    });
    const first = { message: 'first', contextId: 'c1' };
    const resolved = await turns.resolve(first, 'c1', undefined);
    if (resolved.kind !== 'new') throw new Error(`expected a new turn, got ${resolved.kind}`);
    const begun = await turns.begin(first, resolved.reservation);
    if (begun.kind !== 'started') throw new Error(`expected a started turn, got ${begun.kind}`);
    const { turn } = begun;
    let settledYet = false;
    void turn.done.then(() => (settledYet = true));
    // A reader reads to the end, as the first request's stream does.
    const read: string[] = [];
    for await (const batch of log.read(turn.turnId, 0)) for (const entry of batch) read.push(JSON.parse(entry.data).type);
    expect(read.at(-1)).toBe('end');
    expect(settledYet).toBe(false);
    // Its client sends the next message at once: it starts a turn, rather than finding the conversation busy.
    const second = await turns.resolve({ message: 'second', contextId: 'c1' }, 'c1', undefined);
    expect(second.kind).toBe('new');
    // Still running here until then: a drain waits for it, a resume by event id finds it.
    expect(turns.get(turn.turnId)).toBe(turn);
    log.release();
    await turn.done;
    expect(turns.get(turn.turnId)).toBeUndefined();
  });
});

describe('a send that another instance sharing the store has already started', () => {
  /** A model that answers one token, then waits until the test lets it finish. */
  function heldModel(): { model: ChatModel; finish: () => void } {
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => (finish = resolve));
    return {
      finish,
      model: {
        ...model,
        streamReply: async function* () {
          yield { type: 'text_delta', delta: 'Hello' };
          await finished;
          yield { type: 'done', usage: undefined, finalOutput: 'Hello' };
        },
      },
    };
  }
  const instance = (store: ConversationStore, answering: ChatModel) => runningTurnsOn(store, answering);
  const begin = async (turns: RunningTurns, input: { message: string; contextId: string; clientMessageId?: string }) => {
    const resolution = await turns.resolve(input, input.contextId, undefined);
    if (resolution.kind !== 'new') throw new Error(`expected a new turn, got ${resolution.kind}`);
    return turns.begin(input, resolution.reservation);
  };

  it('is joined (same message, or same client_message_id), a different message is busy, and a free conversation starts', async () => {
    const store = new MemoryConversationStore();
    const held = heldModel();
    const [a, b] = [instance(store, held.model), instance(store, held.model)];
    const started = await begin(a, { message: 'hi', contextId: 'c1', clientMessageId: 'send-1' });
    if (started.kind !== 'started') throw new Error('A should generate it');
    // B knows nothing of A's turn but what the store tells it when its own start is refused.
    await expect(begin(b, { message: 'hi', contextId: 'c1' })).resolves.toMatchObject({
      kind: 'ended',
      record: { turnId: started.turn.turnId, status: 'streaming' },
    });
    await expect(begin(b, { message: 'something else', contextId: 'c1' })).rejects.toMatchObject({ code: 'CONVERSATION_BUSY' });
    held.finish();
    await started.turn.done;
    // Ended: the same client_message_id reaching B is its stored turn; a new message starts on B.
    await expect(b.resolve({ message: 'hi', contextId: 'c1', clientMessageId: 'send-1' }, 'c1', undefined)).resolves.toMatchObject({
      kind: 'ended',
      record: { turnId: started.turn.turnId, status: 'complete' },
    });
    const next = await begin(b, { message: 'next', contextId: 'c1' });
    expect(next.kind).toBe('started');
    if (next.kind === 'started') await next.turn.done;
  });

  it('starts one turn when both instances begin the same client_message_id at once', async () => {
    const store = new MemoryConversationStore();
    const held = heldModel();
    const [a, b] = [instance(store, held.model), instance(store, held.model)];
    const input = { message: 'once', contextId: 'c2', clientMessageId: 'send-2' };
    // Both look before either starts: neither sees the other's turn until the store refuses the second.
    const [onA, onB] = await Promise.all([a.resolve(input, 'c2', undefined), b.resolve(input, 'c2', undefined)]);
    if (onA.kind !== 'new' || onB.kind !== 'new') throw new Error('both should begin');
    const begun = await Promise.all([a.begin(input, onA.reservation), b.begin(input, onB.reservation)]);
    expect(begun.map((result) => result.kind).sort()).toEqual(['ended', 'started']);
    const generating = begun.find((result) => result.kind === 'started')!;
    const joined = begun.find((result) => result.kind === 'ended')!;
    if (generating.kind !== 'started' || joined.kind !== 'ended') throw new Error('unreachable');
    expect(joined.record.turnId).toBe(generating.turn.turnId);
    held.finish();
    await generating.turn.done;
    expect((await store.getConversation('c2'))!.turns).toHaveLength(1);
  });
});
