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
 * per step, and `onDowngrade` is told once per step with the provider's own message.
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
   * when `strictOffered`), or undefined when the error is no refusal of tools.
   */
  downgrade(from: ToolSupportLevel, error: unknown, strictOffered: boolean): ToolSupportLevel | undefined {
    if (from === 'none') return undefined;
    const message = toolRefusalMessage(error);
    if (message === undefined) return undefined;
    const next: ToolSupportLevel = from === 'strict' && strictOffered && /strict/i.test(message) ? 'plain' : 'none';
    if (ORDER[next] > ORDER[this.#level]) {
      this.#level = next;
      this.#onDowngrade(next, message);
    }
    return next;
  }
}

/** The provider's message when `error` is a 400 that speaks of tools (or strict mode), else undefined. */
export function toolRefusalMessage(error: unknown): string | undefined {
  if (!(error instanceof APIError) || error.status !== 400) return undefined;
  // The openai package's message is "400 <the body's error.message>" (or the body as JSON).
  const text = error.message.replace(/^400 /, '').slice(0, 4000);
  if (!/tool|strict/i.test(text)) return undefined;
  const line = text.split('\n')[0]!.trim();
  return line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line;
}
