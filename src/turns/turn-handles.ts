import { ChatWaitError, ERROR_STATUS, StoreUnavailableError, type ErrorCode } from '../errors.js';
import type { ToolStep, TurnRecord } from '../store/conversation-store.js';
import { ReplayLogEvicted, type ReplayLog } from '../streams/replay-log.js';
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
 * One still `streaming` in the store has its outcome waiting here for the store (PendingOutcomes); one
 * that another instance is generating gets `followedHandle` instead.
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

/**
 * The handle of a turn another instance is generating, followed through the shared replay log: `done`
 * settles as that instance's own does, from the log's final entry (the answer an `end` carries, the
 * tool steps its tool events made, or the failure an `error` names). If the log leaves before its end,
 * the stored outcome answers.
 */
export function followedHandle(record: TurnRecord, log: ReplayLog, getRecord: () => Promise<TurnRecord | undefined>): TurnHandle {
  const done = resultFromLog(record.turnId, log, getRecord);
  done.catch(() => {});
  return { turnId: record.turnId, contextId: publicContextId(record.contextId), model: record.model, resumed: true, done };
}

/** The fields of the log events a followed turn's result is made of. */
interface LoggedEvent {
  type: string;
  call_id?: string;
  name?: string;
  arguments?: string;
  output?: string;
  is_error?: boolean;
  duration_ms?: number;
  context_id?: string;
  final_output?: string;
  token_count?: number;
  finish_reason?: TurnResult['finishReason'];
  usage?: TurnResult['usage'] | null;
  timings?: TurnResult['timings'];
  model?: string;
  error_code?: string;
  message?: string;
  retryable?: boolean;
}

async function resultFromLog(turnId: string, log: ReplayLog, getRecord: () => Promise<TurnRecord | undefined>): Promise<TurnResult> {
  const toolSteps: ToolStep[] = [];
  let tokens = 0;
  try {
    for await (const batch of log.read(turnId, 0)) {
      for (const entry of batch) {
        // Tokens are only counted (a tool step's offset): the `end` carries the whole answer.
        if (entry.tokenIndex !== undefined) {
          tokens++;
          continue;
        }
        const event = JSON.parse(entry.data) as LoggedEvent;
        if (event.type === 'tool_call') {
          toolSteps.push({
            callId: event.call_id!,
            name: event.name!,
            arguments: event.arguments!,
            output: null,
            isError: false,
            durationMs: null,
            tokenOffset: tokens,
          });
        } else if (event.type === 'tool_result') {
          const step = toolSteps.find((candidate) => candidate.callId === event.call_id && candidate.output === null);
          if (step) Object.assign(step, { output: event.output, isError: event.is_error, durationMs: event.duration_ms });
        } else if (event.type === 'end') {
          return {
            turnId,
            contextId: event.context_id!,
            answer: event.final_output!,
            tokenCount: event.token_count!,
            finishReason: event.finish_reason!,
            usage: event.usage ?? undefined,
            timings: event.timings!,
            model: event.model!,
            toolSteps,
          };
        } else if (event.type === 'error') {
          throw loggedError(event);
        }
      }
    }
  } catch (error) {
    if (!(error instanceof ReplayLogEvicted)) throw error;
  }
  // The log left, or this process is closing it, before its end: the store has the outcome once it is decided.
  const stored = await getRecord();
  if (stored && stored.status !== 'streaming') return endedHandle(stored).done;
  throw new ChatWaitError(
    'DEPENDENCY_UNAVAILABLE',
    'This answer is being generated by another ChatWait instance, and its stream cannot be read right now. Send the message again in a moment.',
    { retryable: true, headers: { 'retry-after': '2' } },
  );
}

/** The failure an `error` event names, as the instance that wrote it threw it. */
function loggedError(event: LoggedEvent): ChatWaitError {
  const code: ErrorCode =
    event.error_code !== undefined && event.error_code in ERROR_STATUS ? (event.error_code as ErrorCode) : 'INTERNAL_ERROR';
  // A database out of reach says when to try again (StoreUnavailableError's header), wherever it is read.
  const headers = code === 'DEPENDENCY_UNAVAILABLE' ? { 'retry-after': '2' } : undefined;
  return new ChatWaitError(code, event.message ?? 'The answer failed.', { retryable: event.retryable, headers });
}
