import {
  titleFromMessage,
  type ConversationRecord,
  type ConversationStore,
  type NewTurn,
  type TurnOutcome,
  type TurnRecord,
} from './conversation-store.js';

/** Conversations held in process memory: for tests and `DATABASE_URL=memory`; gone when the process ends. */
export class MemoryConversationStore implements ConversationStore {
  readonly #conversations = new Map<string, ConversationRecord>();
  readonly #turns = new Map<string, TurnRecord>();

  async startTurn(turn: NewTurn): Promise<TurnRecord> {
    const now = new Date();
    let conversation = this.#conversations.get(turn.contextId);
    if (!conversation) {
      conversation = { contextId: turn.contextId, title: titleFromMessage(turn.userMessage), createdAt: now, updatedAt: now, turns: [] };
      this.#conversations.set(turn.contextId, conversation);
    }
    const record: TurnRecord = {
      ...turn,
      answer: '',
      status: 'streaming',
      createdAt: now,
      finishedAt: undefined,
      usage: undefined,
      timings: undefined,
      errorCode: undefined,
    };
    conversation.turns.push(record);
    conversation.updatedAt = now;
    this.#turns.set(turn.turnId, record);
    return { ...record };
  }

  async finishTurn(turnId: string, outcome: TurnOutcome): Promise<void> {
    const record = this.#turns.get(turnId);
    if (!record) return;
    Object.assign(record, outcome, { finishedAt: new Date() });
  }

  async getConversation(contextId: string): Promise<ConversationRecord | undefined> {
    const conversation = this.#conversations.get(contextId);
    return conversation && { ...conversation, turns: conversation.turns.map((turn) => ({ ...turn })) };
  }

  async ping(): Promise<void> {}

  async close(): Promise<void> {}
}
