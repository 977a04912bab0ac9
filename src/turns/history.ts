import type { TurnRecord } from '../store/conversation-store.js';
import type { ChatMessage } from '../model/chat-model.js';

/** Limits on the context sent to the model, so a long conversation never overflows it. */
export interface HistoryBudget {
  maxMessages: number;
  maxChars: number;
}

/** The previous turns of a conversation as messages, oldest first; unanswered turns are left out. */
export function turnsToMessages(turns: readonly TurnRecord[]): ChatMessage[] {
  const messages: ChatMessage[] = [];
  for (const turn of turns) {
    if (turn.status === 'streaming' || turn.answer === '') continue;
    messages.push({ role: 'user', content: turn.userMessage }, { role: 'assistant', content: turn.answer });
  }
  return messages;
}

/** How many answered turns hold every message `buildContext` can keep (each turn gives two): all a new turn needs to read. */
export function historyTurnsNeeded(budget: HistoryBudget): number {
  return Math.ceil(budget.maxMessages / 2);
}

/**
 * Keeps the newest messages that fit the budget and appends the new user message, which is always
 * sent. The kept window never starts with an assistant message.
 */
export function buildContext(history: readonly ChatMessage[], message: string, budget: HistoryBudget): ChatMessage[] {
  let chars = message.length;
  let start = history.length;
  while (start > 0 && history.length - start < budget.maxMessages) {
    const next = history[start - 1]!;
    if (chars + next.content.length > budget.maxChars) break;
    chars += next.content.length;
    start--;
  }
  while (start < history.length && history[start]!.role === 'assistant') start++;
  return [...history.slice(start), { role: 'user', content: message }];
}
