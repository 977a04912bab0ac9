import type { IncomingMessage, ServerOptions } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { RequestError } from '../errors.js';
import { normalizeAddress } from './address-group.js';
import { proxyMatcher } from './connection-guard.js';

/**
 * Node's timeouts for a request still arriving: its headers and its body must both be in within
 * `seconds` (a connection that sends nothing counts too), else the client error handler answers 408
 * and closes it. Fastify's own default (0) would switch Node's off. Node checks every
 * `connectionsCheckingInterval`, so that is a fraction of the timeout. A response (an SSE stream) is
 * not a request: once a request has arrived, these clocks stop.
 */
export function requestTimeouts(seconds: number): { requestTimeout: number; http: ServerOptions } {
  const milliseconds = Math.round(seconds * 1000);
  return {
    requestTimeout: milliseconds,
    http: {
      requestTimeout: milliseconds,
      headersTimeout: milliseconds,
      connectionsCheckingInterval: Math.min(5000, Math.max(50, Math.round(milliseconds / 4))),
    },
  };
}

/** Whether a request still has body bytes on the way. */
export function bodyPending(request: IncomingMessage): boolean {
  if (request.complete) return false;
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/** Whether the body still on the way is one Node may read and drop: a declared length of at most `maxBytes` (never chunked). */
function boundedBody(request: IncomingMessage, maxBytes: number): boolean {
  const length = request.headers['content-length'];
  return request.headers['transfer-encoding'] === undefined && length !== undefined && /^\d+$/.test(length) && Number(length) <= maxBytes;
}

/**
 * Unknown routes are answered 404 as soon as their headers are in, without waiting for a body; and
 * any answer sent before its request's body has arrived (404, 401, 429, 413…) closes the connection,
 * so the rest of that body is never waited for. Except from a proxy TRUST_PROXY trusts, with a
 * Content-Length of at most `maxBodyBytes` (nginx buffers a body and always sends its length): it is
 * sending that whole body, and a connection closed under it fails the request (nginx answers 502 and
 * takes this instance out of its rotation); Node reads and drops the rest instead. A chunked or larger
 * body is never drained, whoever sends it: Node drains without a cap.
 */
export function registerEarlyAnswers(
  app: FastifyInstance,
  trustProxy: boolean | number | readonly string[] = false,
  maxBodyBytes = 0,
): void {
  const isProxy = proxyMatcher(trustProxy);
  app.addHook('onRequest', async (request) => {
    if (request.is404 && bodyPending(request.raw)) {
      throw new RequestError('NOT_FOUND', `There is no ${request.method} ${request.url.split('?')[0]}. The API is described at /docs.`);
    }
  });
  app.addHook('onSend', async (request, reply) => {
    if (!bodyPending(request.raw)) return;
    const drain = boundedBody(request.raw, maxBodyBytes) && isProxy(normalizeAddress(request.raw.socket.remoteAddress ?? ''));
    if (!drain) reply.header('connection', 'close');
  });
}
