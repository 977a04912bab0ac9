import { RequestError, type ChatWaitError } from '../errors.js';
import type { TurnRecord } from '../store/conversation-store.js';
import type { ChatModel } from '../model/chat-model.js';
import { findConversationKey, publicContextId } from './conversation-keys.js';
import { TurnCancelled } from './turn-generation.js';
import { entriesBatch, listOf, orResync, readFromPosition, readFromTokenIndex, resyncFromRecord, tokenPosition } from './replay-reader.js';
import { RunningTurns } from './running-turns.js';
import { StoredEnds } from './stored-ends.js';
import { endedHandle, followedHandle, handleOf } from './turn-handles.js';
import type { ReplayBatch, ResumePoint, StartTurnInput, TurnHandle, TurnManagerOptions, TurnStream } from './turn-types.js';

export type { TurnResult } from './turn-generation.js';
export type { ReplayBatch, ResumePoint, StartTurnInput, TurnEntry, TurnHandle, TurnManagerOptions, TurnStream } from './turn-types.js';

/** What a resume by event id of a turn in another state than generating reads: nothing but how it ends. */
const AFTER_EVERY_POSITION = Number.MAX_SAFE_INTEGER;
/** How long a cancel waits for the instance generating the turn to end it before it looks for that instance dead. */
const CANCEL_WAIT_MS = 5000;
/** How long a shared log may take to show a turn another instance has just started. */
const LOG_APPEARS_MS = 2000;

/**
 * Starts, attaches to, resumes and cancels turns. A generation writes every event to the turn's
 * replay log and its outcome to the store; it never depends on a connection staying open.
 */
export class TurnManager {
  readonly #options: TurnManagerOptions;
  readonly #running: RunningTurns;
  readonly #storedEnds: StoredEnds;

  constructor(options: TurnManagerOptions) {
    this.#options = options;
    this.#running = new RunningTurns(options);
    const { store, log, pendingOutcomes, streamTtlMs, responseTimeoutMs } = options;
    this.#storedEnds = new StoredEnds({
      getTurn: (turnId) => store.getTurn(turnId),
      // Still `streaming` on a shared log, neither generated here nor held here: another instance is generating it.
      pending: (turnId, record) =>
        record?.status === 'streaming' && log.backend !== 'memory' && !this.#running.get(turnId) && !pendingOutcomes?.has(turnId),
      // As long as its log would have lived.
      waitMs: streamTtlMs + 2 * responseTimeoutMs,
    });
  }

  /** The model that answers, as named in responses and `/health`. */
  get model(): ChatModel {
    return this.#options.model;
  }

  /** How many turns this process is generating now. */
  get activeCount(): number {
    return this.#running.size;
  }

  /** Starts a turn, or attaches to the one this send already started (same client_message_id, or same message while generating). */
  async start(input: StartTurnInput): Promise<TurnHandle> {
    const key = await this.#keyOf(input);
    const resolution = await this.#running.resolve(input, key, undefined);
    if (resolution.kind === 'active') return { ...handleOf(resolution.turn), resumed: true };
    const begun = resolution.kind === 'new' ? await this.#running.begin(input, resolution.reservation) : resolution;
    if (begun.kind === 'started') return handleOf(begun.turn);
    const { record } = begun;
    if (await this.#refuseIfGeneratingElsewhere(record))
      return followedHandle(record, this.#options.log, () => this.#storedEnd(record.turnId));
    return endedHandle(record);
  }

  /**
   * Opens the stream of a streaming request from where it asks to read: after an event id, the turn
   * that id names (replay then live tail, or `resync` once the turn has left the log); otherwise the
   * conversation's running turn for the same message, an ended one still in the log when resuming
   * by token index, or a new turn.
   */
  async open(input: StartTurnInput, from: ResumePoint, signal: AbortSignal): Promise<TurnStream> {
    if (from.kind === 'event_id') return this.#resume(from, input.contextId, input.owner ?? null, signal);
    return this.#startOrAttach(input, from.kind === 'token_index' ? from.lastTokenIndex : 0, signal);
  }

  async #startOrAttach(input: StartTurnInput, lastTokenIndex: number, signal: AbortSignal): Promise<TurnStream> {
    const { log, store } = this.#options;
    const key = await this.#keyOf(input);
    // The original resume: the conversation's latest turn, for the same message, still in the log.
    let replay: TurnRecord | undefined;
    if (lastTokenIndex > 0 && key !== undefined) {
      const latest = await store.latestTurn(key);
      if (latest && latest.userMessage === input.message && (await log.has(latest.turnId))) replay = latest;
    }
    let resolution = await this.#running.resolve(input, key, replay);
    if (resolution.kind === 'new') {
      const begun = await this.#running.begin(input, resolution.reservation);
      if (begun.kind === 'started') {
        const { turn } = begun;
        return {
          ...handleOf(turn),
          startPosition: 'start',
          events: this.#orResync(turn.turnId, publicContextId(turn.contextId), readFromPosition(log, turn.turnId, 0, signal), signal),
        };
      }
      // Another instance had started the same send: read from its log, as a send joining it here does.
      resolution = begun;
    }
    const record = resolution.kind === 'active' ? undefined : resolution.record;
    if (record) await this.#refuseIfGeneratingElsewhere(record);
    const { turnId, model } = resolution.kind === 'active' ? resolution.turn : resolution.record;
    const contextId = publicContextId(resolution.kind === 'active' ? resolution.turn.contextId : resolution.record.contextId);
    const replayed = await readFromTokenIndex(log, turnId, lastTokenIndex, signal);
    const held = lastTokenIndex > 0 ? lastTokenIndex - 1 : undefined;
    if (!replayed && record) {
      // Not in the log, and generating on another instance (its shared log vanished): its end comes from the store.
      const elsewhere = record.status === 'streaming' && log.backend !== 'memory';
      return {
        turnId,
        contextId,
        model,
        resumed: true,
        startPosition: held === undefined ? 'start' : tokenPosition(held, record.toolSteps),
        events: elsewhere ? this.#endFromStore(turnId, record, signal) : listOf(entriesBatch(resyncFromRecord(record))),
      };
    }
    // A generating turn's log is held until it ends; gone already, its outcome comes from the store.
    const startPosition = replayed?.startPosition ?? held ?? 'start';
    return {
      turnId,
      contextId,
      model,
      resumed: true,
      startPosition,
      events: this.#orResync(turnId, contextId, replayed?.batches ?? listOf(), signal),
    };
  }

  /** Resumes after an event id: replay then live tail, or `resync` once the turn has left the log. */
  async #resume(
    from: Extract<ResumePoint, { kind: 'event_id' }>,
    contextId: string | undefined,
    owner: string | null,
    signal: AbortSignal,
  ): Promise<TurnStream> {
    const { turnId, position } = from;
    const active = this.#running.get(turnId);
    const record = active ? undefined : await this.#options.store.getTurn(turnId);
    const turnKey = active?.contextId ?? record?.contextId;
    if (
      turnKey === undefined ||
      (contextId !== undefined && contextId !== publicContextId(turnKey)) ||
      (await this.#options.store.conversationOwner(turnKey)) !== owner
    ) {
      throw new RequestError('NOT_FOUND', 'There is no such turn to resume (it may have been deleted). Send the message again.');
    }
    if (record) await this.#refuseIfGeneratingElsewhere(record);
    const turnContext = publicContextId(turnKey);
    const model = active?.model ?? record!.model;
    const stream = { turnId, contextId: turnContext, model, resumed: true, startPosition: position };
    // A `resync` id asks the store again; while the turn still generates it names no position, so only its end follows.
    if (position === 'resync' && !active) return { ...stream, events: this.#endFromStore(turnId, record!, signal) };
    const after = position === 'start' ? 0 : position === 'resync' ? AFTER_EVERY_POSITION : position + 1;
    return { ...stream, events: this.#orResync(turnId, turnContext, readFromPosition(this.#options.log, turnId, after, signal), signal) };
  }

  /**
   * A turn `streaming` in the store that this process neither runs nor holds an outcome of is being
   * generated by another instance sharing the database: true when it is followed from the shared replay
   * log (or, its log vanished with a Redis restarted empty, by `resync` and its stored end once it ends);
   * otherwise (a log in each process's memory) the request is refused as busy rather than told the store failed.
   */
  async #refuseIfGeneratingElsewhere(record: TurnRecord): Promise<boolean> {
    if (record.status !== 'streaming' || this.#options.pendingOutcomes?.has(record.turnId) !== false) return false;
    const { log } = this.#options;
    if (log.backend !== 'memory') {
      // Followed from the shared log once it shows, or from the store's end if it never does (it vanished).
      await this.#logAppears(record.turnId);
      return true;
    }
    if (await log.has(record.turnId)) return true;
    throw new RequestError(
      'CONVERSATION_BUSY',
      'This answer is being generated by another ChatWait instance, whose stream cannot be read from this one. Wait for it to finish, then read the conversation.',
    );
  }

  /**
   * Waits, up to LOG_APPEARS_MS, for the shared log to hold a turn: the instance that just started it (the
   * store told this one so) creates its log in Redis right after. A log that never shows vanished.
   */
  async #logAppears(turnId: string): Promise<void> {
    const { log } = this.#options;
    const deadline = performance.now() + LOG_APPEARS_MS;
    for (;;) {
      if ((await log.has(turnId)) || performance.now() >= deadline) return;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  }

  /** A reader's entries, or `resync` and `end` from the store if the turn's log is not held or leaves first. */
  #orResync(turnId: string, contextId: string, batches: AsyncIterable<ReplayBatch>, signal: AbortSignal): AsyncIterable<ReplayBatch> {
    return orResync(batches, turnId, contextId, () => this.#storedEnd(turnId, signal));
  }

  /** `resync` and the end from the store, once it has the end of a turn generating on another instance. */
  async *#endFromStore(turnId: string, record: TurnRecord, signal: AbortSignal): AsyncIterable<ReplayBatch> {
    yield entriesBatch(resyncFromRecord((await this.#storedEnd(turnId, signal)) ?? record));
  }

  /**
   * The stored record of a turn whose log a reader lost. With a log shared by instances (Redis), a turn
   * still `streaming` that this process neither generates nor holds the outcome of is generating on
   * another instance (its log vanished with a Redis restarted empty, or Redis stayed away): its end is
   * waited for in the store, for as long as its log would have lived, so the reader gets `resync` and
   * that end rather than an untrue "not stored". Its readers share one poll of the store (StoredEnds).
   */
  #storedEnd(turnId: string, signal?: AbortSignal): Promise<TurnRecord | undefined> {
    return this.#storedEnds.wait(turnId, signal);
  }

  /**
   * Stops a generating turn (its readers get `end` with `finish_reason: "cancelled"`) wherever it runs;
   * harmless on an ended one. Resolves with the status stored once it ended (or `streaming` still, if
   * its instance is alive but did not end it in time).
   */
  async cancel(turnId: string, owner: string | null): Promise<{ turnId: string; contextId: string; status: TurnRecord['status'] }> {
    const active = this.#running.get(turnId);
    const stored = active ? undefined : await this.#options.store.getTurn(turnId);
    const contextId = active?.contextId ?? stored?.contextId;
    if (contextId === undefined || (await this.#options.store.conversationOwner(contextId)) !== owner) {
      throw new RequestError('NOT_FOUND', 'There is no such turn.');
    }
    const { pendingOutcomes } = this.#options;
    if (active) {
      active.controller.abort(new TurnCancelled('cancelled by the user'));
      await active.done.catch(() => undefined);
    } else if (stored?.status === 'streaming' && pendingOutcomes?.has(turnId)) {
      // It ended here, too late to cancel; its outcome waits for the store. Offered once more: stored, its status
      // answers; still refused, the store's retryable 503 (as a send to its conversation gets), never `streaming`.
      if (!(await pendingOutcomes.flush()) && pendingOutcomes.has(turnId)) throw pendingOutcomes.refusal();
    } else if (stored?.status === 'streaming') {
      await this.#cancelElsewhere(turnId);
    }
    const record = await this.#options.store.getTurn(turnId);
    if (!record) throw new RequestError('NOT_FOUND', 'There is no such turn.');
    return { turnId, contextId: publicContextId(record.contextId), status: record.status };
  }

  /** Cancels whatever a conversation is generating (before it is deleted), here or on another instance; `key` is its store key. */
  async cancelConversation(key: string): Promise<void> {
    const active = this.#running.ofConversation(key);
    if (active) {
      active.controller.abort(new TurnCancelled('the conversation was deleted'));
      await active.done.catch(() => undefined);
      return;
    }
    if (!this.#options.control?.shared) return;
    const latest = await this.#options.store.latestTurn(key);
    if (latest?.status === 'streaming') await this.#cancelElsewhere(latest.turnId);
  }

  /**
   * Cancels a turn another instance generates: asks it to (scale-out.md §6.13), then waits up to
   * CANCEL_WAIT_MS for the turn's final entry in the shared log. None came: if that instance is dead,
   * the turn is ended here as `cancelled` (its log sealed with the answer it holds).
   */
  async #cancelElsewhere(turnId: string): Promise<void> {
    // While Redis does not answer, looking for the log and asking for the cancel reject with ReplayLogUnavailable: a retryable 503.
    const { control, log, store } = this.#options;
    // Ended here, its outcome waiting for the store: there is nothing to stop anywhere.
    if (!control?.shared || this.#options.pendingOutcomes?.has(turnId)) return;
    // The cancel flag lives in the log's meta, which the producer's first flush creates: a turn just started is given that moment.
    await this.#logAppears(turnId);
    await control.requestCancel(turnId);
    const signal = AbortSignal.timeout(CANCEL_WAIT_MS);
    try {
      // A read ends after the final entry, which its producer appends once the outcome is stored (or at once, for a log that is gone).
      for await (const batch of log.read(turnId, 0, signal)) void batch;
    } catch {
      // The log left, or the wait ran out: the store says what happened.
    }
    // Still generating: ended here if its instance is dead (a live one is left to act on the flag).
    if ((await store.getTurn(turnId))?.status === 'streaming') await store.endAbandonedTurn?.(turnId);
  }

  /** Called when a reader leaves: an ended turn's log is kept `STREAM_TTL_SECONDS` from now. */
  readerLeft(turnId: string): void {
    if (!this.#running.get(turnId)) this.#options.log.expire(turnId, this.#options.streamTtlMs);
  }

  /**
   * Stops accepting turns (new ones get `refusal`), lets running ones finish for up to `timeoutMs`,
   * then ends the rest with `reason`, a retryable error their readers see.
   */
  async drain(refusal: ChatWaitError, timeoutMs: number, reason: ChatWaitError): Promise<void> {
    await this.#running.close(refusal);
    const running = this.#running.all();
    if (running.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.allSettled(running.map((turn) => turn.done)), timedOut]);
    clearTimeout(timer);
    for (const turn of this.#running.all()) turn.controller.abort(reason);
    await Promise.allSettled(running.map((turn) => turn.done));
  }

  /** The store key of the conversation a send names, if it names one. */
  async #keyOf(input: StartTurnInput): Promise<string | undefined> {
    return input.contextId === undefined ? undefined : findConversationKey(this.#options.store, input.owner, input.contextId);
  }
}
