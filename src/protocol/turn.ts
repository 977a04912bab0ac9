import { z } from 'zod';

// What a turn is and how it ended, as the API and the stream say it. The types are inferred from these
// schemas and never written again elsewhere.

/** Where a turn stands: generating, or how it ended. */
export const turnStatusSchema = z.enum(['streaming', 'complete', 'cancelled', 'interrupted', 'error']);
/** Where a turn stands: generating, or how it ended. */
export type TurnStatus = z.infer<typeof turnStatusSchema>;

/** Why a turn's answer ended: `stop` (complete), `cancelled`; a resync also reports `interrupted` or `error`. */
export const finishReasonSchema = z.enum(['stop', 'cancelled', 'interrupted', 'error']);
/** Why a turn's answer ended. */
export type FinishReason = z.infer<typeof finishReasonSchema>;

/** How a turn that produced its answer ended, as `wait` reports it: `stop`, or `cancelled` with the answer so far. */
export const answerFinishReasonSchema = finishReasonSchema.extract(['stop', 'cancelled']);
/** How a turn that produced its answer ended. */
export type AnswerFinishReason = z.infer<typeof answerFinishReasonSchema>;

/** Token usage reported by the model for one turn. */
export const tokenUsageSchema = z
  .object({
    input_tokens: z.number().int().nonnegative(),
    output_tokens: z.number().int().nonnegative(),
    total_tokens: z.number().int().nonnegative(),
  })
  .describe('Token usage reported by the model.');
/** Token usage reported by the model for one turn. */
export type TokenUsage = z.infer<typeof tokenUsageSchema>;

/** Time to first token and total time of a turn, in milliseconds. */
export const turnTimingsSchema = z
  .object({
    ttft_ms: z.number().nonnegative().nullable().describe('Time to the first token; null when no token came.'),
    total_ms: z.number().nonnegative(),
  })
  .describe('How long the turn took, in milliseconds.');
/** Time to first token and total time of a turn, in milliseconds. */
export type TurnTimings = z.infer<typeof turnTimingsSchema>;

export { ID_PATTERN } from './ids.js';
