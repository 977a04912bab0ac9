import OpenAI from 'openai';
import { setTracingDisabled } from '@openai/agents-core';
import type { AgentInputItem, Model, ModelSettings } from '@openai/agents-core';
import { resolveProvider, type Config, type ProviderName } from '../config.js';
import type { ChatMessage, ChatModel, ModelHealth, ModelStreamEvent, ReplyRequest } from './chat-model.js';
import { streamDirect } from './tool-loop.js';
import { DEMO_MODEL_NAME, DemoModel } from './demo-model.js';
import { OpenAICompatibleModel } from './openai-compatible-model.js';
import type { Logger } from '../observability/logger.js';
import { ToolSupport } from './tool-support.js';
import type { ChatTool } from './tools/chat-tool.js';
import { normalizeUpstreamFailure } from './upstream-failure.js';

/** The instructions the assistant runs with unless `SYSTEM_PROMPT` replaces them. */
export const DEFAULT_INSTRUCTIONS = [
  'You are ChatWait, a helpful, friendly and precise assistant.',
  'Answer in clear markdown: short paragraphs, lists where they help, fenced code blocks with a language.',
  'Keep answers as long as the question needs and no longer; say so when you are unsure.',
].join(' ');

/** The longest wait the retry policy accepts from an upstream `Retry-After` before giving up instead. */
const MAX_RETRY_AFTER_MS = 10_000;

/**
 * Builds the model layer for a configuration: an Agents SDK model on Gemini, an OpenAI-compatible
 * endpoint or the demo model, with the tools it may call (see `createToolSet`).
 */
export function createChatModel(config: Config, tools: ReadonlyMap<string, ChatTool> = new Map(), logger?: Logger): ChatModel {
  // Traces would be exported to OpenAI's servers; a self-hosted chat service never does that by default.
  setTracingDisabled(true);
  const provider = resolveProvider(config);
  const { model, name, client } = createProviderModel(config, provider);
  const checkHealth = client ? cachedProbe(client) : async (): Promise<ModelHealth> => ({ status: 'ok', misconfigured: false });
  const instructions = config.SYSTEM_PROMPT ?? DEFAULT_INSTRUCTIONS;
  const settings: ModelSettings = { maxTokens: config.MAX_OUTPUT_TOKENS };
  const retry = {
    maxRetries: config.UPSTREAM_MAX_RETRIES,
    initialDelayMs: config.UPSTREAM_RETRY_DELAY_MS,
    maxRetryAfterMs: MAX_RETRY_AFTER_MS,
  };
  const support = new ToolSupport((level, providerMessage) => {
    const message =
      level === 'plain'
        ? 'the model provider refused tools in strict mode; offering them without it from now on'
        : 'the model provider refused a request offering tools; answering without tools from now on (TOOLS=none avoids the refused request)';
    logger?.warn({ provider, model: name, provider_message: providerMessage }, message);
  });
  const toolLoop = { tools, timeoutMs: config.TOOL_TIMEOUT_SECONDS * 1000, maxRounds: config.TOOL_MAX_ROUNDS, support };

  return {
    provider,
    name,
    demo: provider === 'demo',
    checkHealth,
    streamReply(request: ReplyRequest): AsyncIterable<ModelStreamEvent> {
      // No generator of its own around the loop: one less hop for every token.
      return streamDirect({
        model,
        instructions: request.instructions ?? instructions,
        input: request.messages.map(toInputItem),
        settings,
        signal: request.signal,
        retry,
        toolLoop,
      });
    },
  };
}

function createProviderModel(config: Config, provider: ProviderName): { model: Model; name: string; client?: OpenAI } {
  if (provider === 'demo') {
    return {
      model: new DemoModel({ tokensPerSecond: config.DEMO_TOKENS_PER_SECOND, responseTokens: config.DEMO_RESPONSE_TOKENS }),
      name: DEMO_MODEL_NAME,
    };
  }
  const gemini = provider === 'gemini';
  const apiKey = (gemini ? config.GEMINI_API_KEY : config.OPENAI_API_KEY) ?? 'not-needed';
  const baseUrl = gemini ? config.GEMINI_BASE_URL : (config.OPENAI_BASE_URL ?? 'https://api.openai.com/v1');
  const name = gemini ? config.GEMINI_MODEL : config.OPENAI_MODEL;
  // The official client serves the health probe; answers stream through the leaner model (bench/README.md).
  const client = new OpenAI({ apiKey, baseURL: baseUrl, maxRetries: 0 });
  return { model: new OpenAICompatibleModel({ baseUrl, apiKey, model: name }), name, client };
}

/** How long a provider check is reused, so health probes never hammer the provider. */
const PROBE_CACHE_MS = 30_000;
const PROBE_TIMEOUT_MS = 3_000;

/** Checks the provider for real: lists its models with our key. A 404 (no /models route) still proves it answers. */
function cachedProbe(client: OpenAI): () => Promise<ModelHealth> {
  let cached: { at: number; result: Promise<ModelHealth> } | undefined;
  const probe = async (): Promise<ModelHealth> => {
    try {
      await client.models.list({ timeout: PROBE_TIMEOUT_MS, maxRetries: 0 });
      return { status: 'ok', misconfigured: false };
    } catch (error) {
      const { status } = normalizeUpstreamFailure(error);
      if (status === 401 || status === 403)
        return { status: 'error', misconfigured: true, detail: 'the model provider rejects the API key' };
      if (status !== undefined && status < 500) return { status: 'ok', misconfigured: false };
      return { status: 'error', misconfigured: false, detail: 'the model provider does not answer' };
    }
  };
  return () => {
    if (!cached || performance.now() - cached.at > PROBE_CACHE_MS) cached = { at: performance.now(), result: probe() };
    return cached.result;
  };
}

function toInputItem(message: ChatMessage): AgentInputItem {
  if (message.role === 'user') return { role: 'user', content: message.content };
  return { role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: message.content }] };
}
