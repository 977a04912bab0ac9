import OpenAI, { APIError } from 'openai';
import { Agent, OpenAIChatCompletionsModel, run, setTracingDisabled } from '@openai/agents';
import type { AgentInputItem, Model, ModelSettings, RetryPolicyContext, Usage } from '@openai/agents';
import { resolveProvider, type Config, type ProviderName } from '../config.js';
import type { ChatMessage, ChatModel, ModelHealth, ModelStreamEvent, ReplyRequest, TokenUsage } from './chat-model.js';
import { DEMO_MODEL_NAME, DemoModel } from './demo-model.js';
import { emptyAnswerError, toUpstreamError } from './upstream-errors.js';

/** The instructions the assistant runs with unless `SYSTEM_PROMPT` replaces them. */
export const DEFAULT_INSTRUCTIONS = [
  'You are ChatWait, a helpful, friendly and precise assistant.',
  'Answer in clear markdown: short paragraphs, lists where they help, fenced code blocks with a language.',
  'Keep answers as long as the question needs and no longer; say so when you are unsure.',
].join(' ');

/** Model calls one turn may make (tool rounds included). */
const MAX_AGENT_TURNS = 10;

/** The longest wait the retry policy accepts from an upstream `Retry-After` before giving up instead. */
const MAX_RETRY_AFTER_MS = 10_000;

/** Builds the model layer for a configuration: an Agents SDK agent on Gemini, an OpenAI-compatible endpoint or the demo model. */
export function createChatModel(config: Config): ChatModel {
  // Traces would be exported to OpenAI's servers; a self-hosted chat service never does that by default.
  setTracingDisabled(true);
  const provider = resolveProvider(config);
  const { model, name, client } = createProviderModel(config, provider);
  const checkHealth = client ? cachedProbe(client) : async (): Promise<ModelHealth> => ({ status: 'ok', misconfigured: false });
  const agent = new Agent({
    name: 'ChatWait',
    instructions: config.SYSTEM_PROMPT ?? DEFAULT_INSTRUCTIONS,
    model,
    modelSettings: createModelSettings(config),
  });

  return {
    provider,
    name,
    demo: provider === 'demo',
    checkHealth,
    async *streamReply(request: ReplyRequest): AsyncIterable<ModelStreamEvent> {
      // Stops the run when a model response turns out empty: the SDK would otherwise ask again, up to maxTurns times.
      const stop = new AbortController();
      const signal = AbortSignal.any([request.signal, stop.signal]);
      try {
        const result = await run(agent, request.messages.map(toInputItem), { stream: true, signal, maxTurns: MAX_AGENT_TURNS });
        for await (const event of result) {
          if (event.type !== 'raw_model_stream_event') continue;
          if (event.data.type === 'output_text_delta') {
            yield { type: 'text_delta', delta: event.data.delta };
          } else if (event.data.type === 'response_done' && isEmptyResponse(event.data.response.output)) {
            throw emptyAnswerError();
          }
        }
        await result.completed;
        // An abort (timeout or cancel) can end the SDK's stream quietly; its reason is the outcome.
        if (request.signal.aborted) throw request.signal.reason;
        if (result.error) throw result.error;
        const finalOutput = typeof result.finalOutput === 'string' ? result.finalOutput : '';
        yield { type: 'done', usage: toTokenUsage(result.state.usage), finalOutput };
      } catch (error) {
        throw toUpstreamError(error, request.signal);
      } finally {
        stop.abort();
      }
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
  const client = new OpenAI({
    apiKey: (gemini ? config.GEMINI_API_KEY : config.OPENAI_API_KEY) ?? 'not-needed',
    baseURL: gemini ? config.GEMINI_BASE_URL : (config.OPENAI_BASE_URL ?? 'https://api.openai.com/v1'),
    // The agent's retry policy below owns retries, so they stop at the first token and stay bounded.
    maxRetries: 0,
    timeout: 24 * 3600 * 1000,
  });
  const name = gemini ? config.GEMINI_MODEL : config.OPENAI_MODEL;
  return { model: new OpenAIChatCompletionsModel(client, name), name, client };
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
      const status = error instanceof APIError ? error.status : undefined;
      if (status === 401 || status === 403) return { status: 'error', misconfigured: true, detail: 'the model provider rejects the API key' };
      if (status !== undefined && status < 500) return { status: 'ok', misconfigured: false };
      return { status: 'error', misconfigured: false, detail: 'the model provider does not answer' };
    }
  };
  return () => {
    if (!cached || performance.now() - cached.at > PROBE_CACHE_MS) cached = { at: performance.now(), result: probe() };
    return cached.result;
  };
}

function createModelSettings(config: Config): ModelSettings {
  return {
    ...(config.MAX_OUTPUT_TOKENS === undefined ? {} : { maxTokens: config.MAX_OUTPUT_TOKENS }),
    retry: {
      maxRetries: config.UPSTREAM_MAX_RETRIES,
      backoff: { initialDelayMs: config.UPSTREAM_RETRY_DELAY_MS, maxDelayMs: 8_000, multiplier: 2, jitter: true },
      policy: retryPolicy,
    },
  };
}

/** Retries rate limits, server errors and network failures; the SDK never retries once output has streamed. */
function retryPolicy(context: RetryPolicyContext) {
  const { statusCode, isNetworkError, isAbort, retryAfterMs } = context.normalized;
  if (isAbort) return false;
  const transient = isNetworkError || statusCode === 429 || statusCode === 408 || (statusCode !== undefined && statusCode >= 500);
  if (!transient) return false;
  if (retryAfterMs !== undefined) {
    return retryAfterMs <= MAX_RETRY_AFTER_MS ? { retry: true, delayMs: retryAfterMs } : false;
  }
  return true;
}

function isEmptyResponse(output: readonly { type?: string; content?: unknown }[]): boolean {
  return !output.some((item) => {
    if (item.type === 'function_call') return true;
    if (!Array.isArray(item.content)) return false;
    return item.content.some((part: { text?: unknown }) => typeof part.text === 'string' && part.text !== '');
  });
}

function toInputItem(message: ChatMessage): AgentInputItem {
  if (message.role === 'user') return { role: 'user', content: message.content };
  return { role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: message.content }] };
}

function toTokenUsage(usage: Usage | undefined): TokenUsage | undefined {
  if (!usage || (usage.inputTokens === 0 && usage.outputTokens === 0)) return undefined;
  return { input_tokens: usage.inputTokens, output_tokens: usage.outputTokens, total_tokens: usage.totalTokens };
}
