import { ModelTimeoutError } from '@openai/agents-core';
import { assistantMessage, functionCall, modelError, ScriptedModel } from '@openai/agents-core/testing';
import { APIError } from 'openai';
import { describe, expect, it } from 'vitest';
import { ChatWaitError } from '../errors.js';
import type { ModelStreamEvent } from './chat-model.js';
import { streamDirect, type ToolLoopOptions } from './tool-loop.js';
import { ToolSupport, type ToolSupportLevel } from './tool-support.js';
import { createCalculatorTool } from './tools/calculator.js';
import { toUpstreamError } from './upstream-errors.js';
import { normalizeUpstreamFailure } from './upstream-failure.js';

const providerError = (status: number, message: string) => APIError.generate(status, { error: { message } }, undefined, new Headers());
const retry = { maxRetries: 2, initialDelayMs: 1, maxRetryAfterMs: 10_000 };

function tools(support?: ToolSupport): ToolLoopOptions {
  const calculator = createCalculatorTool();
  return { tools: new Map([[calculator.name, calculator]]), timeoutMs: 5000, maxRounds: 2, support };
}

/** Runs one answer on a ScriptedModel; its events, or the ChatWaitError it ended with. */
async function answer(model: ScriptedModel, toolLoop?: ToolLoopOptions): Promise<{ events: ModelStreamEvent[]; error?: ChatWaitError }> {
  const events: ModelStreamEvent[] = [];
  const input = [{ role: 'user' as const, content: 'hello' }];
  try {
    for await (const event of streamDirect({
      model,
      instructions: 'be brief',
      input,
      settings: {},
      signal: new AbortController().signal,
      retry,
      toolLoop,
    }))
      events.push(event);
    return { events };
  } catch (error) {
    expect(error).toBeInstanceOf(ChatWaitError);
    return { events, error: error as ChatWaitError };
  }
}

describe('an upstream failure, wrapped or not', () => {
  // Before one normaliser, the error mapping read the cause chain and the retry and the tool-refusal check did not,
  // and the retry took a 408 for transient while the mapping called it a refusal.
  const wrapped = {
    'a 503 inside a plain Error': new Error('the model call failed', { cause: providerError(503, 'overloaded') }),
    'a 408': providerError(408, 'request timeout'),
    'a 408 inside a plain Error': new Error('the model call failed', { cause: providerError(408, 'request timeout') }),
    "a reset connection inside the Agents SDK's ModelTimeoutError": new ModelTimeoutError({
      timeoutMs: 1000,
      cause: Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' }),
    }),
    'a 401 inside a plain Error': new Error('the model call failed', { cause: providerError(401, 'bad key') }),
    'a 400 inside a plain Error': new Error('the model call failed', { cause: providerError(400, 'the message is too long') }),
  };

  for (const [name, error] of Object.entries(wrapped)) {
    it(`is retried exactly when its mapped error is retryable: ${name}`, async () => {
      const retryable = toUpstreamError(normalizeUpstreamFailure(error)).retryable;
      const model = new ScriptedModel([modelError(error), [assistantMessage('answered after a retry')]]);
      const { events, error: thrown } = await answer(model);
      if (retryable) {
        expect(model.calls).toHaveLength(2);
        expect(events.at(-1)).toMatchObject({ type: 'done', finalOutput: 'answered after a retry' });
      } else {
        expect(model.calls).toHaveLength(1);
        expect(thrown?.retryable).toBe(false);
      }
    });
  }

  it('asks again without tools when the wrapped error is a 400 refusing them, and remembers that', async () => {
    const downgrades: ToolSupportLevel[] = [];
    const support = new ToolSupport((level) => downgrades.push(level));
    const refusal = new Error('the model call failed', { cause: providerError(400, 'llama3:8b does not support tools') });
    const model = new ScriptedModel([modelError(refusal), [assistantMessage('no tools then')]]);
    const { events } = await answer(model, tools(support));
    expect(model.calls.map((call) => call.request.tools.length)).toEqual([1, 0]);
    expect(events.at(-1)).toMatchObject({ type: 'done', finalOutput: 'no tools then' });
    expect(support.level).toBe('none');
    expect(downgrades).toEqual(['none']);
  });
});

describe('the tool loop', () => {
  it('runs a round of calls between two model calls and reports each call and result', async () => {
    const model = new ScriptedModel([
      [functionCall('calculate', { expression: '6*7' }, { callId: 'call_1' })],
      [assistantMessage('It is 42.')],
    ]);
    const { events } = await answer(model, tools());
    expect(events.map((event) => event.type)).toEqual(['tool_call', 'tool_result', 'text_delta', 'done']);
    expect(events[1]).toMatchObject({ callId: 'call_1', output: '6*7 = 42', isError: false });
    expect(model.calls[1]!.request.input).toContainEqual(expect.objectContaining({ type: 'function_call_result', callId: 'call_1' }));
  });

  it('fails a failure after the first token at once, without retrying', async () => {
    const broken = (async function* () {
      yield { type: 'output_text_delta' as const, delta: 'Half an ans' };
      throw providerError(503, 'overloaded');
    })();
    const model = new ScriptedModel([{ type: 'stream', events: broken }, [assistantMessage('never')]]);
    const { events, error } = await answer(model);
    expect(events).toEqual([{ type: 'text_delta', delta: 'Half an ans' }]);
    expect(error).toMatchObject({ code: 'UPSTREAM_ERROR', retryable: true });
    expect(model.calls).toHaveLength(1);
  });
});
