import type { ValidationDetail } from './protocol/responses.js';

/** The stable error codes of the API (`error_code`), with the HTTP status each one maps to. */
export const ERROR_STATUS = {
  VALIDATION_ERROR: 422,
  EMPTY_MESSAGE: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  ORIGIN_NOT_ALLOWED: 403,
  HOST_NOT_ALLOWED: 403,
  NOT_FOUND: 404,
  CONVERSATION_BUSY: 409,
  IDEMPOTENCY_KEY_REUSED: 409,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  RATE_LIMITED: 429,
  TOO_MANY_GENERATING_TURNS: 429,
  INTERNAL_ERROR: 500,
  UPSTREAM_ERROR: 502,
  MODEL_UNAVAILABLE: 503,
  SERVER_BUSY: 503,
  SHUTTING_DOWN: 503,
  STORE_UNAVAILABLE: 503,
  DEPENDENCY_UNAVAILABLE: 503,
  UPSTREAM_TIMEOUT: 504,
} as const;

/** One of the API's `error_code` values. */
export type ErrorCode = keyof typeof ERROR_STATUS;

/**
 * Whether the same request, sent again unchanged, may succeed: the `retryable` of every error body and
 * `error` event. An error may say otherwise for its own case (a 502 for a request the provider refuses
 * is not worth repeating; a 400 for a request that arrived too slowly is).
 */
export const ERROR_RETRYABLE: Readonly<Record<ErrorCode, boolean>> = {
  VALIDATION_ERROR: false,
  EMPTY_MESSAGE: false,
  BAD_REQUEST: false,
  UNAUTHORIZED: false,
  ORIGIN_NOT_ALLOWED: false,
  HOST_NOT_ALLOWED: false,
  NOT_FOUND: false,
  // The answer under way ends (or can be cancelled); then the same message is taken.
  CONVERSATION_BUSY: true,
  IDEMPOTENCY_KEY_REUSED: false,
  PAYLOAD_TOO_LARGE: false,
  UNSUPPORTED_MEDIA_TYPE: false,
  RATE_LIMITED: true,
  TOO_MANY_GENERATING_TURNS: true,
  INTERNAL_ERROR: true,
  UPSTREAM_ERROR: true,
  // The provider refuses the key or the model: nothing changes until the server's configuration does.
  MODEL_UNAVAILABLE: false,
  SERVER_BUSY: true,
  SHUTTING_DOWN: true,
  STORE_UNAVAILABLE: true,
  DEPENDENCY_UNAVAILABLE: true,
  UPSTREAM_TIMEOUT: true,
};

/** Options shared by every ChatWait error. */
export interface ChatWaitErrorOptions {
  cause?: unknown;
  retryable?: boolean;
  detail?: ValidationDetail[];
  headers?: Record<string, string>;
}

/**
 * The one error base: a stable code, an HTTP status and a message that tells a person how to fix
 * the problem. Its message is safe to show to clients; internals belong in `cause`.
 */
export class ChatWaitError extends Error {
  override name = 'ChatWaitError';
  readonly code: ErrorCode;
  readonly status: number;
  readonly retryable: boolean;
  readonly detail: ValidationDetail[] | undefined;
  readonly headers: Record<string, string> | undefined;

  constructor(code: ErrorCode, message: string, options: ChatWaitErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.status = ERROR_STATUS[code];
    this.retryable = options.retryable ?? ERROR_RETRYABLE[code];
    this.detail = options.detail;
    this.headers = options.headers;
  }
}

/** The caller sent something wrong (4xx). */
export class RequestError extends ChatWaitError {
  override name = 'RequestError';
}

/** The model provider failed, timed out or is not usable (502/503/504). */
export class UpstreamError extends ChatWaitError {
  override name = 'UpstreamError';
}

/**
 * The conversation store refused a read or a write: 503, worth retrying. `STORE_UNAVAILABLE` when the
 * store itself cannot serve (a full disk, a read-only or damaged file); `DEPENDENCY_UNAVAILABLE` when
 * the database server it needs cannot be reached (PostgreSQL down or cut off).
 */
export class StoreUnavailableError extends ChatWaitError {
  override name = 'StoreUnavailableError';
  constructor(message: string, cause?: unknown, code: 'STORE_UNAVAILABLE' | 'DEPENDENCY_UNAVAILABLE' = 'STORE_UNAVAILABLE') {
    // A database out of reach usually comes back within seconds (a restart, a failover): say when to try again.
    super(code, message, { cause, retryable: true, headers: code === 'DEPENDENCY_UNAVAILABLE' ? { 'retry-after': '2' } : undefined });
  }
}

/** Something went wrong inside ChatWait itself (500); the message shown is always generic. */
export class InternalError extends ChatWaitError {
  override name = 'InternalError';
  constructor(cause?: unknown) {
    super('INTERNAL_ERROR', 'Something went wrong on our side. Please try again; if it keeps happening, report it with the request id.', {
      cause,
      retryable: true,
    });
  }
}

/** Turns anything thrown into a ChatWaitError, hiding whatever is not one behind INTERNAL_ERROR. */
export function toChatWaitError(error: unknown): ChatWaitError {
  return error instanceof ChatWaitError ? error : new InternalError(error);
}
