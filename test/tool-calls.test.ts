import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MAX_TOOL_CALLS_PER_ROUND } from '../src/model/tool-round.js';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { readSse, tokensOf } from './support/sse-client.js';
import { getJson, postJson, startTestServer, type TestServer } from './support/test-server.js';
import { chatRequests, expectWholeTurn, shapeOf, toolsForTests } from './support/tool-stream.js';

let fake: FakeOpenAIServer;
let server: TestServer;

beforeAll(async () => {
  fake = await startFakeOpenAI();
  server = await startTestServer(
    {
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODEL: 'fake-model',
      RESPONSE_TIMEOUT_SECONDS: '0.5',
      TOOL_TIMEOUT_SECONDS: '1',
      UPSTREAM_MAX_RETRIES: '0',
    },
    { tools: await toolsForTests() },
  );
});
afterAll(async () => {
  await server.close();
  await fake.close();
});
afterEach(() => {
  fake.requests.length = 0;
});

const stream = (message: string, contextId: string) =>
  readSse(`${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}`);

describe('tool calls from an OpenAI-compatible model', () => {
  it('streams two parallel calls with arguments split across chunks, through SSE, the next request and the store', async () => {
    fake.enqueue(
      {
        kind: 'tool_calls',
        interleave: true,
        calls: [
          { id: 'call_calc', name: 'calculate', arguments: ['{"expre', 'ssion": "12*(3', '+4)"}'] },
          { id: 'call_conv', name: 'convert_units', arguments: ['{"value": 5, ', '"from_unit": "km", ', '"to_unit": "miles"}'] },
        ],
      },
      { kind: 'stream', tokens: ['12*(3+4) is 84', ', and 5 km is', ' about 3.1 miles.'] },
    );
    const result = await stream('what is 12*(3+4), and 5 km in miles?', 'tools-parallel');
    expect(shapeOf(result.events)).toEqual([
      'tool_call:call_calc',
      'tool_call:call_conv',
      'tool_result:call_calc',
      'tool_result:call_conv',
      'token',
      'token',
      'token',
      'end',
    ]);
    const [calcCall, convCall, calcResult, convResult] = result.events.slice(1, 5).map((event) => event.json);
    expect(calcCall).toEqual({
      type: 'tool_call',
      event_type: 'tool_call',
      call_id: 'call_calc',
      name: 'calculate',
      arguments: '{"expression": "12*(3+4)"}',
    });
    expect(convCall.arguments).toBe('{"value": 5, "from_unit": "km", "to_unit": "miles"}');
    expect(calcResult).toMatchObject({
      type: 'tool_result',
      event_type: 'tool_result',
      call_id: 'call_calc',
      output: '12*(3+4) = 84',
      is_error: false,
    });
    expect(calcResult.duration_ms).toBeGreaterThanOrEqual(0);
    expect(calcResult).not.toHaveProperty('token_index');
    expect(convResult.output).toBe('5 kilometers = 3.106855961 miles');
    const events = await expectWholeTurn(server.url, [result.events], 'tools-parallel');
    expect(events.at(-1)!.json.usage).toEqual({ input_tokens: 22, output_tokens: 13, total_tokens: 35 });

    const [first, second] = chatRequests(fake);
    expect(first!.body.tools!.map((tool) => tool.function.name)).toEqual([
      'get_current_time',
      'calculate',
      'convert_units',
      'explode',
      'sleep_for',
      'hang',
    ]);
    expect(first!.body.tools![1]).toMatchObject({
      type: 'function',
      function: { name: 'calculate', strict: true, parameters: { type: 'object', required: ['expression'] } },
    });
    expect(first!.body.tool_choice).toBeUndefined();
    expect(second!.body.messages!.slice(-3)).toEqual([
      {
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_calc', type: 'function', function: { name: 'calculate', arguments: '{"expression": "12*(3+4)"}' } },
          {
            id: 'call_conv',
            type: 'function',
            function: { name: 'convert_units', arguments: '{"value": 5, "from_unit": "km", "to_unit": "miles"}' },
          },
        ],
      },
      { role: 'tool', tool_call_id: 'call_calc', content: '12*(3+4) = 84' },
      { role: 'tool', tool_call_id: 'call_conv', content: '5 kilometers = 3.106855961 miles' },
    ]);

    const stored = (await getJson(`${server.url}/api/v1/conversations/tools-parallel`)).body.turns[0];
    expect(stored.tool_steps).toEqual([
      {
        call_id: 'call_calc',
        name: 'calculate',
        arguments: '{"expression": "12*(3+4)"}',
        output: '12*(3+4) = 84',
        is_error: false,
        duration_ms: calcResult.duration_ms,
        token_offset: 0,
      },
      {
        call_id: 'call_conv',
        name: 'convert_units',
        arguments: convCall.arguments,
        output: convResult.output,
        is_error: false,
        duration_ms: convResult.duration_ms,
        token_offset: 0,
      },
    ]);
  });

  it('keeps text written before a call in the answer, with positions and token indexes running on', async () => {
    fake.enqueue(
      {
        kind: 'tool_calls',
        tokens: ['Let', ' me', ' check.'],
        calls: [{ id: 'call_t', name: 'calculate', arguments: ['{"expression":"2^10"}'] }],
      },
      { kind: 'stream', tokens: [' It', ' is 1024.'] },
    );
    const result = await stream('2^10?', 'tools-text-first');
    expect(shapeOf(result.events)).toEqual(['token', 'token', 'token', 'tool_call:call_t', 'tool_result:call_t', 'token', 'token', 'end']);
    const events = await expectWholeTurn(server.url, [result.events], 'tools-text-first');
    expect(events[5]!.json).toMatchObject({ token: ' It', token_index: 3 });
    expect(events.at(-1)!.json).toMatchObject({ final_output: 'Let me check. It is 1024.', token_count: 5 });
    const second = chatRequests(fake)[1]!;
    expect(second.body.messages!.at(-2)).toMatchObject({ role: 'assistant', content: 'Let me check.', tool_calls: [{ id: 'call_t' }] });
    const turn = (await server.store.getConversation('tools-text-first'))!.turns[0]!;
    expect(turn.toolSteps[0]).toMatchObject({ callId: 'call_t', tokenOffset: 3, output: '2^10 = 1024' });
  });

  it('answers a wait request with the tool steps', async () => {
    fake.enqueue(
      { kind: 'tool_calls', calls: [{ id: 'call_w', name: 'calculate', arguments: ['{"expression":"6*7"}'] }] },
      { kind: 'stream', tokens: ['42'] },
    );
    const response = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'six times seven', context_id: 'tools-wait' });
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      message: '42',
      token_count: 1,
      tool_steps: [{ call_id: 'call_w', name: 'calculate', output: '6*7 = 42', is_error: false }],
    });
    const plain = await postJson(`${server.url}/api/v1/chat/wait`, { message: 'no tools here' });
    expect(plain.body).not.toHaveProperty('tool_steps');
  });

  it('gives the model an error result when a tool throws, and the turn goes on', async () => {
    fake.enqueue(
      { kind: 'tool_calls', calls: [{ id: 'call_x', name: 'explode', arguments: ['{}'] }] },
      { kind: 'stream', tokens: ['The sensor is offline, sorry.'] },
    );
    const result = await stream('read the sensor', 'tools-throw');
    expect(result.events[2]!.json).toMatchObject({
      type: 'tool_result',
      call_id: 'call_x',
      output: 'Error: the sensor is offline',
      is_error: true,
    });
    expect(result.events.at(-1)!.json).toMatchObject({ type: 'end', final_output: 'The sensor is offline, sorry.' });
    expect(chatRequests(fake)[1]!.body.messages!.at(-1)).toEqual({
      role: 'tool',
      tool_call_id: 'call_x',
      content: 'Error: the sensor is offline',
    });
    expect((await server.store.getConversation('tools-throw'))!.turns[0]).toMatchObject({
      status: 'complete',
      toolSteps: [{ isError: true }],
    });
  });

  it('lets a tool run longer than RESPONSE_TIMEOUT_SECONDS, within TOOL_TIMEOUT_SECONDS', async () => {
    fake.enqueue(
      { kind: 'tool_calls', calls: [{ id: 'call_s', name: 'sleep_for', arguments: ['{"ms":800}'] }] },
      { kind: 'stream', tokens: ['Done.'] },
    );
    const result = await stream('take your time', 'tools-slow');
    expect(result.events[2]!.json).toMatchObject({ output: 'slept 800 ms', is_error: false });
    expect(result.events[2]!.json.duration_ms).toBeGreaterThanOrEqual(790);
    expect(result.events.at(-1)!.json.type).toBe('end');
  });

  it("keeps waiting while the model streams a call's arguments for longer than RESPONSE_TIMEOUT_SECONDS, without text", async () => {
    const pieces = ['{"expression":', '"1', '+', '2', '+', '3', '+', '4', '"}'];
    fake.enqueue(
      { kind: 'tool_calls', delayMs: 150, calls: [{ id: 'call_slow', name: 'calculate', arguments: pieces }] },
      { kind: 'stream', tokens: ['Ten.'] },
    );
    const started = performance.now();
    const result = await stream('slow arguments', 'tools-slow-arguments');
    expect(performance.now() - started).toBeGreaterThan(1000);
    expect(shapeOf(result.events)).toEqual(['tool_call:call_slow', 'tool_result:call_slow', 'token', 'end']);
    expect(result.events[2]!.json.output).toBe('1+2+3+4 = 10');
  });

  it("still times out a model that goes quiet in the middle of a call's arguments", async () => {
    fake.enqueue({
      kind: 'tool_calls',
      delayMs: 150,
      hangAfter: 4,
      calls: [{ id: 'call_quiet', name: 'calculate', arguments: ['{"expression":', '"1', '+', '2', '"}'] }],
    });
    const started = performance.now();
    const result = await stream('quiet arguments', 'tools-quiet-arguments');
    // Four pieces 150 ms apart kept it going; then 0.5 s of silence ended it.
    expect(performance.now() - started).toBeGreaterThan(1000);
    expect(result.events.at(-1)!.json).toMatchObject({ type: 'error', error_code: 'UPSTREAM_TIMEOUT' });
  });

  it('stops waiting for a tool after TOOL_TIMEOUT_SECONDS and gives the model an error result', async () => {
    fake.enqueue(
      { kind: 'tool_calls', calls: [{ id: 'call_h', name: 'hang', arguments: ['{}'] }] },
      { kind: 'stream', tokens: ['The tool timed out.'] },
    );
    const result = await stream('wait forever', 'tools-timeout');
    expect(result.events[2]!.json).toMatchObject({ output: 'Error: the tool hang did not finish within 1 seconds.', is_error: true });
    expect(result.events.at(-1)!.json).toMatchObject({ type: 'end', final_output: 'The tool timed out.' });
    expect(chatRequests(fake)[1]!.body.messages!.at(-1)).toMatchObject({
      role: 'tool',
      content: 'Error: the tool hang did not finish within 1 seconds.',
    });
  });

  it('answers a call of an unknown tool with an error result naming the real ones', async () => {
    fake.enqueue(
      { kind: 'tool_calls', calls: [{ id: 'call_u', name: 'weather', arguments: ['{"city":"Oslo"}'] }] },
      { kind: 'stream', tokens: ['I cannot check the weather.'] },
    );
    const result = await stream('weather in Oslo', 'tools-unknown');
    expect(result.events[2]!.json.output).toBe(
      'Error: there is no tool named "weather". The tools are: get_current_time, calculate, convert_units, explode, sleep_for, hang.',
    );
    expect(result.events.at(-1)!.json.type).toBe('end');
  });

  it(`runs at most ${MAX_TOOL_CALLS_PER_ROUND} calls of one round and answers the others with an error result`, async () => {
    const calls = Array.from({ length: MAX_TOOL_CALLS_PER_ROUND + 2 }, (_, index) => ({
      id: `call_${index}`,
      name: 'calculate',
      arguments: [`{"expression":"${index}+1"}`],
    }));
    fake.enqueue({ kind: 'tool_calls', calls }, { kind: 'stream', tokens: ['Done.'] });
    const warnings: string[] = [];
    const onWarning = (warning: Error) => warnings.push(warning.name);
    process.on('warning', onWarning);
    const result = await stream('many calls', 'tools-many').finally(() => process.off('warning', onWarning));
    // A full round of calls, each listening for the turn's abort, is no listener leak.
    expect(warnings).not.toContain('MaxListenersExceededWarning');
    const outcomes = result.events.filter((event) => event.json.type === 'tool_result').map((event) => event.json);
    expect(outcomes).toHaveLength(calls.length);
    expect(outcomes.slice(0, MAX_TOOL_CALLS_PER_ROUND).map((outcome) => outcome.output)).toEqual(
      calls.slice(0, MAX_TOOL_CALLS_PER_ROUND).map((_, index) => `${index}+1 = ${index + 1}`),
    );
    for (const outcome of outcomes.slice(MAX_TOOL_CALLS_PER_ROUND)) {
      expect(outcome).toMatchObject({ is_error: true, duration_ms: 0 });
      expect(outcome.output).toMatch(/^Error: too many tool calls in one round \(at most 16\); this one did not run\./);
    }
    expect(result.events.at(-1)!.json).toMatchObject({ type: 'end', final_output: 'Done.' });
    const toolMessages = chatRequests(fake)[1]!.body.messages!.filter((message) => message.role === 'tool');
    expect(toolMessages.map((message) => message.tool_call_id)).toEqual(calls.map((call) => call.id));
  });

  it('makes a call id the server repeats in a later round unique, in the stream, the store and the history', async () => {
    const call = (expression: string) => ({
      kind: 'tool_calls' as const,
      calls: [{ id: 'call_0', name: 'calculate', arguments: [`{"expression":"${expression}"}`] }],
    });
    fake.enqueue(
      call('1+1'),
      call('2+2'),
      {
        kind: 'tool_calls',
        calls: [
          { id: 'call_0', name: 'calculate', arguments: ['{"expression":"3+3"}'] },
          { id: 'call_0_2', name: 'calculate', arguments: ['{"expression":"4+4"}'] },
        ],
      },
      { kind: 'stream', tokens: ['2, 4, 6 and 8.'] },
    );
    const result = await stream('one round after another', 'tools-same-id');
    const ids = ['call_0', 'call_0_2', 'call_0_3', 'call_0_2_2'];
    expect(shapeOf(result.events)).toEqual([
      'tool_call:call_0',
      'tool_result:call_0',
      'tool_call:call_0_2',
      'tool_result:call_0_2',
      'tool_call:call_0_3',
      'tool_call:call_0_2_2',
      'tool_result:call_0_3',
      'tool_result:call_0_2_2',
      'token',
      'end',
    ]);
    const stored = (await getJson(`${server.url}/api/v1/conversations/tools-same-id`)).body.turns[0].tool_steps;
    expect(stored.map((step: { call_id: string; output: string }) => [step.call_id, step.output])).toEqual([
      ['call_0', '1+1 = 2'],
      ['call_0_2', '2+2 = 4'],
      ['call_0_3', '3+3 = 6'],
      ['call_0_2_2', '4+4 = 8'],
    ]);
    const history = chatRequests(fake).at(-1)!.body.messages!;
    const calledIds = history.flatMap((message) => (message.tool_calls ?? []) as { id: string }[]).map((toolCall) => toolCall.id);
    expect(calledIds).toEqual(ids);
    expect(history.filter((message) => message.role === 'tool').map((message) => message.tool_call_id)).toEqual(ids);
  });

  it('stops a turn cancelled while a tool runs, keeping the call in the stored turn', async () => {
    fake.enqueue({ kind: 'tool_calls', calls: [{ id: 'call_c', name: 'sleep_for', arguments: ['{"ms":5000}'] }] });
    const reading = readSse(`${server.url}/api/v1/chat/streaming?message=cancel%20me&context_id=tools-cancel`, {
      until: (event) => {
        if (event.json.type === 'tool_call') void postJson(`${server.url}/api/v1/chat/turns/${event.id!.split('/')[0]}/cancel`, {});
        return event.json.type === 'end';
      },
    });
    const result = await reading;
    expect(shapeOf(result.events)).toEqual(['tool_call:call_c', 'end']);
    expect(result.events.at(-1)!.json).toMatchObject({ finish_reason: 'cancelled', final_output: '' });
    expect((await server.store.getConversation('tools-cancel'))!.turns[0]).toMatchObject({
      status: 'cancelled',
      toolSteps: [{ callId: 'call_c', output: null, durationMs: null }],
    });
    expect(chatRequests(fake)).toHaveLength(1);
  });
});

describe('the tool round cap (TOOL_MAX_ROUNDS=2)', () => {
  let capped: TestServer;
  beforeAll(async () => {
    capped = await startTestServer({
      OPENAI_BASE_URL: fake.baseUrl,
      OPENAI_MODEL: 'fake-model',
      TOOL_MAX_ROUNDS: '2',
      UPSTREAM_MAX_RETRIES: '0',
    });
  });
  afterAll(() => capped.close());

  const round = (id: string) => ({ kind: 'tool_calls' as const, calls: [{ id, name: 'calculate', arguments: ['{"expression":"1+1"}'] }] });

  it('asks for an answer without tools after the last round', async () => {
    fake.enqueue(round('r1'), round('r2'), { kind: 'stream', tokens: ['Two, twice.'] });
    const result = await readSse(`${capped.url}/api/v1/chat/streaming?message=loop&context_id=cap-answer`);
    expect(shapeOf(result.events)).toEqual(['tool_call:r1', 'tool_result:r1', 'tool_call:r2', 'tool_result:r2', 'token', 'end']);
    const requests = chatRequests(fake);
    expect(requests.map((request) => request.body.tool_choice)).toEqual([undefined, undefined, 'none']);
    expect(requests[2]!.body.tools).toHaveLength(3);
    expect(requests[2]!.body.messages!.filter((message) => message.role === 'tool')).toHaveLength(2);
  });

  it('ends with a clear error when the model still asks for tools and says nothing', async () => {
    fake.enqueue(round('s1'), round('s2'), round('s3'));
    const result = await readSse(`${capped.url}/api/v1/chat/streaming?message=loop%20forever&context_id=cap-error`);
    expect(shapeOf(result.events)).toEqual(['tool_call:s1', 'tool_result:s1', 'tool_call:s2', 'tool_result:s2', 'error']);
    expect(result.events.at(-1)!.json).toMatchObject({ error_code: 'UPSTREAM_ERROR', retryable: false });
    expect(result.events.at(-1)!.json.message).toContain('TOOL_MAX_ROUNDS');
    expect(chatRequests(fake)).toHaveLength(3);
    expect((await capped.store.getConversation('cap-error'))!.turns[0]).toMatchObject({
      status: 'error',
      toolSteps: [{ callId: 's1' }, { callId: 's2' }],
    });
  });

  it('sends no tools at all when TOOLS=none, and the request stays as before', async () => {
    const bare = await startTestServer({ OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: 'fake-model', TOOLS: 'none' });
    try {
      const result = await readSse(`${bare.url}/api/v1/chat/streaming?message=hello&context_id=no-tools`);
      expect(tokensOf(result.events).join('')).toBe('Hello from the fake model.');
      // No tool fields; max_tokens is MAX_OUTPUT_TOKENS, sent by default.
      expect(Object.keys(chatRequests(fake)[0]!.body).sort()).toEqual(['max_tokens', 'messages', 'model', 'stream', 'stream_options']);
    } finally {
      await bare.close();
    }
  });
});
