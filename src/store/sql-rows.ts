import type { ConversationSummary, ToolStep, TurnRecord } from './conversation-store.js';
import type { TurnStatus } from '../protocol/turn.js';

// The rows of the SQL stores' tables (SQLite and PostgreSQL keep the same columns, JSON as TEXT), and
// the records they become. PostgreSQL's TEXT cannot hold NUL: its store passes `fromStoredText` to decode its texts.

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

/** The record a `turns` row holds; `text` decodes the user's message and the answer as the store keeps them. */
export function toTurn(row: TurnRow, text: (stored: string) => string = (stored) => stored): TurnRecord {
  return {
    turnId: row.turn_id,
    contextId: row.context_id,
    userMessage: text(row.user_message),
    answer: text(row.answer),
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

/**
 * A copied turn's values in the order of the columns `turn_id, context_id, user_message, answer, status,
 * model, created_at, finished_at, usage, timings, error_code, client_message_id, token_count, tool_steps`;
 * `text` encodes the user's message and the answer as the store keeps them.
 */
export function turnValues(turn: TurnRecord, contextId: string, text: (value: string) => string = (value) => value): unknown[] {
  return [
    turn.turnId,
    contextId,
    text(turn.userMessage),
    text(turn.answer),
    turn.status,
    turn.model,
    turn.createdAt.getTime(),
    turn.finishedAt?.getTime() ?? null,
    turn.usage ? JSON.stringify(turn.usage) : null,
    turn.timings ? JSON.stringify(turn.timings) : null,
    turn.errorCode ?? null,
    turn.clientMessageId ?? null,
    turn.tokenCount,
    turn.toolSteps.length > 0 ? JSON.stringify(turn.toolSteps) : null,
  ];
}

/**
 * Given the (client_message_id, turn_id) pairs a conversation already has, whether a copied turn must be
 * skipped: its client_message_id there belongs to another turn (the unique index would refuse it, and
 * one send is one turn), as opposed to the same turn copied before, which the insert leaves alone.
 */
export function conflictsWith(used: readonly { client_message_id: string; turn_id: string }[]): (turn: TurnRecord) => boolean {
  const owners = new Map(used.map((row) => [row.client_message_id, row.turn_id]));
  return (turn) => {
    const owner = turn.clientMessageId === undefined ? undefined : owners.get(turn.clientMessageId);
    return owner !== undefined && owner !== turn.turnId;
  };
}
