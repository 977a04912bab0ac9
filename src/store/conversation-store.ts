import type { TokenUsage, TurnStatus, TurnTimings } from '../protocol/turn.js';

/** One tool call of a turn and its outcome, in the order the model made them. */
export interface ToolStep {
  callId: string;
  name: string;
  /** The arguments as the JSON text the model wrote. */
  arguments: string;
  /** What the tool gave the model; null while it runs, or when the turn ended before it finished. */
  output: string | null;
  isError: boolean;
  durationMs: number | null;
  /** How many tokens of the answer came before the call (so a token's log position can be found). */
  tokenOffset: number;
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
  /** How many token events the answer was streamed as: saved with each progress save, final when the turn ends. */
  tokenCount: number;
  /** The tools the model called while answering (empty for most turns). */
  toolSteps: ToolStep[];
}

/** A conversation without its turns, as listed. */
export interface ConversationSummary {
  contextId: string;
  /** Who may see it: a digest of the API key that created it, or null when keys are off. */
  owner: string | null;
  title: string;
  createdAt: Date;
  updatedAt: Date;
  turnCount: number;
}

/** A conversation and its turns, oldest first. */
export interface ConversationRecord extends ConversationSummary {
  turns: TurnRecord[];
}

/** One page of a conversation's turns: the newest page first, its turns oldest first. */
export interface ConversationTurnsPage extends ConversationSummary {
  turns: TurnRecord[];
  /** Pass back as `cursor` for the page of older turns; absent on the oldest page. */
  nextCursor: string | undefined;
}

/** One page of the conversation list, newest first. */
export interface ConversationPage {
  conversations: ConversationSummary[];
  /** Pass back as `cursor` for the next page; absent on the last page. */
  nextCursor: string | undefined;
}

/** What a new turn starts with; `owner` is used when the turn creates its conversation. */
export type NewTurn = Pick<TurnRecord, 'turnId' | 'contextId' | 'userMessage' | 'model' | 'clientMessageId'> & { owner: string | null };

/** How a turn ended; `toolSteps` left out means none. */
export type TurnOutcome = Pick<TurnRecord, 'status' | 'answer' | 'usage' | 'timings' | 'errorCode' | 'tokenCount'> & {
  toolSteps?: readonly ToolStep[] | undefined;
};

/** What importing one conversation did. */
export interface ImportResult {
  created: boolean;
  turnsAdded: number;
  /** Turns left out: the target already has their client_message_id in the conversation, under another turn_id. */
  turnsSkipped: number;
}

/** A turn as it is imported: a copy still `streaming` elsewhere cannot be generating here. */
export function importedTurn(turn: TurnRecord): TurnRecord {
  return turn.status === 'streaming' ? { ...turn, status: 'interrupted', finishedAt: turn.finishedAt ?? new Date() } : turn;
}

/**
 * Why a store refused to start a turn: its conversation already has a turn generating (`busy`), or the
 * turn's client_message_id was already used in it (`duplicate`). The database decides, so two instances
 * sending at once start one turn; the caller looks again at what is there and attaches or refuses.
 */
export class TurnConflictError extends Error {
  override name = 'TurnConflictError';
  constructor(readonly kind: 'busy' | 'duplicate') {
    super(
      kind === 'busy' ? 'the conversation already has a turn generating' : 'the client_message_id was already used in this conversation',
    );
  }
}

/**
 * Why a store refused a generating turn's progress or outcome: the turn is no longer `streaming` as this
 * producer's (another instance reaped it as `interrupted` while this one was paused or cut off from the
 * database, a restart marked it, it already ended, or its conversation was deleted). Nothing was
 * written, and writing again would be refused again: the producer stops, it does not retry.
 */
export class TurnFencedError extends Error {
  override name = 'TurnFencedError';
  constructor(readonly turnId: string) {
    super(`turn ${turnId} is no longer generating here, so its writes are refused`);
  }
}

/** The conversations store: memory, SQLite and (later) PostgreSQL behind one interface and one contract suite. */
export interface ConversationStore {
  /**
   * Records a turn as `streaming`, creating its conversation (titled from the message) if it is new.
   * Rejects with a TurnConflictError when the conversation has a turn streaming or the client_message_id was used.
   */
  startTurn(turn: NewTurn): Promise<TurnRecord>;
  /**
   * Saves the answer so far of a generating turn, its token count and its tool steps when it has some
   * (called in batches, never once per token). Rejects with a TurnFencedError, changing nothing, when
   * the turn is no longer `streaming` as this producer's (or no longer exists).
   */
  saveProgress(turnId: string, answer: string, tokenCount: number, toolSteps?: readonly ToolStep[]): Promise<void>;
  /**
   * Records how a turn ended and its whole answer, once: rejects with a TurnFencedError, changing
   * nothing, when the turn is no longer `streaming` as this producer's (or no longer exists).
   */
  finishTurn(turnId: string, outcome: TurnOutcome): Promise<void>;
  getTurn(turnId: string): Promise<TurnRecord | undefined>;
  /** The turn a `client_message_id` started in a conversation, if any. */
  findTurnByClientMessageId(contextId: string, clientMessageId: string): Promise<TurnRecord | undefined>;
  /** The newest turn of a conversation. */
  latestTurn(contextId: string): Promise<TurnRecord | undefined>;
  /** The owner of a conversation (null when keys are off), or undefined when there is no such conversation. */
  conversationOwner(contextId: string): Promise<string | null | undefined>;
  /** A conversation with all its turns, or undefined (for tests and tools: requests read a page at a time). */
  getConversation(contextId: string): Promise<ConversationRecord | undefined>;
  /** A conversation with one page of its turns (`limit` of them, older than `cursor`), or undefined. */
  getConversationPage(
    contextId: string,
    options: { limit: number; cursor?: string | undefined },
  ): Promise<ConversationTurnsPage | undefined>;
  /** The newest `maxTurns` answered turns of a conversation (not streaming, answer not empty), oldest first: a new turn's history. */
  recentTurns(contextId: string, maxTurns: number): Promise<TurnRecord[]>;
  /** One owner's conversations, most recently active first. */
  listConversations(options: { owner: string | null; limit: number; cursor?: string | undefined }): Promise<ConversationPage>;
  /** Sets a conversation's title; undefined when there is no such conversation. */
  renameConversation(contextId: string, title: string): Promise<ConversationSummary | undefined>;
  /** Deletes a conversation and its turns; false when there was none. */
  deleteConversation(contextId: string): Promise<boolean>;
  /** Up to `limit` conversations with all their turns, in context_id order after `after`: for copying a whole store. */
  exportConversations(options: { after?: string | undefined; limit: number }): Promise<ConversationRecord[]>;
  /**
   * Adds a conversation copied from another store, keeping its owner, title, times and turns. Turns
   * already present (by turn_id) are left as they are, so copying twice adds nothing twice; a turn whose
   * client_message_id the conversation already gave another turn is skipped and counted (one send, one
   * turn); a turn still `streaming` in the copy arrives `interrupted` (nothing here generates it).
   */
  importConversation(conversation: ConversationRecord): Promise<ImportResult>;
  /**
   * Only stores shared by several instances: ends a `streaming` turn as `cancelled` if the instance
   * generating it is dead (a cancel that reached no producer); whether it did.
   */
  endAbandonedTurn?(turnId: string): Promise<boolean>;
  /** Marks turns left `streaming` by a process that died as `interrupted`; returns how many. */
  markInterrupted(): Promise<number>;
  /**
   * Marks `interrupted`, now, a conversation's `streaming` turn if the instance generating it is dead (as the
   * instances' reaper would, a moment later); returns its turn_id, or undefined when there is none or its
   * instance lives. A store only this process uses has no other instance: it never reaps.
   */
  reapAbandonedTurn(contextId: string): Promise<string | undefined>;
  /** Resolves when the store answers; rejects when it cannot. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The title a conversation gets from its first message: one line, without control characters (as a rename requires). */
export function titleFromMessage(message: string): string {
  // Direction overrides and isolates go (they can make a title show as other text); separators become spaces.
  const line = message
    .replace(/[\u202a-\u202e\u2066-\u2069]/g, '')
    // eslint-disable-next-line no-control-regex
    .replace(/[\s\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ')
    .trim();
  const characters = [...line];
  return characters.length <= 60 ? line : `${characters.slice(0, 59).join('').trimEnd()}…`;
}

/** A list position: the last conversation of a page, by activity time then id. */
export interface ListPosition {
  updatedAt: number;
  contextId: string;
}

/** Encodes a list position as an opaque cursor. */
export function encodeCursor(position: ListPosition): string {
  return Buffer.from(`${position.updatedAt}|${position.contextId}`, 'utf8').toString('base64url');
}

/** Decodes a cursor; undefined when it is not one of ours. */
export function decodeCursor(cursor: string): ListPosition | undefined {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  // A store key: a context_id, scoped by its owner's 32-character digest and `~` when API keys are on.
  const match = /^(\d{1,15})\|([A-Za-z0-9._:~-]{1,161})$/.exec(text);
  return match ? { updatedAt: Number(match[1]), contextId: match[2]! } : undefined;
}

/** Whether a conversation comes after a list position (newest first, then id descending). */
export function isAfter(summary: ListPosition, position: ListPosition): boolean {
  return summary.updatedAt < position.updatedAt || (summary.updatedAt === position.updatedAt && summary.contextId < position.contextId);
}

/** Encodes a turn's place in its conversation (its sequence number, from 1) as an opaque cursor. */
export function encodeTurnCursor(sequence: number): string {
  return Buffer.from(`turns-before|${sequence}`, 'utf8').toString('base64url');
}

/** Decodes a turn cursor to the sequence number pages continue before; undefined when it is not one of ours. */
export function decodeTurnCursor(cursor: string): number | undefined {
  const match = /^turns-before\|(\d{1,15})$/.exec(Buffer.from(cursor, 'base64url').toString('utf8'));
  return match ? Number(match[1]) : undefined;
}
