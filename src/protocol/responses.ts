import { z } from 'zod';
import { answerFinishReasonSchema, tokenUsageSchema, turnStatusSchema, turnTimingsSchema } from './turn.js';

// The JSON bodies the API answers with. The server's routes declare them as their responses (Fastify
// validates what it sends against them and the OpenAPI document is generated from them); clients
// import the inferred types.

/** One tool call of a turn, as the API shows it. */
export const toolStepSchema = z
  .object({
    call_id: z.string(),
    name: z.string(),
    arguments: z.string().describe('The arguments as the JSON text the model wrote.'),
    output: z
      .string()
      .nullable()
      .describe('What the tool gave the model ("Error: …" when it failed or timed out); null if the turn ended first.'),
    is_error: z.boolean(),
    duration_ms: z.number().nullable(),
    token_offset: z.number().int().describe('How many tokens of the answer came before the call.'),
  })
  .describe('A tool the model called while answering.');
/** One tool call of a turn, as the API shows it. */
export type ToolStepBody = z.infer<typeof toolStepSchema>;

/** The answer of `POST /api/v1/chat/wait`. */
export const waitResponseSchema = z.object({
  message: z.string().describe('The whole answer.'),
  finish_reason: answerFinishReasonSchema.describe('"cancelled" when the turn was stopped: `message` is then what was produced so far.'),
  context_id: z.string(),
  token_count: z
    .number()
    .int()
    .nonnegative()
    .describe('How many tokens the answer was streamed as (more than 0 unless cancelled before the first).'),
  processing_time_ms: z.number().nonnegative(),
  turn_id: z.string(),
  usage: tokenUsageSchema.optional(),
  model: z.string(),
  tool_steps: z.array(toolStepSchema).optional().describe('The tools the model called, when it called any.'),
});
/** The answer of `POST /api/v1/chat/wait`. */
export type WaitResponse = z.infer<typeof waitResponseSchema>;

/** The answer of `POST /api/v1/chat/turns/{turn_id}/cancel`: the turn's status once stopped (or as it already ended). */
export const cancelResponseSchema = z.object({ turn_id: z.string(), context_id: z.string(), status: turnStatusSchema });
/** The answer of the cancel route. */
export type CancelResponse = z.infer<typeof cancelResponseSchema>;

/** A conversation without its turns, as listed. */
export const conversationSummarySchema = z.object({
  context_id: z.string(),
  title: z.string(),
  created_at: z.string().describe('ISO 8601'),
  updated_at: z.string().describe('ISO 8601: the last turn started or ended'),
  turn_count: z.number().int(),
});
/** A conversation without its turns, as listed. */
export type ConversationSummaryBody = z.infer<typeof conversationSummarySchema>;

/** One turn of a conversation: the user's message, the answer and how it ended. */
export const turnBodySchema = z.object({
  turn_id: z.string(),
  user_message: z.string(),
  answer: z.string().describe('The assistant message: whole, or what was produced before a cancel or failure.'),
  status: turnStatusSchema,
  model: z.string(),
  token_count: z.number().int(),
  created_at: z.string(),
  finished_at: z.string().nullable(),
  usage: tokenUsageSchema.nullable(),
  timings: turnTimingsSchema.nullable(),
  error_code: z.string().nullable(),
  tool_steps: z.array(toolStepSchema).describe('The tools the model called while answering, in order (empty for most turns).'),
});
/** One turn of a conversation. */
export type TurnBody = z.infer<typeof turnBodySchema>;

/** The answer of `GET /api/v1/conversations`: a page of conversations, most recently active first. */
export const conversationListSchema = z.object({ conversations: z.array(conversationSummarySchema), next_cursor: z.string().nullable() });
/** A page of conversations. */
export type ConversationList = z.infer<typeof conversationListSchema>;

/** The answer of `GET /api/v1/conversations/{context_id}`: the conversation and one page of its turns. */
export const conversationPageSchema = conversationSummarySchema.extend({
  turns: z.array(turnBodySchema).describe('One page of turns, oldest first.'),
  next_cursor: z.string().nullable().describe('Pass as `cursor` for the older turns; null when there are none.'),
});
/** A conversation and one page of its turns. */
export type ConversationPageBody = z.infer<typeof conversationPageSchema>;

/** One entry of a 422 `detail` list (FastAPI's shape): where the field is and what is wrong with it. */
export const validationDetailSchema = z.object({ loc: z.array(z.union([z.string(), z.number()])), msg: z.string(), type: z.string() });
/** One entry of a 422 `detail` list. */
export type ValidationDetail = z.infer<typeof validationDetailSchema>;

/** Every error response. */
export const errorBodySchema = z.object({
  error_code: z.string(),
  message: z.string().describe('What went wrong and how to fix it; never internals.'),
  request_id: z.string(),
  retryable: z.boolean().describe('True when sending the same request again may succeed (after `Retry-After`, when given).'),
  detail: z.array(validationDetailSchema).optional(),
});
/** Every error response. */
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** The model a server answers with. */
export const modelInfoSchema = z.object({
  provider: z.string(),
  name: z.string(),
  demo: z.boolean().describe('True for the built-in demo model (no provider).'),
});

/** The answer of `GET /api/v1/config`: what clients need to know about the server (nothing secret). */
export const clientConfigSchema = z.object({
  default_chat_mode: z.enum(['wait', 'streaming']),
  show_mode_selector: z.boolean(),
  auth_required: z.boolean().describe('True when requests need `Authorization: Bearer <key>`.'),
  model: modelInfoSchema,
});
/** The answer of `GET /api/v1/config`. */
export type ClientConfig = z.infer<typeof clientConfigSchema>;

/** One dependency's state in the health answer; checks add their own fields. */
export const healthCheckSchema = z.object({ status: z.enum(['ok', 'error']), detail: z.string().optional() }).catchall(z.unknown());
/** One dependency's state in the health answer. */
export type HealthCheck = z.infer<typeof healthCheckSchema>;

/** The answer of `/health` and `/api/v1/health`. */
export const healthResponseSchema = z.object({
  status: z.enum(['healthy', 'degraded']),
  service: z.literal('chatwait'),
  version: z.string(),
  environment: z.string(),
  model: modelInfoSchema,
  checks: z.record(z.string(), healthCheckSchema),
});
/** The answer of the health routes. */
export type HealthResponse = z.infer<typeof healthResponseSchema>;

/** The answer of `/api/v1/health/live`. */
export const livenessResponseSchema = z.object({ status: z.literal('alive') });

/** The 200 answer of `/api/v1/health/ready`. */
export const readyResponseSchema = z.object({ status: z.literal('ready') });

/** The 503 answer of `/api/v1/health/ready`: why this instance should get no traffic. */
export const notReadyResponseSchema = z.object({
  status: z.literal('not_ready'),
  reason: z.string(),
  checks: z.record(z.string(), z.unknown()).optional(),
});
