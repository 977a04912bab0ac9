import type { ModelRequest, SerializedTool, StreamEvent } from '@openai/agents-core';
import { describe, expect, it } from 'vitest';
import { composeDemoAnswer, DemoModel } from './demo-model.js';
import { planDemoToolStep } from './demo-tool-calls.js';

const offer = (...names: string[]): SerializedTool[] =>
  names.map((name) => ({
    type: 'function',
    name,
    description: name,
    parameters: { type: 'object', properties: {}, required: [], additionalProperties: false },
    strict: true,
  }));
const ALL = offer('get_current_time', 'calculate', 'convert_units');

const request = (input: ModelRequest['input'], tools = ALL, toolChoice?: 'none'): ModelRequest => ({
  input,
  modelSettings: toolChoice ? { toolChoice } : {},
  tools,
  outputType: 'text',
  handoffs: [],
  tracing: false,
});

async function collect(stream: AsyncIterable<StreamEvent>): Promise<StreamEvent[]> {
  const events: StreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

describe('the demo model with tools', () => {
  it.each([
    ['what time is it in Tokyo', 'get_current_time', { time_zone: 'Asia/Tokyo' }],
    ["What's the time in New York right now?", 'get_current_time', { time_zone: 'America/New_York' }],
    ['what time is it?', 'get_current_time', { time_zone: 'UTC' }],
    ['what is 12*(3+4)?', 'calculate', { expression: '12*(3+4)' }],
    ['What is 17 × 23? Show your steps', 'calculate', { expression: '17 × 23' }],
    ['Calculate 2^10 - sqrt(16), please.', 'calculate', { expression: '2^10 - sqrt(16)' }],
    ['convert 5 km to miles', 'convert_units', { value: 5, from_unit: 'km', to_unit: 'miles' }],
    ['Please convert 100 °F into C.', 'convert_units', { value: 100, from_unit: '°F', to_unit: 'C' }],
  ])('calls a tool for %j', (message, name, args) => {
    expect(planDemoToolStep(request(message))).toEqual({ kind: 'call', name, arguments: args });
  });

  it.each([
    'Hello!',
    'answer in 200 tokens',
    'bench 7',
    'Tell me a story, 400 tokens',
    'What is streaming?',
    'Write a haiku about streaming data',
    'Explain SSE in one paragraph',
  ])('answers %j exactly as without tools', async (message) => {
    expect(planDemoToolStep(request(message))).toBeUndefined();
    const events = await collect(new DemoModel({ tokensPerSecond: 0, responseTokens: 60 }).getStreamedResponse(request(message)));
    const deltas = events.flatMap((event) => (event.type === 'output_text_delta' ? [event.delta] : []));
    expect(deltas).toEqual(composeDemoAnswer(message, 60));
  });

  it('calls no tool that is not offered, nor when told not to', () => {
    expect(planDemoToolStep(request('what is 12*(3+4)?', []))).toBeUndefined();
    expect(planDemoToolStep(request('what time is it in Tokyo', offer('calculate')))).toBeUndefined();
    expect(planDemoToolStep(request('what is 12*(3+4)?', ALL, 'none'))).toBeUndefined();
    expect(planDemoToolStep(request('convert 5 km to miles', offer('calculate', 'get_current_time')))).toBeUndefined();
  });

  it('reads no message over 300 characters for a tool call', () => {
    expect(planDemoToolStep(request(`what time is it in Tokyo${' '.repeat(276)}`))?.kind).toBe('call');
    expect(planDemoToolStep(request(`what time is it in Tokyo${' '.repeat(277)}`))).toBeUndefined();
    expect(planDemoToolStep(request(`what is 12*(3+4)? ${'Please. '.repeat(40)}`))).toBeUndefined();
  });

  it('streams a call as a function_call output item, with no text', async () => {
    const events = await collect(
      new DemoModel({ tokensPerSecond: 0, responseTokens: 60 }).getStreamedResponse(request('convert 5 km to miles')),
    );
    expect(events.some((event) => event.type === 'output_text_delta')).toBe(false);
    const done = events.at(-1)!;
    expect(done.type === 'response_done' && done.response.output).toEqual([
      {
        type: 'function_call',
        callId: expect.stringMatching(/^call_/),
        name: 'convert_units',
        arguments: '{"value":5,"from_unit":"km","to_unit":"miles"}',
        status: 'completed',
      },
    ]);
  });

  it('answers from the tool results, errors included', () => {
    const input: ModelRequest['input'] = [
      { role: 'user', content: 'what is 12*(3+4) and 1/0?' },
      { type: 'function_call', callId: 'c1', name: 'calculate', arguments: '{"expression":"12*(3+4)"}', status: 'completed' },
      { type: 'function_call', callId: 'c2', name: 'calculate', arguments: '{"expression":"1/0"}', status: 'completed' },
      { type: 'function_call_result', callId: 'c1', name: 'calculate', status: 'completed', output: '12*(3+4) = 84' },
      { type: 'function_call_result', callId: 'c2', name: 'calculate', status: 'completed', output: 'Error: division by zero' },
    ];
    const step = planDemoToolStep(request(input));
    expect(step?.kind).toBe('answer');
    const text = step?.kind === 'answer' ? step.text : '';
    expect(text).toContain('I called the `calculate` tool with `{"expression":"12*(3+4)"}`, and it answered: `12*(3+4) = 84`');
    expect(text).toContain('and it answered with an error: `Error: division by zero`');
    expect(text).toContain('not an AI');
  });
});
