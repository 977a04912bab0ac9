import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { randomUUID } from 'node:crypto';
import type { AgentInputItem, Model, ModelRequest, ModelResponse, protocol, StreamEvent } from '@openai/agents-core';
import { Usage } from '@openai/agents-core';
import { planDemoToolStep } from './demo-tool-calls.js';

/** The name the demo model goes by in `/health`, `start` events and stored turns. */
export const DEMO_MODEL_NAME = 'chatwait-demo';

/** The largest answer a message may ask the demo model for ("answer in 2000 tokens"). */
const MAX_REQUESTED_TOKENS = 100_000;
/** How far past the target an answer may run to end on a whole line. */
const MAX_OVERSHOOT_TOKENS = 10;
/** At zero delay, give the event loop a turn this often so one long answer never starves the others. */
const YIELD_EVERY_TOKENS = 64;

/** Options of the demo model. */
export interface DemoModelOptions {
  /** Tokens per second; 0 streams as fast as possible. */
  tokensPerSecond: number;
  /** About how many tokens an answer has, unless the message asks for a number. */
  responseTokens: number;
}

/**
 * The built-in offline model: a real Agents SDK model that answers deterministically in markdown,
 * says it is the demo model, reflects the user's message and streams many small deltas at a set pace.
 * Offered tools, it calls them for a few kinds of message (see `planDemoToolStep`).
 */
export class DemoModel implements Model {
  readonly #options: DemoModelOptions;

  constructor(options: DemoModelOptions) {
    this.#options = options;
  }

  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    const reply = this.#reply(request);
    const text = reply.tokens.join('');
    return {
      usage: usageFor(request.input, text, countTokens(text)),
      output: reply.output ?? [assistantOutput(text)],
      responseId: randomUUID(),
    };
  }

  async *getStreamedResponse(request: ModelRequest): AsyncIterable<StreamEvent> {
    const { tokens, output } = this.#reply(request);
    const intervalMs = this.#options.tokensPerSecond > 0 ? 1000 / this.#options.tokensPerSecond : 0;
    const started = performance.now();
    const responseId = randomUUID();
    yield { type: 'response_started' };
    for (let index = 0; index < tokens.length; index++) {
      throwIfAborted(request.signal);
      if (intervalMs > 0) {
        // Pace against the start time, not the previous token, so timer drift never accumulates.
        await sleep(started + index * intervalMs - performance.now(), request.signal);
      } else if (index > 0 && index % YIELD_EVERY_TOKENS === 0) {
        await yieldToEventLoop();
      }
      yield { type: 'output_text_delta', delta: tokens[index]! };
    }
    // A tool call takes about as long to "write" as a token.
    if (output) await sleep(intervalMs, request.signal);
    throwIfAborted(request.signal);
    const text = tokens.join('');
    yield {
      type: 'response_done',
      response: { id: responseId, usage: usageFor(request.input, text, tokens.length || 1), output: output ?? [assistantOutput(text)] },
    };
  }

  /**
   * The deltas of the answer, or (for a tool call) no deltas and the call as the output. An answer
   * stops at `maxTokens` (MAX_OUTPUT_TOKENS), as a real provider's does, whatever the message asks for.
   */
  #reply(request: ModelRequest): { tokens: string[]; output?: protocol.FunctionCallItem[] } {
    const step = planDemoToolStep(request);
    if (step?.kind === 'call') {
      const call = {
        type: 'function_call' as const,
        callId: `call_${randomUUID()}`,
        name: step.name,
        arguments: JSON.stringify(step.arguments),
        status: 'completed' as const,
      };
      return { tokens: [], output: [call] };
    }
    const tokens = step?.kind === 'answer' ? splitIntoDeltas(step.text) : composeDemoAnswer(request.input, this.#options.responseTokens);
    const maxTokens = request.modelSettings.maxTokens;
    if (maxTokens !== undefined && tokens.length > maxTokens) tokens.length = maxTokens;
    return { tokens };
  }
}

/** Builds the demo answer for a conversation, already split into the deltas it streams as. */
export function composeDemoAnswer(input: string | AgentInputItem[], responseTokens: number): string[] {
  const userMessages = userTexts(input);
  const message = userMessages.at(-1) ?? '';
  const requested = /\b(\d{1,6})\s+tokens?\b/i.exec(message);
  const target = requested ? Math.min(Math.max(Number(requested[1]), 1), MAX_REQUESTED_TOKENS) : responseTokens;

  const quoted = truncate(message.replace(/\s+/g, ' ').trim(), 160);
  const earlier = userMessages.length - 1;
  const memory =
    earlier > 0
      ? `This conversation has ${earlier} earlier message${earlier === 1 ? '' : 's'}; the one before this was: *${truncate(userMessages.at(-2)!.replace(/\s+/g, ' ').trim(), 80)}*`
      : 'This is the first message of our conversation.';
  const intro = [
    `**Hello from the ChatWait demo model!** I am a built-in offline stand-in, not an AI, so you can try ChatWait without a key.`,
    '',
    `You wrote: "${quoted}" (${[...message].length} characters).`,
    memory,
    '',
    'To talk to a real model, set `GEMINI_API_KEY` (Gemini 2.5 Flash) or `OPENAI_BASE_URL` (OpenAI, Ollama, vLLM, LM Studio) and restart.',
    '',
    '',
  ].join('\n');

  // Whole lines until the target is reached, so an answer is about `target` tokens and never stops mid-sentence.
  const tokens: string[] = [];
  const lines = intro.split(/(?<=\n)/);
  for (let index = 0; tokens.length < target; index++) {
    const line =
      lines[index] ?? `${index - lines.length + 1}. Here is another demo line, streamed one small token at a time as a model would.\n`;
    tokens.push(...splitIntoDeltas(line));
  }
  // A small target cut mid-line is better than an answer several times longer than asked.
  if (tokens.length - target > MAX_OVERSHOOT_TOKENS) tokens.length = target;
  return tokens;
}

/** Splits text into model-like deltas: words with their leading spaces, and runs of newlines on their own. */
export function splitIntoDeltas(text: string): string[] {
  return text.match(/\n+|[ \t]*[^\s]+|[ \t]+/g) ?? [];
}

function userTexts(input: string | AgentInputItem[]): string[] {
  if (typeof input === 'string') return [input];
  const texts: string[] = [];
  for (const item of input) {
    if (!('role' in item) || item.role !== 'user') continue;
    if (typeof item.content === 'string') texts.push(item.content);
    else texts.push(item.content.map((part) => ('text' in part ? part.text : '')).join(''));
  }
  return texts;
}

function truncate(text: string, length: number): string {
  const characters = [...text];
  return characters.length <= length ? text : `${characters.slice(0, length - 1).join('')}…`;
}

function countTokens(text: string): number {
  return splitIntoDeltas(text).length;
}

function usageFor(input: string | AgentInputItem[], text: string, outputTokens: number): Usage {
  const inputTokens = Math.ceil(JSON.stringify(input).length / 4);
  return new Usage({ requests: 1, inputTokens, outputTokens, totalTokens: inputTokens + outputTokens });
}

function assistantOutput(text: string) {
  return {
    type: 'message' as const,
    role: 'assistant' as const,
    status: 'completed' as const,
    id: randomUUID(),
    content: [{ type: 'output_text' as const, text }],
  };
}

function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw signal.reason ?? new DOMException('The demo answer was aborted.', 'AbortError');
}

function sleep(milliseconds: number, signal: AbortSignal | undefined): Promise<void> {
  if (milliseconds <= 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, milliseconds);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new DOMException('The demo answer was aborted.', 'AbortError'));
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
