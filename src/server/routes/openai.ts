import type { FastifyReply, FastifyRequest } from 'fastify';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import { RequestError } from '../../errors.js';
import { parseEventId, type EventPosition } from '../../protocol/event-id.js';
import { ID_PATTERN } from '../../protocol/ids.js';
import {
  chatCompletionChunkSchema,
  chatCompletionRequestSchema,
  chatCompletionSchema,
  openAIErrorSchema,
  openAIModelListSchema,
  openAIModelParamsSchema,
  openAIModelSchema,
  type ChatCompletionRequest,
  type OpenAIModel,
} from '../../protocol/openai-chat.js';
import { chunkFormat, completionBody, type CompletionIdentity } from '../../protocol/openai-chunks.js';
import type { ConversationStore } from '../../store/conversation-store.js';
import type { ResumePoint, TurnManager, TurnStream } from '../../turns/turn-manager.js';
import type { ClientLimits } from '../client-limits.js';
import { registerOpenAIErrorHandlers } from '../openai-errors.js';
import { toCompletionTurn, type CompletionTurn } from '../openai-request.js';
import { FIRST_EVENT_HOLD_MS, holdFirstEvent } from '../openai-first-event.js';
import { relayCompletion } from '../openai-stream.js';
import { CONNECTION_ENDED, SseStream, type SseStreamOptions } from '../sse.js';
import type { StreamObserver } from './chat.js';

/** The request header naming the conversation a call continues; every answer carries it. */
export const CONVERSATION_HEADER = 'x-chatwait-conversation-id';
/** The response header naming the turn a call started or joined. */
export const TURN_HEADER = 'x-chatwait-turn-id';

/**
 * The `created` of every model `/v1/models` lists: a constant (the day of ChatWait's first commit,
 * 2026-11-25 UTC, in Unix seconds), so every instance behind a load balancer lists the same model alike.
 */
export const MODEL_CREATED = 1_795_564_800;

/** Options of the OpenAI-compatible routes. */
export interface OpenAIRoutesOptions {
  turns: TurnManager;
  store: ConversationStore;
  limits: ClientLimits;
  sse: Omit<SseStreamOptions, 'headers'>;
  observer?: StreamObserver;
}

const errorResponses = {
  400: openAIErrorSchema.describe('invalid_request_error: a field ChatWait cannot honour (`param` names it)'),
  401: openAIErrorSchema.describe('invalid_api_key'),
  404: openAIErrorSchema.describe('model_not_found, or an unknown conversation or turn'),
  409: openAIErrorSchema.describe('conversation_busy: the conversation is answering another message'),
  429: openAIErrorSchema.describe('rate_limit_exceeded, with Retry-After'),
  500: openAIErrorSchema.describe('server_error'),
  502: openAIErrorSchema.describe('server_error: the model provider failed'),
  503: openAIErrorSchema.describe('server_error: the model, the store or the server is unavailable'),
  504: openAIErrorSchema.describe('server_error: the model did not answer in time'),
};

const completionHeaders = z.looseObject({
  [CONVERSATION_HEADER]: z
    .string()
    .regex(ID_PATTERN, 'X-ChatWait-Conversation-Id must be 1 to 128 characters from A-Z, a-z, 0-9 and . _ : -')
    .optional()
    .describe('The conversation this call continues (a new one, with a random id, when absent).'),
  'last-event-id': z
    .string()
    .optional()
    .describe('With `stream: true`: resume the stream after this `<turn_id>/<position>` id (the body is sent again unchanged).'),
});

/**
 * `POST /v1/chat/completions` and `GET /v1/models[/{model}]`, OpenAI's API on ChatWait's turn pipeline:
 * the same keys, limits, stored conversations and resumable streams as `/api/v1/chat/*`. Registered
 * under the `/v1` prefix, so its errors and unknown paths answer in OpenAI's format.
 */
export const openAIRoutes: FastifyPluginAsyncZod<OpenAIRoutesOptions> = async (
  app,
  { turns, store, limits, sse: sseOptions, observer },
) => {
  registerOpenAIErrorHandlers(app);
  const model = turns.model.name;
  const listed: OpenAIModel = { id: model, object: 'model', created: MODEL_CREATED, owned_by: 'chatwait' };

  app.get(
    '/models',
    {
      schema: {
        tags: ['openai'],
        summary: 'The models ChatWait answers with (OpenAI format)',
        response: { 200: openAIModelListSchema, ...errorResponses },
      },
    },
    async () => ({ object: 'list' as const, data: [listed] }),
  );

  app.get(
    '/models/:model',
    {
      schema: {
        tags: ['openai'],
        summary: 'One model (OpenAI format)',
        params: openAIModelParamsSchema,
        response: { 200: openAIModelSchema, ...errorResponses },
      },
    },
    async (request) => {
      if (request.params.model !== model) {
        throw new RequestError('NOT_FOUND', `The model \`${request.params.model}\` does not exist.`, {
          detail: [{ loc: ['path', 'model'], msg: 'unknown model', type: 'value_error' }],
        });
      }
      return listed;
    },
  );

  app.post(
    '/chat/completions',
    {
      schema: {
        tags: ['openai'],
        summary: 'OpenAI chat completions, streamed or not, stored as a turn of a conversation',
        description:
          "Answers as OpenAI's API does. The response headers `X-ChatWait-Conversation-Id` and `X-ChatWait-Turn-Id` name the stored turn; send the first back to continue that conversation. A stream's chunks carry `id:` lines: to resume, send the same request again with `Last-Event-ID`. A closed connection does not cancel the turn.",
        headers: completionHeaders,
        body: chatCompletionRequestSchema,
        response: {
          200: {
            description:
              'A `chat.completion`, or with `stream: true` a text/event-stream of `chat.completion.chunk` events ending with `data: [DONE]`.',
            content: { 'application/json': { schema: chatCompletionSchema }, 'text/event-stream': { schema: chatCompletionChunkSchema } },
          },
          ...errorResponses,
        },
      },
    },
    async (request, reply) => {
      const { body } = request;
      const turn = toCompletionTurn(body, [model]);
      const contextId = request.headers[CONVERSATION_HEADER] as string | undefined;
      const lastEventId = request.headers['last-event-id'];
      if (body.stream) return streamCompletion(request, reply, body, turn, contextId, resumePointOf(lastEventId));
      if (lastEventId !== undefined) {
        throw new RequestError('BAD_REQUEST', 'Last-Event-ID resumes a stream: send it with "stream": true.', {
          detail: [{ loc: ['header', 'Last-Event-ID'], msg: 'only with stream', type: 'value_error' }],
        });
      }
      const handle = await turns.start({ ...turn, contextId, owner: request.owner, admit: () => limits.admitTurn(request) });
      reply.header(CONVERSATION_HEADER, handle.contextId).header(TURN_HEADER, handle.turnId);
      const result = await handle.done;
      const identity = { turnId: result.turnId, created: await createdOf(result.turnId), model: result.model };
      reply.type('application/json; charset=utf-8');
      return completionBody(identity, result.answer, result.finishReason, result.usage, result.tokenCount);
    },
  );

  /** When a turn started, in Unix seconds, as every chunk and resume of it says (the store holds it). */
  async function createdOf(turnId: string): Promise<number> {
    const record = await store.getTurn(turnId);
    return Math.floor((record?.createdAt.getTime() ?? Date.now()) / 1000);
  }

  /** Opens the turn's stream (errors before this point are JSON responses), then relays it as chunks. */
  async function streamCompletion(
    request: FastifyRequest,
    reply: FastifyReply,
    body: ChatCompletionRequest,
    turn: CompletionTurn,
    contextId: string | undefined,
    from: ResumePoint,
  ): Promise<void> {
    const release = await limits.openStream(request);
    const connection = new AbortController();
    reply.raw.once('close', () => connection.abort(CONNECTION_ENDED));
    let stream: TurnStream;
    let identity: CompletionIdentity;
    try {
      stream = await turns.open(
        { ...turn, contextId, owner: request.owner, admit: () => limits.admitTurn(request) },
        from,
        connection.signal,
      );
      try {
        identity = { turnId: stream.turnId, created: await createdOf(stream.turnId), model: stream.model };
      } catch (error) {
        turns.readerLeft(stream.turnId);
        throw error;
      }
    } catch (error) {
      release();
      throw error;
    }
    if (stream.resumed && from.kind === 'event_id') observer?.resumed('last_event_id');
    reply.header(CONVERSATION_HEADER, stream.contextId).header(TURN_HEADER, stream.turnId);
    let { events } = stream;
    if (!stream.resumed) {
      // A new turn that fails before its first token answers with the failure's status, as OpenAI does.
      let failure: unknown;
      try {
        const held = await holdFirstEvent(events, FIRST_EVENT_HOLD_MS, connection.signal);
        events = held.events;
        failure = held.failure;
      } catch (error) {
        failure = error;
      }
      if (failure) {
        release();
        turns.readerLeft(stream.turnId);
        throw failure;
      }
    }
    reply.hijack();
    const sse = new SseStream(reply.raw, { ...sseOptions, headers: reply.getHeaders() });
    sse.signal.addEventListener('abort', () => connection.abort(CONNECTION_ENDED), { once: true });
    observer?.streamOpened();
    try {
      await relayCompletion(
        sse,
        { ...stream, events },
        {
          format: chunkFormat(identity, body.stream_options?.include_usage === true),
          includeUsage: body.stream_options?.include_usage === true,
          resumedAfter: from.kind === 'event_id' ? from.position : undefined,
        },
      );
    } catch (error) {
      request.log.error({ err: error, turn_id: stream.turnId }, 'streaming a completion failed');
      if (!sse.signal.aborted) {
        const failure = {
          error: {
            message: 'Something went wrong while streaming this answer.',
            type: 'server_error',
            param: null,
            code: 'internal_error',
          },
        };
        void sse.sendFramed(`data: ${JSON.stringify(failure)}\n\n`);
      }
    } finally {
      reply.log = reply.log.child({ turn_id: stream.turnId, resumed: stream.resumed, closed_by: sse.closedBy ?? 'server' });
      sse.end();
      release();
      observer?.streamClosed();
      turns.readerLeft(stream.turnId);
    }
  }
};

/** Where a streamed call starts reading: after its `Last-Event-ID` (`<turn_id>/<position>`) when it has one. */
function resumePointOf(lastEventId: string | string[] | undefined): ResumePoint {
  if (typeof lastEventId !== 'string' || lastEventId.trim() === '') return { kind: 'none' };
  const id = parseEventId(lastEventId);
  if (!id) {
    throw new RequestError('BAD_REQUEST', 'Last-Event-ID must look like <turn_id>/<position>, as sent in the id: lines.', {
      detail: [{ loc: ['header', 'Last-Event-ID'], msg: 'must be <turn_id>/<position>', type: 'value_error' }],
    });
  }
  const position: EventPosition = id.position;
  return { kind: 'event_id', turnId: id.turnId, position };
}
