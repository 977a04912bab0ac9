import { z } from 'zod';
import { ID_PATTERN } from '../protocol/turn.js';
import { errorBodySchema, type ToolStepBody } from '../protocol/responses.js';
import { streamEventSchema } from '../protocol/events.js';
import type { ToolStep } from '../store/conversation-store.js';

// What requests may send (parsed here, in the server) and the error answers the routes document. The
// answers' bodies are the protocol's (src/protocol/responses.ts).

/** The longest message a user may send, in characters. */
export const MAX_MESSAGE_CHARS = 10_000;

/** A UTF-16 surrogate without its pair (a JSON "\ud800" escape): UTF-8, and so the store, cannot hold it. */
const LONE_SURROGATE = /\p{Cs}/u;

/** The string schema, refused when the text holds a lone surrogate: it would be stored (and read back) as U+FFFD. */
export function storable(schema: z.ZodString, field: string): z.ZodString {
  return schema.refine(
    (text) => !LONE_SURROGATE.test(text),
    `${field} must not contain a lone UTF-16 surrogate (such as \\ud800 without its pair): it cannot be stored`,
  );
}

const message = storable(
  z
    .string({ error: 'message must be a string' })
    .min(1, 'message must not be empty')
    .max(MAX_MESSAGE_CHARS, `message must be at most ${MAX_MESSAGE_CHARS.toLocaleString('en')} characters`),
  'message',
).describe('What the user says (1 to 10,000 characters).');

const contextId = z
  .string({ error: 'context_id must be a string' })
  .regex(ID_PATTERN, 'context_id must be 1 to 128 characters from A-Z, a-z, 0-9 and . _ : -')
  .describe('The conversation to continue. Absent: a new conversation with a random UUID.');

const clientMessageId = z
  .string({ error: 'client_message_id must be a string' })
  .regex(ID_PATTERN, 'client_message_id must be 1 to 128 characters from A-Z, a-z, 0-9 and . _ : -')
  .describe('Idempotency key: a retried send with the same key attaches to the turn it started.');

const history = z
  .array(
    z.object({
      role: z.enum(['user', 'assistant'], { error: 'role must be "user" or "assistant"' }),
      content: storable(
        z.string({ error: 'content must be a string' }).max(100_000, 'content must be at most 100,000 characters'),
        'content',
      ),
    }),
    { error: 'history must be a list of {role, content} messages' },
  )
  .max(1_000, 'history must hold at most 1,000 messages')
  .describe('Client-managed context, used instead of the stored conversation for this turn.');

/** Body of `POST /api/v1/chat/wait`. */
export const waitRequestSchema = z.object(
  {
    message,
    context_id: contextId.nullish(),
    client_message_id: clientMessageId.nullish(),
    history: history.nullish(),
  },
  { error: 'the body must be a JSON object' },
);

const lastTokenIndexQuery = z.coerce
  .number({ error: 'last_token_index must be an integer' })
  .int('last_token_index must be an integer')
  .min(0, 'last_token_index must be 0 or more')
  .max(1_000_000_000, 'last_token_index is too large')
  .optional()
  .describe('Resume from this token index (the original ChatWait resume). Default 0.');

/** Query of `GET /api/v1/chat/streaming`. */
export const streamingQuerySchema = z.object({
  message,
  context_id: contextId.optional(),
  last_token_index: lastTokenIndexQuery,
});

/** Body of `POST /api/v1/chat/streaming`: the query's fields, plus those of the wait body. */
export const streamingBodySchema = waitRequestSchema.extend({
  last_token_index: z
    .number({ error: 'last_token_index must be an integer' })
    .int('last_token_index must be an integer')
    .min(0, 'last_token_index must be 0 or more')
    .max(1_000_000_000, 'last_token_index is too large')
    .nullish(),
});

/** Path parameters naming a turn. */
export const turnParamsSchema = z.object({
  turn_id: z.string().regex(ID_PATTERN, 'turn_id must be 1 to 128 characters from A-Z, a-z, 0-9 and . _ : -'),
});

/** Path parameters naming a conversation. */
export const conversationParamsSchema = z.object({ context_id: contextId });

/** A stored tool step in the API's field names. */
export function toToolStepJson(step: ToolStep): ToolStepBody {
  return {
    call_id: step.callId,
    name: step.name,
    arguments: step.arguments,
    output: step.output,
    is_error: step.isError,
    duration_ms: step.durationMs,
    token_offset: step.tokenOffset,
  };
}

/** The error responses every chat route may give, for the docs. */
export const chatErrorResponses = {
  400: errorBodySchema.describe('EMPTY_MESSAGE: the message is only whitespace'),
  403: errorBodySchema.describe(
    'ORIGIN_NOT_ALLOWED: a browser page on another origin; HOST_NOT_ALLOWED: a loopback server reached by another host name',
  ),
  404: errorBodySchema.describe('NOT_FOUND'),
  409: errorBodySchema.describe(
    'CONVERSATION_BUSY, or IDEMPOTENCY_KEY_REUSED: the client_message_id was sent before with a different message',
  ),
  413: errorBodySchema.describe('PAYLOAD_TOO_LARGE'),
  415: errorBodySchema.describe('UNSUPPORTED_MEDIA_TYPE'),
  422: errorBodySchema.describe('VALIDATION_ERROR, with a detail list naming each field'),
  429: errorBodySchema.describe('RATE_LIMITED or TOO_MANY_GENERATING_TURNS'),
  500: errorBodySchema.describe('INTERNAL_ERROR'),
  502: errorBodySchema.describe('UPSTREAM_ERROR'),
  503: errorBodySchema.describe(
    'MODEL_UNAVAILABLE, SERVER_BUSY, SHUTTING_DOWN, STORE_UNAVAILABLE: the conversation store cannot be used now (a full disk?), or DEPENDENCY_UNAVAILABLE: its database server (or, with REDIS_URL, the Redis of the limits) cannot be reached',
  ),
  504: errorBodySchema.describe('UPSTREAM_TIMEOUT'),
};

/** The answers of the streaming routes: the stream's events (one union on `type`), or a JSON error before it begins. */
export const streamingResponses = {
  200: {
    description:
      "A text/event-stream of `start`, `token` … `end` (or `error`) events, each one `data:` line of JSON then its `id:` line (`<turn_id>/<position>`); `tool_call` and `tool_result` events come between tokens when the model uses tools, and a resume of a turn that has left the replay log gets `resync` then `end`. The schema is that of one event's JSON.",
    content: { 'text/event-stream': { schema: streamEventSchema } },
  },
  ...chatErrorResponses,
};
