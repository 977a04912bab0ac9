import type { Logger } from '../observability/logger.js';
import { endEventData, errorEventData } from '../protocol/wire-events.js';
import type { ReapedTurn, ReapStatus, ReapStep } from '../store/postgres-instances.js';
import type { SealedAnswer, TurnControl } from '../streams/turn-control.js';
import { publicContextId } from '../turns/conversation-keys.js';

/** What readers of a turn whose instance died get as its last event: retryable, as the drain's is. */
export const INSTANCE_LOST_MESSAGE = 'The server generating this answer stopped before it finished. Send the message again to continue.';

/**
 * The reaper's step that ends the shared logs of turns whose instance is dead (scale-out.md §6.14):
 * each log gets one final event (a retryable `SHUTTING_DOWN` error for an `interrupted` turn, the
 * `end` of a `cancelled` one with the answer kept), and the answer each log holds goes back to the
 * store, which keeps the longer of it and its own. A log that cannot be sealed is logged and skipped:
 * the store's outcome stands, and its readers fall back to it.
 */
export function sealStepFor(control: TurnControl, logger: Logger): ReapStep {
  return async (turns, status) => {
    const answers = new Map<string, SealedAnswer>();
    await Promise.all(
      turns.map(async (turn) => {
        try {
          const sealed = await control.seal(turn.turnId, (fromLog) => finalEventOf(turn, status, longer(fromLog, turn)));
          if (sealed) answers.set(turn.turnId, sealed);
        } catch (error) {
          logger.warn({ err: error, turn_id: turn.turnId }, 'could not end the shared log of a turn whose instance is gone');
        }
      }),
    );
    return answers;
  };
}

function longer(fromLog: SealedAnswer, stored: ReapedTurn): SealedAnswer {
  return fromLog.answer.length > stored.answer.length ? fromLog : stored;
}

function finalEventOf(turn: ReapedTurn, status: ReapStatus, kept: SealedAnswer): string {
  const contextId = publicContextId(turn.contextId);
  if (status === 'interrupted') return errorEventData(contextId, turn.turnId, 'SHUTTING_DOWN', INSTANCE_LOST_MESSAGE, true);
  return endEventData({
    contextId,
    turnId: turn.turnId,
    finalOutput: kept.answer,
    tokenCount: kept.tokenCount,
    finishReason: 'cancelled',
    usage: undefined,
    timings: { ttft_ms: null, total_ms: Math.max(0, Date.now() - turn.createdAt) },
    model: turn.model,
  });
}
