import type { TokenUsage } from '../chat/chat-model.js';

/** Where a turn stands: generating, or how it ended. */
export type TurnStatus = 'streaming' | 'complete' | 'cancelled' | 'interrupted' | 'error';

/** Time to first token and total time of a turn, in milliseconds. */
export interface TurnTimings {
  ttft_ms: number | null;
  total_ms: number;
}

/** One exchange of a conversation: the user's message and the assistant's answer. */
export interface TurnRecord {
  turnId: string;
  contextId: string;
  userMessage: string;
  answer: string;
  status: TurnStatus;
  model: string;
  createdAt: Date;
  finishedAt: Date | undefined;
  usage: TokenUsage | undefined;
  timings: TurnTimings | undefined;
  errorCode: string | undefined;
  clientMessageId: string | undefined;
}

/** A conversation and its turns, oldest first. */
export interface ConversationRecord {
  contextId: string;
  title: string;
  createdAt: Date;
  updatedAt: Date;
  turns: TurnRecord[];
}

/** What a new turn starts with. */
export type NewTurn = Pick<TurnRecord, 'turnId' | 'contextId' | 'userMessage' | 'model' | 'clientMessageId'>;

/** How a turn ended. */
export type TurnOutcome = Pick<TurnRecord, 'status' | 'answer' | 'usage' | 'timings' | 'errorCode'>;

/** The conversations store: memory now, SQLite and PostgreSQL behind the same interface. */
export interface ConversationStore {
  /** Records a turn as `streaming`, creating its conversation (titled from the message) if it is new. */
  startTurn(turn: NewTurn): Promise<TurnRecord>;
  /** Records how a turn ended and its answer. */
  finishTurn(turnId: string, outcome: TurnOutcome): Promise<void>;
  /** A conversation with all its turns, or undefined. */
  getConversation(contextId: string): Promise<ConversationRecord | undefined>;
  /** Resolves when the store answers; rejects when it cannot. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The title a conversation gets from its first message. */
export function titleFromMessage(message: string): string {
  const line = message.replace(/\s+/g, ' ').trim();
  const characters = [...line];
  return characters.length <= 60 ? line : `${characters.slice(0, 59).join('').trimEnd()}…`;
}
