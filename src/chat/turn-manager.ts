import { randomUUID } from 'node:crypto';
import { ChatWaitError, UpstreamError, toChatWaitError } from '../errors.js';
import type { Logger } from '../observability/logger.js';
import type { ConversationStore, TurnTimings } from '../store/conversation-store.js';
import type { LogEntry, ReplayLog } from '../streams/replay-log.js';
import type { ChatMessage, ChatModel, TokenUsage } from './chat-model.js';
import { emptyAnswerError } from './upstream-errors.js';
import { buildContext, turnsToMessages, type HistoryBudget } from './history.js';
import { endEventData, errorEventData, tokenEventData, type FinishReason } from './wire-events.js';

/** What a turn is started with. */
export interface StartTurnInput {
  message: string;
  contextId?: string;
  /** Client-managed context, used instead of the stored conversation. */
  history?: ChatMessage[];
  clientMessageId?: string;
}

/** How a turn that produced an answer ended. */
export interface TurnResult {
  turnId: string;
  contextId: string;
  answer: string;
  tokenCount: number;
  finishReason: FinishReason;
  usage: TokenUsage | undefined;
  timings: TurnTimings;
  model: string;
}

/** A running or finished turn: one generation, independent of any connection. */
export interface Turn {
  turnId: string;
  contextId: string;
  model: string;
  /** Settles when the generation ends: the answer, or the ChatWaitError that ended it. */
  done: Promise<TurnResult>;
}

/** Options of the turn manager. */
export interface TurnManagerOptions {
  model: ChatModel;
  store: ConversationStore;
  log: ReplayLog;
  logger: Logger;
  history: HistoryBudget;
  responseTimeoutMs: number;
  streamTtlMs: number;
}

/**
 * Starts turns and runs their generations. A generation writes every event to the turn's replay
 * log and its outcome to the store; HTTP handlers only read the log or await `done`.
 */
export class TurnManager {
  readonly #options: TurnManagerOptions;

  constructor(options: TurnManagerOptions) {
    this.#options = options;
  }

  /** The model that answers, as named in responses and `/health`. */
  get model(): ChatModel {
    return this.#options.model;
  }

  /** Records a new turn and starts its generation; resolves once the turn exists, before the first token. */
  async start(input: StartTurnInput): Promise<Turn> {
    const { store, model } = this.#options;
    const contextId = input.contextId ?? randomUUID();
    const stored = input.history ? undefined : await store.getConversation(contextId);
    const history = input.history ?? turnsToMessages(stored?.turns ?? []);
    const messages = buildContext(history, input.message, this.#options.history);
    const turnId = randomUUID();
    await store.startTurn({ turnId, contextId, userMessage: input.message, model: model.name, clientMessageId: input.clientMessageId });
    this.#options.log.open(turnId);
    const done = this.#generate(turnId, contextId, messages);
    // `done` is awaited by wait requests only; a streaming turn's failure is already in its log.
    done.catch(() => {});
    return { turnId, contextId, model: model.name, done };
  }

  /** Reads a turn's events from a position: what is logged, then live until the turn ends. */
  read(turnId: string, from: number, signal?: AbortSignal): AsyncIterable<LogEntry> {
    return this.#options.log.read(turnId, from, signal);
  }

  async #generate(turnId: string, contextId: string, messages: ChatMessage[]): Promise<TurnResult> {
    const { model, log, logger, responseTimeoutMs, streamTtlMs } = this.#options;
    const started = performance.now();
    const contextIdJson = JSON.stringify(contextId);
    const controller = new AbortController();
    // One timer covers the wait for the first token and any later stall of the stream.
    const timer = setTimeout(() => {
      const seconds = Math.round(responseTimeoutMs / 100) / 10;
      controller.abort(
        new UpstreamError('UPSTREAM_TIMEOUT', `The model did not answer within ${seconds} seconds. Please try again.`, { retryable: true }),
      );
    }, responseTimeoutMs);
    const tokens: string[] = [];
    let ttftMs: number | null = null;
    let usage: TokenUsage | undefined;
    let modelOutput = '';

    const append = (data: string, final = false) => log.append(turnId, data, final);
    const timings = (): TurnTimings => ({ ttft_ms: ttftMs, total_ms: round(performance.now() - started) });

    try {
      for await (const event of model.streamReply({ messages, signal: controller.signal })) {
        if (event.type === 'text_delta') {
          if (event.delta === '') continue;
          ttftMs ??= round(performance.now() - started);
          timer.refresh();
          append(tokenEventData(contextIdJson, event.delta, tokens.length));
          tokens.push(event.delta);
        } else {
          usage = event.usage;
          modelOutput = event.finalOutput;
        }
      }
      if (tokens.length === 0 && modelOutput !== '') {
        // A provider that answered without streaming deltas still gets its answer delivered as one token.
        ttftMs ??= round(performance.now() - started);
        append(tokenEventData(contextIdJson, modelOutput, 0));
        tokens.push(modelOutput);
      }
      // A model layer that ended quietly on an abort still ends the turn with the abort's reason.
      if (controller.signal.aborted) throw controller.signal.reason;
      const answer = tokens.join('');
      if (answer.trim() === '') throw emptyAnswerError();
      const result: TurnResult = {
        turnId,
        contextId,
        answer,
        tokenCount: tokens.length,
        finishReason: 'stop',
        usage,
        timings: timings(),
        model: model.name,
      };
      await this.#finish(turnId, { status: 'complete', answer, usage, timings: result.timings, errorCode: undefined });
      append(endEventData({ ...result, finalOutput: answer, finishReason: 'stop' }), true);
      logger.info({ turn_id: turnId, context_id: contextId, status: 'complete', model: model.name, tokens: tokens.length, ...result.timings }, 'turn finished');
      return result;
    } catch (thrown) {
      const error = toChatWaitError(thrown);
      const status = tokens.length > 0 ? 'interrupted' : 'error';
      await this.#finish(turnId, { status, answer: tokens.join(''), usage, timings: timings(), errorCode: error.code });
      append(errorEventData(contextId, turnId, error.code, error.message, error.retryable), true);
      logTurnFailure(logger, error, { turn_id: turnId, context_id: contextId, status, model: model.name, tokens: tokens.length, ...timings() });
      throw error;
    } finally {
      clearTimeout(timer);
      controller.abort();
      log.expire(turnId, streamTtlMs);
    }
  }

  async #finish(turnId: string, outcome: Parameters<ConversationStore['finishTurn']>[1]): Promise<void> {
    try {
      await this.#options.store.finishTurn(turnId, outcome);
    } catch (error) {
      // The readers still get their answer; the failure is for the operator to see.
      this.#options.logger.error({ err: error, turn_id: turnId }, 'could not store the end of a turn');
    }
  }
}

function logTurnFailure(logger: Logger, error: ChatWaitError, fields: Record<string, unknown>): void {
  const level = error.code === 'INTERNAL_ERROR' ? 'error' : 'warn';
  logger[level]({ ...fields, error_code: error.code, err: error.cause ?? error }, 'turn failed');
}

function round(milliseconds: number): number {
  return Math.round(milliseconds * 10) / 10;
}
