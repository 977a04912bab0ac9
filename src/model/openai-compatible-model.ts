import http from 'node:http';
import https from 'node:https';
import { APIConnectionError, APIError } from 'openai';
import { Usage, type Model, type ModelRequest, type ModelResponse, type StreamEvent } from '@openai/agents-core';
import { toChatMessages, toolFields, ToolCallAssembler, type ToolCallDelta } from './chat-completions-format.js';

/** Where and how to reach an OpenAI-compatible chat-completions endpoint. */
export interface OpenAICompatibleOptions {
  baseUrl: string;
  apiKey: string;
  model: string;
}

/**
 * Yielded at most once per network read whose chunks carried tool-call arguments or reasoning (text
 * restarts the stall timeout by itself): the model is working, so the timeout must not fire.
 */
export const PROGRESS_EVENT: StreamEvent = { type: 'model', event: { type: 'chatwait.progress' } };

/** The most of an error response body read (it is never shown to a user, nor logged but for a refusal of tools: see ToolSupport). */
const MAX_ERROR_BODY_BYTES = 16_384;

/**
 * An Agents SDK `Model` for OpenAI-compatible chat-completions streaming (Gemini, OpenAI, Ollama,
 * vLLM, llama.cpp, LM Studio), parsing the SSE stream straight off a keep-alive `node:http`
 * connection. It does what the SDK's `OpenAIChatCompletionsModel` does for a text answer at a
 * fraction of the per-token cost (no web streams, no per-chunk event objects): see bench/README.md.
 * Failures are the `openai` package's error classes, so retries and error mapping treat them alike.
 */
export class OpenAICompatibleModel implements Model {
  readonly #options: OpenAICompatibleOptions;
  readonly #url: URL;
  readonly #agent: http.Agent;

  constructor(options: OpenAICompatibleOptions) {
    this.#options = options;
    this.#url = new URL(`${options.baseUrl.replace(/\/+$/, '')}/chat/completions`);
    const secure = this.#url.protocol === 'https:';
    this.#agent = new (secure ? https : http).Agent({ keepAlive: true, maxSockets: Infinity, scheduling: 'lifo' });
  }

  async getResponse(request: ModelRequest): Promise<ModelResponse> {
    for await (const event of this.getStreamedResponse(request)) {
      if (event.type === 'response_done') {
        return { usage: new Usage(event.response.usage), output: event.response.output, responseId: event.response.id };
      }
    }
    throw new APIConnectionError({ message: 'The model stream ended without an answer.' });
  }

  async *getStreamedResponse(request: ModelRequest): AsyncIterable<StreamEvent> {
    const response = await this.#post(request);
    yield { type: 'response_started' };
    let text = '';
    let id = '';
    let usage = { inputTokens: 0, outputTokens: 0, totalTokens: 0 };
    let buffer = '';
    let done = false;
    let working = false;
    const toolCalls = new ToolCallAssembler();
    try {
      for await (const chunk of response as AsyncIterable<string>) {
        buffer += chunk;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).trimEnd();
          buffer = buffer.slice(newline + 1);
          if (!line.startsWith('data:')) continue;
          const data = line.slice(line.charCodeAt(5) === 32 ? 6 : 5);
          if (data === '[DONE]') {
            done = true;
            continue;
          }
          const parsed = JSON.parse(data) as ChatCompletionChunk;
          if (parsed.error) throw APIError.generate(500, parsed.error, 'The model stream reported an error.', new Headers());
          id ||= parsed.id ?? '';
          const chunkDelta = parsed.choices?.[0]?.delta;
          const delta = chunkDelta?.content;
          if (typeof delta === 'string' && delta !== '') {
            text += delta;
            yield { type: 'output_text_delta', delta };
          }
          if (chunkDelta?.tool_calls) {
            toolCalls.add(chunkDelta.tool_calls);
            working = true;
          } else if (chunkDelta?.reasoning_content || chunkDelta?.reasoning) {
            working = true;
          }
          if (parsed.usage) {
            usage = {
              inputTokens: parsed.usage.prompt_tokens ?? 0,
              outputTokens: parsed.usage.completion_tokens ?? 0,
              totalTokens: parsed.usage.total_tokens ?? 0,
            };
          }
        }
        if (working) {
          working = false;
          yield PROGRESS_EVENT;
        }
      }
    } catch (error) {
      if (error instanceof APIError) throw error;
      throw new APIConnectionError({ message: 'The model stream broke off.', cause: error as Error });
    } finally {
      response.destroy();
    }
    if (!done && !response.complete) throw new APIConnectionError({ message: 'The model stream broke off.' });
    yield {
      type: 'response_done',
      response: {
        id: id || 'chatcmpl',
        usage: { requests: 1, ...usage },
        output: [
          ...(text === ''
            ? []
            : [
                {
                  type: 'message' as const,
                  role: 'assistant' as const,
                  status: 'completed' as const,
                  content: [{ type: 'output_text' as const, text }],
                },
              ]),
          ...toolCalls.items(),
        ],
      },
    };
  }

  /** Sends the request; resolves with the response once its status is 2xx, or throws the provider's error. */
  #post(request: ModelRequest): Promise<http.IncomingMessage> {
    const outgoing = this.#send(request);
    return new Promise((resolve, reject) => {
      outgoing.on('response', (response) => {
        const status = response.statusCode ?? 0;
        if (status >= 200 && status < 300) {
          response.setEncoding('utf8');
          resolve(response);
          return;
        }
        readError(response).then(
          (error) => reject(APIError.generate(status, error, `The model provider answered ${status}.`, toHeaders(response.headers))),
          reject,
        );
      });
      outgoing.on('error', (error) => {
        if (request.signal?.aborted) reject(request.signal.reason ?? error);
        else reject(new APIConnectionError({ message: 'The model provider cannot be reached.', cause: error }));
      });
    });
  }

  /**
   * Writes the request. Kept apart from the listeners above, which live as long as the stream: the
   * body (a few KB with the tools' schemas) is not in their scope, so it is freed once sent.
   */
  #send(request: ModelRequest): http.ClientRequest {
    const body = JSON.stringify({
      model: this.#options.model,
      messages: toChatMessages(request.systemInstructions, request.input),
      stream: true,
      stream_options: { include_usage: true },
      ...(request.modelSettings.maxTokens === undefined ? {} : { max_tokens: request.modelSettings.maxTokens }),
      ...(request.modelSettings.temperature === undefined ? {} : { temperature: request.modelSettings.temperature }),
      ...toolFields(request),
    });
    const outgoing = (this.#url.protocol === 'https:' ? https : http).request(this.#url, {
      method: 'POST',
      agent: this.#agent,
      signal: request.signal,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(body),
        accept: 'text/event-stream',
        authorization: `Bearer ${this.#options.apiKey}`,
      },
    });
    outgoing.end(body);
    return outgoing;
  }
}

interface ChatCompletionChunk {
  id?: string;
  choices?: {
    delta?: { content?: string | null; tool_calls?: ToolCallDelta[]; reasoning_content?: string | null; reasoning?: string | null };
  }[];
  usage?: { prompt_tokens?: number; completion_tokens?: number; total_tokens?: number } | null;
  error?: object;
}

async function readError(response: http.IncomingMessage): Promise<object | undefined> {
  let text = '';
  for await (const chunk of response) {
    if (text.length < MAX_ERROR_BODY_BYTES) text += String(chunk);
  }
  try {
    // APIError.generate reads the body's `error`: OpenAI, Ollama and llama.cpp send { error: {…} };
    // Gemini sends a list of those; vLLM sends the error fields at the top level.
    const parsed = JSON.parse(text) as unknown;
    const body = Array.isArray(parsed) ? (parsed[0] as unknown) : parsed;
    if (typeof body !== 'object' || body === null) return undefined;
    return 'error' in body ? body : { error: body };
  } catch {
    return undefined;
  }
}

function toHeaders(incoming: http.IncomingHttpHeaders): Headers {
  const headers = new Headers();
  for (const [name, value] of Object.entries(incoming)) {
    if (typeof value === 'string') headers.set(name, value);
  }
  return headers;
}
