import { getMaxListeners, setMaxListeners } from 'node:events';
import type { AgentInputItem } from '@openai/agents-core';
import type { ModelStreamEvent } from './chat-model.js';
import type { ChatTool } from './tools/chat-tool.js';
import { runToolCall, type ToolCallRequest } from './tools/tool-runner.js';

/** The most function calls of one round that run; each call past it gets an error result instead. */
export const MAX_TOOL_CALLS_PER_ROUND = 16;

/** The tools of a round and the limits on one call. */
export interface ToolRoundOptions {
  tools: ReadonlyMap<string, ChatTool>;
  /** The longest one call may run before its result becomes an error for the model. */
  timeoutMs: number;
  /** The turn's signal: a cancelled or timed-out turn stops waiting for its tools at once. */
  signal: AbortSignal;
}

/**
 * Runs one round of function calls at once and reports it: every call first (`tool_call`), then
 * each result in call order, as soon as it and those before it are in (`tool_result`). Returns the
 * results as input items for the model's next call.
 */
export async function* runToolRound(
  calls: readonly ToolCallRequest[],
  options: ToolRoundOptions,
): AsyncGenerator<ModelStreamEvent, AgentInputItem[]> {
  for (const call of calls) yield { type: 'tool_call', callId: call.callId, name: call.name, arguments: call.arguments };
  // Each running call listens for the turn's abort: up to a full round of them is expected, not a leak.
  if (calls.length > 1) setMaxListeners(Math.max(getMaxListeners(options.signal), MAX_TOOL_CALLS_PER_ROUND + 10), options.signal);
  const outcomes = calls.map((call, index) =>
    index < MAX_TOOL_CALLS_PER_ROUND
      ? runToolCall(options.tools, call, { timeoutMs: options.timeoutMs, signal: options.signal })
      : Promise.resolve(TOO_MANY_CALLS),
  );
  outcomes.forEach((outcome) => outcome.catch(() => undefined));
  const results: AgentInputItem[] = [];
  for (const [index, call] of calls.entries()) {
    const outcome = await outcomes[index]!;
    yield { type: 'tool_result', callId: call.callId, output: outcome.output, isError: outcome.isError, durationMs: outcome.durationMs };
    results.push({ type: 'function_call_result', name: call.name, callId: call.callId, status: 'completed', output: outcome.output });
  }
  return results;
}

/** The function calls of a response, with empty arguments read as `{}` (some servers send "" for a tool without parameters). */
export function functionCalls(output: readonly AgentInputItem[]): ToolCallRequest[] {
  const calls: ToolCallRequest[] = [];
  for (const item of output) {
    if (item.type !== 'function_call') continue;
    calls.push({ callId: item.callId, name: item.name, arguments: item.arguments.trim() === '' ? '{}' : item.arguments });
  }
  return calls;
}

const TOO_MANY_CALLS = {
  output: `Error: too many tool calls in one round (at most ${MAX_TOOL_CALLS_PER_ROUND}); this one did not run. Make it again in the next round if it is still needed.`,
  isError: true,
  durationMs: 0,
};
