import type { AgentInputItem, ModelRequest, protocol } from '@openai/agents';
import { resolveTimeZone } from './tools/current-time.js';

/** What the demo model does next in a conversation with tools: call one, or answer from their results. */
export type DemoToolStep = { kind: 'call'; name: string; arguments: Record<string, unknown> } | { kind: 'answer'; text: string };

const TIME_QUESTION = /\b(what time is it|what(?:'s| is) the (?:current |local )?time|current (?:local )?time|time is it)\b/i;
const TIME_PLACE = /\bin\s+([A-Za-z][A-Za-z _/'-]*?)\s*(?:right now|now|today)?\s*[?.!]*\s*$/i;
const CONVERSION = /\bconvert\s+(-?\d+(?:\.\d+)?)\s*(.+?)\s+(?:to|into|in)\s+(.+?)\s*[?.!]*\s*$/i;
const CALCULATION = /\b(what(?:'s| is)|calculate|compute|evaluate|how much is)\b/i;
const EXPRESSION_RUN = /(?:sqrt|abs|round|floor|ceil|min|max|pi|[\d.+\-*/%^()×÷,\s])+/gi;
const HAS_OPERATION = /(?:\d|\))\s*(?:\*\*|[-+*/%^×÷])\s*[-+(]*\s*(?:\.?\d|sqrt|abs|pi)|(?:sqrt|abs)\s*\(\s*\d/i;

/**
 * Decides the demo model's tool use, deterministically: after tool results it answers with them;
 * otherwise a message asking the time somewhere calls `get_current_time`, "convert 5 km to miles"
 * calls `convert_units`, and "what is 12*(3+4)" calls `calculate`, when that tool is offered (and
 * `toolChoice` is not "none"). Undefined: an ordinary demo answer, exactly as without tools.
 */
export function planDemoToolStep(request: ModelRequest): DemoToolStep | undefined {
  const input = typeof request.input === 'string' ? [{ role: 'user' as const, content: request.input }] : request.input;
  const results = trailingResults(input);
  if (results.length > 0) return { kind: 'answer', text: answerFromResults(input, results) };
  const offered = new Set(request.tools.filter((tool) => tool.type === 'function').map((tool) => tool.name));
  if (offered.size === 0 || request.modelSettings.toolChoice === 'none') return undefined;
  const message = lastUserText(input);
  if (message === undefined) return undefined;
  if (offered.has('get_current_time') && TIME_QUESTION.test(message)) {
    const place = TIME_PLACE.exec(message)?.[1]?.trim();
    return { kind: 'call', name: 'get_current_time', arguments: { time_zone: place ? zoneFor(place) : 'UTC' } };
  }
  const conversion = CONVERSION.exec(message);
  if (offered.has('convert_units') && conversion) {
    return { kind: 'call', name: 'convert_units', arguments: { value: Number(conversion[1]), from_unit: conversion[2]!, to_unit: conversion[3]! } };
  }
  if (offered.has('calculate') && CALCULATION.test(message)) {
    const expression = (message.match(EXPRESSION_RUN) ?? [])
      .map((run) => run.trim().replace(/[,.]+$/, ''))
      .filter((run) => HAS_OPERATION.test(run))
      .sort((a, b) => b.length - a.length)[0];
    if (expression) return { kind: 'call', name: 'calculate', arguments: { expression } };
  }
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
