import { ChatWaitError, StoreUnavailableError } from '../errors.js';
import type { TurnRecord } from '../store/conversation-store.js';
import { publicContextId } from './conversation-keys.js';
import { OUTCOME_NOT_STORED } from './replay-reader.js';
import type { TurnResult } from './turn-generation.js';
import type { TurnHandle } from './turn-types.js';

/** A turn this process is generating, as the turn manager keeps it. */
export interface ActiveTurn {
  turnId: string;
  /** The conversation's store key (see conversation-keys.ts), not the client's context_id. */
  contextId: string;
  model: string;
  userMessage: string;
  controller: AbortController;
  done: Promise<TurnResult>;
}

/** The handle of a turn being generated. */
export function handleOf(turn: ActiveTurn): TurnHandle {
  return { turnId: turn.turnId, contextId: publicContextId(turn.contextId), model: turn.model, resumed: false, done: turn.done };
}

/**
 * The handle of a send whose turn is not running here: its stored answer, or the error it ended with.
 * One still `streaming` in the store has its outcome waiting here for the store (PendingOutcomes); the
 * turn manager refuses, before, one that another instance is generating.
 */
export function endedHandle(record: TurnRecord): TurnHandle {
  const done =
    record.status === 'streaming'
      ? Promise.reject(new StoreUnavailableError(OUTCOME_NOT_STORED))
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
            // Decided: the same request gets the same failure, so it is not worth retrying as is (a new client_message_id is).
            new ChatWaitError(
              record.errorCode === 'UPSTREAM_TIMEOUT' || record.errorCode === 'STORE_UNAVAILABLE' ? record.errorCode : 'UPSTREAM_ERROR',
              'This message (same client_message_id) already failed. Send it with a new client_message_id to try again.',
              { retryable: false },
            ),
          );
  done.catch(() => {});
  return { turnId: record.turnId, contextId: publicContextId(record.contextId), model: record.model, resumed: true, done };
}
