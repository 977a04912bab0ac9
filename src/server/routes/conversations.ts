import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { findConversationKey, publicContextId } from '../../turns/conversation-keys.js';
import type { TurnManager } from '../../turns/turn-manager.js';
import { RequestError } from '../../errors.js';
import { decodeTurnCursor, type ConversationStore, type ConversationSummary, type TurnRecord } from '../../store/conversation-store.js';
import { chatErrorResponses, conversationParamsSchema, storable, toToolStepJson } from '../schemas.js';
import {
  conversationListSchema,
  conversationPageSchema,
  conversationSummarySchema,
  type ConversationSummaryBody,
  type TurnBody,
} from '../../protocol/responses.js';

/** Options of the conversation routes. */
export interface ConversationRoutesOptions {
  store: ConversationStore;
  turns: TurnManager;
}

const listQuerySchema = z.object({
  limit: z.coerce
    .number({ error: 'limit must be an integer' })
    .int('limit must be an integer')
    .min(1, 'limit must be 1 to 100')
    .max(100, 'limit must be 1 to 100')
    .optional(),
  cursor: z
    .string({ error: 'cursor must be a string' })
    .max(512, 'cursor is too long')
    .optional()
    .describe('next_cursor of the previous page'),
});

/** Turns per page of a conversation when the request names no `limit`, and the most it may name. */
export const TURN_PAGE_DEFAULT = 20;
export const TURN_PAGE_MAX = 100;

const turnsQuerySchema = z.object({
  limit: z.coerce
    .number({ error: 'limit must be an integer' })
    .int('limit must be an integer')
    .min(1, `limit must be 1 to ${TURN_PAGE_MAX}`)
    .max(TURN_PAGE_MAX, `limit must be 1 to ${TURN_PAGE_MAX}`)
    .optional()
    .describe(`Turns per page: ${TURN_PAGE_DEFAULT} by default, ${TURN_PAGE_MAX} at most.`),
  cursor: z
    .string({ error: 'cursor must be a string' })
    .max(512, 'cursor is too long')
    .refine((cursor) => decodeTurnCursor(cursor) !== undefined, 'cursor must be a next_cursor this server gave')
    .optional()
    .describe('next_cursor of the previous page: the page of turns just older than it.'),
});

/**
 * C0 and C1 control characters, DEL, the Unicode line and paragraph separators, and the bidirectional
 * overrides and isolates (which can make a title show as other text): a title is one line of plain text.
 */
// eslint-disable-next-line no-control-regex
const CONTROL_CHARACTER = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

const titleBodySchema = z.object(
  {
    title: storable(
      z
        .string({ error: 'title must be a string' })
        .trim()
        .min(1, 'title must not be empty')
        .max(200, 'title must be at most 200 characters')
        .refine(
          (title) => !CONTROL_CHARACTER.test(title),
          'title must be one line of text, without control characters (line breaks, tabs, escapes, text direction overrides)',
        ),
      'title',
    ),
  },
  { error: 'the body must be a JSON object' },
);

const notFound = () => new RequestError('NOT_FOUND', 'There is no such conversation.');

/** `GET /api/v1/conversations`, and `GET`, `PATCH` (title), `DELETE` of one conversation. */
export const conversationRoutes: FastifyPluginAsyncZod<ConversationRoutesOptions> = async (app, { store, turns }) => {
  app.get(
    '/api/v1/conversations',
    {
      schema: {
        tags: ['conversations'],
        summary: 'List conversations, most recently active first, a page at a time',
        querystring: listQuerySchema,
        response: { 200: conversationListSchema, ...chatErrorResponses },
      },
    },
    async (request) => {
      const page = await store.listConversations({ owner: request.owner, limit: request.query.limit ?? 20, cursor: request.query.cursor });
      return { conversations: page.conversations.map(toSummaryJson), next_cursor: page.nextCursor ?? null };
    },
  );

  app.get(
    '/api/v1/conversations/:context_id',
    {
      schema: {
        tags: ['conversations'],
        summary: 'One conversation with a page of its turns: the newest turns first, then older pages by cursor',
        description:
          'The first page holds the newest `limit` turns; `next_cursor` (null on the oldest page) asks for the turns just before them. Within a page, turns are oldest first, as a chat shows them.',
        params: conversationParamsSchema,
        querystring: turnsQuerySchema,
        response: { 200: conversationPageSchema, ...chatErrorResponses },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query;
      const key = await findConversationKey(store, request.owner, request.params.context_id);
      const conversation = await store.getConversationPage(key, { limit: limit ?? TURN_PAGE_DEFAULT, cursor });
      if (!conversation || conversation.owner !== request.owner) throw notFound();
      return { ...toSummaryJson(conversation), turns: conversation.turns.map(toTurnJson), next_cursor: conversation.nextCursor ?? null };
    },
  );

  app.patch(
    '/api/v1/conversations/:context_id',
    {
      schema: {
        tags: ['conversations'],
        summary: 'Rename a conversation',
        params: conversationParamsSchema,
        body: titleBodySchema,
        response: { 200: conversationSummarySchema, ...chatErrorResponses },
      },
    },
    async (request) => {
      const key = await findConversationKey(store, request.owner, request.params.context_id);
      if ((await store.conversationOwner(key)) !== request.owner) throw notFound();
      const summary = await store.renameConversation(key, request.body.title);
      if (!summary) throw notFound();
      return toSummaryJson(summary);
    },
  );

  app.delete(
    '/api/v1/conversations/:context_id',
    {
      schema: {
        tags: ['conversations'],
        summary: 'Delete a conversation and its turns (a turn still generating is cancelled first)',
        params: conversationParamsSchema,
        response: { 204: z.null().describe('Deleted'), ...chatErrorResponses },
      },
    },
    async (request, reply) => {
      const key = await findConversationKey(store, request.owner, request.params.context_id);
      if ((await store.conversationOwner(key)) !== request.owner) throw notFound();
      await turns.cancelConversation(key);
      if (!(await store.deleteConversation(key))) throw notFound();
      return reply.code(204).send(null);
    },
  );
};

function toSummaryJson(summary: ConversationSummary): ConversationSummaryBody {
  return {
    context_id: publicContextId(summary.contextId),
    title: summary.title,
    created_at: summary.createdAt.toISOString(),
    updated_at: summary.updatedAt.toISOString(),
    turn_count: summary.turnCount,
  };
}

function toTurnJson(turn: TurnRecord): TurnBody {
  return {
    turn_id: turn.turnId,
    user_message: turn.userMessage,
    answer: turn.answer,
    status: turn.status,
    model: turn.model,
    token_count: turn.tokenCount,
    created_at: turn.createdAt.toISOString(),
    finished_at: turn.finishedAt?.toISOString() ?? null,
    usage: turn.usage ?? null,
    timings: turn.timings ?? null,
    error_code: turn.errorCode ?? null,
    tool_steps: turn.toolSteps.map(toToolStepJson),
  };
}
