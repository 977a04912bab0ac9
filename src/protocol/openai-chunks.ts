import type { ChatCompletion, OpenAIError, OpenAIFinishReason, OpenAIUsage } from './openai-chat.js';
import type { TokenUsage } from './turn.js';

// The JSON text of the OpenAI-compatible answers, built from a turn's fields. The same turn and the same
// request give the same text, byte for byte: a resumed stream continues exactly where the first one stopped.

/** What names one answer in every chunk: `chatcmpl-<turn_id>`, when its turn started, its model. */
export interface CompletionIdentity {
  turnId: string;
  /** When the turn started, in Unix seconds. */
  created: number;
  model: string;
}

/** The chunks of one streamed answer, as JSON text. */
export interface ChunkFormat {
  /** The first chunk of a connection: the assistant's role and empty content, as OpenAI sends it. */
  role(): string;
  /** One text delta. */
  content(delta: string): string;
  /** The empty delta with the answer's `finish_reason` (ChatWait's, translated). */
  finish(finishReason: string): string;
  /** The last chunk with `stream_options.include_usage`: no choices, the usage (see `toOpenAIUsage`). */
  usage(usage: TokenUsage | null | undefined, tokenCount: number): string;
}

/** The `id` of an answer's completion and chunks. */
export function completionId(turnId: string): string {
  return `chatcmpl-${turnId}`;
}

/**
 * OpenAI's `finish_reason` for ChatWait's: `stop`, `length` and `content_filter` are the same; a
 * cancelled turn ends with `stop` (OpenAI has no word for it) and `chatwait_finish_reason: "cancelled"`.
 */
export function toOpenAIFinish(finishReason: string): { finish_reason: OpenAIFinishReason; chatwait_finish_reason?: 'cancelled' } {
  if (finishReason === 'length' || finishReason === 'content_filter') return { finish_reason: finishReason };
  return finishReason === 'cancelled' ? { finish_reason: 'stop', chatwait_finish_reason: 'cancelled' } : { finish_reason: 'stop' };
}

/**
 * A turn's usage in OpenAI's names. OpenAI always sends one: when the model reported none, the answer's
 * `token_count` (the deltas it streamed, as ChatWait's own API counts them) stands for its completion
 * tokens, and the prompt's are 0 (not known).
 */
export function toOpenAIUsage(usage: TokenUsage | null | undefined, tokenCount: number): OpenAIUsage {
  if (!usage) return { prompt_tokens: 0, completion_tokens: tokenCount, total_tokens: tokenCount };
  return { prompt_tokens: usage.input_tokens, completion_tokens: usage.output_tokens, total_tokens: usage.total_tokens };
}

/** The chunk text of one answer; with `includeUsage`, every chunk carries `"usage":null` and the usage chunk ends the answer. */
export function chunkFormat(identity: CompletionIdentity, includeUsage: boolean): ChunkFormat {
  const head = `{"id":${JSON.stringify(completionId(identity.turnId))},"object":"chat.completion.chunk","created":${identity.created},"model":${JSON.stringify(identity.model)},"choices":`;
  const tail = includeUsage ? ',"usage":null}' : '}';
  const choice = (delta: string, finish: string) => `${head}[{"index":0,"delta":${delta},"logprobs":null,${finish}}]${tail}`;
  return {
    role: () => choice('{"role":"assistant","content":""}', '"finish_reason":null'),
    content: (delta) => choice(`{"content":${JSON.stringify(delta)}}`, '"finish_reason":null'),
    finish: (finishReason) => choice('{}', JSON.stringify(toOpenAIFinish(finishReason)).slice(1, -1)),
    usage: (usage, tokenCount) => `${head}[],"usage":${JSON.stringify(toOpenAIUsage(usage, tokenCount))}}`,
  };
}

/** The whole answer of a request without `stream`. */
export function completionBody(
  identity: CompletionIdentity,
  answer: string,
  finishReason: string,
  usage: TokenUsage | undefined,
  tokenCount: number,
): ChatCompletion {
  return {
    id: completionId(identity.turnId),
    object: 'chat.completion',
    created: identity.created,
    model: identity.model,
    choices: [
      { index: 0, message: { role: 'assistant', content: answer, refusal: null }, logprobs: null, ...toOpenAIFinish(finishReason) },
    ],
    usage: toOpenAIUsage(usage, tokenCount),
  };
}

/** An error body in OpenAI's format. */
export function openAIErrorBody(message: string, type: string, param: string | null, code: string | null): OpenAIError {
  return { error: { message, type, param, code } };
}
