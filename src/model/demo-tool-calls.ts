import type { AgentInputItem, ModelRequest, protocol } from '@openai/agents-core';
import { asksForTime, findConversion, findExpression, findTimePlace, MAX_PLANNED_MESSAGE_CHARS } from './demo-tool-patterns.js';
import { resolveTimeZone } from './tools/current-time.js';

/** What the demo model does next in a conversation with tools: call one, or answer from their results. */
export type DemoToolStep = { kind: 'call'; name: string; arguments: Record<string, unknown> } | { kind: 'answer'; text: string };

/**
 * Decides the demo model's tool use, deterministically: after tool results it answers with them;
 * otherwise a message asking the time somewhere calls `get_current_time`, "convert 5 km to miles"
 * calls `convert_units`, and "what is 12*(3+4)" calls `calculate`, when that tool is offered (and
 * `toolChoice` is not "none"). Messages over MAX_PLANNED_MESSAGE_CHARS are never read for a call.
 * Undefined: an ordinary demo answer, exactly as without tools.
 */
export function planDemoToolStep(request: ModelRequest): DemoToolStep | undefined {
  const input = typeof request.input === 'string' ? [{ role: 'user' as const, content: request.input }] : request.input;
  const results = trailingResults(input);
  if (results.length > 0) return { kind: 'answer', text: answerFromResults(input, results) };
  const offered = new Set(request.tools.filter((tool) => tool.type === 'function').map((tool) => tool.name));
  if (offered.size === 0 || request.modelSettings.toolChoice === 'none') return undefined;
  const message = lastUserText(input);
  if (message === undefined || message.length > MAX_PLANNED_MESSAGE_CHARS) return undefined;
  if (offered.has('get_current_time') && asksForTime(message)) {
    const place = findTimePlace(message);
    return { kind: 'call', name: 'get_current_time', arguments: { time_zone: place ? zoneFor(place) : 'UTC' } };
  }
  const conversion = offered.has('convert_units') ? findConversion(message) : undefined;
  if (conversion)
    return {
      kind: 'call',
      name: 'convert_units',
      arguments: { value: conversion.value, from_unit: conversion.fromUnit, to_unit: conversion.toUnit },
    };
  const expression = offered.has('calculate') ? findExpression(message) : undefined;
  if (expression) return { kind: 'call', name: 'calculate', arguments: { expression } };
  return undefined;
}

/** A city the demo knows becomes its zone; anything else goes to the tool as written (which may refuse it). */
function zoneFor(place: string): string {
  try {
    return resolveTimeZone(place);
  } catch {
    return place;
  }
}

/** The function-call results after the last user message (the round the model is answering now). */
function trailingResults(input: AgentInputItem[]): protocol.FunctionCallResultItem[] {
  const results: protocol.FunctionCallResultItem[] = [];
  for (let index = input.length - 1; index >= 0; index--) {
    const item = input[index]!;
    if ('role' in item && item.role === 'user') break;
    if (item.type === 'function_call_result') results.unshift(item);
  }
  return results;
}

function answerFromResults(input: AgentInputItem[], results: protocol.FunctionCallResultItem[]): string {
  const calls = new Map<string, protocol.FunctionCallItem>();
  for (const item of input) if (item.type === 'function_call') calls.set(item.callId, item);
  const lines = results.map((result) => {
    const output = codeSpan(typeof result.output === 'string' ? result.output : JSON.stringify(result.output));
    const call = calls.get(result.callId);
    const asked = call ? ` with ${codeSpan(call.arguments)}` : '';
    return output.startsWith('`Error:')
      ? `I called the \`${result.name}\` tool${asked}, and it answered with an error: ${output}`
      : `I called the \`${result.name}\` tool${asked}, and it answered: ${output}`;
  });
  return [
    ...lines,
    '',
    '*(This is the ChatWait demo model: it calls the built-in tools for messages like yours, but it is not an AI.)*',
    '',
  ].join('\n');
}

function codeSpan(text: string): string {
  return `\`${text.replace(/`/g, "'").replace(/\s+/g, ' ').trim()}\``;
}

function lastUserText(input: AgentInputItem[]): string | undefined {
  for (let index = input.length - 1; index >= 0; index--) {
    const item = input[index]!;
    if (!('role' in item) || item.role !== 'user') continue;
    return typeof item.content === 'string' ? item.content : item.content.map((part) => ('text' in part ? part.text : '')).join('');
  }
  return undefined;
}
