import { APIError } from 'openai';

/** How a model is offered tools: in strict mode, non-strict (no `strict` field), or not at all. */
export type ToolSupportLevel = 'strict' | 'plain' | 'none';

const ORDER: Readonly<Record<ToolSupportLevel, number>> = { strict: 0, plain: 1, none: 2 };
const MAX_MESSAGE_CHARS = 300;

/**
 * What a model's provider takes of tool calling, learned from its refusals and kept for every later
 * turn of that model. Many local models (Ollama's "… does not support tools") answer 400 to any
 * request offering tools, and some Gemini-compatible backends refuse the `strict` field: such a
 * refusal before the first token makes the turn try again with less (`plain`, then `none`), once
 * per step; when that succeeds, `onDowngrade` is told once with the provider's own message.
 */
export class ToolSupport {
  #level: ToolSupportLevel = 'strict';
  readonly #onDowngrade: (level: ToolSupportLevel, providerMessage: string) => void;

  constructor(onDowngrade: (level: ToolSupportLevel, providerMessage: string) => void) {
    this.#onDowngrade = onDowngrade;
  }

  /** The level new turns start at. */
  get level(): ToolSupportLevel {
    return this.#level;
  }

  /**
   * The level to try again at after `error` refused a request made at `from` (with any strict tool
   * when `strictOffered`), and the provider's message; undefined when the error is no refusal of tools.
   * Nothing is remembered yet: a 400 that only mentions tools proves nothing until the request with
   * less succeeds (then `confirm`).
   */
  fallback(from: ToolSupportLevel, error: unknown, strictOffered: boolean): { level: ToolSupportLevel; message: string } | undefined {
    if (from === 'none') return undefined;
    const message = toolRefusalMessage(error);
    if (message === undefined) return undefined;
    return { level: from === 'strict' && strictOffered && /\bstrict\b/i.test(message) ? 'plain' : 'none', message };
  }

  /** A request at `level` succeeded after the provider refused more: later turns start there. */
  confirm(level: ToolSupportLevel, providerMessage: string): void {
    if (ORDER[level] <= ORDER[this.#level]) return;
    this.#level = level;
    this.#onDowngrade(level, providerMessage);
  }
}

/** The provider's message when `error` is a 400 that speaks of tools (or strict mode), else undefined. */
export function toolRefusalMessage(error: unknown): string | undefined {
  if (!(error instanceof APIError) || error.status !== 400) return undefined;
  // The openai package's message is "400 <the body's error.message>" (or the body as JSON).
  const text = error.message.replace(/^400 /, '').slice(0, 4000);
  if (!/\btools?\b|\bstrict\b|tool_choice|function calling/i.test(text)) return undefined;
  const line = text.split('\n')[0]!.trim();
  return line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line;
}
