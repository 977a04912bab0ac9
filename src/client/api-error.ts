// The failures the page and the terminal client meet, and the one rule saying whether trying again may help.

/** Options of an ApiError. */
export interface ApiErrorOptions {
  requestId?: string | undefined;
  /** Seconds the server asked to wait (its `Retry-After`). */
  retryAfterSeconds?: number | undefined;
  /** The server's word (`retryable` of a JSON error body or an `error` event); without it, the status decides. */
  retryable?: boolean | undefined;
  /** No connection could be opened at all (refused, unknown host): nobody listens there. */
  refused?: boolean;
  cause?: unknown;
}

/**
 * An error the API answered with (a JSON error body, or an `error` event), or a failure with no
 * answer at all (status 0: a broken or refused connection, or a stream that went silent).
 */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly requestId: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  /** Whether the same request may succeed later. */
  readonly retryable: boolean;
  readonly refused: boolean;

  constructor(
    /** The HTTP status; 0 when there was no answer, or for an `error` event. */
    readonly status: number,
    /** The API's `error_code`, or one of ours: NETWORK_ERROR, IDLE_TIMEOUT, BAD_RESPONSE, STREAM_GAP. */
    readonly code: string,
    message: string,
    options: ApiErrorOptions = {},
  ) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.requestId = options.requestId;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.retryable = options.retryable ?? isRetryableStatus(status, code);
    this.refused = options.refused ?? false;
  }
}

/**
 * The fallback when the server did not say (an older server, or a proxy's error page): no answer,
 * a rate limit, or a gateway or busy server may go away; a model the server cannot use will not.
 */
export function isRetryableStatus(status: number, code: string): boolean {
  if (code === 'MODEL_UNAVAILABLE') return false;
  return status === 0 || status === 429 || status === 502 || status === 503 || status === 504;
}

/** The fields of the JSON error format a client reads. */
interface ErrorBody {
  error_code?: unknown;
  message?: unknown;
  request_id?: unknown;
  retryable?: unknown;
}

/**
 * Reads an error response (its text already read) in the JSON error format `{error_code, message,
 * request_id, retryable}`, with its Retry-After; anything else is described by its status, and `hint`
 * (for example "Is --url right?") is added to that description.
 */
export function toApiError(response: { status: number; statusText: string; headers: Headers }, text: string, hint = ''): ApiError {
  const retryAfterSeconds = parseRetryAfter(response.headers.get('retry-after'));
  try {
    const body = JSON.parse(text) as ErrorBody;
    if (typeof body.error_code === 'string' && typeof body.message === 'string') {
      return new ApiError(response.status, body.error_code, body.message, {
        requestId: typeof body.request_id === 'string' ? body.request_id : undefined,
        retryAfterSeconds,
        retryable: typeof body.retryable === 'boolean' ? body.retryable : undefined,
      });
    }
  } catch {
    // Not the JSON error format: described by its status below.
  }
  const statusLine = `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
  return new ApiError(
    response.status,
    `HTTP_${response.status}`,
    `The server answered HTTP ${statusLine} without a ChatWait error body.${hint ? ` ${hint}` : ''}`,
    {
      retryAfterSeconds,
    },
  );
}

/** Reads an error response's body and describes it (see toApiError). */
export async function readApiError(response: Response, hint?: string): Promise<ApiError> {
  let text = '';
  try {
    text = await response.text();
  } catch {
    // The body broke off: the status still says what happened.
  }
  return toApiError(response, text, hint);
}

/** Error codes of a fetch that sent nothing: nobody listens at that address. */
const REFUSED_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH']);

/** Describes a fetch that failed without an answer; Node's fetch names the reason in `cause.code`, browsers say nothing. */
export function toNetworkError(error: unknown): ApiError {
  if (error instanceof ApiError) return error;
  const cause = (error as { cause?: { code?: unknown; message?: unknown } } | undefined)?.cause;
  const code = typeof cause?.code === 'string' ? cause.code : undefined;
  // fetch refuses some ports itself ("bad port"): nothing was sent either.
  const refused = (code !== undefined && REFUSED_CODES.has(code)) || cause?.message === 'bad port';
  const reason = code ?? (typeof cause?.message === 'string' ? cause.message : error instanceof Error ? error.message : String(error));
  return new ApiError(0, 'NETWORK_ERROR', `The connection failed (${reason}).`, { refused, cause: error });
}

/** Seconds from a Retry-After header given in seconds; undefined when absent or not a number. */
function parseRetryAfter(value: string | null): number | undefined {
  if (value === null || value.trim() === '') return undefined;
  const seconds = Number(value);
  return Number.isFinite(seconds) && seconds >= 0 ? seconds : undefined;
}
