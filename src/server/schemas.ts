import { z } from 'zod';

/** The longest message a user may send, in characters. */
export const MAX_MESSAGE_CHARS = 10_000;
const ID_PATTERN = /^[A-Za-z0-9._:-]{1,128}$/;

/** A UTF-16 surrogate without its pair (a JSON "\ud800" escape): UTF-8, and so the store, cannot hold it. */
const LONE_SURROGATE = /\p{Cs}/u;

/** The string schema, refused when the text holds a lone surrogate: it would be stored (and read back) as U+FFFD. */
export function storable(schema: z.ZodString, field: string): z.ZodString {
  return schema.refine((text) => !LONE_SURROGATE.test(text), `${field} must not contain a lone UTF-16 surrogate (such as \\ud800 without its pair): it cannot be stored`);
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
      content: storable(z.string({ error: 'content must be a string' }).max(100_000, 'content must be at most 100,000 characters'), 'content'),
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

const turnStatus = z.enum(['streaming', 'complete', 'cancelled', 'interrupted', 'error']);

/** Response of the cancel route. */
export const cancelResponseSchema = z.object({ turn_id: z.string(), context_id: z.string(), status: turnStatus });

/** Token usage as reported in answers. */
export const usageSchema = z.object({ input_tokens: z.number(), output_tokens: z.number(), total_tokens: z.number() });

/** One tool call of a turn, as the API shows it. */
export const toolStepSchema = z
  .object({
    call_id: z.string(),
    name: z.string(),
    arguments: z.string().describe('The arguments as the JSON text the model wrote.'),
    output: z.string().nullable().describe('What the tool gave the model ("Error: …" when it failed or timed out); null if the turn ended first.'),
    is_error: z.boolean(),
    duration_ms: z.number().nullable(),
    token_offset: z.number().int().describe('How many tokens of the answer came before the call.'),
  })
  .describe('A tool the model called while answering.');

/** A stored tool step in the API's field names. */
export function toToolStepJson(step: { callId: string; name: string; arguments: string; output: string | null; isError: boolean; durationMs: number | null; tokenOffset: number }) {
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

/** Response of `POST /api/v1/chat/wait`. */
export const waitResponseSchema = z.object({
  message: z.string().describe('The whole answer.'),
  finish_reason: z.enum(['stop', 'cancelled']).describe('"cancelled" when the turn was stopped: `message` is then what was produced so far.'),
  context_id: z.string(),
  token_count: z.number().int().nonnegative().describe('How many tokens the answer was streamed as (more than 0 unless cancelled before the first).'),
  processing_time_ms: z.number().nonnegative(),
  turn_id: z.string(),
  usage: usageSchema.optional(),
  model: z.string(),
  tool_steps: z.array(toolStepSchema).optional().describe('The tools the model called, when it called any.'),
});

/** Every error response. */
export const errorResponseSchema = z.object({
  error_code: z.string(),
  message: z.string(),
  request_id: z.string(),
  detail: z.array(z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() })).optional(),
});

const checkSchema = z.object({ status: z.enum(['ok', 'error']), detail: z.string().optional() }).catchall(z.unknown());

/** Response of the health routes. */
export const healthResponseSchema = z.object({
  status: z.enum(['healthy', 'degraded']),
  service: z.literal('chatwait'),
  version: z.string(),
  environment: z.string(),
  model: z.object({ provider: z.string(), name: z.string(), demo: z.boolean() }),
  checks: z.record(z.string(), checkSchema),
});

/** The error responses every chat route may give, for the docs. */
export const chatErrorResponses = {
  400: errorResponseSchema.describe('EMPTY_MESSAGE: the message is only whitespace'),
  403: errorResponseSchema.describe('ORIGIN_NOT_ALLOWED: a browser page on another origin; HOST_NOT_ALLOWED: a loopback server reached by another host name'),
  404: errorResponseSchema.describe('NOT_FOUND'),
  409: errorResponseSchema.describe('CONVERSATION_BUSY, or IDEMPOTENCY_KEY_REUSED: the client_message_id was sent before with a different message'),
  413: errorResponseSchema.describe('PAYLOAD_TOO_LARGE'),
  415: errorResponseSchema.describe('UNSUPPORTED_MEDIA_TYPE'),
  422: errorResponseSchema.describe('VALIDATION_ERROR, with a detail list naming each field'),
  429: errorResponseSchema.describe('RATE_LIMITED or TOO_MANY_GENERATING_TURNS'),
  500: errorResponseSchema.describe('INTERNAL_ERROR'),
  502: errorResponseSchema.describe('UPSTREAM_ERROR'),
  503: errorResponseSchema.describe('MODEL_UNAVAILABLE, SERVER_BUSY, SHUTTING_DOWN, STORE_UNAVAILABLE: the conversation store cannot be used now (a full disk?), or DEPENDENCY_UNAVAILABLE: its database server cannot be reached'),
  504: errorResponseSchema.describe('UPSTREAM_TIMEOUT'),
};
