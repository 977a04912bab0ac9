import { finished } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { ResumePoint, StartTurnInput, TurnManager, TurnStream } from '../../turns/turn-manager.js';
import type { ClientLimits } from '../client-limits.js';
import { errorEventData, startEventData } from '../../protocol/wire-events.js';
import { formatEventId, parseEventId } from '../../protocol/event-id.js';
import { RequestError } from '../../errors.js';
import { cancelResponseSchema, waitResponseSchema } from '../../protocol/responses.js';
import {
  chatErrorResponses,
  turnParamsSchema,
  streamingBodySchema,
  streamingQuerySchema,
  streamingResponses,
  toToolStepJson,
  waitRequestSchema,
} from '../schemas.js';
import { logRequestCompleted } from '../request-logging.js';
import { CONNECTION_ENDED, SseStream, type SseStreamOptions } from '../sse.js';

/** Options of the chat routes. */
export interface ChatRoutesOptions {
  turns: TurnManager;
  limits: ClientLimits;
  sse: Omit<SseStreamOptions, 'headers'>;
  /** Told when a stream opens and closes, and when one resumes, for metrics. */
  observer?: StreamObserver;
}

/** What the chat routes report about streams. */
export interface StreamObserver {
  streamOpened(): void;
  streamClosed(): void;
  resumed(method: 'last_event_id' | 'last_token_index'): void;
}

/** `POST /api/v1/chat/wait` and `GET|POST /api/v1/chat/streaming`: both run the same turn pipeline. */
export const chatRoutes: FastifyPluginAsyncZod<ChatRoutesOptions> = async (app, { turns, limits, sse: sseOptions, observer }) => {
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
        owner: request.owner,
        admit: () => limits.admitTurn(request),
      });
      const result = await turn.done;
      return {
        message: result.answer,
        finish_reason: result.finishReason,
        context_id: result.contextId,
        token_count: result.tokenCount,
        processing_time_ms: Math.round((performance.now() - started) * 10) / 10,
        turn_id: result.turnId,
        ...(result.usage ? { usage: result.usage } : {}),
        model: result.model,
        ...(result.toolSteps.length > 0 ? { tool_steps: result.toolSteps.map(toToolStepJson) } : {}),
      };
    },
  );

  app.get(
    '/api/v1/chat/streaming',
    {
      // A HEAD request must never start a generation.
      exposeHeadRoute: false,
      schema: {
        tags: ['chat'],
        summary: 'Send a message and receive the answer token by token (Server-Sent Events)',
        description: RESUME_DESCRIPTION,
        querystring: streamingQuerySchema,
        response: streamingResponses,
      },
    },
    async (request, reply) => {
      const { query } = request;
      const input = { message: requireText(query.message), contextId: query.context_id };
      await streamTurn(request, reply, input, query.last_token_index ?? 0);
    },
  );

  app.post(
    '/api/v1/chat/streaming',
    {
      schema: {
        tags: ['chat'],
        summary: 'The streaming route with the fields as a JSON body',
        description: RESUME_DESCRIPTION,
        body: streamingBodySchema,
        response: streamingResponses,
      },
    },
    async (request, reply) => {
      const { body } = request;
      const input = {
        message: requireText(body.message),
        contextId: body.context_id ?? undefined,
        history: body.history ?? undefined,
        clientMessageId: body.client_message_id ?? undefined,
      };
      await streamTurn(request, reply, input, body.last_token_index ?? 0);
    },
  );

  app.post(
    '/api/v1/chat/turns/:turn_id/cancel',
    {
      schema: {
        tags: ['chat'],
        summary: 'Stop a generating turn; its stream ends with finish_reason "cancelled" and the partial answer is kept',
        params: turnParamsSchema,
        response: { 200: cancelResponseSchema, ...chatErrorResponses },
      },
    },
    async (request) => {
      const { turnId, contextId, status } = await turns.cancel(request.params.turn_id, request.owner);
      return { turn_id: turnId, context_id: contextId, status };
    },
  );

  /** Opens the turn's stream (errors before this point are JSON responses), then relays it as SSE. */
  async function streamTurn(request: FastifyRequest, reply: FastifyReply, input: StartTurnInput, lastTokenIndex: number): Promise<void> {
    const release = await limits.openStream(request);
    const connection = new AbortController();
    reply.raw.once('close', () => connection.abort(CONNECTION_ENDED));
    let from: ResumePoint;
    let stream: TurnStream;
    try {
      from = resumePointOf(request.headers['last-event-id'], lastTokenIndex);
      stream = await turns.open({ ...input, owner: request.owner, admit: () => limits.admitTurn(request) }, from, connection.signal);
    } catch (error) {
      release();
      throw error;
    }
    if (stream.resumed) observer?.resumed(from.kind === 'event_id' ? 'last_event_id' : 'last_token_index');
    reply.hijack();
    const sse = new SseStream(reply.raw, { ...sseOptions, headers: reply.getHeaders() });
    sse.signal.addEventListener('abort', () => connection.abort(CONNECTION_ENDED), { once: true });
    observer?.streamOpened();
    try {
      await sse.send(
        formatEventId(stream.turnId, stream.startPosition),
        startEventData(stream.contextId, stream.turnId, stream.model, stream.resumed),
      );
      for await (const batch of stream.events) {
        const drained = sse.sendReplay(stream.turnId, batch);
        if (drained) await drained;
      }
    } catch (error) {
      request.log.error({ err: error, turn_id: stream.turnId }, 'streaming a turn failed');
      // Never silence: a reader still connected learns the stream failed, and may reconnect (the `resync` id asks the store).
      if (!sse.signal.aborted) {
        void sse.send(
          formatEventId(stream.turnId, 'resync'),
          errorEventData(
            stream.contextId,
            stream.turnId,
            'INTERNAL_ERROR',
            'Something went wrong while streaming this answer. Please reconnect in a moment.',
            true,
          ),
        );
      }
    } finally {
      // Fastify's one line for this request is written when the response ends: give it the turn's fields.
      reply.log = reply.log.child({ turn_id: stream.turnId, resumed: stream.resumed, closed_by: sse.closedBy ?? 'server' });
      sse.end();
      // A response closed before it finished (its client left, or was cut as a slow reader) is one Fastify never logs.
      finished(reply.raw, (error) => {
        if ((error as NodeJS.ErrnoException | undefined)?.code === 'ERR_STREAM_PREMATURE_CLOSE') logRequestCompleted(null, request, reply);
      });
      release();
      observer?.streamClosed();
      turns.readerLeft(stream.turnId);
    }
  }
};

const RESUME_DESCRIPTION =
  'Resume a dropped stream with the `Last-Event-ID: <turn_id>/<position>` header (EventSource sends it by itself), or with the same `message`, `context_id` and `last_token_index`: no token is sent twice or skipped, and the model is not called again.';

/**
 * Where a streaming request starts reading: after its `Last-Event-ID` (`<turn_id>/<position>`, as sent
 * in the id: lines) when it has one, else after its `last_token_index`.
 */
function resumePointOf(lastEventId: string | string[] | undefined, lastTokenIndex: number): ResumePoint {
  if (typeof lastEventId !== 'string' || lastEventId.trim() === '')
    return lastTokenIndex > 0 ? { kind: 'token_index', lastTokenIndex } : { kind: 'none' };
  const id = parseEventId(lastEventId);
  if (!id) {
    throw new RequestError('VALIDATION_ERROR', 'Last-Event-ID must look like <turn_id>/<position>, as sent in the id: lines.', {
      detail: [{ loc: ['header', 'last-event-id'], msg: 'must be <turn_id>/<position>', type: 'value_error' }],
    });
  }
  return { kind: 'event_id', turnId: id.turnId, position: id.position };
}

/** Rejects a message of only whitespace with EMPTY_MESSAGE (the schema already rejects an empty one). */
function requireText(message: string): string {
  if (message.trim() === '') {
    throw new RequestError('EMPTY_MESSAGE', 'The message is only whitespace. Type something to send.');
  }
  return message;
}
