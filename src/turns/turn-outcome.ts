import { StoreUnavailableError, toChatWaitError } from '../errors.js';
import { TurnFencedError, type ConversationStore, type TurnOutcome } from '../store/conversation-store.js';
import type { GenerationOptions, TurnResult } from './turn-generation.js';

// How a turn's outcome is stored, and the errors that say it was not (see runGeneration).

/** The pauses between attempts to store a turn's outcome before the failure is surfaced (~1 s in all). */
const FINISH_RETRY_DELAYS_MS = [50, 200, 800];

/**
 * Thrown when a turn's outcome could not be stored: its readers get a retryable error instead of `end`
 * (the store's own code), and the outcome, as it really ended, waits in PendingOutcomes.
 */
export class OutcomeNotStored extends StoreUnavailableError {
  constructor(
    readonly outcome: TurnOutcome,
    cause: unknown,
  ) {
    super(
      'The answer could not be saved yet: the conversation store refuses writes right now. It is kept and saved once the store is back; send the message again in a moment.',
      cause,
      cause instanceof StoreUnavailableError && cause.code === 'DEPENDENCY_UNAVAILABLE' ? cause.code : 'STORE_UNAVAILABLE',
    );
  }
}

/** Thrown when the store refused a turn's outcome for a reason other than being out of reach (see finish). */
export class OutcomeRefused extends Error {
  override name = 'OutcomeRefused';
  constructor(readonly refusal: unknown) {
    super('the store refused the outcome of a turn', { cause: refusal });
  }
}

/**
 * Ends the turn of a producer whose writes the store refuses (TurnFencedError): another instance took it over
 * (this one was silent too long: paused, or cut off from the database), or its conversation was deleted.
 */
export class ProducerFenced extends StoreUnavailableError {
  constructor(cause: TurnFencedError) {
    super(
      'This answer can no longer be saved, so it was stopped: another server took over this conversation (this one was out of touch with the conversation database for too long), or the conversation was deleted. Send the message again.',
      cause,
      'DEPENDENCY_UNAVAILABLE',
    );
  }
}

/** Why the store did not take a turn's outcome: what `finish` throws. */
export type EndRefusal = ProducerFenced | OutcomeNotStored | OutcomeRefused;

/** The EndRefusal an error is, if it is one. */
export function asEndRefusal(error: unknown): EndRefusal | undefined {
  return error instanceof ProducerFenced || error instanceof OutcomeNotStored || error instanceof OutcomeRefused ? error : undefined;
}

/**
 * Stores a turn's outcome, retrying a refusal a few times with backoff; then throws OutcomeNotStored.
 * A fenced write is decided, not refused: it throws ProducerFenced at once.
 */
export async function finish(
  options: GenerationOptions,
  result: TurnResult,
  status: Pick<TurnOutcome, 'status' | 'errorCode'>,
): Promise<void> {
  const outcome = toOutcome(result, status);
  for (let attempt = 0; ; attempt++) {
    try {
      await options.store.finishTurn(result.turnId, outcome);
      return;
    } catch (error) {
      if (error instanceof TurnFencedError) {
        // An earlier attempt whose answer was lost (a timeout) may have been stored all the same: that write is ours, not a fence.
        if (attempt > 0 && (await storedAlready(options.store, result.turnId, outcome))) return;
        throw new ProducerFenced(error);
      }
      if (attempt >= FINISH_RETRY_DELAYS_MS.length) {
        options.logger.error({ err: error, turn_id: result.turnId }, 'could not store the end of a turn');
        // Only a store that is out of reach is waited for: a refusal of this outcome itself would hold up every
        // pending outcome behind it. A bare `error` is tried once instead (so the turn does not stay streaming).
        if (error instanceof StoreUnavailableError) throw new OutcomeNotStored(outcome, error);
        await storeBareError(options, result.turnId, error);
        throw new OutcomeRefused(error);
      }
      await new Promise((resolve) => setTimeout(resolve, FINISH_RETRY_DELAYS_MS[attempt]));
    }
  }
}

/** Stores a bare `error` outcome for a turn whose real one the store refused for good; if that fails too, it is dropped (logged). */
async function storeBareError(options: GenerationOptions, turnId: string, refusal: unknown): Promise<void> {
  try {
    await options.store.finishTurn(turnId, bareErrorOutcome(refusal));
  } catch (error) {
    options.logger.error({ err: error, turn_id: turnId }, 'could not store even a bare error as the end of a turn; it is dropped');
  }
}

/** The outcome of a turn that ended with `error` and nothing else to keep: no answer, no usage, the error's code. */
export function bareErrorOutcome(error: unknown): TurnOutcome {
  return { status: 'error', errorCode: toChatWaitError(error).code, answer: '', tokenCount: 0, usage: undefined, timings: undefined };
}

/** Whether the store already holds this outcome for the turn (an earlier attempt committed though its caller gave up on it). */
async function storedAlready(store: ConversationStore, turnId: string, outcome: TurnOutcome): Promise<boolean> {
  const stored = await store.getTurn(turnId).catch(() => undefined);
  return stored !== undefined && stored.status === outcome.status && stored.answer === outcome.answer;
}

function toOutcome(result: TurnResult, outcome: Pick<TurnOutcome, 'status' | 'errorCode'>): TurnOutcome {
  return {
    ...outcome,
    answer: result.answer,
    usage: result.usage,
    timings: result.timings,
    tokenCount: result.tokenCount,
    toolSteps: result.toolSteps,
  };
}
