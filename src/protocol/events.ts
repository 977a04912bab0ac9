import { z } from 'zod';
import { finishReasonSchema, tokenUsageSchema, turnTimingsSchema } from './turn.js';

// The events of `/chat/streaming`, one discriminated union on `type`. Each event also carries
// `event_type`, the original ChatWait field, with the same value. The server's hot path builds token
// events by hand (see wire-events.ts); a test parses every builder's output with these schemas. The ids
// name the events' schemas in the OpenAPI document.

/** Opens every connection's stream: which turn it reads and whether it joined one already under way. */
export const startEventSchema = z
  .object({
    type: z.literal('start'),
    event_type: z.literal('start'),
    context_id: z.string(),
    turn_id: z.string(),
    resumed: z.boolean().describe('True when the connection joined or resumed a turn that already existed.'),
    model: z.string(),
  })
  .meta({
    id: 'StartEvent',
    description: "Opens every connection's stream: which turn it reads and whether it joined one already under way.",
  });

/** A text delta exactly as the model produced it. */
export const tokenEventSchema = z
  .object({
    token: z.string(),
    token_index: z.number().int().nonnegative().describe('0-based; counts text deltas only.'),
    context_id: z.string(),
    event_type: z.literal('token'),
    type: z.literal('token'),
  })
  .meta({ id: 'TokenEvent', description: 'A text delta exactly as the model produced it.' });

/** A function call the model asked for. */
export const toolCallEventSchema = z
  .object({
    type: z.literal('tool_call'),
    event_type: z.literal('tool_call'),
    call_id: z.string(),
    name: z.string(),
    arguments: z.string().describe('The arguments as the JSON text the model wrote.'),
  })
  .meta({ id: 'ToolCallEvent', description: 'A function call the model asked for.' });

/** What a call gave the model and how long it ran. */
export const toolResultEventSchema = z
  .object({
    type: z.literal('tool_result'),
    event_type: z.literal('tool_result'),
    call_id: z.string(),
    output: z.string().describe('"Error: …" when the tool failed or timed out.'),
    is_error: z.boolean(),
    duration_ms: z.number().nonnegative(),
  })
  .meta({ id: 'ToolResultEvent', description: 'What a call gave the model and how long it ran.' });

/** The last event of a turn that ended without a failure: the whole answer. */
export const endEventSchema = z
  .object({
    type: z.literal('end'),
    event_type: z.literal('end'),
    context_id: z.string(),
    turn_id: z.string(),
    final_output: z.string(),
    token_count: z.number().int().nonnegative(),
    finish_reason: finishReasonSchema,
    usage: tokenUsageSchema.nullable(),
    timings: turnTimingsSchema,
    model: z.string(),
  })
  .meta({ id: 'EndEvent', description: 'The last event of a turn that ended without a failure: the whole answer.' });

/** A failure after the stream has begun; the stream ends after it. */
export const errorEventSchema = z
  .object({
    type: z.literal('error'),
    event_type: z.literal('error'),
    context_id: z.string(),
    turn_id: z.string(),
    error_code: z.string(),
    message: z.string(),
    retryable: z.boolean().describe('True when sending the same request again may succeed.'),
  })
  .meta({ id: 'ErrorEvent', description: 'A failure after the stream has begun; the stream ends after it.' });

/** The whole stored answer of a turn that has left the replay log; an `end` follows. */
export const resyncEventSchema = z
  .object({
    type: z.literal('resync'),
    event_type: z.literal('resync'),
    turn_id: z.string(),
    final_output: z.string(),
    token_count: z.number().int().nonnegative(),
  })
  .meta({ id: 'ResyncEvent', description: 'The whole stored answer of a turn that has left the replay log; an `end` follows.' });

/** Any event of the stream. */
export const streamEventSchema = z
  .discriminatedUnion('type', [
    startEventSchema,
    tokenEventSchema,
    toolCallEventSchema,
    toolResultEventSchema,
    endEventSchema,
    errorEventSchema,
    resyncEventSchema,
  ])
  .meta({ id: 'StreamEvent', description: 'One event of the stream: the JSON of its `data:` line.' });

/** Any event of the stream. */
export type StreamEvent = z.infer<typeof streamEventSchema>;
/** The `start` event. */
export type StartEvent = z.infer<typeof startEventSchema>;
/** A `token` event. */
export type TokenEvent = z.infer<typeof tokenEventSchema>;
/** A `tool_call` event. */
export type ToolCallEvent = z.infer<typeof toolCallEventSchema>;
/** A `tool_result` event. */
export type ToolResultEvent = z.infer<typeof toolResultEventSchema>;
/** The `end` event. */
export type EndEvent = z.infer<typeof endEventSchema>;
/** An `error` event. */
export type ErrorEvent = z.infer<typeof errorEventSchema>;
/** A `resync` event. */
export type ResyncEvent = z.infer<typeof resyncEventSchema>;
/** The name of an event type. */
export type StreamEventType = StreamEvent['type'];
