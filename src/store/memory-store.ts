import {
  decodeCursor,
  decodeTurnCursor,
  encodeCursor,
  encodeTurnCursor,
  importedTurn,
  isAfter,
  TurnConflictError,
  TurnFencedError,
  titleFromMessage,
  type ConversationPage,
  type ImportResult,
  type ConversationRecord,
  type ConversationStore,
  type ConversationSummary,
  type ConversationTurnsPage,
  type NewTurn,
  type TurnOutcome,
  type ToolStep,
  type TurnRecord,
} from './conversation-store.js';

interface StoredConversation {
  contextId: string;
  owner: string | null;
  title: string;
  createdAt: Date;
  updatedAt: Date;
  turns: TurnRecord[];
}

/** Conversations held in process memory: for tests and `DATABASE_URL=memory`; gone when the process ends. */
export class MemoryConversationStore implements ConversationStore {
  readonly #conversations = new Map<string, StoredConversation>();
  readonly #turns = new Map<string, TurnRecord>();
  #clock = 0;

  async startTurn(turn: NewTurn): Promise<TurnRecord> {
    const now = this.#now();
    let conversation = this.#conversations.get(turn.contextId);
    if (!conversation) {
      conversation = {
        contextId: turn.contextId,
        owner: turn.owner,
        title: titleFromMessage(turn.userMessage),
        createdAt: now,
        updatedAt: now,
        turns: [],
      };
      this.#conversations.set(turn.contextId, conversation);
    }
    if (conversation.turns.some((existing) => existing.status === 'streaming')) throw new TurnConflictError('busy');
    if (turn.clientMessageId !== undefined && conversation.turns.some((existing) => existing.clientMessageId === turn.clientMessageId)) {
      throw new TurnConflictError('duplicate');
    }
    const { owner: _owner, ...fields } = turn;
    const record: TurnRecord = {
      ...fields,
      answer: '',
      status: 'streaming',
      createdAt: now,
      finishedAt: undefined,
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
      tokenCount: 0,
      toolSteps: [],
    };
    conversation.turns.push(record);
    conversation.updatedAt = now;
    this.#turns.set(turn.turnId, record);
    return copyTurn(record);
  }

  async saveProgress(turnId: string, answer: string, tokenCount: number, toolSteps?: readonly ToolStep[]): Promise<void> {
    const record = this.#turns.get(turnId);
    if (!record || record.status !== 'streaming') throw new TurnFencedError(turnId);
    record.answer = answer;
    record.tokenCount = tokenCount;
    if (toolSteps) record.toolSteps = copySteps(toolSteps);
  }

  async finishTurn(turnId: string, outcome: TurnOutcome): Promise<void> {
    const record = this.#turns.get(turnId);
    // An outcome is recorded once, as the SQL stores' compare-and-set on the status does.
    if (!record || record.status !== 'streaming') throw new TurnFencedError(turnId);
    const now = this.#now();
    const { toolSteps, ...fields } = outcome;
    Object.assign(record, fields, { finishedAt: now, toolSteps: copySteps(toolSteps ?? record.toolSteps) });
    const conversation = this.#conversations.get(record.contextId);
    if (conversation) conversation.updatedAt = now;
  }

  async getTurn(turnId: string): Promise<TurnRecord | undefined> {
    const record = this.#turns.get(turnId);
    return record && copyTurn(record);
  }

  async findTurnByClientMessageId(contextId: string, clientMessageId: string): Promise<TurnRecord | undefined> {
    const record = this.#conversations.get(contextId)?.turns.find((turn) => turn.clientMessageId === clientMessageId);
    return record && copyTurn(record);
  }

  async latestTurn(contextId: string): Promise<TurnRecord | undefined> {
    const record = this.#conversations.get(contextId)?.turns.at(-1);
    return record && copyTurn(record);
  }

  async conversationOwner(contextId: string): Promise<string | null | undefined> {
    return this.#conversations.get(contextId)?.owner;
  }

  async getConversation(contextId: string): Promise<ConversationRecord | undefined> {
    const conversation = this.#conversations.get(contextId);
    return conversation && { ...summarize(conversation), turns: conversation.turns.map(copyTurn) };
  }

  async getConversationPage(
    contextId: string,
    options: { limit: number; cursor?: string | undefined },
  ): Promise<ConversationTurnsPage | undefined> {
    const conversation = this.#conversations.get(contextId);
    if (!conversation) return undefined;
    // Turns are only ever appended, so a turn's sequence number (from 1) is its index + 1.
    const before = Math.min(
      (options.cursor === undefined ? undefined : decodeTurnCursor(options.cursor)) ?? Infinity,
      conversation.turns.length + 1,
    );
    const start = Math.max(0, before - 1 - options.limit);
    const turns = conversation.turns.slice(start, before - 1).map(copyTurn);
    return { ...summarize(conversation), turns, nextCursor: start > 0 ? encodeTurnCursor(start + 1) : undefined };
  }

  async recentTurns(contextId: string, maxTurns: number): Promise<TurnRecord[]> {
    const recent: TurnRecord[] = [];
    const turns = this.#conversations.get(contextId)?.turns ?? [];
    for (let index = turns.length - 1; index >= 0 && recent.length < maxTurns; index--) {
      const turn = turns[index]!;
      if (turn.status !== 'streaming' && turn.answer !== '') recent.push(copyTurn(turn));
    }
    return recent.reverse();
  }

  async listConversations(options: { owner: string | null; limit: number; cursor?: string | undefined }): Promise<ConversationPage> {
    const position = options.cursor === undefined ? undefined : decodeCursor(options.cursor);
    const sorted = [...this.#conversations.values()]
      .filter((conversation) => conversation.owner === options.owner)
      .map(summarize)
      .filter((summary) => !position || isAfter({ updatedAt: summary.updatedAt.getTime(), contextId: summary.contextId }, position))
      .sort((a, b) => b.updatedAt.getTime() - a.updatedAt.getTime() || (a.contextId < b.contextId ? 1 : -1));
    const page = sorted.slice(0, options.limit);
    const last = page.at(-1);
    const nextCursor =
      sorted.length > options.limit && last ? encodeCursor({ updatedAt: last.updatedAt.getTime(), contextId: last.contextId }) : undefined;
    return { conversations: page, nextCursor };
  }

  async renameConversation(contextId: string, title: string): Promise<ConversationSummary | undefined> {
    const conversation = this.#conversations.get(contextId);
    if (!conversation) return undefined;
    conversation.title = title;
    return summarize(conversation);
  }

  async deleteConversation(contextId: string): Promise<boolean> {
    const conversation = this.#conversations.get(contextId);
    if (!conversation) return false;
    for (const turn of conversation.turns) this.#turns.delete(turn.turnId);
    return this.#conversations.delete(contextId);
  }

  async exportConversations(options: { after?: string | undefined; limit: number }): Promise<ConversationRecord[]> {
    const ids = [...this.#conversations.keys()].filter((id) => options.after === undefined || id > options.after).sort();
    const records: ConversationRecord[] = [];
    for (const id of ids.slice(0, options.limit)) records.push((await this.getConversation(id))!);
    return records;
  }

  async importConversation(copy: ConversationRecord): Promise<ImportResult> {
    let conversation = this.#conversations.get(copy.contextId);
    const created = !conversation;
    if (!conversation) {
      conversation = {
        contextId: copy.contextId,
        owner: copy.owner,
        title: copy.title,
        createdAt: copy.createdAt,
        updatedAt: copy.updatedAt,
        turns: [],
      };
      this.#conversations.set(copy.contextId, conversation);
    }
    let turnsAdded = 0;
    let turnsSkipped = 0;
    for (const turn of copy.turns) {
      if (this.#turns.has(turn.turnId)) continue;
      if (turn.clientMessageId !== undefined && conversation.turns.some((existing) => existing.clientMessageId === turn.clientMessageId)) {
        turnsSkipped++;
        continue;
      }
      const record = copyTurn(importedTurn(turn));
      conversation.turns.push(record);
      this.#turns.set(record.turnId, record);
      turnsAdded++;
    }
    return { created, turnsAdded, turnsSkipped };
  }

  async markInterrupted(): Promise<number> {
    let count = 0;
    for (const record of this.#turns.values()) {
      if (record.status !== 'streaming') continue;
      Object.assign(record, { status: 'interrupted', finishedAt: this.#now() });
      count++;
    }
    return count;
  }

  async reapAbandonedTurn(): Promise<string | undefined> {
    // Only this process writes here: a turn `streaming` is this process's own, or one a restart marks.
    return undefined;
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}

  /** A clock that never repeats a millisecond, so the newest-first order is total even within one. */
  #now(): Date {
    this.#clock = Math.max(Date.now(), this.#clock + 1);
    return new Date(this.#clock);
  }
}

/** Readers get copies, so nothing they do changes the store (and a generation's live step list is never shared). */
function copyTurn(turn: TurnRecord): TurnRecord {
  return { ...turn, toolSteps: copySteps(turn.toolSteps) };
}

function copySteps(steps: readonly ToolStep[]): ToolStep[] {
  return steps.map((step) => ({ ...step }));
}

function summarize(conversation: StoredConversation): ConversationSummary {
  return {
    contextId: conversation.contextId,
    owner: conversation.owner,
    title: conversation.title,
    createdAt: conversation.createdAt,
    updatedAt: conversation.updatedAt,
    turnCount: conversation.turns.length,
  };
}
