import type { ConversationSummary, ToolStep, TurnRecord } from './conversation-store.js';
import type { TurnStatus } from '../protocol/turn.js';

// The rows of the SQLite store's tables, and the records they become.

/** A row of `turns`. */
export interface TurnRow {
  turn_id: string;
  context_id: string;
  sequence: number;
  user_message: string;
  answer: string;
  status: TurnStatus;
  model: string;
  created_at: number;
  finished_at: number | null;
  usage: string | null;
  timings: string | null;
  error_code: string | null;
  client_message_id: string | null;
  token_count: number;
  tool_steps: string | null;
}

/** A row of `conversations` with its turn count. */
export interface ConversationRow {
  context_id: string;
  owner: string | null;
  title: string;
  created_at: number;
  updated_at: number;
  turn_count: number;
}

/** The columns of a conversation summary (`c` is `conversations`). */
export const SUMMARY_COLUMNS = `c.context_id, c.owner, c.title, c.created_at, c.updated_at,
  (SELECT COUNT(*) FROM turns t WHERE t.context_id = c.context_id) AS turn_count`;

/** The record a `turns` row holds. */
export function toTurn(row: TurnRow): TurnRecord {
  return {
    turnId: row.turn_id,
    contextId: row.context_id,
    userMessage: row.user_message,
    answer: row.answer,
    status: row.status,
    model: row.model,
    createdAt: new Date(row.created_at),
    finishedAt: row.finished_at === null ? undefined : new Date(row.finished_at),
    usage: row.usage === null ? undefined : JSON.parse(row.usage),
    timings: row.timings === null ? undefined : JSON.parse(row.timings),
    errorCode: row.error_code ?? undefined,
    clientMessageId: row.client_message_id ?? undefined,
    tokenCount: row.token_count,
    toolSteps: row.tool_steps === null ? [] : (JSON.parse(row.tool_steps) as ToolStep[]),
  };
}

/** The summary a `conversations` row holds. */
export function toSummary(row: ConversationRow): ConversationSummary {
  return {
    contextId: row.context_id,
    owner: row.owner,
    title: row.title,
    createdAt: new Date(row.created_at),
    updatedAt: new Date(row.updated_at),
    turnCount: row.turn_count,
  };
}
