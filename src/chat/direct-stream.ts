import { setTimeout as sleep } from 'node:timers/promises';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { AgentInputItem, Model, ModelSettings } from '@openai/agents';
import type { ModelStreamEvent, TokenUsage } from './chat-model.js';
import { emptyAnswerError } from './upstream-errors.js';

/** How the direct path retries a model call that failed before its first token. */
export interface RetryOptions {
  maxRetries: number;
  initialDelayMs: number;
  /** The longest upstream Retry-After accepted; past it the call fails instead of waiting. */
  maxRetryAfterMs: number;
}

/** One answer asked of an Agents SDK model directly. */
export interface DirectStreamRequest {
  model: Model;
  instructions: string;
  input: AgentInputItem[];
  settings: ModelSettings;
  signal: AbortSignal;
  retry: RetryOptions;
}

/**
 * Streams one answer from an Agents SDK `Model` without the Runner's agent loop. A turn without
 * tools is a single model call, and the Runner's per-event work and async context tracking cost
 * more than the relaying itself (see bench/README.md). Retries transient failures (429, 408, 5xx,
 * connection errors) with exponential backoff, and only before the first token.
 */
export async function* streamDirect(request: DirectStreamRequest): AsyncIterable<ModelStreamEvent> {
  for (let attempt = 0; ; attempt++) {
    let emitted = false;
    try {
      const events = request.model.getStreamedResponse({
        systemInstructions: request.instructions,
        input: request.input,
        modelSettings: request.settings,
        tools: [],
        outputType: 'text',
        handoffs: [],
        tracing: false,
        signal: request.signal,
      });
      for await (const event of events) {
        if (event.type === 'output_text_delta') {
          emitted = true;
          yield { type: 'text_delta', delta: event.delta };
        } else if (event.type === 'response_done') {
          const finalOutput = outputText(event.response.output);
          if (finalOutput === '' && !emitted) throw emptyAnswerError();
          yield { type: 'done', usage: toTokenUsage(event.response.usage), finalOutput };
        }
      }
      return;
    } catch (error) {
      if (emitted || request.signal.aborted || attempt >= request.retry.maxRetries) throw error;
      const delay = retryDelay(error, attempt, request.retry);
      if (delay === undefined) throw error;
      await sleep(delay, undefined, { signal: request.signal }).catch(() => undefined);
      if (request.signal.aborted) throw error;
    }
  }
}

/** How long to wait before retrying, or undefined when the failure is not worth retrying. */
function retryDelay(error: unknown, attempt: number, options: RetryOptions): number | undefined {
  if (error instanceof APIUserAbortError) return undefined;
  const transient =
    error instanceof APIConnectionError ||
    error instanceof APIConnectionTimeoutError ||
    (error instanceof APIError && typeof error.status === 'number' && (error.status === 429 || error.status === 408 || error.status >= 500)) ||
    (error instanceof TypeError && (error.message === 'fetch failed' || error.message === 'terminated'));
  if (!transient) return undefined;
  const retryAfter = error instanceof APIError ? retryAfterMs(error.headers) : undefined;
  if (retryAfter !== undefined) return retryAfter <= options.maxRetryAfterMs ? retryAfter : undefined;
  const base = Math.min(8000, options.initialDelayMs * 2 ** attempt);
  return base / 2 + Math.random() * (base / 2);
}

function retryAfterMs(headers: Headers | undefined): number | undefined {
  const milliseconds = Number(headers?.get('retry-after-ms'));
  if (Number.isFinite(milliseconds) && milliseconds > 0) return milliseconds;
  const seconds = Number(headers?.get('retry-after'));
  if (Number.isFinite(seconds) && seconds > 0) return seconds * 1000;
  return undefined;
}

function outputText(output: readonly unknown[]): string {
  let text = '';
  for (const item of output as { type?: string; content?: { type?: string; text?: string }[] }[]) {
    if (item.type !== 'message' || !Array.isArray(item.content)) continue;
    for (const part of item.content) if (part.type === 'output_text' && typeof part.text === 'string') text += part.text;
  }
  return text;
}

function toTokenUsage(usage: { inputTokens: number; outputTokens: number; totalTokens: number } | undefined): TokenUsage | undefined {
  if (!usage || (usage.inputTokens === 0 && usage.outputTokens === 0)) return undefined;
  return { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens, total_tokens: usage.totalTokens };
}
