import { z } from 'zod';

// The OpenAI-compatible API's wire format (`/v1/chat/completions`, `/v1/models`): the request ChatWait
// reads and the bodies it answers with, named and shaped as OpenAI's API names and shapes them. Fields
// clients send that ChatWait does not use are accepted and ignored (see the README), hence loose objects.

/** One part of an array `content`: ChatWait reads `text` parts; any other type is refused with a 400. */
const contentPartSchema = z.looseObject({
  type: z.string({ error: 'a content part needs a type' }),
  text: z.string({ error: 'a text part needs its text as a string' }).optional(),
});

/** One message of `messages`, as OpenAI's chat-completions API takes it. */
export const openAIMessageSchema = z.looseObject({
  role: z.enum(['system', 'developer', 'user', 'assistant', 'tool', 'function'], {
    error: 'role must be one of system, developer, user, assistant, tool, function',
  }),
  content: z.union([z.string(), z.array(contentPartSchema), z.null()], { error: 'content must be a string or a list of parts' }).optional(),
  name: z.string().optional(),
  tool_calls: z.array(z.unknown()).nullish(),
});
/** One message of `messages`. */
export type OpenAIMessage = z.infer<typeof openAIMessageSchema>;

/** The body of `POST /v1/chat/completions`: the fields ChatWait reads; any other is accepted and ignored. */
export const chatCompletionRequestSchema = z
  .looseObject({
    model: z.string({ error: 'model must be a string' }).min(1, 'model must not be empty').describe('A model id `/v1/models` lists.'),
    messages: z
      .array(openAIMessageSchema, { error: 'messages must be a list of messages' })
      .min(1, 'messages must hold at least one message')
      .max(1_000, 'messages must hold at most 1,000 messages')
      .describe(
        'The last one is the user message of the new turn; earlier user and assistant ones are its history; system and developer ones are its instructions.',
      ),
    stream: z.boolean({ error: 'stream must be a boolean' }).nullish(),
    stream_options: z.looseObject({ include_usage: z.boolean().nullish() }).nullish(),
    n: z.number({ error: 'n must be a number' }).int().nullish().describe('Only 1 is supported.'),
    tools: z.array(z.unknown()).nullish().describe('Refused with a 400 when not empty: ChatWait runs its own tools on the server.'),
    tool_choice: z.unknown().optional(),
    functions: z.array(z.unknown()).nullish().describe('Refused with a 400 when not empty, as `tools`.'),
    response_format: z.looseObject({ type: z.string() }).nullish().describe('Only `{"type":"text"}` is supported.'),
  })
  .describe('OpenAI chat-completions request. temperature, max_tokens and the other sampling fields are accepted and ignored.');
/** The body of `POST /v1/chat/completions`. */
export type ChatCompletionRequest = z.infer<typeof chatCompletionRequestSchema>;

/** Why an answer ended, in OpenAI's words (a cancelled turn says `stop`; see `chatwait_finish_reason`). */
export const openAIFinishReasonSchema = z.enum(['stop', 'length', 'content_filter']);
/** Why an answer ended, in OpenAI's words. */
export type OpenAIFinishReason = z.infer<typeof openAIFinishReasonSchema>;

/** Token counts in OpenAI's names. */
export const openAIUsageSchema = z
  .object({
    prompt_tokens: z.number().int().nonnegative(),
    completion_tokens: z.number().int().nonnegative(),
    total_tokens: z.number().int().nonnegative(),
  })
  .describe("The model's counts; when it reported none, `completion_tokens` is the answer's `token_count` and `prompt_tokens` is 0.");
/** Token counts in OpenAI's names. */
export type OpenAIUsage = z.infer<typeof openAIUsageSchema>;

const chatwaitFinishReason = z
  .literal('cancelled')
  .optional()
  .describe('Present when the turn was cancelled (`POST /api/v1/chat/turns/{turn_id}/cancel`): `finish_reason` then says `stop`.');

/** The answer of a request without `stream`: a `chat.completion`. */
export const chatCompletionSchema = z.object({
  id: z.string().describe('`chatcmpl-<turn_id>`'),
  object: z.literal('chat.completion'),
  created: z.number().int().describe('When the turn started, in Unix seconds.'),
  model: z.string(),
  choices: z.array(
    z.object({
      index: z.literal(0),
      message: z.object({ role: z.literal('assistant'), content: z.string(), refusal: z.null() }),
      logprobs: z.null(),
      finish_reason: openAIFinishReasonSchema,
      chatwait_finish_reason: chatwaitFinishReason,
    }),
  ),
  usage: openAIUsageSchema,
});
/** The answer of a request without `stream`. */
export type ChatCompletion = z.infer<typeof chatCompletionSchema>;

/** One event of a streamed answer: a `chat.completion.chunk`. */
export const chatCompletionChunkSchema = z
  .object({
    id: z.string().describe('`chatcmpl-<turn_id>`, the same in every chunk of the answer'),
    object: z.literal('chat.completion.chunk'),
    created: z.number().int(),
    model: z.string(),
    choices: z
      .array(
        z.object({
          index: z.literal(0),
          delta: z.object({ role: z.literal('assistant').optional(), content: z.string().optional() }),
          logprobs: z.null(),
          finish_reason: openAIFinishReasonSchema.nullable(),
          chatwait_finish_reason: chatwaitFinishReason,
        }),
      )
      .describe('One choice; empty in the usage chunk.'),
    usage: openAIUsageSchema.nullable().optional().describe('Only in the last chunk, with `stream_options.include_usage`.'),
  })
  .describe(
    'A text/event-stream: the role chunk, one chunk per text delta, the chunk with `finish_reason`, the usage chunk (with `stream_options.include_usage`), then `data: [DONE]`. Each chunk but the last two has an `id:` line `<turn_id>/<position>`: resend the request with `Last-Event-ID` to resume after it.',
  );
/** One event of a streamed answer. */
export type ChatCompletionChunk = z.infer<typeof chatCompletionChunkSchema>;

/** A model as `/v1/models` lists it. */
export const openAIModelSchema = z.object({
  id: z.string(),
  object: z.literal('model'),
  created: z.number().int(),
  owned_by: z.string(),
});
/** A model as `/v1/models` lists it. */
export type OpenAIModel = z.infer<typeof openAIModelSchema>;

/** The answer of `GET /v1/models`. */
export const openAIModelListSchema = z.object({ object: z.literal('list'), data: z.array(openAIModelSchema) });

/** The path of `GET /v1/models/{model}`. */
export const openAIModelParamsSchema = z.object({ model: z.string() });

/** An error, in OpenAI's format: the body of every error response and of an error event in a stream. */
export const openAIErrorSchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string().describe('invalid_request_error, requests (429) or server_error'),
    param: z.string().nullable().describe('The request field at fault, as `messages[2].content`'),
    code: z.string().nullable().describe('invalid_api_key, model_not_found, rate_limit_exceeded, or the ChatWait error_code in lower case'),
  }),
});
/** An error, in OpenAI's format. */
export type OpenAIError = z.infer<typeof openAIErrorSchema>;
