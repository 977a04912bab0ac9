import type { AgentInputItem, Model, ModelSettings } from '@openai/agents-core';
import { UpstreamError } from '../errors.js';
import type { ModelStreamEvent } from './chat-model.js';
import type { TokenUsage } from '../protocol/turn.js';
import { streamModelCall, type RetryOptions, type UsageFields } from './model-call.js';
import type { ChatTool } from './tools/chat-tool.js';
import { functionCalls, runToolRound } from './tool-round.js';
import { ToolOffer, type ToolSupport } from './tool-support.js';
import { emptyAnswerError, toUpstreamError } from './upstream-errors.js';
import { normalizeUpstreamFailure } from './upstream-failure.js';

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
 * they run as one round (`runToolRound`), the calls and their results are appended to the input,
 * and the model is called again (`streamModelCall`, which retries), for at most `maxRounds`
 * rounds; the call after the last round gets `toolChoice: 'none'`. A turn whose model calls no tool
 * does the same per-token work as before. Whatever fails is thrown as a ChatWaitError
 * (UPSTREAM_*, MODEL_UNAVAILABLE, or the turn's own abort reason).
 */
export async function* streamDirect(request: DirectStreamRequest): AsyncIterable<ModelStreamEvent> {
  const { signal, toolLoop } = request;
  const offer = new ToolOffer(toolLoop?.tools ?? NO_TOOLS, toolLoop?.support);
  let input = request.input;
  let finalOutput = '';
  let emittedAny = false;
  let usage: TokenUsage | undefined;
  const usedCallIds = new Set<string>();
  try {
    for (let round = 0; ; round++) {
      const lastRound = toolLoop !== undefined && offer.active && round >= toolLoop.maxRounds;
      const settings: ModelSettings = lastRound ? { ...request.settings, toolChoice: 'none' } : request.settings;
      const call = {
        model: request.model,
        instructions: request.instructions,
        input,
        settings,
        signal,
        retry: request.retry,
        offer,
        mayStepDown: round === 0,
      };
      const { response, emitted } = yield* streamModelCall(call);
      emittedAny ||= emitted;
      if (!response) break;
      const output = withUniqueCallIds(response.output, usedCallIds);
      finalOutput += outputText(output);
      usage = addUsage(usage, response.usage);
      const calls = toolLoop && offer.active && !lastRound ? functionCalls(output) : [];
      if (calls.length === 0) {
        if (finalOutput === '' && !emittedAny) {
          // Still asking for tools after the last round, with nothing said: a clear failure rather than an empty answer.
          throw lastRound && functionCalls(output).length > 0 ? toolRoundsExhausted(toolLoop!.maxRounds) : emptyAnswerError();
        }
        yield { type: 'done', usage, finalOutput };
        break;
      }
      const results = yield* runToolRound(calls, { tools: toolLoop!.tools, timeoutMs: toolLoop!.timeoutMs, signal });
      input = [...input, ...output, ...results];
    }
    // An abort (timeout or cancel) can end a model's stream quietly; its reason is the outcome.
    signal.throwIfAborted();
  } catch (error) {
    throw toUpstreamError(normalizeUpstreamFailure(error, signal));
  }
}

const NO_TOOLS: ReadonlyMap<string, ChatTool> = new Map();

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
