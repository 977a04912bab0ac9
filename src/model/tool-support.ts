import type { SerializedTool } from '@openai/agents-core';
import type { ChatTool } from './tools/chat-tool.js';
import type { UpstreamFailure } from './upstream-failure.js';

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
   * The level to try again at after `failure` refused a request made at `from` (with any strict tool
   * when `strictOffered`), and the provider's message; undefined when it is no refusal of tools.
   * Nothing is remembered yet: a 400 that only mentions tools proves nothing until the request with
   * less succeeds (then `confirm`).
   */
  fallback(
    from: ToolSupportLevel,
    failure: UpstreamFailure,
    strictOffered: boolean,
  ): { level: ToolSupportLevel; message: string } | undefined {
    if (from === 'none') return undefined;
    const message = toolRefusalMessage(failure);
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

/** The provider's message when `failure` is a 400 that speaks of tools (or strict mode), else undefined. */
export function toolRefusalMessage(failure: UpstreamFailure): string | undefined {
  if (failure.status !== 400 || failure.providerMessage === undefined) return undefined;
  const text = failure.providerMessage;
  if (!/\btools?\b|\bstrict\b|tool_choice|function calling/i.test(text)) return undefined;
  const line = text.split('\n')[0]!.trim();
  return line.length > MAX_MESSAGE_CHARS ? `${line.slice(0, MAX_MESSAGE_CHARS)}…` : line;
}

/**
 * What one turn offers the model of its tools: all of them at the level its provider is known to
 * take, one step less after a refusal of its first call (ask again at once), and the step
 * remembered by `ToolSupport` once a call made with less succeeds.
 */
export class ToolOffer {
  readonly #tools: ReadonlyMap<string, ChatTool>;
  readonly #support: ToolSupport | undefined;
  #level: ToolSupportLevel;
  #serialized: SerializedTool[];
  #refused: { level: ToolSupportLevel; message: string } | undefined;

  constructor(tools: ReadonlyMap<string, ChatTool>, support: ToolSupport | undefined) {
    this.#tools = tools;
    this.#support = support;
    this.#level = tools.size === 0 ? 'none' : (support?.level ?? 'strict');
    this.#serialized = serializeTools(tools, this.#level);
  }

  /** Whether any tool is offered (else the model's function calls are not run). */
  get active(): boolean {
    return this.#level !== 'none';
  }

  /** The tools as the model is told of them at the current level. */
  get serialized(): SerializedTool[] {
    return this.#serialized;
  }

  /** Steps down when `failure` refused the tools themselves; true when the call should be made again at once. */
  stepDown(failure: UpstreamFailure): boolean {
    if (!this.#support || failure.aborted) return false;
    const fallback = this.#support.fallback(
      this.#level,
      failure,
      this.#serialized.some((tool) => tool.type === 'function' && tool.strict),
    );
    if (!fallback) return false;
    this.#refused = fallback;
    this.#level = fallback.level;
    this.#serialized = serializeTools(this.#tools, this.#level);
    return true;
  }

  /** A call made at the current level succeeded: a step down it followed is kept for the model's later turns. */
  confirm(): void {
    if (!this.#refused) return;
    this.#support?.confirm(this.#refused.level, this.#refused.message);
    this.#refused = undefined;
  }
}

const serialized = {
  strict: new WeakMap<ReadonlyMap<string, ChatTool>, SerializedTool[]>(),
  plain: new WeakMap<ReadonlyMap<string, ChatTool>, SerializedTool[]>(),
};

/** The tools as the model is told of them at `level` (non-strict but at `strict`), worked out once per tool set. */
function serializeTools(tools: ReadonlyMap<string, ChatTool>, level: ToolSupportLevel): SerializedTool[] {
  if (level === 'none') return [];
  const cache = serialized[level];
  let list = cache.get(tools);
  if (!list) {
    list = [...tools.values()].map((tool) => ({
      type: 'function',
      name: tool.name,
      description: tool.description,
      parameters: tool.parameters,
      strict: level === 'strict' && tool.strict,
    }));
    cache.set(tools, list);
  }
  return list;
}
