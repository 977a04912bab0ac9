import { tool } from '@openai/agents-core';
import { z } from 'zod';
import type { ChatTool } from './chat-tool.js';
import { EXPRESSION_NAMES, evaluateExpression, formatNumber, MAX_EXPRESSION_CHARS } from './expression.js';

/** `calculate`: evaluates arithmetic exactly as written, with a parser of our own (never `eval`). */
export function createCalculatorTool(): ChatTool {
  return tool({
    name: 'calculate',
    description: [
      'Evaluates an arithmetic expression and returns its value. Use it for any calculation instead of doing it in your head.',
      `Supports numbers (3.5, 1e6), + - * / % (remainder), ^ or ** (power), parentheses, the functions ${EXPRESSION_NAMES.functions.join(', ')}`,
      `and the constants ${EXPRESSION_NAMES.constants.join(', ')}. At most ${MAX_EXPRESSION_CHARS} characters.`,
    ].join(' '),
    parameters: z.object({
      expression: z.string().describe('The expression, for example "12 * (3 + 4)" or "sqrt(2) ^ 2"'),
    }),
    errorFunction: null,
    execute: ({ expression }) => `${expression.trim()} = ${formatNumber(evaluateExpression(expression))}`,
  });
}
