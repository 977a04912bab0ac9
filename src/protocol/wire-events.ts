import type { FinishReason, TokenUsage, TurnTimings } from './turn.js';

// Each event is serialized once, when it is appended to the replay log; readers send the string as is.
// The field order of `token` follows the original ChatWait wire format.

/** The per-connection `start` event. */
export function startEventData(contextId: string, turnId: string, model: string, resumed: boolean): string {
  return JSON.stringify({ type: 'start', event_type: 'start', context_id: contextId, turn_id: turnId, resumed, model });
}

/** A `token` event: a text delta exactly as the model produced it. */
export function tokenEventData(contextIdJson: string, token: string, tokenIndex: number): string {
  return `{"token":${JSON.stringify(token)},"token_index":${tokenIndex},"context_id":${contextIdJson},"event_type":"token","type":"token"}`;
}

/** A `tool_call` event: a function call the model asked for, its arguments as the JSON text the model wrote. */
export function toolCallEventData(callId: string, name: string, args: string): string {
  return JSON.stringify({ type: 'tool_call', event_type: 'tool_call', call_id: callId, name, arguments: args });
}

/** A `tool_result` event: what the call gave the model (an "Error: …" text when it failed or timed out) and how long it ran. */
export function toolResultEventData(callId: string, output: string, isError: boolean, durationMs: number): string {
  return JSON.stringify({
    type: 'tool_result',
    event_type: 'tool_result',
    call_id: callId,
    output,
    is_error: isError,
    duration_ms: durationMs,
  });
}

/** The `end` event with the whole answer. */
export function endEventData(fields: {
  contextId: string;
  turnId: string;
  finalOutput: string;
  tokenCount: number;
  finishReason: FinishReason;
  usage: TokenUsage | undefined;
  timings: TurnTimings;
  model: string;
}): string {
  return JSON.stringify({
    type: 'end',
    event_type: 'end',
    context_id: fields.contextId,
    turn_id: fields.turnId,
    final_output: fields.finalOutput,
    token_count: fields.tokenCount,
    finish_reason: fields.finishReason,
    usage: fields.usage ?? null,
    timings: fields.timings,
    model: fields.model,
  });
}

/** An `error` event: a failure after the stream has begun. */
export function errorEventData(contextId: string, turnId: string, errorCode: string, message: string, retryable: boolean): string {
  return JSON.stringify({
    type: 'error',
    event_type: 'error',
    context_id: contextId,
    turn_id: turnId,
    error_code: errorCode,
    message,
    retryable,
  });
}

/** A `resync` event: the whole stored answer of a turn that has left the replay log. */
export function resyncEventData(turnId: string, finalOutput: string, tokenCount: number): string {
  return JSON.stringify({ type: 'resync', event_type: 'resync', turn_id: turnId, final_output: finalOutput, token_count: tokenCount });
}
