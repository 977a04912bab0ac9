import type { Logger } from '../observability/logger.js';
import { endEventData, errorEventData } from '../protocol/wire-events.js';
import type { LoggedTurn, ReapedTurn, ReapStatus, ReapStep } from '../store/postgres-instances.js';
import type { SealedAnswer, TurnControl } from '../streams/turn-control.js';
import { publicContextId } from '../turns/conversation-keys.js';

/** What readers of a turn whose instance died get as its last event: retryable, as the drain's is. */
export const INSTANCE_LOST_MESSAGE = 'The server generating this answer stopped before it finished. Send the message again to continue.';

/**
 * The reaper's step that ends the shared logs of turns whose instance is dead (scale-out.md §6.14):
 * each log gets one final event (a retryable `SHUTTING_DOWN` error for an `interrupted` turn, the
 * `end` of a `cancelled` one with the answer kept), and the answer each log holds goes back to the
 * store, which keeps the longer of it and its own. A log already ended as a reap ends it tells the
 * store which way. A log that cannot be sealed (Redis failed, perhaps half-way: its producer fenced
 * out, no final entry yet) is logged and reported unsealed: the store leaves its turn `streaming`,
 * and the next reap seals it (taking a log over succeeds again while it has no final entry).
 */
export function sealStepFor(control: TurnControl, logger: Logger): ReapStep {
  return async (turns, status) => {
    const logged = new Map<string, LoggedTurn>();
    const unsealed = new Set<string>();
    await Promise.all(
      turns.map(async (turn) => {
        try {
          const sealed = await control.seal(turn.turnId, (fromLog) => finalEventOf(turn, status, longer(fromLog, turn)));
          if (sealed) logged.set(turn.turnId, { ...sealed, endedAs: reapStatusOf(sealed.endedWith) });
        } catch (error) {
          unsealed.add(turn.turnId);
          logger.warn(
            { err: error, turn_id: turn.turnId },
            'could not end the shared log of a turn whose instance is gone; tried again at the next reap',
          );
        }
      }),
    );
    return { logged, unsealed };
  };
}

/** The reap status a log's final entry says, when it is one a reap writes: a cancelled `end`, or the lost instance's error. */
export function reapStatusOf(finalData: string | undefined): ReapStatus | undefined {
  if (finalData === undefined) return undefined;
  try {
    const event = JSON.parse(finalData) as { type?: unknown; finish_reason?: unknown; error_code?: unknown };
    if (event.type === 'end' && event.finish_reason === 'cancelled') return 'cancelled';
    if (event.type === 'error' && event.error_code === 'SHUTTING_DOWN') return 'interrupted';
  } catch {
    // Not an event: the reap's own status stands.
  }
  return undefined;
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
