import type { StoredToolStep } from './api';
import type { ToolStepView } from './chat-types';

/** Adds a call to an answer's steps, unless a resumed stream sent it again. */
export function withToolCall(steps: ToolStepView[] | undefined, call: { callId: string; name: string; arguments: string }): ToolStepView[] {
  if (steps?.some((step) => step.callId === call.callId)) return steps;
  return [...(steps ?? []), { ...call, isError: false }];
}

/** Fills in a call's outcome. */
export function withToolResult(
  steps: ToolStepView[] | undefined,
  result: { callId: string; output: string; isError: boolean; durationMs: number },
): ToolStepView[] | undefined {
  return steps?.map((step) =>
    step.callId === result.callId ? { ...step, output: result.output, isError: result.isError, durationMs: result.durationMs } : step,
  );
}

/** The steps of a stored turn (or a wait answer), for the page. */
export function stepsFromStored(steps: StoredToolStep[] | undefined): ToolStepView[] | undefined {
  if (!steps || steps.length === 0) return undefined;
  return steps.map((step) => ({
    callId: step.call_id,
    name: step.name,
    arguments: step.arguments,
    isError: step.is_error,
    ...(step.output === null ? {} : { output: step.output }),
    ...(step.duration_ms === null ? {} : { durationMs: step.duration_ms }),
  }));
}
