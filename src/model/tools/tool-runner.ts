import { ModelBehaviorError, RunContext } from '@openai/agents-core';
import type { ChatTool } from './chat-tool.js';

/** The most of a tool's output passed on (to the model, the stream and the store). */
export const MAX_TOOL_OUTPUT_CHARS = 16_000;
const MAX_ERROR_CHARS = 500;

/** One function call the model asked for. */
export interface ToolCallRequest {
  callId: string;
  name: string;
  /** The JSON text of the arguments, as the model wrote it. */
  arguments: string;
}

/** What a call gave back: its output for the model, whether that output reports a failure, and how long it took. */
export interface ToolCallOutcome {
  output: string;
  isError: boolean;
  durationMs: number;
}

/** Options of one call. */
export interface RunToolOptions {
  timeoutMs: number;
  /** The turn's signal: a cancelled or timed-out turn stops waiting for its tools at once. */
  signal: AbortSignal;
}

/**
 * Runs one function call through the SDK tool's `invoke` (which parses and validates the arguments
 * against its schema). A tool that throws, or runs past `timeoutMs`, gives an "Error: …" output
 * the model can read and act on; only the turn's own abort escapes as an exception. The tool is
 * told of a timeout or an abort through `details.signal`.
 */
export async function runToolCall(
  tools: ReadonlyMap<string, ChatTool>,
  call: ToolCallRequest,
  options: RunToolOptions,
): Promise<ToolCallOutcome> {
  const started = performance.now();
  const finish = (output: string, isError: boolean): ToolCallOutcome => ({
    output: truncate(output, MAX_TOOL_OUTPUT_CHARS),
    isError,
    durationMs: Math.round((performance.now() - started) * 10) / 10,
  });
  const tool = tools.get(call.name);
  if (!tool) return finish(`Error: there is no tool named "${call.name}". The tools are: ${[...tools.keys()].join(', ')}.`, true);

  options.signal.throwIfAborted();
  const controller = new AbortController();
  const seconds = Number((options.timeoutMs / 1000).toFixed(3));
  let timer: NodeJS.Timeout | undefined;
  let onTurnAbort: (() => void) | undefined;
  const stopped = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new ToolTimeout(`Error: the tool ${call.name} did not finish within ${seconds} seconds.`);
      controller.abort(error);
      reject(error);
    }, options.timeoutMs);
    onTurnAbort = () => {
      controller.abort(options.signal.reason);
      reject(options.signal.reason);
    };
    options.signal.addEventListener('abort', onTurnAbort, { once: true });
  });
  try {
    const details = {
      toolCall: { type: 'function_call' as const, callId: call.callId, name: call.name, arguments: call.arguments },
      signal: controller.signal,
    };
    const result = await Promise.race([tool.invoke(new RunContext(), call.arguments, details), stopped]);
    return finish(toOutputText(result), false);
  } catch (error) {
    if (options.signal.aborted) throw options.signal.reason;
    if (error instanceof ToolTimeout) return finish(error.message, true);
    return finish(`Error: ${describeFailure(error, call.name)}`, true);
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener('abort', onTurnAbort!);
  }
}

class ToolTimeout extends Error {}

/** A tool's result as text: strings as they are, anything else as JSON. */
function toOutputText(result: unknown): string {
  if (typeof result === 'string') return result;
  if (result === undefined) return '';
  try {
    return JSON.stringify(result) ?? String(result);
  } catch {
    return String(result);
  }
}

/** One line saying what went wrong: the tool's own message (never a stack), or what was wrong with the arguments. */
function describeFailure(error: unknown, toolName: string): string {
  // The SDK's InvalidToolInputError (arguments that are not JSON, or miss the schema) is a ModelBehaviorError.
  if (error instanceof ModelBehaviorError) {
    const issue = (
      (error as { originalError?: unknown }).originalError as { issues?: { path?: PropertyKey[]; message?: string }[] } | undefined
    )?.issues?.[0];
    const where = issue?.path?.length
      ? ` (${issue.path.map(String).join('.')}: ${issue.message})`
      : issue?.message
        ? ` (${issue.message})`
        : '';
    return `the arguments do not match the parameters of ${toolName}${where}. Call it again with valid JSON arguments.`;
  }
  const message = error instanceof Error ? error.message : typeof error === 'string' ? error : `${toolName} failed`;
  return truncate(message.split('\n')[0]!.trim() || `${toolName} failed`, MAX_ERROR_CHARS);
}

function truncate(text: string, length: number): string {
  if (text.length <= length) return text;
  // Never keep half of a surrogate pair: an emoji at the cut would become an invalid character.
  const code = text.charCodeAt(length - 1);
  const end = code >= 0xd800 && code <= 0xdbff ? length - 1 : length;
  return `${text.slice(0, end)}… (cut at ${length} characters)`;
}
