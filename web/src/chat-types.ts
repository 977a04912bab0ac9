import type { ApiError } from './api';

/** Figures shown on demand under an answer. */
export interface AnswerDetails {
  model: string;
  ttftMs: number | null;
  totalMs: number | null;
  tokenCount: number;
}

/** A tool the model called while answering: running until `output` arrives. */
export interface ToolStepView {
  callId: string;
  name: string;
  arguments: string;
  output?: string;
  isError: boolean;
  durationMs?: number;
}

/** One bubble of the conversation. */
export interface ChatMessage {
  id: string;
  role: 'user' | 'assistant';
  text: string;
  /** waiting: no token yet; streaming: tokens arriving; the rest are how it ended. */
  status: 'waiting' | 'streaming' | 'done' | 'cancelled' | 'interrupted' | 'error';
  turnId?: string;
  /** The user message an answer replies to (for Retry and Regenerate). */
  prompt?: string;
  error?: ApiError;
  reconnecting?: boolean;
  details?: AnswerDetails;
  /** Tools called for this answer, in order. */
  steps?: ToolStepView[];
}

/** Tokens per second of an answer, from its timings. */
export function tokensPerSecond(details: AnswerDetails): number | null {
  if (details.totalMs === null || details.ttftMs === null || details.tokenCount < 2) return null;
  const streamingMs = details.totalMs - details.ttftMs;
  return streamingMs > 0 ? (details.tokenCount / streamingMs) * 1000 : null;
}
