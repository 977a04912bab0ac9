import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MemoryReplayLog } from '../src/streams/memory-replay-log.js';
import { startFakeOpenAI, type FakeOpenAIServer } from './support/fake-openai-server.js';
import { readSse, type SseEvent } from './support/sse-client.js';
import { startTestServer, type TestServer } from './support/test-server.js';
import { expectWholeTurn, shapeOf, toolsForTests } from './support/tool-stream.js';

let fake: FakeOpenAIServer;
let server: TestServer;
const replayLog = new MemoryReplayLog();

beforeAll(async () => {
  fake = await startFakeOpenAI();
  server = await startTestServer(
    { OPENAI_BASE_URL: fake.baseUrl, OPENAI_MODEL: 'fake-model', STREAM_TTL_SECONDS: '0.3' },
    { tools: await toolsForTests(), replayLog },
  );
});
afterAll(async () => {
  await server.close();
  await fake.close();
});

const url = (message: string, contextId: string, lastTokenIndex?: number) =>
  `${server.url}/api/v1/chat/streaming?message=${encodeURIComponent(message)}&context_id=${contextId}${lastTokenIndex === undefined ? '' : `&last_token_index=${lastTokenIndex}`}`;

/** Two tokens, a tool call that takes 400 ms, then four tokens. */
function enqueueToolTurn(callId: string) {
  fake.enqueue(
    { kind: 'tool_calls', tokens: ['Checking', ' now.'], calls: [{ id: callId, name: 'sleep_for', arguments: ['{"ms":', '400}'] }] },
    { kind: 'stream', tokens: [' Slept', ' well', ',', ' thanks.'], delayMs: 5 },
  );
}

const afterToolCall = (event: SseEvent) => event.json.type === 'tool_call';

describe('resuming a turn in the middle of a tool step', () => {
  it('with Last-Event-ID replays from the tool result on: no event twice, none missing', async () => {
    enqueueToolTurn('call_r1');
    const first = await readSse(url('sleep a bit', 'resume-tool-header'), { until: afterToolCall });
    expect(shapeOf(first.events)).toEqual(['token', 'token', 'tool_call:call_r1']);
    const lastId = first.events.at(-1)!.id!;
    const rest = await readSse(url('sleep a bit', 'resume-tool-header'), { headers: { 'last-event-id': lastId } });
    expect(rest.events[0]!.json).toMatchObject({ type: 'start', resumed: true });
    expect(rest.events[0]!.id).toBe(lastId);
    expect(shapeOf(rest.events)).toEqual(['tool_result:call_r1', 'token', 'token', 'token', 'token', 'end']);
    const events = await expectWholeTurn(server.url, [first.events, rest.events], 'resume-tool-header');
    expect(events.at(-1)!.json.final_output).toBe('Checking now. Slept well, thanks.');
  });

  it('with last_token_index sends every token once, and the tool events after the last token held', async () => {
    enqueueToolTurn('call_r2');
    const first = await readSse(url('sleep again', 'resume-tool-index'), { until: afterToolCall });
    const turnId = first.events[0]!.json.turn_id;
    const rest = await readSse(url('sleep again', 'resume-tool-index', 2));
    expect(rest.events[0]!.json).toMatchObject({ type: 'start', resumed: true, turn_id: turnId });
    // The client holds tokens 0 and 1: the start id names token 1's position, so a further drop resumes right after it.
    expect(rest.events[0]!.id).toBe(`${turnId}/1`);
    // The original resume counts tokens only, so the tool call after token 1 comes again (clients tell it by call_id).
    expect(shapeOf(rest.events)).toEqual(['tool_call:call_r2', 'tool_result:call_r2', 'token', 'token', 'token', 'token', 'end']);
    expect(rest.events[3]!.json.token_index).toBe(2);
    await expectWholeTurn(server.url, [first.events.slice(0, 3), rest.events], 'resume-tool-index');

    const again = await readSse(url('sleep again', 'resume-tool-index'), { headers: { 'last-event-id': rest.events[0]!.id! } });
    expect(shapeOf(again.events)).toEqual(shapeOf(rest.events));
  });

  it('maps last_token_index past a tool step to the right position in an ended turn', async () => {
    enqueueToolTurn('call_r3');
    const whole = await readSse(url('sleep once more', 'resume-tool-ended'));
    const turnId = whole.events[0]!.json.turn_id;
    const rest = await readSse(url('sleep once more', 'resume-tool-ended', 4));
    // Tokens 0 and 1, the call and its result, tokens 2 and 3: token 3 is at position 5.
    expect(rest.events[0]!.id).toBe(`${turnId}/5`);
    expect(rest.events.slice(1).map((event) => event.id)).toEqual(whole.events.slice(7).map((event) => event.id));
    expect(shapeOf(rest.events)).toEqual(['token', 'token', 'end']);
  });

  it('after the log has expired, resyncs with an end whose id counts the tool events', async () => {
    enqueueToolTurn('call_r4');
    const whole = await readSse(url('sleep and forget', 'resume-tool-expired'));
    const end = whole.events.at(-1)!;
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(await replayLog.has(end.json.turn_id)).toBe(false);
    const resync = await readSse(url('sleep and forget', 'resume-tool-expired'), { headers: { 'last-event-id': whole.events[3]!.id! } });
    expect(shapeOf(resync.events)).toEqual(['resync', 'end']);
    expect(resync.events.at(-1)!.id).toBe(end.id);
    expect(resync.events.at(-1)!.json.final_output).toBe(end.json.final_output);
  });
});
