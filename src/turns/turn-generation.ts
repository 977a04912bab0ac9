import { UpstreamError, toChatWaitError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import { TurnFencedError, type ConversationStore, type ToolStep, type TurnOutcome } from '../store/conversation-store.js';
import type { ReplayLog } from '../streams/replay-log.js';
import type { ChatMessage, ChatModel, ModelStreamEvent } from '../model/chat-model.js';
import type { AnswerFinishReason, TokenUsage, TurnTimings } from '../protocol/turn.js';
import type { PendingOutcomes } from './pending-outcomes.js';
import { asEndRefusal, finish, OutcomeNotStored, OutcomeRefused, ProducerFenced } from './turn-outcome.js';
import { emptyAnswerError } from '../model/upstream-errors.js';
import { endEventData, errorEventData, tokenEventData, toolCallEventData, toolResultEventData } from '../protocol/wire-events.js';

/** How often, at most, a generating turn's answer so far is written to the store. */
const PROGRESS_INTERVAL_MS = 1000;

/** How a turn that produced an answer ended. */
export interface TurnResult {
  turnId: string;
  contextId: string;
  answer: string;
  tokenCount: number;
  finishReason: AnswerFinishReason;
  usage: TokenUsage | undefined;
  timings: TurnTimings;
  model: string;
  toolSteps: ToolStep[];
}

/** Told what each turn does, for metrics; every method is called on the generation's hot path, so keep them cheap. */
export interface TurnObserver {
  turnStarted(): void;
  firstToken(milliseconds: number): void;
  /** One token out; `gapMilliseconds` since the previous one (undefined for the first). */
  token(gapMilliseconds: number | undefined): void;
  turnEnded(status: string, errorCode: string | undefined): void;
}

/** The abort reason of a turn stopped by the cancel endpoint. */
export class TurnCancelled extends Error {
  override name = 'TurnCancelled';
}

/** What one generation needs. */
export interface GenerationOptions {
  turnId: string;
  contextId: string;
  messages: ChatMessage[];
  /** Instructions for this turn only, instead of the model's configured ones. */
  instructions?: string | undefined;
  signal: AbortSignal;
  abort: (reason: unknown) => void;
  model: ChatModel;
  store: ConversationStore;
  log: ReplayLog;
  logger: Logger;
  responseTimeoutMs: number;
  observer?: TurnObserver | undefined;
  /** Where an outcome the store refused goes, to be written once the store takes writes again. */
  pendingOutcomes?: PendingOutcomes | undefined;
  /** How long the turn's log stays for readers once it ends (unset: the caller expires it). */
  streamTtlMs?: number | undefined;
  /**
   * Called once the turn's outcome is stored (or waits in `pendingOutcomes`) and its final event is in
   * the log, before the wait for the log to settle: its readers may already have its end, so its
   * conversation must take the next message from then on.
   */
  onEnded?: (() => void) | undefined;
}

/**
 * Runs one turn's generation: every delta becomes a `token` event in the replay log, the answer so
 * far is saved in batches, and the turn ends with exactly one `end` (complete or cancelled) or
 * `error` event, after its outcome is in the store.
 */
export async function runGeneration(options: GenerationOptions): Promise<TurnResult> {
  const { turnId, contextId, model, log, logger, signal, observer } = options;
  const started = performance.now();
  let lastTokenAt = 0;
  observer?.turnStarted();
  const contextIdJson = JSON.stringify(contextId);
  const toolSteps: ToolStep[] = [];
  let toolsRunning = 0;
  // One timer covers the wait for the first token and any later stall of the stream; text and progress
  // events (tool-call arguments, reasoning) restart it. Tools have their own limit (TOOL_TIMEOUT_SECONDS):
  // while one runs the timer lets go, and it starts again when all are done.
  const timeout = setTimeout(() => {
    if (toolsRunning > 0) return;
    const seconds = Math.round(options.responseTimeoutMs / 100) / 10;
    options.abort(
      new UpstreamError('UPSTREAM_TIMEOUT', `The model did not answer within ${seconds} seconds. Please try again.`, { retryable: true }),
    );
  }, options.responseTimeoutMs);
  const tokens: string[] = [];
  let progress: NodeJS.Timeout | undefined;
  let ttftMs: number | null = null;
  let usage: TokenUsage | undefined;
  let modelOutput = '';
  /** Set once the outcome is being stored: a progress write refused from then on may have lost a race with it. */
  let finishing = false;
  /** Set once an outcome the store had refused is stored at last: its log goes at once, whatever ends later. */
  let storedLate = false;

  const appendToken = (token: string) => {
    const now = performance.now();
    if (ttftMs === null) {
      ttftMs = round(now - started);
      observer?.firstToken(ttftMs);
    }
    observer?.token(tokens.length === 0 ? undefined : now - lastTokenAt);
    lastTokenAt = now;
    log.append(turnId, { data: tokenEventData(contextIdJson, token, tokens.length), tokenIndex: tokens.length });
    tokens.push(token);
    progress ??= setTimeout(saveProgress, PROGRESS_INTERVAL_MS);
  };
  const saveProgress = () => {
    progress = undefined;
    void options.store
      .saveProgress(turnId, tokens.join(''), tokens.length, toolSteps.length > 0 ? toolSteps : undefined)
      .catch((error: unknown) => {
        if (!(error instanceof TurnFencedError)) {
          logger.warn({ err: error, turn_id: turnId }, 'could not save the progress of a turn');
          return;
        }
        // Another instance took the turn over: generating on would serve an answer the store will never have.
        if (!finishing) options.abort(new ProducerFenced(error));
      });
  };
  const recordToolEvent = (event: Extract<ModelStreamEvent, { type: 'tool_call' | 'tool_result' }>) => {
    if (event.type === 'tool_call') {
      toolsRunning++;
      log.append(turnId, { data: toolCallEventData(event.callId, event.name, event.arguments) });
      toolSteps.push({
        callId: event.callId,
        name: event.name,
        arguments: event.arguments,
        output: null,
        isError: false,
        durationMs: null,
        tokenOffset: tokens.length,
      });
    } else {
      log.append(turnId, { data: toolResultEventData(event.callId, event.output, event.isError, event.durationMs) });
      const step = toolSteps.find((candidate) => candidate.callId === event.callId && candidate.output === null);
      if (step) Object.assign(step, { output: event.output, isError: event.isError, durationMs: event.durationMs });
      if (--toolsRunning === 0) timeout.refresh();
    }
    progress ??= setTimeout(saveProgress, PROGRESS_INTERVAL_MS);
  };
  const end = (ended: TurnResult, outcome: Pick<TurnOutcome, 'status' | 'errorCode'>) => {
    finishing = true;
    clearTimeout(progress);
    return finish(options, ended, outcome);
  };
  const appendFinal = (data: string) => {
    log.append(turnId, { data, final: true });
    options.onEnded?.();
  };
  const timings = (): TurnTimings => ({ ttft_ms: ttftMs, total_ms: round(performance.now() - started) });
  const result = (finishReason: TurnResult['finishReason']): TurnResult => ({
    turnId,
    contextId,
    answer: tokens.join(''),
    tokenCount: tokens.length,
    finishReason,
    usage,
    timings: timings(),
    model: model.name,
    toolSteps: toolSteps.map((step) => ({ ...step })),
  });

  try {
    try {
      for await (const event of model.streamReply({ messages: options.messages, signal, instructions: options.instructions })) {
        if (event.type === 'text_delta') {
          if (event.delta === '') continue;
          timeout.refresh();
          appendToken(event.delta);
        } else if (event.type === 'done') {
          usage = event.usage;
          modelOutput = event.finalOutput;
        } else if (event.type === 'progress') {
          // The model is writing a tool call (or thinking): no text yet, but no stall either.
          timeout.refresh();
        } else {
          recordToolEvent(event);
        }
      }
      // A model layer that ended quietly on an abort still ends the turn with the abort's reason.
      if (signal.aborted) throw signal.reason;
      // A provider that answered without streaming deltas still gets its answer delivered as one token.
      if (tokens.length === 0 && modelOutput !== '') appendToken(modelOutput);
      if (tokens.join('').trim() === '') throw emptyAnswerError();
    } catch (thrown) {
      if (!(signal.reason instanceof TurnCancelled)) throw thrown;
      const cancelled = result('cancelled');
      await end(cancelled, { status: 'cancelled', errorCode: undefined });
      appendFinal(endEventData({ ...cancelled, finalOutput: cancelled.answer }));
      await log.settled(turnId);
      logger.info(turnLogFields(cancelled, 'cancelled'), 'turn finished');
      observer?.turnEnded('cancelled', undefined);
      return cancelled;
    }
    const complete = result('stop');
    await end(complete, { status: 'complete', errorCode: undefined });
    appendFinal(endEventData({ ...complete, finalOutput: complete.answer }));
    // A turn is done once its readers anywhere can get its end, not just once it is written here.
    await log.settled(turnId);
    logger.info(turnLogFields(complete, 'complete'), 'turn finished');
    observer?.turnEnded('complete', undefined);
    return complete;
  } catch (thrown) {
    const failed = result('stop');
    // Why the store did not take the turn's end, if it was decided already: fenced (by a progress write, or a final
    // one: the reaper's `interrupted` stands), refused until the store is back, or refused for good (a bare `error`
    // was tried). Otherwise the failure itself is stored now, and that may be refused in the same ways.
    let refusal = asEndRefusal(thrown) ?? (signal.reason instanceof ProducerFenced ? signal.reason : undefined);
    const failure = toChatWaitError(refusal instanceof OutcomeRefused ? refusal.refusal : thrown);
    let status: TurnOutcome['status'] = tokens.length > 0 ? 'interrupted' : 'error';
    refusal ??= await end(failed, { status, errorCode: failure.code }).then(
      () => undefined,
      (refused: unknown) => asEndRefusal(refused),
    );
    if (refusal instanceof ProducerFenced) status = 'interrupted';
    else if (refusal instanceof OutcomeRefused) status = 'error';
    else if (refusal instanceof OutcomeNotStored) {
      // It waits, as it really ended, for the store to recover.
      status = refusal.outcome.status;
      options.pendingOutcomes?.add(turnId, refusal.outcome, {
        refusal: refusal.cause,
        // Stored at last: the log, which ends with this error, goes, so a resend reads the stored ending instead.
        onStored: () => {
          storedLate = true;
          log.expire(turnId, 0);
        },
      });
    }
    const error = refusal instanceof ProducerFenced ? refusal : failure;
    appendFinal(errorEventData(contextId, turnId, error.code, error.message, error.retryable));
    await log.settled(turnId);
    const level = error.code === 'INTERNAL_ERROR' ? 'error' : 'warn';
    logger[level]({ ...turnLogFields(failed, status), error_code: error.code, err: error.cause ?? error }, 'turn failed');
    observer?.turnEnded(status, error.code);
    throw error;
  } finally {
    clearTimeout(timeout);
    clearTimeout(progress);
    // A health check may have stored the pending outcome (and expired the log) before this settles: that stands.
    if (options.streamTtlMs !== undefined && !storedLate) log.expire(turnId, options.streamTtlMs);
  }
}

function turnLogFields(result: TurnResult, status: string) {
  return {
    turn_id: result.turnId,
    context_id: result.contextId,
    status,
    model: result.model,
    tokens: result.tokenCount,
    ttft_ms: result.timings.ttft_ms,
    total_ms: result.timings.total_ms,
  };
}

function round(milliseconds: number): number {
  return Math.round(milliseconds * 10) / 10;
}
