import type { ProviderName } from '../config.js';
import type { TokenUsage } from '../protocol/turn.js';

/** One message of the context sent to the model. */
export interface ChatMessage {
  role: 'user' | 'assistant';
  content: string;
}

/**
 * What a model emits while it answers, free of any SDK type. A turn with tools emits, between
 * rounds of text, each call the model asked for (`tool_call`) and then its outcome (`tool_result`).
 * `progress` says the model is still writing something that is not text yet (a tool call's
 * arguments, or its reasoning): it keeps the stall timeout from firing.
 */
export type ModelStreamEvent =
  | { type: 'text_delta'; delta: string }
  | { type: 'progress' }
  | { type: 'tool_call'; callId: string; name: string; arguments: string }
  | { type: 'tool_result'; callId: string; output: string; isError: boolean; durationMs: number }
  | { type: 'done'; usage: TokenUsage | undefined; finalOutput: string };

/** Input of one model call: the context (oldest first, the new user message last) and a signal that aborts it. */
export interface ReplyRequest {
  messages: ChatMessage[];
  signal: AbortSignal;
  /** This call's instructions (a client's system message) instead of the configured ones. */
  instructions?: string | undefined;
}

/** The model behind ChatWait, whichever provider serves it. */
export interface ChatModel {
  readonly provider: ProviderName;
  readonly name: string;
  readonly demo: boolean;
  /** Streams one answer; throws a ChatWaitError (UPSTREAM_*, MODEL_UNAVAILABLE) when the provider fails. */
  streamReply(request: ReplyRequest): AsyncIterable<ModelStreamEvent>;
  /** Whether the provider answers and accepts the key (cached briefly); `detail` is safe to show. */
  checkHealth(): Promise<ModelHealth>;
}

/** The outcome of a provider check. */
export interface ModelHealth {
  status: 'ok' | 'error';
  /** True when the provider refused the key or the model: a configuration error, not an outage. */
  misconfigured: boolean;
  detail?: string;
}
