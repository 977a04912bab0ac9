import { setTimeout as sleep } from 'node:timers/promises';
import type { AgentInputItem, Model, ModelSettings } from '@openai/agents-core';
import type { ModelStreamEvent } from './chat-model.js';
import { PROGRESS_EVENT } from './openai-compatible-model.js';
import type { ToolOffer } from './tool-support.js';
import { toUpstreamError } from './upstream-errors.js';
import { normalizeUpstreamFailure, type UpstreamFailure } from './upstream-failure.js';

/** How a model call that failed before its first token is retried. */
export interface RetryOptions {
  maxRetries: number;
  initialDelayMs: number;
  /** The longest upstream Retry-After accepted; past it the call fails instead of waiting. */
  maxRetryAfterMs: number;
}

/** One call of the model, in the middle of a turn's tool loop or alone. */
export interface ModelCallRequest {
  model: Model;
  instructions: string;
  input: AgentInputItem[];
  settings: ModelSettings;
  signal: AbortSignal;
  retry: RetryOptions;
  /** The tools offered; a refusal of them may step it down when `mayStepDown`. */
  offer: ToolOffer;
  /** True for the turn's first call only: a later 400 says nothing of what the provider takes of tools. */
  mayStepDown: boolean;
}

/** Token counts of one model response, as the Agents SDK reports them. */
export type UsageFields = { inputTokens: number; outputTokens: number; totalTokens: number };

/** What a finished call gave: its output items (text and function calls) and usage; whether any text was streamed. */
export interface ModelCallResult {
  response: { output: AgentInputItem[]; usage?: UsageFields } | undefined;
  emitted: boolean;
}

/**
 * Streams one model call's text (and progress) and returns its response. A failure before the
 * first token is normalised once: a refusal of the tools asks again at once with less (not counted
 * as a retry); a transient failure (408, 429, 5xx, network) is retried with exponential backoff
 * or after the provider's Retry-After; anything else, or a failure after the first token, throws
 * the user-facing ChatWaitError.
 */
export async function* streamModelCall(request: ModelCallRequest): AsyncGenerator<ModelStreamEvent, ModelCallResult> {
  const { offer, signal } = request;
  for (let attempt = 0; ; attempt++) {
    let emitted = false;
    let response: ModelCallResult['response'];
    try {
      const events = request.model.getStreamedResponse({
        systemInstructions: request.instructions,
        input: request.input,
        modelSettings: request.settings,
        tools: offer.serialized,
        outputType: 'text',
        handoffs: [],
        tracing: false,
        signal,
      });
      for await (const event of events) {
        if (event.type === 'output_text_delta') {
          emitted = true;
          yield { type: 'text_delta', delta: event.delta };
        } else if (event.type === 'response_done') {
          response = event.response as ModelCallResult['response'];
        } else if (event === PROGRESS_EVENT) {
          yield PROGRESS;
        }
      }
      offer.confirm();
      return { response, emitted };
    } catch (error) {
      const failure = normalizeUpstreamFailure(error, signal);
      if (emitted) throw toUpstreamError(failure);
      if (request.mayStepDown && offer.stepDown(failure)) {
        attempt--;
        continue;
      }
      const delay = attempt < request.retry.maxRetries ? retryDelay(failure, attempt, request.retry) : undefined;
      if (delay === undefined) throw toUpstreamError(failure);
      await sleep(delay, undefined, { signal }).catch(() => undefined);
      // Cancelled or timed out while waiting: the turn's reason is the outcome now.
      if (signal.aborted) throw toUpstreamError(normalizeUpstreamFailure(error, signal));
    }
  }
}

const PROGRESS: ModelStreamEvent = { type: 'progress' };

/** How long to wait before asking again, or undefined when the failure is not worth it. */
function retryDelay(failure: UpstreamFailure, attempt: number, options: RetryOptions): number | undefined {
  if (!failure.transient) return undefined;
  if (failure.retryAfterMs !== undefined) return failure.retryAfterMs <= options.maxRetryAfterMs ? failure.retryAfterMs : undefined;
  const base = Math.min(8000, options.initialDelayMs * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}
