import { randomUUID } from 'node:crypto';
import { RequestError, StoreUnavailableError, type ChatWaitError } from '../errors.js';
import { TurnConflictError, type TurnRecord } from '../store/conversation-store.js';
import { conversationKey, publicContextId } from './conversation-keys.js';
import { buildContext, historyTurnsNeeded, turnsToMessages } from './history.js';
import { runGeneration, TurnCancelled } from './turn-generation.js';
import { bareErrorOutcome } from './turn-outcome.js';
import type { ActiveTurn } from './turn-handles.js';
import type { StartTurnInput, TurnManagerOptions } from './turn-types.js';

/** What a send does: start a new turn (its conversation's place reserved), join a running one, or answer from an ended one. */
export type Resolution =
  | { kind: 'new'; reservation: Reservation }
  | { kind: 'active'; turn: ActiveTurn }
  | { kind: 'ended'; record: TurnRecord }
  | { kind: 'replay'; record: TurnRecord };

/**
 * What beginning a new turn came to: this process generates it (`started`), or another instance sharing the
 * database had already started the same send (its client_message_id, or the same message while it generates),
 * whose turn is joined instead (`ended`: not generating here, as a `Resolution`'s).
 */
export type Begun = { kind: 'started'; turn: ActiveTurn } | { kind: 'ended'; record: TurnRecord };

/** A conversation's place held for a turn that is being set up. */
interface Reservation {
  contextId: string;
  message: string;
  turn: Promise<Begun>;
  settle(result: Promise<Begun>): void;
}

/**
 * The turns this process is generating, and the decision of what a send does: at most one turn
 * generates per conversation, and a send that repeats one (same client_message_id, or the same
 * message while it generates) joins it instead of starting another.
 */
export class RunningTurns {
  readonly #options: TurnManagerOptions;
  readonly #active = new Map<string, ActiveTurn>();
  readonly #activeByContext = new Map<string, ActiveTurn>();
  /** Starts in progress by conversation, so two concurrent sends cannot both begin a turn. */
  readonly #starting = new Map<string, Reservation>();
  #refusal: ChatWaitError | undefined;

  constructor(options: TurnManagerOptions) {
    this.#options = options;
  }

  /** How many turns this process is generating now. */
  get size(): number {
    return this.#active.size;
  }

  /** The running turn with this id. */
  get(turnId: string): ActiveTurn | undefined {
    return this.#active.get(turnId);
  }

  /** The running turn of a conversation (by its store key). */
  ofConversation(key: string): ActiveTurn | undefined {
    return this.#activeByContext.get(key);
  }

  /** The turns generating now. */
  all(): ActiveTurn[] {
    return [...this.#active.values()];
  }

  /** Refuses new turns with `refusal` from now on, then waits for the turns still being set up. */
  async close(refusal: ChatWaitError): Promise<void> {
    this.#refusal = refusal;
    // Turns past the admission check but still being set up are waited for too.
    await Promise.allSettled([...this.#starting.values()].map((reservation) => reservation.turn));
  }

  /**
   * Decides what a send does. The awaits come first; the checks and the reservation of the
   * conversation then happen in one synchronous step, so two concurrent sends cannot both start a turn.
   */
  async resolve(input: StartTurnInput, key: string | undefined, replay: TurnRecord | undefined): Promise<Resolution> {
    if (this.#refusal) throw this.#refusal;
    const { clientMessageId } = input;
    const owner = key === undefined ? undefined : await this.#options.store.conversationOwner(key);
    // A scoped key never names another key's conversation; one made while API keys were off can, once they are on.
    if (owner !== undefined && owner !== (input.owner ?? null)) throw new RequestError('NOT_FOUND', 'There is no such conversation.');
    if (key !== undefined) await this.#refuseWhileOutcomePending(key);
    const sent =
      key !== undefined && clientMessageId !== undefined
        ? await this.#options.store.findTurnByClientMessageId(key, clientMessageId)
        : undefined;
    if (this.#refusal) throw this.#refusal;
    if (sent) {
      if (sent.userMessage !== input.message) throw reusedKeyError();
      const active = this.#active.get(sent.turnId);
      return active ? { kind: 'active', turn: active } : { kind: 'ended', record: sent };
    }
    const id = key ?? conversationKey(input.owner, randomUUID());
    const starting = this.#starting.get(id);
    // The same message sent twice at once (a double click, a retry racing the original) joins the first.
    if (starting?.message === input.message) {
      const begun = await starting.turn;
      return begun.kind === 'started' ? { kind: 'active', turn: begun.turn } : begun;
    }
    const active = this.#activeByContext.get(id);
    if (active?.userMessage === input.message) return { kind: 'active', turn: active };
    if (active || starting) {
      throw busyError();
    }
    if (replay) return { kind: 'replay', record: replay };
    return { kind: 'new', reservation: this.#reserve(id, input.message) };
  }

  /**
   * A conversation whose last answer waits in PendingOutcomes for the store to take it still has that
   * turn `streaming` in the store: a new message cannot start, and a resend would replay an ending the
   * store has not got. Both are refused with the store's own unavailability (503, retryable, not
   * CONVERSATION_BUSY: the store is what refuses), after offering it the outcome once more.
   */
  async #refuseWhileOutcomePending(key: string): Promise<void> {
    const pending = this.#options.pendingOutcomes;
    if (!pending || pending.size === 0) return;
    const latest = await this.#options.store.latestTurn(key);
    if (!latest || !pending.has(latest.turnId)) return;
    await pending.flush();
    if (pending.has(latest.turnId)) throw pending.refusal();
  }

  /** Starts the turn a `new` resolution reserved the conversation for, or joins the same send another instance started. */
  async begin(input: StartTurnInput, reservation: Reservation): Promise<Begun> {
    const turn = (async () => {
      const release = (await input.admit?.()) ?? undefined;
      try {
        const begun = await this.#create(input, reservation.contextId, release);
        // Joined: nothing generates here, so nothing holds the admission.
        if (begun.kind === 'ended') release?.();
        return begun;
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

  #reserve(contextId: string, message: string): Reservation {
    let settle!: (result: Promise<Begun>) => void;
    const turn = new Promise<Begun>((resolve) => (settle = resolve));
    // A send that joins a reservation whose turn then fails to start gets that failure.
    turn.catch(() => {});
    const reservation: Reservation = { contextId, message, turn, settle };
    this.#starting.set(contextId, reservation);
    return reservation;
  }

  /** Sets up and starts a turn's generation; `release` (what `admit` returned) is called when the generation ends. */
  async #create(input: StartTurnInput, contextId: string, release: (() => void) | undefined): Promise<Begun> {
    const { store, model, log } = this.#options;
    // A log kept in Redis that does not answer refuses the turn before it is stored (fail closed): no other
    // instance could follow, resume or cancel it. Asked alongside the history read, so it adds no wait.
    const logAnswers = log.ping();
    logAnswers.catch(() => {});
    // A new conversation has no history to read (and a read would commit the queued writes early). Only the
    // window the budget can keep is read: a long conversation costs no more than a short one.
    const stored =
      input.history || input.contextId === undefined ? [] : await store.recentTurns(contextId, historyTurnsNeeded(this.#options.history));
    const history = input.history ?? turnsToMessages(stored);
    const messages = buildContext(history, input.message, this.#options.history);
    const turnId = randomUUID();
    await logAnswers;
    const elsewhere = await this.#record(input, contextId, turnId);
    if (elsewhere) return { kind: 'ended', record: elsewhere };
    log.open(turnId);
    const controller = new AbortController();
    // A cancel asked on another instance stops it as one asked here does.
    const unwatch = this.#options.control?.watch(turnId, () => controller.abort(new TurnCancelled('cancelled on another instance')));
    const turn: ActiveTurn = { turnId, contextId, model: model.name, userMessage: input.message, controller, done: undefined! };
    turn.done = runGeneration({
      turnId,
      // The events and the result carry the id the client knows.
      contextId: publicContextId(contextId),
      messages,
      instructions: input.instructions,
      signal: controller.signal,
      abort: (reason) => controller.abort(reason),
      model,
      store,
      log,
      logger: this.#options.logger,
      responseTimeoutMs: this.#options.responseTimeoutMs,
      observer: this.#options.observer,
      pendingOutcomes: this.#options.pendingOutcomes,
      streamTtlMs: this.#options.streamTtlMs,
      // Its readers may have its end while a remote log still settles: a next message must not find the conversation busy.
      onEnded: () => {
        if (this.#activeByContext.get(contextId) === turn) this.#activeByContext.delete(contextId);
      },
    }).finally(() => {
      unwatch?.();
      this.#active.delete(turnId);
      if (this.#activeByContext.get(contextId) === turn) this.#activeByContext.delete(contextId);
      release?.();
    });
    // Only wait requests await `done`; a streaming turn's failure is already in its log.
    turn.done.catch(() => {});
    this.#active.set(turnId, turn);
    this.#activeByContext.set(contextId, turn);
    return { kind: 'started', turn };
  }

  /**
   * Records a new turn as `streaming`; undefined once it is. The database is the arbiter between instances
   * (scale-out.md §6.12): when another one started a turn in this conversation first, the same send is
   * joined (its turn is returned), a turn whose instance is dead is reaped and the start tried once more,
   * and anything else is refused as busy, as when this process holds the conversation.
   */
  async #record(input: StartTurnInput, contextId: string, turnId: string): Promise<TurnRecord | undefined> {
    const { store, model } = this.#options;
    for (let attempt = 0; ; attempt++) {
      try {
        await store.startTurn({
          turnId,
          contextId,
          userMessage: input.message,
          model: model.name,
          clientMessageId: input.clientMessageId,
          owner: input.owner ?? null,
        });
        return undefined;
      } catch (error) {
        // A store out of reach may have committed the turn though its answer never came (a COMMIT whose reply was
        // lost): a `streaming` row nothing generates would hold the conversation busy. It is marked `error` once the
        // store answers; a turn that was never stored is refused as fenced there, and dropped. Any other refusal
        // came from the store itself, which stored nothing.
        if (!(error instanceof TurnConflictError)) {
          if (error instanceof StoreUnavailableError)
            this.#options.pendingOutcomes?.add(turnId, bareErrorOutcome(error), { refusal: error });
          throw error;
        }
      }
      // Reaped first: a send repeated because its instance died starts afresh rather than joining a turn nobody ends.
      if (attempt === 0 && (await store.reapAbandonedTurn(contextId)) !== undefined) continue;
      const same = await this.#sameSend(input, contextId);
      if (same) return same;
      // The turn in the way ended meanwhile: the conversation is free.
      if (attempt === 0 && (await store.latestTurn(contextId))?.status !== 'streaming') continue;
      throw busyError();
    }
  }

  /** The turn already started for this send in the store: by its client_message_id, or the same message generating now. */
  async #sameSend(input: StartTurnInput, contextId: string): Promise<TurnRecord | undefined> {
    const { store } = this.#options;
    if (input.clientMessageId !== undefined) {
      const sent = await store.findTurnByClientMessageId(contextId, input.clientMessageId);
      if (sent && sent.userMessage !== input.message) throw reusedKeyError();
      if (sent) return sent;
    }
    const latest = await store.latestTurn(contextId);
    return latest?.status === 'streaming' && latest.userMessage === input.message ? latest : undefined;
  }
}

/** The refusal of a client_message_id sent again with another message. */
function reusedKeyError(): RequestError {
  // A key names one message: answering a different one with the first one's answer would drop it silently.
  return new RequestError(
    'IDEMPOTENCY_KEY_REUSED',
    'This client_message_id was already used for a different message in this conversation. Send the new message with a new client_message_id.',
  );
}

/** The refusal of a send while its conversation is answering another one. */
function busyError(): RequestError {
  return new RequestError(
    'CONVERSATION_BUSY',
    'This conversation is still answering the previous message. Wait for it to finish, or cancel it, then send again.',
  );
}
