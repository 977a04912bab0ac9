import { getMaxListeners, setMaxListeners } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { APIConnectionError, APIConnectionTimeoutError, APIError, APIUserAbortError } from 'openai';
import type { AgentInputItem, Model, ModelSettings, SerializedTool } from '@openai/agents-core';
import { UpstreamError } from '../errors.js';
import type { ModelStreamEvent, TokenUsage } from './chat-model.js';
import type { ChatTool } from './tools/chat-tool.js';
import { runToolCall, type ToolCallRequest } from './tools/tool-runner.js';
import { PROGRESS_EVENT } from './openai-compatible-model.js';
import type { ToolSupport, ToolSupportLevel } from './tool-support.js';
import { emptyAnswerError } from './upstream-errors.js';

/** How the direct path retries a model call that failed before its first token. */
export interface RetryOptions {
  maxRetries: number;
  initialDelayMs: number;
  /** The longest upstream Retry-After accepted; past it the call fails instead of waiting. */
  maxRetryAfterMs: number;
}

/** The most function calls of one round that run; each call past it gets an error result instead. */
export const MAX_TOOL_CALLS_PER_ROUND = 16;

/** The tools a turn may call, and the limits on them. */
export interface ToolLoopOptions {
  tools: ReadonlyMap<string, ChatTool>;
  /** The longest one call may run before its result becomes an error for the model. */
  timeoutMs: number;
  /** Rounds of tool calls per answer; the call after the last round may not ask for tools. */
  maxRounds: number;
  /** What the model's provider takes of tools, shared by all its turns (absent: everything). */
  support?: ToolSupport | undefined;
}

/** One answer asked of an Agents SDK model directly. */
export interface DirectStreamRequest {
  model: Model;
  instructions: string;
  input: AgentInputItem[];
  settings: ModelSettings;
  signal: AbortSignal;
  retry: RetryOptions;
  toolLoop?: ToolLoopOptions | undefined;
}

/**
 * Streams one answer from an Agents SDK `Model` without the Runner's agent loop: the Runner's
 * per-event work and async context tracking cost more than the relaying itself (see
 * bench/README.md). The tool loop is ours instead: when the model's response holds function calls,
 * they run (in parallel), the calls and their results are appended to the input, and the model is
 * called again, for at most `maxRounds` rounds; the call after the last round gets
 * `toolChoice: 'none'`. A turn whose model calls no tool does the same per-token work as before.
 * Each model call is retried on transient failures (429, 408, 5xx, connection errors) with
 * exponential backoff, but only before its first token.
 */
export async function* streamDirect(request: DirectStreamRequest): AsyncIterable<ModelStreamEvent> {
  const support = request.toolLoop?.support;
  let level = support?.level ?? 'strict';
  let loop = request.toolLoop && request.toolLoop.tools.size > 0 && level !== 'none' ? request.toolLoop : undefined;
  let serializedTools = loop ? serializeTools(loop.tools, level === 'strict') : [];
  let input = request.input;
  let finalOutput = '';
  let emittedAny = false;
  let usage: TokenUsage | undefined;
  const usedCallIds = new Set<string>();
  // A refusal of the tools answered by asking with less: remembered for the model once that works.
  let refused: { level: ToolSupportLevel; message: string } | undefined;
  for (let round = 0; ; round++) {
    const lastRound = loop !== undefined && round >= loop.maxRounds;
    const modelSettings: ModelSettings = lastRound ? { ...request.settings, toolChoice: 'none' } : request.settings;
    let response: { output: AgentInputItem[]; usage?: UsageFields } | undefined;
    for (let attempt = 0; ; attempt++) {
      let emitted = false;
      try {
        const events = request.model.getStreamedResponse({
          systemInstructions: request.instructions,
          input,
          modelSettings,
          tools: serializedTools,
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
            response = event.response as typeof response;
          } else if (event === PROGRESS_EVENT) {
            yield PROGRESS;
          }
        }
        emittedAny ||= emitted;
        if (refused) support?.confirm(refused.level, refused.message);
        refused = undefined;
        break;
      } catch (error) {
        const fallback = loop && support && round === 0 && !emitted && !request.signal.aborted ? support.fallback(level, error, serializedTools.some((tool) => tool.type === 'function' && tool.strict)) : undefined;
        if (fallback) {
          // The provider refused the tools themselves: ask again with less, and not as one of the retries for failures.
          refused = fallback;
          level = fallback.level;
          loop = level === 'none' ? undefined : loop;
          serializedTools = loop ? serializeTools(loop.tools, level === 'strict') : [];
          attempt--;
          continue;
        }
        if (emitted || request.signal.aborted || attempt >= request.retry.maxRetries) throw error;
        const delay = retryDelay(error, attempt, request.retry);
        if (delay === undefined) throw error;
        await sleep(delay, undefined, { signal: request.signal }).catch(() => undefined);
        if (request.signal.aborted) throw error;
      }
    }
    if (!response) return;
    const output = withUniqueCallIds(response.output, usedCallIds);
    finalOutput += outputText(output);
    usage = addUsage(usage, response.usage);
    const calls = loop && !lastRound ? functionCalls(output) : [];
    if (calls.length === 0) {
      if (finalOutput === '' && !emittedAny) {
        // Still asking for tools after the last round, with nothing said: a clear failure rather than an empty answer.
        throw lastRound && functionCalls(output).length > 0 ? toolRoundsExhausted(loop!.maxRounds) : emptyAnswerError();
      }
      yield { type: 'done', usage, finalOutput };
      return;
    }
    for (const call of calls) yield { type: 'tool_call', callId: call.callId, name: call.name, arguments: call.arguments };
    // The calls run at once; their results are reported in call order, each as soon as it and those before it are in.
    // Each running call listens for the turn's abort: up to a full round of them is expected, not a leak.
    if (calls.length > 1) setMaxListeners(Math.max(getMaxListeners(request.signal), MAX_TOOL_CALLS_PER_ROUND + 10), request.signal);
    const outcomes = calls.map((call, index) =>
      index < MAX_TOOL_CALLS_PER_ROUND ? runToolCall(loop!.tools, call, { timeoutMs: loop!.timeoutMs, signal: request.signal }) : Promise.resolve(TOO_MANY_CALLS),
    );
    outcomes.forEach((outcome) => outcome.catch(() => undefined));
    const results: AgentInputItem[] = [];
    for (const [index, call] of calls.entries()) {
      const outcome = await outcomes[index]!;
      yield { type: 'tool_result', callId: call.callId, output: outcome.output, isError: outcome.isError, durationMs: outcome.durationMs };
      results.push({ type: 'function_call_result', name: call.name, callId: call.callId, status: 'completed', output: outcome.output });
    }
    input = [...input, ...output, ...results];
  }
}

type UsageFields = { inputTokens: number; outputTokens: number; totalTokens: number };

const PROGRESS: ModelStreamEvent = { type: 'progress' };

const TOO_MANY_CALLS = {
  output: `Error: too many tool calls in one round (at most ${MAX_TOOL_CALLS_PER_ROUND}); this one did not run. Make it again in the next round if it is still needed.`,
  isError: true,
  durationMs: 0,
};

/**
 * The output with each function call's id made unique within the turn: some servers number the
 * calls of every round from `call_0`, and a repeated id would make the stream, the store and the
 * page mix two calls up. A repeat gets a suffix (`call_0_2`), in the history sent back too. (A
 * provider that insists on its own id format and repeats ids would refuse the suffix; none known.)
 */
function withUniqueCallIds(output: AgentInputItem[], used: Set<string>): AgentInputItem[] {
  let renamed = false;
  const unique = output.map((item) => {
    if (item.type !== 'function_call') return item;
    let callId = item.callId;
    for (let suffix = 2; used.has(callId); suffix++) callId = `${item.callId}_${suffix}`;
    used.add(callId);
    if (callId === item.callId) return item;
    renamed = true;
    return { ...item, callId };
  });
  return renamed ? unique : output;
}

const serialized = { strict: new WeakMap<ReadonlyMap<string, ChatTool>, SerializedTool[]>(), plain: new WeakMap<ReadonlyMap<string, ChatTool>, SerializedTool[]>() };

/** The tools as the model is told of them (all non-strict unless `strict`), worked out once per tool set. */
function serializeTools(tools: ReadonlyMap<string, ChatTool>, strict: boolean): SerializedTool[] {
  const cache = strict ? serialized.strict : serialized.plain;
  let list = cache.get(tools);
  if (!list) {
    list = [...tools.values()].map((tool) => ({ type: 'function', name: tool.name, description: tool.description, parameters: tool.parameters, strict: strict && tool.strict }));
    cache.set(tools, list);
  }
  return list;
}

/** The function calls of a response, with empty arguments read as `{}` (some servers send "" for a tool without parameters). */
function functionCalls(output: readonly AgentInputItem[]): ToolCallRequest[] {
  const calls: ToolCallRequest[] = [];
  for (const item of output) {
    if (item.type !== 'function_call') continue;
    calls.push({ callId: item.callId, name: item.name, arguments: item.arguments.trim() === '' ? '{}' : item.arguments });
  }
  return calls;
}

function addUsage(total: TokenUsage | undefined, usage: UsageFields | undefined): TokenUsage | undefined {
  const next = toTokenUsage(usage);
  if (!total || !next) return next ?? total;
  return {
    input_tokens: total.input_tokens + next.input_tokens,
    output_tokens: total.output_tokens + next.output_tokens,
    total_tokens: total.total_tokens + next.total_tokens,
  };
}

function toolRoundsExhausted(maxRounds: number): UpstreamError {
  return new UpstreamError(
    'UPSTREAM_ERROR',
    `The model kept calling tools for ${maxRounds} rounds (TOOL_MAX_ROUNDS) without answering. Try rephrasing the message.`,
    { retryable: false },
  );
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

function outputText(output: readonly AgentInputItem[]): string {
  let text = '';
  for (const item of output as unknown as { type?: string; content?: { type?: string; text?: string }[] }[]) {
    if (item.type !== 'message' || !Array.isArray(item.content)) continue;
    for (const part of item.content) if (part.type === 'output_text' && typeof part.text === 'string') text += part.text;
  }
  return text;
}

function toTokenUsage(usage: { inputTokens: number; outputTokens: number; totalTokens: number } | undefined): TokenUsage | undefined {
  if (!usage || (usage.inputTokens === 0 && usage.outputTokens === 0)) return undefined;
  return { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens, total_tokens: usage.totalTokens };
}
