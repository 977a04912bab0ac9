import { ApiError, readApiError } from '../../src/client/api-error';
import type { FinishReason, TurnStatus, TurnTimings } from '../../src/protocol/turn';

/** The server's settings for the page (GET /api/v1/config). */
export interface ServerConfig {
  default_chat_mode: 'wait' | 'streaming';
  show_mode_selector: boolean;
  auth_required: boolean;
  model: { provider: string; name: string; demo: boolean };
}

/** A conversation as listed. */
export interface ConversationSummary {
  context_id: string;
  title: string;
  created_at: string;
  updated_at: string;
  turn_count: number;
}

/** A tool the model called, as the API returns it with a turn. */
export interface StoredToolStep {
  call_id: string;
  name: string;
  arguments: string;
  output: string | null;
  is_error: boolean;
  duration_ms: number | null;
}

/** A stored turn. */
export interface StoredTurn {
  turn_id: string;
  user_message: string;
  answer: string;
  status: TurnStatus;
  model: string;
  token_count: number;
  timings: TurnTimings | null;
  error_code: string | null;
  tool_steps?: StoredToolStep[];
}

/** A conversation with one page of its turns (the newest first; `next_cursor` asks for older ones). */
export interface ConversationDetail extends ConversationSummary {
  turns: StoredTurn[];
  next_cursor: string | null;
}

/** The answer of POST /api/v1/chat/wait. */
export interface WaitAnswer {
  message: string;
  /** `stop`, or `cancelled` when it was stopped (a failed turn answers with an error instead). */
  finish_reason: FinishReason;
  context_id: string;
  token_count: number;
  processing_time_ms: number;
  turn_id: string;
  model: string;
  tool_steps?: StoredToolStep[];
}

/** An error the API answered with, or a failure with no answer (status 0): the shared client's. */
export { ApiError };

const KEY_STORAGE = 'chatwait.apiKey';

/** The API key kept in this browser, if the server needs one. */
export function storedApiKey(): string | undefined {
  return localStorage.getItem(KEY_STORAGE) ?? undefined;
}

/** Remembers (or forgets, with undefined) the API key in this browser. */
export function storeApiKey(key: string | undefined): void {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}

/** Headers for an API request: the API key when there is one, and JSON when there is a body. */
export function apiHeaders(extra: Record<string, string> = {}, withBody = true): Record<string, string> {
  const key = storedApiKey();
  return { ...(withBody ? { 'content-type': 'application/json' } : {}), ...(key ? { authorization: `Bearer ${key}` } : {}), ...extra };
}

async function request<T>(method: string, path: string, body?: unknown, signal?: AbortSignal): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: apiHeaders({}, body !== undefined),
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
      ...(signal ? { signal } : {}),
    });
  } catch (error) {
    if (signal?.aborted) throw error;
    throw new ApiError(0, 'NETWORK_ERROR', 'The server cannot be reached. Check your connection.');
  }
  if (!response.ok) throw await readApiError(response);
  return (response.status === 204 ? undefined : await response.json()) as T;
}

/** The API the page uses, besides streaming. */
export const api = {
  config: () => request<ServerConfig>('GET', '/api/v1/config'),
  listConversations: (cursor?: string) =>
    request<{ conversations: ConversationSummary[]; next_cursor: string | null }>(
      'GET',
      `/api/v1/conversations?limit=50${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
    ),
  /** A page of a conversation's turns: the newest ones, or those just older than `cursor`. */
  conversation: (contextId: string, page: { cursor?: string; limit?: number } = {}) =>
    request<ConversationDetail>(
      'GET',
      `/api/v1/conversations/${encodeURIComponent(contextId)}?${new URLSearchParams({
        ...(page.limit ? { limit: String(page.limit) } : {}),
        ...(page.cursor ? { cursor: page.cursor } : {}),
      })}`,
    ),
  rename: (contextId: string, title: string) =>
    request<ConversationSummary>('PATCH', `/api/v1/conversations/${encodeURIComponent(contextId)}`, { title }),
  remove: (contextId: string) => request<void>('DELETE', `/api/v1/conversations/${encodeURIComponent(contextId)}`),
  cancel: (turnId: string) => request<{ status: string }>('POST', `/api/v1/chat/turns/${encodeURIComponent(turnId)}/cancel`, {}),
  wait: (body: { message: string; context_id: string; client_message_id: string }, signal?: AbortSignal) =>
    request<WaitAnswer>('POST', '/api/v1/chat/wait', body, signal),
};
