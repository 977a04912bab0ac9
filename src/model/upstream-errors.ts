import { ChatWaitError, InternalError, UpstreamError } from '../errors.js';
import { isTransientStatus, type UpstreamFailure } from './upstream-failure.js';

/**
 * The ChatWaitError for a normalised upstream failure, whose message is safe to show: never the
 * upstream body, never a key. A status or network failure is retryable exactly when the retry would
 * have asked again (`transient`, abort aside); the original error stays in `cause` for the logs.
 */
export function toUpstreamError(failure: UpstreamFailure): ChatWaitError {
  // An abort carries its own reason (a timeout or a cancel decided by the turn): that reason wins.
  if (failure.own) return failure.own;
  const { status, error: cause } = failure;
  if (status === 401 || status === 403) {
    return new UpstreamError(
      'MODEL_UNAVAILABLE',
      'The model provider rejected our credentials. Check GEMINI_API_KEY or OPENAI_API_KEY on the server.',
      { cause, retryable: false },
    );
  }
  if (status === 404) {
    return new UpstreamError(
      'MODEL_UNAVAILABLE',
      'The model provider does not know the configured model. Check GEMINI_MODEL or OPENAI_MODEL on the server.',
      { cause, retryable: false },
    );
  }
  if (status === 429) {
    return new UpstreamError('UPSTREAM_ERROR', 'The model provider is rate limiting us. Please try again in a moment.', {
      cause,
      retryable: true,
    });
  }
  if (status !== undefined && isTransientStatus(status)) {
    return new UpstreamError('UPSTREAM_ERROR', 'The model provider had an error. Please try again in a moment.', {
      cause,
      retryable: true,
    });
  }
  if (status !== undefined && status >= 400) {
    return new UpstreamError(
      'UPSTREAM_ERROR',
      'The model provider refused this request (it may be too long or not allowed). Try a shorter or different message.',
      { cause, retryable: false },
    );
  }
  if (failure.network) {
    return new UpstreamError('UPSTREAM_ERROR', 'The connection to the model provider failed. Please try again.', {
      cause,
      retryable: true,
    });
  }
  return new InternalError(cause);
}

/** The error for a model that answered nothing: never a blank reply. */
export function emptyAnswerError(): UpstreamError {
  return new UpstreamError('UPSTREAM_ERROR', 'The model returned an empty answer. Please try again or rephrase your message.', {
    retryable: true,
  });
}
