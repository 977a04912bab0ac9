import { randomUUID } from 'node:crypto';
import { ChatWaitError, RequestError, StoreUnavailableError } from '../errors.js';
import { TurnConflictError, type ToolStep, type TurnRecord } from '../store/conversation-store.js';
import type { ChatModel } from '../model/chat-model.js';
import { conversationKey, findConversationKey, publicContextId } from './conversation-keys.js';
import { buildContext, historyTurnsNeeded, turnsToMessages } from './history.js';
import { runGeneration, TurnCancelled, type TurnResult } from './turn-generation.js';
import { fromPosition, fromTokenIndex, OUTCOME_NOT_STORED, orResync, resyncFromRecord, tokenPosition, type WireBatch, type WireEvent } from './replay-reader.js';
import type { StartTurnInput, TurnHandle, TurnManagerOptions, TurnStream } from './turn-types.js';

export type { TurnResult } from './turn-generation.js';
export type { StartTurnInput, TurnHandle, TurnManagerOptions, TurnStream } from './turn-types.js';

interface ActiveTurn {
  turnId: string;
  /** The conversation's store key (see conversation-keys.ts), not the client's context_id. */
  contextId: string;
  model: string;
  userMessage: string;
  controller: AbortController;
  done: Promise<TurnResult>;
  /** The tool steps so far, filled by the generation. */
  toolSteps: ToolStep[];
}

type Resolution =
  | { kind: 'new'; reservation: Reservation }
  | { kind: 'active'; turn: ActiveTurn }
  | { kind: 'ended'; record: TurnRecord }
  | { kind: 'replay'; record: TurnRecord };

/** A conversation's place held for a turn that is being set up. */
interface Reservation {
  contextId: string;
  message: string;
  turn: Promise<ActiveTurn>;
  settle(result: Promise<ActiveTurn>): void;
}

const LAST_EVENT_ID = /^([A-Za-z0-9._:-]{1,128})\/(start|resync|\d{1,9})$/;

/**
 * Starts, attaches to, resumes and cancels turns. A generation writes every event to the turn's
 * replay log and its outcome to the store; it never depends on a connection staying open.
 */
export class TurnManager {
  readonly #options: TurnManagerOptions;
  readonly #active = new Map<string, ActiveTurn>();
  readonly #activeByContext = new Map<string, ActiveTurn>();
  /** Starts in progress by conversation, so two concurrent sends cannot both begin a turn. */
  readonly #starting = new Map<string, { message: string; turn: Promise<ActiveTurn> }>();
  #refusal: ChatWaitError | undefined;

  constructor(options: TurnManagerOptions) {
    this.#options = options;
  }

  /** The model that answers, as named in responses and `/health`. */
  get model(): ChatModel {
    return this.#options.model;
  }

  /** How many turns this process is generating now. */
  get activeCount(): number {
    return this.#active.size;
  }

  /** Starts a turn, or attaches to the one this send already started (same client_message_id, or same message while generating). */
  async start(input: StartTurnInput): Promise<TurnHandle> {
    const key = await this.#keyOf(input);
    const resolution = await this.#resolve(input, key, undefined);
    if (resolution.kind === 'active') return { ...handleOf(resolution.turn), resumed: true };
    if (resolution.kind === 'new') return handleOf(await this.#begin(input, resolution.reservation));
    return endedHandle(resolution.record);
  }

  /**
   * Opens the stream of a streaming request: attaches (from token `lastTokenIndex`) to the
   * conversation's running turn for the same message, replays an ended one still in the log when
   * `lastTokenIndex > 0`, or starts a new turn.
   */
  async openStream(input: StartTurnInput, lastTokenIndex: number, signal: AbortSignal): Promise<TurnStream> {
    const { log, store } = this.#options;
    const key = await this.#keyOf(input);
    // The original resume: the conversation's latest turn, for the same message, still in the log.
    let replay: TurnRecord | undefined;
    if (lastTokenIndex > 0 && key !== undefined) {
      const latest = await store.latestTurn(key);
      if (latest && latest.userMessage === input.message && log.has(latest.turnId)) replay = latest;
    }
    const resolution = await this.#resolve(input, key, replay);
    if (resolution.kind === 'new') {
      const turn = await this.#begin(input, resolution.reservation);
      return { ...handleOf(turn), startId: `${turn.turnId}/start`, events: this.#orResync(turn.turnId, publicContextId(turn.contextId), fromPosition(log, turn.turnId, 0, signal)) };
    }
    const { turnId, model, toolSteps } = resolution.kind === 'active' ? resolution.turn : resolution.record;
    const contextId = publicContextId(resolution.kind === 'active' ? resolution.turn.contextId : resolution.record.contextId);
    const startId = lastTokenIndex > 0 ? `${turnId}/${tokenPosition(lastTokenIndex - 1, toolSteps)}` : `${turnId}/start`;
    if (resolution.kind === 'ended' && !log.has(turnId)) return { turnId, contextId, model, resumed: true, startId, events: listOf(resyncFromRecord(resolution.record)) };
    return { turnId, contextId, model, resumed: true, startId, events: this.#orResync(turnId, contextId, fromTokenIndex(log, turnId, lastTokenIndex, signal)) };
  }

  /** Resumes from a `Last-Event-ID` (`<turn_id>/<position>`): replay then live tail, or `resync` once the turn has left the log. */
  async resumeStream(lastEventId: string, contextId: string | undefined, owner: string | null, signal: AbortSignal): Promise<TurnStream> {
    const match = LAST_EVENT_ID.exec(lastEventId.trim());
    if (!match) {
      throw new RequestError('VALIDATION_ERROR', 'Last-Event-ID must look like <turn_id>/<position>, as sent in the id: lines.', {
        detail: [{ loc: ['header', 'last-event-id'], msg: 'must be <turn_id>/<position>', type: 'value_error' }],
      });
    }
    const turnId = match[1]!;
    const after = match[2]!;
    const active = this.#active.get(turnId);
    const record = active ? undefined : await this.#options.store.getTurn(turnId);
    const turnKey = active?.contextId ?? record?.contextId;
    if (
      turnKey === undefined ||
      (contextId !== undefined && contextId !== publicContextId(turnKey)) ||
      (await this.#options.store.conversationOwner(turnKey)) !== owner
    ) {
      throw new RequestError('NOT_FOUND', 'There is no such turn to resume (it may have been deleted). Send the message again.');
    }
    const turnContext = publicContextId(turnKey);
    const { log } = this.#options;
    const startId = `${turnId}/${after}`;
    const from = after === 'start' ? 0 : Number(after) + 1;
    if (active) return { turnId, contextId: turnContext, model: active.model, resumed: true, startId, events: this.#orResync(turnId, turnContext, fromPosition(log, turnId, from, signal)) };
    const { model } = record!;
    const events = after !== 'resync' && log.has(turnId) ? this.#orResync(turnId, turnContext, fromPosition(log, turnId, from, signal)) : listOf(resyncFromRecord(record!));
    return { turnId, contextId: turnContext, model, resumed: true, startId, events };
  }

  /** A reader's events, or `resync` and `end` from the store if the turn's log leaves memory first. */
  #orResync(turnId: string, contextId: string, events: AsyncIterable<WireBatch>): AsyncIterable<WireBatch> {
    return orResync(events, this.#options.log, turnId, contextId, () => this.#options.store.getTurn(turnId));
  }

  /** Stops a generating turn (its readers get `end` with `finish_reason: "cancelled"`); harmless on an ended one. */
  async cancel(turnId: string, owner: string | null): Promise<{ turnId: string; contextId: string; status: TurnRecord['status'] }> {
    const active = this.#active.get(turnId);
    const contextId = active?.contextId ?? (await this.#options.store.getTurn(turnId))?.contextId;
    if (contextId === undefined || (await this.#options.store.conversationOwner(contextId)) !== owner) {
      throw new RequestError('NOT_FOUND', 'There is no such turn.');
    }
    if (active) {
      active.controller.abort(new TurnCancelled('cancelled by the user'));
      await active.done.catch(() => undefined);
    }
    const record = await this.#options.store.getTurn(turnId);
    if (!record) throw new RequestError('NOT_FOUND', 'There is no such turn.');
    return { turnId, contextId: publicContextId(record.contextId), status: record.status };
  }

  /** Cancels whatever a conversation is generating (before it is deleted); `key` is its store key. */
  async cancelConversation(key: string): Promise<void> {
    const active = this.#activeByContext.get(key);
    if (active) {
      active.controller.abort(new TurnCancelled('the conversation was deleted'));
      await active.done.catch(() => undefined);
    }
  }

  /** Called when a reader leaves: an ended turn's log is kept `STREAM_TTL_SECONDS` from now. */
  readerLeft(turnId: string): void {
    if (!this.#active.has(turnId)) this.#options.log.expire(turnId, this.#options.streamTtlMs);
  }

  /**
   * Stops accepting turns (new ones get `refusal`), lets running ones finish for up to `timeoutMs`,
   * then ends the rest with `reason`, a retryable error their readers see.
   */
  async drain(refusal: ChatWaitError, timeoutMs: number, reason: ChatWaitError): Promise<void> {
    this.#refusal = refusal;
    // Turns past the admission check but still being set up are waited for too.
    await Promise.allSettled([...this.#starting.values()].map((reservation) => reservation.turn));
    const running = [...this.#active.values()];
    if (running.length === 0) return;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => (timer = setTimeout(resolve, timeoutMs)));
    await Promise.race([Promise.allSettled(running.map((turn) => turn.done)), timedOut]);
    clearTimeout(timer);
    for (const turn of this.#active.values()) turn.controller.abort(reason);
    await Promise.allSettled(running.map((turn) => turn.done));
  }

  /**
   * Decides what a send does. The awaits come first; the checks and the reservation of the
   * conversation then happen in one synchronous step, so two concurrent sends cannot both start a turn.
   */
  async #resolve(input: StartTurnInput, key: string | undefined, replay: TurnRecord | undefined): Promise<Resolution> {
    if (this.#refusal) throw this.#refusal;
    const { clientMessageId } = input;
    const owner = key === undefined ? undefined : await this.#options.store.conversationOwner(key);
    // A scoped key never names another key's conversation; one made while API keys were off can, once they are on.
    if (owner !== undefined && owner !== (input.owner ?? null)) throw new RequestError('NOT_FOUND', 'There is no such conversation.');
    const sent = key !== undefined && clientMessageId !== undefined ? await this.#options.store.findTurnByClientMessageId(key, clientMessageId) : undefined;
    if (this.#refusal) throw this.#refusal;
    if (sent) {
      // A key names one message: answering a different one with the first one's answer would drop it silently.
      if (sent.userMessage !== input.message) {
        throw new RequestError(
          'IDEMPOTENCY_KEY_REUSED',
          'This client_message_id was already used for a different message in this conversation. Send the new message with a new client_message_id.',
        );
      }
      const active = this.#active.get(sent.turnId);
      return active ? { kind: 'active', turn: active } : { kind: 'ended', record: sent };
    }
    const id = key ?? conversationKey(input.owner, randomUUID());
    const starting = this.#starting.get(id);
    // The same message sent twice at once (a double click, a retry racing the original) joins the first.
    if (starting?.message === input.message) return { kind: 'active', turn: await starting.turn };
    const active = this.#activeByContext.get(id);
    if (active?.userMessage === input.message) return { kind: 'active', turn: active };
    if (active || starting) {
      throw busyError();
    }
    if (replay) return { kind: 'replay', record: replay };
    return { kind: 'new', reservation: this.#reserve(id, input.message) };
  }

  /** The store key of the conversation a send names, if it names one. */
  async #keyOf(input: StartTurnInput): Promise<string | undefined> {
    return input.contextId === undefined ? undefined : findConversationKey(this.#options.store, input.owner, input.contextId);
  }

  #reserve(contextId: string, message: string): Reservation {
    let settle!: (result: Promise<ActiveTurn>) => void;
    const turn = new Promise<ActiveTurn>((resolve) => (settle = resolve));
    // A send that joins a reservation whose turn then fails to start gets that failure.
    turn.catch(() => {});
    const reservation: Reservation = { contextId, message, turn, settle };
    this.#starting.set(contextId, reservation);
    return reservation;
  }

  async #begin(input: StartTurnInput, reservation: Reservation): Promise<ActiveTurn> {
    const turn = (async () => {
      const release = (await input.admit?.()) ?? undefined;
      try {
        return await this.#create(input, reservation.contextId, release);
      } catch (error) {
        release?.();
        throw error;
      }
    })();
    reservation.settle(turn);
    try {
      return await turn;
    } finally {
      if (this.#starting.get(reservation.contextId) === reservation) this.#starting.delete(reservation.contextId);
    }
  }

  /** Sets up and starts a turn's generation; `release` (what `admit` returned) is called when the generation ends. */
  async #create(input: StartTurnInput, contextId: string, release: (() => void) | undefined): Promise<ActiveTurn> {
    const { store, model, log } = this.#options;
    // A new conversation has no history to read (and a read would commit the queued writes early). Only the
    // window the budget can keep is read: a long conversation costs no more than a short one.
    const stored = input.history || input.contextId === undefined ? [] : await store.recentTurns(contextId, historyTurnsNeeded(this.#options.history));
    const history = input.history ?? turnsToMessages(stored);
    const messages = buildContext(history, input.message, this.#options.history);
    const turnId = randomUUID();
    await store
      .startTurn({ turnId, contextId, userMessage: input.message, model: model.name, clientMessageId: input.clientMessageId, owner: input.owner ?? null })
      .catch((error: unknown) => {
        // Another instance sharing the database started a turn in this conversation first (the same retried
        // send, or another message): as when this process holds it, the send is refused until that turn ends.
        if (error instanceof TurnConflictError) throw busyError();
        throw error;
      });
    log.open(turnId);
    const controller = new AbortController();
    const toolSteps: ToolStep[] = [];
    const turn: ActiveTurn = { turnId, contextId, model: model.name, userMessage: input.message, controller, done: undefined!, toolSteps };
    turn.done = runGeneration({
      turnId,
      // The events and the result carry the id the client knows.
      contextId: publicContextId(contextId),
      messages,
      signal: controller.signal,
      abort: (reason) => controller.abort(reason),
      model,
      store,
      log,
      logger: this.#options.logger,
      responseTimeoutMs: this.#options.responseTimeoutMs,
      observer: this.#options.observer,
      toolSteps,
      pendingOutcomes: this.#options.pendingOutcomes,
    }).finally(() => {
      this.#active.delete(turnId);
      if (this.#activeByContext.get(contextId) === turn) this.#activeByContext.delete(contextId);
      log.expire(turnId, this.#options.streamTtlMs);
      release?.();
    });
    // Only wait requests await `done`; a streaming turn's failure is already in its log.
    turn.done.catch(() => {});
    this.#active.set(turnId, turn);
    this.#activeByContext.set(contextId, turn);
    return turn;
  }
}

function handleOf(turn: ActiveTurn): TurnHandle {
  return { turnId: turn.turnId, contextId: publicContextId(turn.contextId), model: turn.model, resumed: false, done: turn.done };
}

/** The handle of a turn that already ended: its stored answer, or the error it ended with. */
function endedHandle(record: TurnRecord): TurnHandle {
  const done =
    // Ended here but still `streaming` in the store: its outcome waits for the store to take it (PendingOutcomes).
    record.status === 'streaming'
      ? Promise.reject(outcomeNotStored())
      : record.status === 'complete' || record.status === 'cancelled'
      ? Promise.resolve<TurnResult>({
          turnId: record.turnId,
          contextId: publicContextId(record.contextId),
          answer: record.answer,
          tokenCount: record.tokenCount,
          finishReason: record.status === 'complete' ? 'stop' : 'cancelled',
          usage: record.usage,
          timings: record.timings ?? { ttft_ms: null, total_ms: 0 },
          model: record.model,
          toolSteps: record.toolSteps,
        })
      : Promise.reject(
          new ChatWaitError(
            record.errorCode === 'UPSTREAM_TIMEOUT' || record.errorCode === 'STORE_UNAVAILABLE' ? record.errorCode : 'UPSTREAM_ERROR',
            'This message (same client_message_id) already failed. Send it with a new client_message_id to try again.',
            { retryable: true },
          ),
        );
  done.catch(() => {});
  return { turnId: record.turnId, contextId: publicContextId(record.contextId), model: record.model, resumed: true, done };
}

/** What a send of a turn whose outcome the store has not taken yet gets. */
function outcomeNotStored(): StoreUnavailableError {
  return new StoreUnavailableError(OUTCOME_NOT_STORED);
}

async function* listOf(events: WireEvent[]): AsyncIterable<WireBatch> {
  yield events;
}

/** The refusal of a send while its conversation is answering another one. */
function busyError(): RequestError {
  return new RequestError('CONVERSATION_BUSY', 'This conversation is still answering the previous message. Wait for it to finish, or cancel it, then send again.');
}
