import { isRetryableStatus, toApiError as toClientApiError } from '../client/api-error.js';

/** The client's exit codes (documented in the README). */
export const EXIT_CODES = {
  OK: 0,
  /** The server answered with an error, an answer did not complete, or a check failed. */
  FAILED: 1,
  /** The command line is wrong. */
  USAGE: 2,
  /** The server could not be reached, or the connection was lost and could not be resumed. */
  UNREACHABLE: 3,
  /** Stopped with Ctrl+C. */
  INTERRUPTED: 130,
  /** Whoever read the output went away (`| head`): 128 + SIGPIPE, what a shell reports for a program a closed pipe ended. */
  OUTPUT_CLOSED: 141,
} as const;

/** Something that ends a command with a message and an exit code. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** A wrong command line (exit code 2). */
export class UsageError extends CliError {
  override name = 'UsageError';
  constructor(message: string) {
    super(message, EXIT_CODES.USAGE);
  }
}

/** An error the API answered with (a JSON error body, or an `error` event of a stream). */
export class ApiError extends CliError {
  override name = 'ApiError';
  /** Whether the same request may succeed later: the server's `retryable`, else the shared client's rule by status. */
  readonly retryable: boolean;
  constructor(
    /** The HTTP status; 0 for an `error` event. */
    readonly status: number,
    readonly errorCode: string,
    message: string,
    readonly requestId?: string,
    /** Seconds the server asks to wait before trying again (429, 503). */
    readonly retryAfterSeconds?: number,
    retryable?: boolean,
  ) {
    super(message, EXIT_CODES.FAILED);
    this.retryable = retryable ?? isRetryableStatus(status, errorCode);
  }
}

/** The server could not be reached, or a connection broke (exit code 3). */
export class ConnectionError extends CliError {
  override name = 'ConnectionError';
  constructor(message: string, options?: { cause?: unknown; refused?: boolean }) {
    super(message, EXIT_CODES.UNREACHABLE, options);
    this.refused = options?.refused ?? false;
  }

  /** True when no connection could be opened at all (refused, unknown host): nobody is listening there. */
  readonly refused: boolean;
}

/** Where the server is and how to authenticate. */
export interface Connection {
  /** Base URL without a trailing slash. */
  url: string;
  apiKey?: string | undefined;
}

/** A JSON response: its status, headers and parsed body. */
export interface JsonResponse<T = unknown> {
  status: number;
  headers: Headers;
  body: T;
}

/** Options of one request. */
export interface RequestOptions {
  method?: string;
  body?: unknown;
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** Resolve with error statuses instead of throwing ApiError. */
  allowErrors?: boolean;
}

/** How long a request other than a chat turn may take before it counts as failed. */
const REQUEST_TIMEOUT_MS = 30_000;

/** A small HTTP client for the ChatWait API, over Node's fetch. */
export class ApiClient {
  constructor(readonly connection: Connection) {}

  /** The headers every request carries: the API key as `Authorization: Bearer`, as the server expects. */
  headers(extra: Record<string, string> = {}): Record<string, string> {
    const { apiKey } = this.connection;
    return { accept: 'application/json', ...(apiKey ? { authorization: `Bearer ${apiKey}` } : {}), ...extra };
  }

  /** The absolute URL of an API path. */
  urlOf(path: string): string {
    return `${this.connection.url}${path}`;
  }

  /** Sends a request; network failures become ConnectionError. */
  async fetch(path: string, options: RequestOptions = {}): Promise<Response> {
    const headers = this.headers(options.headers);
    let body: string | undefined;
    if (options.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = JSON.stringify(options.body);
    }
    try {
      return await fetch(this.urlOf(path), {
        method: options.method ?? (body === undefined ? 'GET' : 'POST'),
        headers,
        body,
        signal: options.signal,
      });
    } catch (error) {
      if (options.signal?.aborted) throw error;
      throw toConnectionError(error, this.connection.url);
    }
  }

  /** Sends a request and parses its JSON answer; an error status throws ApiError unless `allowErrors`. */
  async json<T = unknown>(path: string, options: RequestOptions = {}): Promise<JsonResponse<T>> {
    const signal = options.signal ?? AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const response = await this.fetch(path, { ...options, signal });
    let text: string;
    try {
      text = await response.text();
    } catch (error) {
      throw toConnectionError(error, this.connection.url);
    }
    if (!response.ok && !options.allowErrors) throw toApiError(response, text);
    let body: unknown = undefined;
    if (text !== '') {
      try {
        body = JSON.parse(text);
      } catch {
        throw new ApiError(
          response.status,
          'BAD_RESPONSE',
          `The server at ${this.connection.url} answered ${path} with something that is not JSON. Is --url right?`,
        );
      }
    }
    return { status: response.status, headers: response.headers, body: body as T };
  }

  /** Stops a generating turn on the server; its stream then ends with finish_reason "cancelled". */
  async cancelTurn(turnId: string): Promise<{ turn_id: string; status: string }> {
    const response = await this.json<{ turn_id: string; status: string }>(`/api/v1/chat/turns/${encodeURIComponent(turnId)}/cancel`, {
      method: 'POST',
    });
    return response.body;
  }
}

/** Turns an error response into an ApiError, reading the JSON error format `{error_code, message, request_id, retryable}`. */
export function toApiError(response: Response, text: string): ApiError {
  const error = toClientApiError(response, text, 'Is --url right?');
  return new ApiError(error.status, error.code, error.message, error.requestId, error.retryAfterSeconds, error.retryable);
}

/** Describes a failed fetch (refused, unknown host, reset, timed out) as a ConnectionError. */
export function toConnectionError(error: unknown, url: string): ConnectionError {
  if (error instanceof ConnectionError) return error;
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  if (error instanceof DOMException && error.name === 'TimeoutError') {
    return new ConnectionError(`The server at ${url} did not answer in time.`, { cause: error });
  }
  // fetch refuses some ports itself ("bad port"): nothing was sent either.
  const refusedBy = code ?? (cause?.message === 'bad port' ? 'a port fetch refuses' : undefined);
  if (
    refusedBy === 'a port fetch refuses' ||
    code === 'ECONNREFUSED' ||
    code === 'ENOTFOUND' ||
    code === 'EAI_AGAIN' ||
    code === 'EHOSTUNREACH'
  ) {
    return new ConnectionError(
      `Cannot reach the server at ${url} (${refusedBy}). Is it running? Set the address with --url or CHATWAIT_URL.`,
      {
        cause: error,
        refused: true,
      },
    );
  }
  const reason = code ?? (typeof cause?.message === 'string' ? cause.message : error instanceof Error ? error.message : String(error));
  return new ConnectionError(`The connection to ${url} failed (${reason}).`, { cause: error });
}
