import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ChatWaitError, InternalError, RequestError } from '../errors.js';
import type { ErrorBody } from '../protocol/responses.js';
import { SchemaValidationError, toValidationDetails } from './validation.js';
import { ReplayLogUnavailable } from '../streams/replay-log.js';

/** Installs the one error handler and the 404 handler that turn every failure into the JSON error format. */
export function registerErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const chatWaitError = classifyError(error);
    if (chatWaitError.status >= 500) request.log.error({ err: chatWaitError.cause ?? error }, 'request failed');
    else request.log.info({ error_code: chatWaitError.code }, chatWaitError.message);
    return sendError(request, reply, chatWaitError);
  });

  app.setNotFoundHandler((request, reply) =>
    sendError(
      request,
      reply,
      new RequestError('NOT_FOUND', `There is no ${request.method} ${request.url.split('?')[0]}. The API is described at /docs.`),
    ),
  );
}

/** Sends a ChatWaitError in the documented format. */
export function sendError(request: FastifyRequest, reply: FastifyReply, error: ChatWaitError): FastifyReply {
  if (error.headers) reply.headers(error.headers);
  return reply.code(error.status).type('application/json; charset=utf-8').send(errorBody(error, request.id));
}

/** The JSON body of an error response. */
export function errorBody(error: ChatWaitError, requestId: string): ErrorBody {
  return {
    error_code: error.code,
    message: error.message,
    request_id: requestId,
    retryable: error.retryable,
    ...(error.detail ? { detail: error.detail } : {}),
  };
}

/** The ChatWaitError any failure of a request stands for (the JSON format of both APIs is built from it). */
export function classifyError(error: FastifyError | SchemaValidationError): ChatWaitError {
  if (error instanceof ChatWaitError) return error;
  if (error instanceof ReplayLogUnavailable) return replayLogUnavailable(error);
  if (error instanceof SchemaValidationError) {
    const detail = toValidationDetails(error);
    const first = detail[0]!;
    return new RequestError(
      'VALIDATION_ERROR',
      `Invalid request: ${first.msg}${detail.length > 1 ? ` (and ${detail.length - 1} more)` : ''}.`,
      { detail },
    );
  }
  switch (error.code) {
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return malformedJson('The body is not valid JSON. Send a JSON object such as {"message": "Hello"}.');
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new RequestError('PAYLOAD_TOO_LARGE', 'The request body is too large. Send a shorter message or less history.');
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new RequestError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON with the header Content-Type: application/json.');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return malformedJson('The body does not match its Content-Length header.');
  }
  // The JSON parser's own syntax errors arrive as plain errors with a 400 status.
  if (error instanceof SyntaxError || (error.statusCode === 400 && !error.code)) {
    return malformedJson('The body is not valid JSON. Send a JSON object such as {"message": "Hello"}.');
  }
  if (error.statusCode === 413) return new RequestError('PAYLOAD_TOO_LARGE', 'The request is too large.');
  if (error.statusCode === 415)
    return new RequestError('UNSUPPORTED_MEDIA_TYPE', 'Send the body as JSON with the header Content-Type: application/json.');
  if (error.statusCode === 404) return new RequestError('NOT_FOUND', 'Not found. The API is described at /docs.');
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    return malformedJson('The request is malformed.');
  }
  return new InternalError(error);
}

/**
 * Redis, where the replay logs are kept, does not answer: what needs it (a new message, a cancel, a
 * resume of a turn this instance does not hold) fails at once, retryably, rather than wait for it.
 */
export function replayLogUnavailable(cause: unknown): ChatWaitError {
  return new ChatWaitError(
    'DEPENDENCY_UNAVAILABLE',
    'The stream store (Redis) does not answer right now, so this cannot be done. Try again in a moment.',
    { cause, retryable: true, headers: { 'retry-after': '2' } },
  );
}

function malformedJson(message: string): RequestError {
  return new RequestError('VALIDATION_ERROR', message, { detail: [{ loc: ['body'], msg: message, type: 'json_invalid' }] });
}
