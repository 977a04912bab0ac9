import { describe, expect, it } from 'vitest';
import type { ChatMessage } from '../model/chat-model.js';
import { buildContext } from './history.js';

const conversation = (pairs: number): ChatMessage[] =>
  Array.from({ length: pairs }, (_, index) => [
    { role: 'user' as const, content: `question ${index}` },
    { role: 'assistant' as const, content: `answer ${index}` },
  ]).flat();

describe('buildContext', () => {
  it('sends the whole history when it fits, then the new message', () => {
    const context = buildContext(conversation(2), 'new', { maxMessages: 50, maxChars: 10_000 });
    expect(context.map((message) => message.content)).toEqual(['question 0', 'answer 0', 'question 1', 'answer 1', 'new']);
  });

  it('keeps the newest messages within the message budget, starting on a user message', () => {
    const context = buildContext(conversation(5), 'new', { maxMessages: 3, maxChars: 10_000 });
    expect(context.map((message) => message.content)).toEqual(['question 4', 'answer 4', 'new']);
  });

  it('keeps the newest messages within the character budget', () => {
    const history = [
      ...conversation(3),
      { role: 'user' as const, content: 'x'.repeat(50) },
      { role: 'assistant' as const, content: 'y'.repeat(50) },
    ];
    const context = buildContext(history, 'new', { maxMessages: 50, maxChars: 110 });
    expect(context.map((message) => message.content.slice(0, 10))).toEqual(['x'.repeat(10), 'y'.repeat(10), 'new']);
  });

  it('always sends the new message, even past the budget', () => {
    expect(buildContext(conversation(2), 'z'.repeat(500), { maxMessages: 0, maxChars: 10 })).toEqual([
      { role: 'user', content: 'z'.repeat(500) },
    ]);
  });
});
