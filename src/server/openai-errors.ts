import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { ChatWaitError } from '../errors.js';
import { openAIErrorBody } from '../protocol/openai-chunks.js';
import type { OpenAIError } from '../protocol/openai-chat.js';
import { classifyError } from './error-handler.js';

// ChatWait's errors in OpenAI's format, `{"error": {"message", "type", "param", "code"}}`, with the
// statuses OpenAI's API answers with, so its clients (and their retry rules) read them as OpenAI's.

/** The OpenAI error body for a ChatWaitError. */
export function toOpenAIError(error: ChatWaitError): OpenAIError {
  const param = paramOf(error);
  if (error.code === 'UNAUTHORIZED') return openAIErrorBody(error.message, 'invalid_request_error', null, 'invalid_api_key');
  // OpenAI names no param for an unknown model (`param: null`), only the code.
  if (error.code === 'NOT_FOUND' && param === 'model')
    return openAIErrorBody(error.message, 'invalid_request_error', null, 'model_not_found');
  if (error.code === 'RATE_LIMITED' || error.code === 'TOO_MANY_GENERATING_TURNS') {
    return openAIErrorBody(error.message, 'requests', null, 'rate_limit_exceeded');
  }
  const type = error.status >= 500 ? 'server_error' : 'invalid_request_error';
  return openAIErrorBody(error.message, type, param, error.code.toLowerCase());
}

/** The status OpenAI answers a ChatWaitError's case with: a request that does not validate is its 400, not a 422. */
export function openAIStatusOf(error: ChatWaitError): number {
  return error.code === 'VALIDATION_ERROR' ? 400 : error.status;
}

/** Sends a ChatWaitError as an OpenAI error response; `x-should-retry` tells OpenAI's SDKs whether retrying may help. */
export function sendOpenAIError(reply: FastifyReply, error: ChatWaitError): FastifyReply {
  if (error.headers) reply.headers(error.headers);
  return reply
    .code(openAIStatusOf(error))
    .header('x-should-retry', String(error.retryable))
    .type('application/json; charset=utf-8')
    .send(JSON.stringify(toOpenAIError(error)));
}

/**
 * Makes every failure of the routes registered in `app` (keys, limits, validation, the handlers) and
 * every unknown path under its prefix answer in OpenAI's format.
 */
export function registerOpenAIErrorHandlers(app: FastifyInstance): void {
  app.setErrorHandler((thrown: FastifyError, request, reply) => {
    const error = classifyError(thrown);
    if (error.status >= 500) request.log.error({ err: error.cause ?? thrown }, 'request failed');
    else request.log.info({ error_code: error.code }, error.message);
    return sendOpenAIError(reply, error);
  });
  app.setNotFoundHandler((request, reply) => {
    const path = request.url.split('?')[0];
    return reply
      .code(404)
      .type('application/json; charset=utf-8')
      .send(
        JSON.stringify(
          openAIErrorBody(
            `There is no ${request.method} ${path}: ChatWait serves /v1/chat/completions and /v1/models.`,
            'invalid_request_error',
            null,
            'not_found',
          ),
        ),
      );
  });
}

/** The request field at fault, as OpenAI names it (`messages[2].content`), from the error's first detail. */
function paramOf(error: ChatWaitError): string | null {
  const loc = error.detail?.[0]?.loc;
  if (!loc || loc.length < 2) return null;
  const [where, ...path] = loc;
  if (where === 'header' || where === 'headers') return String(path[0]);
  return path.reduce<string>(
    (text, part) => (typeof part === 'number' ? `${text}[${part}]` : text === '' ? String(part) : `${text}.${part}`),
    '',
  );
}
