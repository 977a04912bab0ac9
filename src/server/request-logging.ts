import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';

/**
 * One log line per request, written when it completes: method, path (never the query, which may
 * hold a user's message), status and duration. The request id is on every line as `request_id`.
 */
export class RequestLogController extends LogController {
  constructor() {
    super({ requestIdLogLabel: 'request_id' });
  }

  override incomingRequest(): void {}

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
    logRequestCompleted(error, request, reply);
  }
}

/**
 * Writes the request's one line. Fastify calls it when the response finishes; a stream whose client
 * left first never finishes, so the streaming route calls it itself then.
 */
export function logRequestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply): void {
  const fields = {
    method: request.method,
    path: request.url.split('?')[0],
    status: reply.statusCode,
    duration_ms: Math.round(reply.elapsedTime * 10) / 10,
  };
  if (error) reply.log.error({ ...fields, err: error }, 'request errored');
  else reply.log.info(fields, 'request');
}
