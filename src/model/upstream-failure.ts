import { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { ChatWaitError } from '../errors.js';

/**
 * Whatever a model call threw, reduced once to what the retry, the error mapping and the
 * tool-refusal check decide on, so that they never disagree (the fields follow the Agents SDK's
 * own `ModelRetryNormalizedError`). Wrapped errors count: the `cause` chain is read, outermost first.
 */
export interface UpstreamFailure {
  /** What was thrown, kept as the cause of the error users see (for the logs). */
  readonly error: unknown;
  /** Our own error, already safe to show: the turn's abort reason (a timeout, a cancel) or one in the chain. */
  readonly own: ChatWaitError | undefined;
  /** The provider's HTTP status, from the outermost error of the chain that carries one. */
  readonly status: number | undefined;
  /** The wait the provider asked for with that status (`retry-after-ms`, or `retry-after` in seconds or as a date). */
  readonly retryAfterMs: number | undefined;
  /** The provider's own message with that status (never shown to users: the tool-refusal check reads it). */
  readonly providerMessage: string | undefined;
  /** The connection failed or broke off, with no status to tell more. */
  readonly network: boolean;
  /** The turn's signal fired, or an abort explains the failure (the outermost of abort and network wins). */
  readonly aborted: boolean;
  /** Worth asking again: a 408, a 429, a 5xx or a network failure, unless aborted or already ours. */
  readonly transient: boolean;
}

/** How deep a chain of causes is read: wrappers rarely nest more than two or three. */
const MAX_DEPTH = 5;
const MAX_PROVIDER_MESSAGE_CHARS = 4000;
const NETWORK_CODE = /^(ECONN|EPIPE|ETIMEDOUT|UND_ERR|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH|ENETUNREACH)/;

/** Reduces what a model call threw (with the turn's signal, whose reason wins once it fired) to one UpstreamFailure. */
export function normalizeUpstreamFailure(error: unknown, signal?: AbortSignal): UpstreamFailure {
  let own = signal?.aborted && signal.reason instanceof ChatWaitError ? signal.reason : undefined;
  let status: { status: number; headers: unknown; message: string | undefined } | undefined;
  let explanation: 'network' | 'abort' | undefined;
  for (let link = error, depth = 0; link && depth < MAX_DEPTH; link = (link as { cause?: unknown }).cause, depth++) {
    // Ours already says what happened; a status in it is our HTTP status, not the provider's.
    if (link instanceof ChatWaitError) {
      own ??= link;
      break;
    }
    status ??= statusOf(link);
    explanation ??= isAbort(link) ? 'abort' : isNetworkFailure(link) ? 'network' : undefined;
  }
  const aborted = signal?.aborted === true || explanation === 'abort';
  const network = status === undefined && explanation === 'network';
  const transient = own === undefined && !aborted && (status === undefined ? network : isTransientStatus(status.status));
  return {
    error,
    own,
    status: status?.status,
    retryAfterMs: status ? retryAfterMs(status.headers) : undefined,
    providerMessage: status?.message,
    network,
    aborted,
    transient,
  };
}

/** Statuses worth asking again after: the request timed out, we are rate limited, or the provider failed. */
export function isTransientStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

function statusOf(link: unknown): { status: number; headers: unknown; message: string | undefined } | undefined {
  if (link instanceof APIError) {
    if (typeof link.status !== 'number') return undefined;
    // The openai package's message is "<status> <the body's error.message>" (or the body as JSON).
    return {
      status: link.status,
      headers: link.headers,
      message: link.message.replace(/^\d{3} /, '').slice(0, MAX_PROVIDER_MESSAGE_CHARS),
    };
  }
  const { status, headers, message } = link as { status?: unknown; headers?: unknown; message?: unknown };
  if (typeof status !== 'number' || status < 400 || status >= 600) return undefined;
  return { status, headers, message: typeof message === 'string' ? message.slice(0, MAX_PROVIDER_MESSAGE_CHARS) : undefined };
}

function isAbort(link: unknown): boolean {
  if (link instanceof APIUserAbortError) return true;
  const { name, code } = link as { name?: unknown; code?: unknown };
  return name === 'AbortError' || code === 'ABORT_ERR' || code === 'UND_ERR_ABORTED';
}

function isNetworkFailure(link: unknown): boolean {
  if (link instanceof APIConnectionError) return true;
  const code = (link as { code?: unknown }).code;
  if (typeof code === 'string' && NETWORK_CODE.test(code)) return true;
  // What fetch (undici) throws when a response body dies mid-stream or a connection fails.
  const message = (link as { message?: unknown }).message;
  return link instanceof TypeError && (message === 'terminated' || message === 'fetch failed');
}

function retryAfterMs(headers: unknown): number | undefined {
  const milliseconds = Number(header(headers, 'retry-after-ms'));
  if (Number.isFinite(milliseconds) && milliseconds > 0) return milliseconds;
  const value = header(headers, 'retry-after');
  if (value === undefined) return undefined;
  const seconds = Number(value);
  if (Number.isFinite(seconds)) return seconds > 0 ? seconds * 1000 : undefined;
  const date = Date.parse(value);
  return Number.isNaN(date) || date <= Date.now() ? undefined : date - Date.now();
}

function header(headers: unknown, name: string): string | undefined {
  if (headers instanceof Headers) return headers.get(name) ?? undefined;
  const value = (headers as Record<string, unknown> | undefined)?.[name];
  return typeof value === 'string' ? value : undefined;
}
