import type { FunctionTool } from '@openai/agents-core';

/**
 * A tool the model may call: an Agents SDK function tool (made with `tool()`), whatever its
 * parameter schema. The SDK's own `FunctionTool` type is generic over that schema; the loop only
 * needs `name`, `invoke` and the JSON schema, so one loose instantiation serves them all.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type ChatTool = FunctionTool<any, any, any>;

/** A failure a tool reports to the model as its result ("Error: …"): bad input, nothing crashed. */
export class ToolFailure extends Error {
  override name = 'ToolFailure';
}
