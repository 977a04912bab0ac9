import { APIConnectionError, APIError } from 'openai';
import { ChatWaitError, InternalError, UpstreamError } from '../errors.js';

/**
 * Classifies whatever a model call threw into a ChatWaitError whose message is safe to show:
 * never the upstream body, never a key. The original error stays in `cause` for the logs.
 */
export function toUpstreamError(error: unknown, signal?: AbortSignal): ChatWaitError {
  // An abort carries its own reason (a timeout or a cancel decided by the turn): that reason wins.
  if (signal?.aborted && signal.reason instanceof ChatWaitError) return signal.reason;
  if (error instanceof ChatWaitError) return error;

  const status = findStatus(error);
  if (status === 401 || status === 403) {
    return new UpstreamError(
      'MODEL_UNAVAILABLE',
      'The model provider rejected our credentials. Check GEMINI_API_KEY or OPENAI_API_KEY on the server.',
      { cause: error, retryable: false },
    );
  }
  if (status === 404) {
    return new UpstreamError(
      'MODEL_UNAVAILABLE',
      'The model provider does not know the configured model. Check GEMINI_MODEL or OPENAI_MODEL on the server.',
      { cause: error, retryable: false },
    );
  }
  if (status === 429) {
    return new UpstreamError('UPSTREAM_ERROR', 'The model provider is rate limiting us. Please try again in a moment.', {
      cause: error,
      retryable: true,
    });
  }
  if (status !== undefined && status >= 500) {
    return new UpstreamError('UPSTREAM_ERROR', 'The model provider had an error. Please try again in a moment.', {
      cause: error,
      retryable: true,
    });
  }
  if (status !== undefined && status >= 400) {
    return new UpstreamError(
      'UPSTREAM_ERROR',
      'The model provider refused this request (it may be too long or not allowed). Try a shorter or different message.',
      { cause: error, retryable: false },
    );
  }
  if (isConnectionFailure(error)) {
    return new UpstreamError('UPSTREAM_ERROR', 'The connection to the model provider failed. Please try again.', {
      cause: error,
      retryable: true,
    });
  }
  return new InternalError(error);
}

function findStatus(error: unknown): number | undefined {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    if (current instanceof APIError && typeof current.status === 'number') return current.status;
    const status = (current as { status?: unknown }).status;
    if (typeof status === 'number' && status >= 400 && status < 600) return status;
  }
  return undefined;
}

function isConnectionFailure(error: unknown): boolean {
  for (let current = error, depth = 0; current && depth < 5; current = (current as { cause?: unknown }).cause, depth++) {
    if (current instanceof APIConnectionError) return true;
    const code = (current as { code?: unknown }).code;
    if (typeof code === 'string' && /^(ECONN|EPIPE|ETIMEDOUT|UND_ERR|ENOTFOUND|EAI_AGAIN)/.test(code)) return true;
    // What fetch (undici) throws when a response body dies mid-stream or a connection fails.
    const message = (current as { message?: unknown }).message;
    if (current instanceof TypeError && (message === 'terminated' || message === 'fetch failed')) return true;
  }
  return false;
}

/** The error for a model that answered nothing: never a blank reply. */
export function emptyAnswerError(): UpstreamError {
  return new UpstreamError('UPSTREAM_ERROR', 'The model returned an empty answer. Please try again or rephrase your message.', {
    retryable: true,
  });
}
