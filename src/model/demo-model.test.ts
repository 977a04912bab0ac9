import { describe, expect, it } from 'vitest';
import type { StreamEvent } from '@openai/agents-core';
import { composeDemoAnswer, DemoModel, splitIntoDeltas } from './demo-model.js';

const request = (message: string, signal?: AbortSignal) => ({
  input: [{ role: 'user' as const, content: message }],
  modelSettings: {},
  tools: [],
  outputType: 'text' as const,
  handoffs: [],
  tracing: false as const,
  signal,
});

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

describe('the demo model', () => {
  it('says it is the demo model, how to configure a real one, and reflects the message', () => {
    const answer = composeDemoAnswer('What is streaming?', 60).join('');
    expect(answer).toContain('demo model');
    expect(answer).toContain('GEMINI_API_KEY');
    expect(answer).toContain('OPENAI_BASE_URL');
    expect(answer).toContain('What is streaming?');
  });

  it('is deterministic', () => {
    expect(composeDemoAnswer('same', 80)).toEqual(composeDemoAnswer('same', 80));
  });

  it('answers with about DEMO_RESPONSE_TOKENS tokens, ending on a whole line', () => {
    for (const target of [60, 200, 2000]) {
      const tokens = composeDemoAnswer('hi', target);
      expect(tokens.length).toBeGreaterThanOrEqual(target);
      expect(tokens.length).toBeLessThanOrEqual(target + 10);
      expect(tokens.join('').endsWith('\n')).toBe(true);
    }
    expect(composeDemoAnswer('hi', 3)).toHaveLength(3);
  });

  it('produces the number of tokens a message asks for', () => {
    expect(composeDemoAnswer('please answer in 500 tokens', 60).length).toBeGreaterThanOrEqual(500);
  });

  it('splits text into deltas that join back exactly, whitespace included', () => {
    const text = 'Hello  world\n\n- item\ttab \n';
    const deltas = splitIntoDeltas(text);
    expect(deltas.join('')).toBe(text);
    expect(deltas).toContain('\n\n');
  });

  it('streams the deltas through the Agents SDK model interface, then response_done with usage', async () => {
    const model = new DemoModel({ tokensPerSecond: 0, responseTokens: 30 });
    const events = await collect(model.getStreamedResponse(request('hello')));
    expect(events[0]!.type).toBe('response_started');
    const deltas = events.filter((event) => event.type === 'output_text_delta').map((event) => event.delta);
    expect(deltas.length).toBeGreaterThanOrEqual(30);
    const done = events.at(-1)!;
    if (done.type !== 'response_done') throw new Error('expected response_done');
    expect(done.response.usage.outputTokens).toBe(deltas.length);
    expect(JSON.stringify(done.response.output)).toContain(JSON.stringify(deltas.join('')).slice(1, -1).slice(0, 40));
  });

  it('stops at maxTokens (MAX_OUTPUT_TOKENS) whatever the message asks for, streamed or not', async () => {
    const model = new DemoModel({ tokensPerSecond: 0, responseTokens: 60 });
    const capped = { ...request('answer in 100000 tokens'), modelSettings: { maxTokens: 500 } };
    const events = await collect(model.getStreamedResponse(capped));
    const deltas = events.filter((event) => event.type === 'output_text_delta').map((event) => event.delta);
    expect(deltas).toHaveLength(500);
    expect(deltas).toEqual(composeDemoAnswer('answer in 100000 tokens', 60).slice(0, 500));
    const whole = await model.getResponse(capped);
    expect(whole.usage.outputTokens).toBeLessThanOrEqual(500);
    expect(JSON.stringify(whole.output)).toContain(JSON.stringify(deltas.join('')).slice(-40, -1));
  });

  it('paces tokens at DEMO_TOKENS_PER_SECOND', async () => {
    const model = new DemoModel({ tokensPerSecond: 200, responseTokens: 3 });
    const started = performance.now();
    const events = await collect(model.getStreamedResponse(request('pace')));
    const deltas = events.filter((event) => event.type === 'output_text_delta');
    // n tokens at 200/s take at least (n - 1) × 5 ms; a generous floor keeps this a behaviour check, not a benchmark.
    expect(performance.now() - started).toBeGreaterThanOrEqual((deltas.length - 1) * 5 - 2);
  });

  it('stops when its request is aborted', async () => {
    const controller = new AbortController();
    const model = new DemoModel({ tokensPerSecond: 100, responseTokens: 100 });
    const seen: StreamEvent[] = [];
    await expect(
      (async () => {
        for await (const event of model.getStreamedResponse(request('abort', controller.signal))) {
          seen.push(event);
          if (seen.length === 3) controller.abort();
        }
      })(),
    ).rejects.toThrow();
    expect(seen.length).toBe(3);
  });
});
