import { z } from 'zod';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Turn, TurnManager } from '../../chat/turn-manager.js';
import { startEventData } from '../../chat/wire-events.js';
import { RequestError } from '../../errors.js';
import {
  chatErrorResponses,
  streamingBodySchema,
  streamingQuerySchema,
  waitRequestSchema,
  waitResponseSchema,
} from '../schemas.js';
import { SseStream } from '../sse.js';

/** Options of the chat routes. */
export interface ChatRoutesOptions {
  turns: TurnManager;
  heartbeatMs: number;
}

const sseResponse = {
  200: {
    description:
      'A text/event-stream of `start`, `token` … `end` (or `error`) events, each an `id:` line and one `data:` line of JSON.',
    content: { 'text/event-stream': { schema: z.string() } },
  },
  ...chatErrorResponses,
};

/** `POST /api/v1/chat/wait` and `GET|POST /api/v1/chat/streaming`: both run the same turn pipeline. */
export const chatRoutes: FastifyPluginAsyncZod<ChatRoutesOptions> = async (app, { turns, heartbeatMs }) => {
  app.post(
    '/api/v1/chat/wait',
    {
      schema: {
        tags: ['chat'],
        summary: 'Send a message and get the whole answer at once',
        body: waitRequestSchema,
        response: { 200: waitResponseSchema, ...chatErrorResponses },
      },
    },
    async (request) => {
      const { body } = request;
      const started = performance.now();
      const turn = await turns.start({
        message: requireText(body.message),
        contextId: body.context_id ?? undefined,
        history: body.history ?? undefined,
        clientMessageId: body.client_message_id ?? undefined,
      });
      const result = await turn.done;
      return {
        message: result.answer,
        context_id: result.contextId,
        token_count: result.tokenCount,
        processing_time_ms: Math.round((performance.now() - started) * 10) / 10,
        turn_id: result.turnId,
        ...(result.usage ? { usage: result.usage } : {}),
        model: result.model,
      };
    },
  );

  app.get(
    '/api/v1/chat/streaming',
    {
      schema: {
        tags: ['chat'],
        summary: 'Send a message and receive the answer token by token (Server-Sent Events)',
        querystring: streamingQuerySchema,
        response: sseResponse,
      },
    },
    async (request, reply) => {
      const { query } = request;
      const turn = await turns.start({ message: requireText(query.message), contextId: query.context_id });
      await streamTurn(request, reply, turn);
    },
  );

  app.post(
    '/api/v1/chat/streaming',
    {
      schema: {
        tags: ['chat'],
        summary: 'The streaming route with the fields as a JSON body',
        body: streamingBodySchema,
        response: sseResponse,
      },
    },
    async (request, reply) => {
      const { body } = request;
      const turn = await turns.start({
        message: requireText(body.message),
        contextId: body.context_id ?? undefined,
        history: body.history ?? undefined,
        clientMessageId: body.client_message_id ?? undefined,
      });
      await streamTurn(request, reply, turn);
    },
  );

  async function streamTurn(request: FastifyRequest, reply: FastifyReply, turn: Turn): Promise<void> {
    reply.hijack();
    const sse = new SseStream(reply.raw, { heartbeatMs, headers: reply.getHeaders() });
    try {
      await sse.send(`${turn.turnId}/start`, startEventData(turn.contextId, turn.turnId, turn.model, false));
      for await (const entry of turns.read(turn.turnId, 0, sse.signal)) {
        const drained = sse.send(`${turn.turnId}/${entry.position}`, entry.data);
        if (drained) await drained;
      }
    } catch (error) {
      request.log.error({ err: error, turn_id: turn.turnId }, 'streaming a turn failed');
    } finally {
      sse.end();
    }
  }
};

/** Rejects a message of only whitespace with EMPTY_MESSAGE (the schema already rejects an empty one). */
function requireText(message: string): string {
  if (message.trim() === '') {
    throw new RequestError('EMPTY_MESSAGE', 'The message is only whitespace. Type something to send.');
  }
  return message;
}
