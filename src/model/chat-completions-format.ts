import { randomUUID } from 'node:crypto';
import type { AgentInputItem, ModelRequest, protocol } from '@openai/agents-core';

/** One message of a chat-completions request. */
export type ChatCompletionMessage =
  | { role: string; content: string }
  | {
      role: 'assistant';
      content: string | null;
      tool_calls: { id: string; type: 'function'; function: { name: string; arguments: string } }[];
    }
  | { role: 'tool'; tool_call_id: string; content: string };

/**
 * The Agents SDK's input items as chat-completions messages: text messages by role; function calls
 * join the assistant message before them (or a new one) as `tool_calls`; their results become
 * `tool` messages. The same mapping as the SDK's own chat-completions converter, for what ChatWait sends.
 */
export function toChatMessages(system: string | undefined, input: string | AgentInputItem[]): ChatCompletionMessage[] {
  const messages: ChatCompletionMessage[] = system ? [{ role: 'system', content: system }] : [];
  if (typeof input === 'string') return [...messages, { role: 'user', content: input }];
  for (const item of input) {
    if (item.type === 'function_call') {
      const last = messages.at(-1);
      const call = { id: item.callId, type: 'function' as const, function: { name: item.name, arguments: item.arguments } };
      if (last?.role === 'assistant' && 'tool_calls' in last) last.tool_calls.push(call);
      else if (last?.role === 'assistant' && 'content' in last && !('tool_call_id' in last))
        messages[messages.length - 1] = { role: 'assistant', content: last.content, tool_calls: [call] };
      else messages.push({ role: 'assistant', content: null, tool_calls: [call] });
      continue;
    }
    if (item.type === 'function_call_result') {
      messages.push({ role: 'tool', tool_call_id: item.callId, content: resultText(item.output) });
      continue;
    }
    if (!('role' in item)) continue;
    const content =
      typeof item.content === 'string'
        ? item.content
        : item.content.map((part) => ('text' in part && typeof part.text === 'string' ? part.text : '')).join('');
    messages.push({ role: item.role, content });
  }
  return messages;
}

/** The request fields that offer tools: none when there are none (so a plain request stays as it was). */
export function toolFields(request: ModelRequest): Record<string, unknown> {
  const tools = request.tools.filter((tool) => tool.type === 'function');
  if (tools.length === 0) return {};
  const choice = request.modelSettings.toolChoice;
  return {
    tools: tools.map((tool) => ({
      type: 'function',
      // `strict` only when true: some Gemini-compatible backends refuse the field whatever its value.
      function: { name: tool.name, description: tool.description, parameters: tool.parameters, ...(tool.strict ? { strict: true } : {}) },
    })),
    ...(choice === undefined
      ? {}
      : {
          tool_choice:
            choice === 'auto' || choice === 'required' || choice === 'none' ? choice : { type: 'function', function: { name: choice } },
        }),
    ...(request.modelSettings.parallelToolCalls === undefined ? {} : { parallel_tool_calls: request.modelSettings.parallelToolCalls }),
  };
}

/** A piece of a streamed tool call: the first carries its id and name, later ones more of its arguments. */
export interface ToolCallDelta {
  index?: number;
  id?: string | null;
  function?: { name?: string | null; arguments?: string | null };
}

/**
 * Puts streamed tool calls back together, by `index`. Some servers (Ollama) give every call of a
 * parallel batch index 0 and tell them apart by id only: a new id at a used index starts a new call.
 */
export class ToolCallAssembler {
  readonly #calls: { id: string; name: string; arguments: string[] }[] = [];
  readonly #slotByIndex = new Map<number, number>();

  add(deltas: readonly ToolCallDelta[]): void {
    for (const delta of deltas) {
      const index = delta.index ?? 0;
      let slot = this.#slotByIndex.get(index);
      const current = slot === undefined ? undefined : this.#calls[slot];
      if (current === undefined || (delta.id && current.id !== '' && delta.id !== current.id)) {
        slot = this.#calls.push({ id: '', name: '', arguments: [] }) - 1;
        this.#slotByIndex.set(index, slot);
      }
      const call = this.#calls[slot!]!;
      if (delta.id) call.id = delta.id;
      if (delta.function?.name) call.name += delta.function.name;
      if (delta.function?.arguments) call.arguments.push(delta.function.arguments);
    }
  }

  /** The calls as the SDK's output items, ids made up for servers that send none. */
  items(): protocol.FunctionCallItem[] {
    return this.#calls.map((call) => ({
      type: 'function_call',
      callId: call.id || `call_${randomUUID()}`,
      name: call.name,
      arguments: call.arguments.join(''),
      status: 'completed',
    }));
  }
}

function resultText(output: protocol.FunctionCallResultItem['output']): string {
  if (typeof output === 'string') return output;
  if (Array.isArray(output)) return output.map((part) => ('text' in part && typeof part.text === 'string' ? part.text : '')).join('');
  return 'text' in output && typeof output.text === 'string' ? output.text : JSON.stringify(output);
}
